"""``amls2 degrade``: write the LR partner of every HR image, named ``<stem>x<s>.png`` like DIV2K.

The degradation is a track's (``--track bicubic|unknown``) or an operator file's
(``--operator FILE``, from ``amls2 estimate-operator``; its scale is the file's).
"""

from __future__ import annotations

import argparse

from amls2.cli import add_max_pixels_argument
from amls2.config import SCALES, TRACKS, load_config
from amls2.data.degradations import VALIDATION_SEED, DegradationSpec
from amls2.errors import ConfigError

NAME = "degrade"
HELP = (
    "make LR images from HR images (bicubic, the 'unknown'-track stand-in degradation, or an "
    "estimated operator file)"
)
EPILOG = (
    "With --operator FILE (an operator estimated from pairs by `amls2 estimate-operator`, or a "
    "shipped one such as amls2/operators/track2sim_x2.json) the LR images are made by that "
    "fixed blur-decimate operator: its scale comes from the file (--scale may be omitted, and "
    "must agree if given) and --track/--seed/--spec do not apply."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images, or a dataset name")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the LR images")
    parser.epilog = EPILOG
    parser.add_argument(
        "--scale", type=int, choices=SCALES, help="required unless --operator gives it"
    )
    parser.add_argument("--track", choices=TRACKS, help="required unless --operator is given")
    parser.add_argument(
        "--operator",
        metavar="FILE",
        help="operator JSON file (amls2 estimate-operator) to degrade with instead of a track",
    )
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


def _operator_or_track(args: argparse.Namespace):
    """The loaded operator (None for a track) after checking the options agree."""
    if args.operator is None:
        if args.track is None or args.scale is None:
            raise ConfigError("--track and --scale are required (or give --operator FILE)")
        return None
    from amls2.data.operator import load_operator

    if args.track is not None:
        raise ConfigError("--operator and --track exclude each other: the file is the degradation")
    if args.spec is not None:
        raise ConfigError("--spec applies to --track unknown, not to --operator")
    operator = load_operator(args.operator)
    if args.scale is not None and args.scale != operator.scale:
        raise ConfigError(
            f"--scale {args.scale} contradicts --operator {args.operator} (an x{operator.scale} "
            "operator); omit --scale"
        )
    return operator


def run(args: argparse.Namespace) -> int:
    from amls2.data.degrade_job import degrade_folder

    operator = _operator_or_track(args)
    spec = load_config(DegradationSpec, args.spec) if args.spec else None
    scale = operator.scale if operator else args.scale
    kind = f"operator {args.operator}" if operator else args.track
    written = degrade_folder(
        args.hr_dir,
        args.out_dir,
        scale=scale,
        track=args.track or "unknown",
        operator=operator,
        seed=args.seed,
        spec=spec,
        force=args.force,
        skip_bad=args.skip_bad,
        data_dir=args.data_dir,
    )
    print(f"wrote {len(written)} LR images (x{scale}, {kind}) to {args.out_dir}")
    return 0
