"""``amls2 upscale``: super-resolve image files and folders with a model or the bicubic baseline.

Outputs are PNG files ``<stem><suffix>.png`` (default suffix ``_x<S>_<model>``) in ``--out`` or
beside each input. Every output path is planned before the first write: an output that is an
input of the run, or two inputs mapping to one output, is refused; files named like this
command's outputs (an earlier run's, beside its inputs) are skipped. Existing outputs are kept and
skipped with a warning unless ``--force``. Grayscale stays grayscale, alpha is upscaled with
bicubic and kept, 16-bit stays 16-bit, JPEG becomes PNG. Large images are tiled automatically
(above 320 LR px: tiles keeping 320 px each after the receptive-field overlap;
``--tile 0`` forces whole-image inference). Images over the pixel budget (``--max-pixels``) are
refused from their header, before decoding; ``--skip-bad`` skips them and other bad inputs, but a
run where every input was bad fails. A video file (``.mp4``, ``.avi``, ``.mov``, ``.mkv``,
``.m4v``) is upscaled frame by frame into ``<stem><suffix>.mp4`` with the same frame rate and
frame count, audio not kept (:mod:`amls2.inference.video`); the frames per second are reported at the end.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from amls2.cli import add_max_pixels_argument

NAME = "upscale"
HELP = "super-resolve image files/folders with a model or bicubic (PNG outputs, format kept)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="image files or folders, or video files (.mp4 .avi .mov .mkv .m4v: every frame "
        "upscaled into <stem><suffix>.mp4, same frame rate and count; audio is not kept)",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="NAME_OR_PATH",
        help="'bicubic', a registry name (shipped weights) or a .keras/.h5 file",
    )
    parser.add_argument("--scale", type=int, required=True, metavar="S")
    parser.add_argument("--track", default="bicubic", help="bicubic or unknown (default: bicubic)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: beside)")
    parser.add_argument(
        "--suffix",
        metavar="STR",
        help="output name suffix, a plain file-name fragment (default _x<S>_<model>)",
    )
    parser.add_argument(
        "--tile", type=int, metavar="N", help="tile size in LR px (default: auto; 0: whole image)"
    )
    parser.add_argument(
        "--tile-overlap", type=int, metavar="M", help="overlap in LR px (default: receptive field)"
    )
    parser.add_argument("--self-ensemble", action="store_true", help="x8 flips/rotations average")
    parser.add_argument(
        "--save-intermediate", action="store_true", help="also write the bicubic upscale"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip unreadable or over-budget inputs"
    )
    add_max_pixels_argument(parser)


def run(args: argparse.Namespace) -> int:
    from amls2.inference.upscale import UpscaleConfig, upscale_files
    from amls2.inference.video import is_video

    videos = [p for p in args.inputs if is_video(p) and not p.is_dir()]
    config = UpscaleConfig(
        inputs=tuple(p for p in args.inputs if p not in videos),
        model=args.model,
        scale=args.scale,
        track=args.track,
        out_dir=args.out,
        suffix=args.suffix,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        self_ensemble=args.self_ensemble,
        save_intermediate=args.save_intermediate,
        force=args.force,
        skip_bad=args.skip_bad,
    )
    if videos:
        return _run_with_videos(config, videos, list(args.inputs))
    results = upscale_files(config)
    _report(results)
    return 0


def _run_with_videos(config, videos: list[Path], inputs: list[Path]) -> int:
    """Videos (and any images given with them): every output planned, every video probed,
    before the first write; one model load for all."""
    from amls2.fileio import check_writable_folder
    from amls2.inference.upscale import default_suffix, upscale_files
    from amls2.inference.video import plan_videos, upscale_video
    from amls2.inference.weights import load_upscaler

    if config.out_dir is not None:
        check_writable_folder(config.out_dir, "--out")
    upscaler = load_upscaler(config.model, scale=config.scale, track=config.track)
    suffix = (
        config.suffix if config.suffix is not None else default_suffix(upscaler.name, config.scale)
    )
    plan = plan_videos(videos, out_dir=config.out_dir, suffix=suffix, inputs=inputs)
    if config.inputs:
        _report(upscale_files(config, upscaler=upscaler))
    for src, out in plan:
        result = upscale_video(src, out, upscaler, config)
        if result.status == "written":
            print(result.output)
            log.info(
                "%s: %d frames at %.3g fps in %.1f s: %.2f frames/s upscaled",
                src.name,
                result.frames,
                result.fps,
                result.seconds,
                result.frames_per_second,
            )
    return 0


def _report(results) -> None:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
        if result.status == "written":
            print(result.output)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    log.info("upscale: %s", summary or "no inputs")
