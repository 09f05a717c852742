"""Frames per second of ``amls2 upscale`` on a video, as a user runs it: decode, upscale each
frame as an image (``amls2.inference.video``), encode, on a synthetic clip written with
``cv2.VideoWriter`` (default 30 frames of 640x480, i.e. 480p -> 960p at x2 with ESPCN).

    python benchmarks/video_fps.py --model espcn --scale 2
    nice -n 19 python benchmarks/video_fps.py --frames 60

The table says the process's niceness: on a CPU shared with other jobs a niced run measures
what is left over, not the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from timing import cpu_header  # noqa: E402


def write_clip(path: Path, frames: int, width: int, height: int, fps: float) -> None:
    """A smooth moving pattern (what a codec sees in real footage, not noise)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(frames):
        phase = i * 0.2
        frame = np.stack(
            [
                127 + 120 * np.sin(xx / 23 + phase),
                127 + 120 * np.sin(yy / 17 - phase),
                127 + 120 * np.sin((xx + yy) / 31 + phase),
            ],
            axis=-1,
        )
        writer.write(frame.astype(np.uint8))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="espcn")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()

    from amls2.inference.upscale import UpscaleConfig, default_suffix
    from amls2.inference.video import plan_videos, upscale_video
    from amls2.inference.weights import load_upscaler

    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "clip.mp4"
        write_clip(clip, args.frames, args.width, args.height, args.fps)
        config = UpscaleConfig(inputs=(clip,), model=args.model, scale=args.scale)
        upscaler = load_upscaler(args.model, scale=args.scale)
        upscaler.upscale(np.zeros((args.height, args.width, 3), np.float32))  # warm-up
        suffix = default_suffix(upscaler.name, args.scale)
        [(src, out)] = plan_videos([clip], out_dir=None, suffix=suffix, inputs=[clip])
        result = upscale_video(src, out, upscaler, config, progress=False)
    print(cpu_header())
    print(f"# niceness {os.nice(0)}")
    print("| model | scale | input | output | frames | seconds | frames/s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | x{args.scale} | {args.width}x{args.height} | "
        f"{args.width * args.scale}x{args.height * args.scale} | {result.frames} | "
        f"{result.seconds:.1f} | {result.frames_per_second:.2f} |"
    )


if __name__ == "__main__":
    main()
