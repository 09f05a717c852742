"""``amls2 degrade``: write the LR partner of every HR image, named ``<stem>x<s>.png`` like DIV2K."""

from __future__ import annotations

import argparse

from amls2.cli import add_max_pixels_argument
from amls2.config import SCALES, TRACKS, load_config
from amls2.data.degradations import VALIDATION_SEED, DegradationSpec

NAME = "degrade"
HELP = "make LR images from HR images (bicubic, or the 'unknown'-track stand-in degradation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images, or a dataset name")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the LR images")
    parser.add_argument("--scale", type=int, required=True, choices=SCALES)
    parser.add_argument("--track", required=True, choices=TRACKS)
    parser.add_argument(
        "--seed",
        type=int,
        default=VALIDATION_SEED,
        help=f"seed of the unknown-track degradations (default {VALIDATION_SEED})",
    )
    parser.add_argument(
        "--spec", metavar="JSON", help="DegradationSpec JSON file (unknown track; default ranges)"
    )
    parser.add_argument("--data-dir", help="data root for dataset names (default $AMLS2_DATA)")
    parser.add_argument("--force", action="store_true", help="overwrite existing LR files")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable, over-budget or too small images with a warning",
    )
    add_max_pixels_argument(parser)


def run(args: argparse.Namespace) -> int:
    from amls2.data.degrade_job import degrade_folder

    spec = load_config(DegradationSpec, args.spec) if args.spec else None
    written = degrade_folder(
        args.hr_dir,
        args.out_dir,
        scale=args.scale,
        track=args.track,
        seed=args.seed,
        spec=spec,
        force=args.force,
        skip_bad=args.skip_bad,
        data_dir=args.data_dir,
    )
    print(f"wrote {len(written)} LR images (x{args.scale}, {args.track}) to {args.out_dir}")
    return 0
