"""Video in, video out for ``amls2 upscale``: every frame of a clip upscaled as an image.

Frames are read with OpenCV's ``VideoCapture`` and each is upscaled exactly as an image file
would be (:func:`amls2.inference.upscale.upscale_image`: the same model call, automatic tiling of large
frames); the output ``<stem><suffix>.mp4`` (MPEG-4 part 2) has the input's frame rate and frame
count. Audio is not kept. The same planning rules as for images hold: the output is never an
input, an existing output is kept unless ``force``, a frame over the pixel budget
(``--max-pixels``) is refused before the first frame is decoded. The video is written under a
temporary name and renamed when complete, so an interrupted run leaves no partial video.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amls2.errors import ConfigError, ImageError
from amls2.fileio import atomic_path
from amls2.imaging import image_headers, images
from amls2.inference.upscale import output_path_for

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
OUTPUT_SUFFIX = ".mp4"
_FOURCC = "mp4v"


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """One upscaled clip: ``status`` "written" or "skipped-existing"; ``seconds`` of the
    whole decode-upscale-encode loop."""

    input: Path
    output: Path
    status: str
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Frames upscaled per second of wall time (0 when nothing was timed)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file by its suffix (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _open(src: Path):
    """An opened ``cv2.VideoCapture`` of a regular file and its (frames, fps, height, width)."""
    import cv2

    if not src.exists():
        raise ImageError(f"{src}: no such file or folder")
    if not src.is_file():
        raise ImageError(f"{src}: not a regular file; refused")
    capture = cv2.VideoCapture(str(src))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    if frames < 1 or not fps > 0 or height < 1 or width < 1:
        capture.release()
        raise ImageError(f"{src}: not a readable video (OpenCV finds no frames in it)")
    return capture, (frames, fps, height, width)


def _check_budget(src: Path, height: int, width: int) -> None:
    budget = image_headers.max_pixels()
    if budget and height * width > budget:
        raise ImageError(
            f"{src}: {width}x{height} frames ({height * width} pixels) are over the pixel budget "
            f"of {budget} pixels; raise it with --max-pixels"
        )


def _path_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def plan_videos(
    videos: list[Path], *, out_dir: Path | None, suffix: str, inputs: list[Path]
) -> list[tuple[Path, Path]]:
    """(video, output) pairs, checked before anything is written: ConfigError if an output is
    an input of the run or two videos map to one output; ImageError if a video is unreadable
    or its frames are over the pixel budget."""
    keys = {_path_key(p): p for p in inputs}
    claimed: dict[str, Path] = {}
    plan = []
    for src in videos:
        out = output_path_for(src, out_dir=out_dir, suffix=suffix, extension=OUTPUT_SUFFIX)
        key = _path_key(out)
        if key in keys:
            raise ConfigError(
                f"{src}: its output {out} is an input of this run ({keys[key]}); "
                "use another --out or --suffix"
            )
        if key in claimed:
            raise ConfigError(f"{claimed[key]} and {src} would both be written to {out}")
        claimed[key] = src
        capture, (_, _, height, width) = _open(src)
        capture.release()
        _check_budget(src, height, width)
        plan.append((src, out))
    return plan


def upscale_video(src: Path, out: Path, upscaler, config, *, progress: bool = True) -> VideoResult:
    """Upscale every frame of video ``src`` with ``upscaler`` into ``out`` (see
    :func:`plan_videos`). ``config`` is the job's :class:`amls2.inference.upscale.UpscaleConfig` (scale,
    force, tiling). An existing ``out`` is kept unless ``config.force``."""
    import cv2

    from amls2.inference.upscale import upscale_image  # the one per-image path (tiling, formats)

    if out.exists() and not config.force:
        log.warning("%s: exists, kept (use --force to overwrite)", out)
        return VideoResult(src, out, "skipped-existing")
    capture, (frames, fps, height, width) = _open(src)
    try:
        _check_budget(src, height, width)
        scale = config.scale
        size = (width * scale, height * scale)
        start = time.perf_counter()
        written = 0
        with atomic_path(out) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*_FOURCC), fps, size)
            if not writer.isOpened():
                raise ImageError(f"{out}: OpenCV cannot write {_FOURCC} video here")
            try:
                bar = tqdm(total=frames, desc=src.name, unit="frame", disable=not progress)
                with bar:
                    while True:
                        ok, frame = capture.read()
                        if not ok:
                            break
                        rgb = np.ascontiguousarray(frame[:, :, ::-1], dtype=np.float32) / 255.0
                        loaded = images.LoadedImage(rgb, None, False, 8, src)
                        sr, _ = upscale_image(upscaler, loaded, config, tile_progress=False)
                        writer.write(np.ascontiguousarray(images.to_uint8(sr)[:, :, ::-1]))
                        written += 1
                        bar.update()
            finally:
                writer.release()
            if written == 0:
                raise ImageError(f"{src}: not a readable video (no frame could be decoded)")
        seconds = time.perf_counter() - start
    finally:
        capture.release()
    if written != frames:  # the container's count is an estimate for some codecs
        log.warning("%s: %d frames decoded, the file says %d", src, written, frames)
    return VideoResult(src, out, "written", written, fps, seconds)
