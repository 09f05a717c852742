"""The scripted demo: ``python main.py`` (shipped weights vs bicubic), ``--train``, ``--render-demo``.

Thin: parses the options, builds an ``amls2.reporting.demo.DemoConfig``, runs the flow and says where it
wrote what. Errors a user can cause are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from amls2 import config as amls2_config
from amls2.cli import quiet_tensorflow
from amls2.errors import Amls2Error, ConfigError

DESCRIPTION = """\
amls2 demo: single-image super-resolution (NTIRE 2017 tracks: bicubic and unknown degradation).

Default: load the shipped weights (Selected_models/<track>/<model>_x<s>.keras) of SRCNN,
post-SRCNN, IUD-SRCNN, FD-SRCNN and EDSR-small (and any other shipped model), super-resolve the
embedded sample photos (scikit-image) for both tracks at x2/x3/x4, print the PSNR/SSIM table
(bicubic vs each model; BT.601 Y, scale px shaved) and write it (markdown/JSON/CSV) with
comparison figures to --out. Images are cut to their centre --crop px so that the demo stays fast
on a CPU. Missing weights are skipped with the command that trains them.

--train: the seed project's scripted flow: cut patches (amls2.data.patches), train --model briefly,
evaluate against bicubic and write examples (--quick: tiny variant, a few steps, seconds).

--render-demo: regenerate the reviewers' figures in demo/ from the shipped weights (results
table, FD-SRCNN architecture, visual comparisons, training curves, PSNR against cost)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flow = parser.add_mutually_exclusive_group()
    flow.add_argument("--train", action="store_true", help="run the training flow")
    flow.add_argument(
        "--render-demo", action="store_true", help="regenerate the figures in demo/ and exit"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: outputs/demo; demo/ with --render-demo)",
    )
    parser.add_argument(
        "--track",
        action="append",
        choices=("bicubic", "unknown"),
        help="track(s) to run (repeatable; default: both)",
    )
    parser.add_argument(
        "--scale",
        action="append",
        type=int,
        choices=(2, 3, 4),
        help="scale(s) to run (repeatable; default: 2 3 4)",
    )
    parser.add_argument(
        "--model",
        action="append",
        help="model(s): with --train the one to train (default fd_srcnn); otherwise the shipped "
        "models to show (repeatable; default: srcnn post_srcnn iud_srcnn fd_srcnn edsr + any other shipped)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        help="validation set(s): registry name or folder (repeatable; default: samples, the "
        "photos bundled with scikit-image; Set5+Set14 with --render-demo when present)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data root (default: $AMLS2_DATA, ./Datasets)"
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder of the shipped weights (default: Selected_models)",
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=None,
        help="HR centre crop in px for speed (default 256, whole images with --render-demo; "
        "0: whole images)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N images per set")
    parser.add_argument("--tile", type=int, default=None, help="LR tile size for inference")
    parser.add_argument(
        "--quick", action="store_true", help="seconds: with --train, tiny model and few steps"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps for --train")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log info/debug messages")
    return parser


def make_config(args: argparse.Namespace):
    """The DemoConfig for the parsed options."""
    from amls2.reporting import demo  # with matplotlib: not for --help

    mode = "train" if args.train else "render" if args.render_demo else "shipped"
    out = args.out or (demo.DEMO_DIR if mode == "render" else demo.DEFAULT_OUT_DIR)
    datasets = args.dataset or (
        demo.default_datasets(args.data_dir) if mode == "render" else ("samples",)
    )
    models = tuple(args.model) if args.model else None
    train_model = "fd_srcnn"
    if mode == "train" and models:
        if len(models) > 1:
            raise ConfigError("--model: --train trains one model; give it once")
        train_model, models = models[0], None
    return demo.DemoConfig(
        mode=mode,
        out_dir=out,
        tracks=tuple(args.track or amls2_config.TRACKS),
        scales=tuple(args.scale or amls2_config.SCALES),
        models=models,
        datasets=tuple(datasets),
        data_dir=args.data_dir,
        weights_dir=args.weights_dir,
        crop=(None if mode == "render" else 256) if args.crop is None else (args.crop or None),
        limit=args.limit,
        tile=args.tile,
        quick=args.quick,
        train_model=train_model,
        steps=args.steps,
    )


def report(result) -> None:
    """Print the table, what was skipped and where every file went."""
    from amls2.evaluation import tables
    from amls2.inference import weights

    if result.records:
        print(tables.markdown_table(result.records))
    for item in result.notes:
        print(f"note: {item}")
    if result.missing:
        print("skipped (no shipped weights):")
        for line in weights.missing_summary(result.missing):
            print(f"  {line}")
    print(f"wrote {len(result.written)} file(s) under {result.out_dir}:")
    for path in result.written:
        print(f"  {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Quiet by default: TensorFlow's C++ banner and CUDA probe would bury the table (-v: all).
    with quiet_tensorflow(args.verbose):
        try:
            from amls2.reporting import demo  # after quiet_tensorflow: TensorFlow follows it

            result = demo.run(make_config(args), progress=args.progress)
        except Amls2Error as exc:
            print(f"main.py: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("main.py: interrupted", file=sys.stderr)
            return 130
        report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
