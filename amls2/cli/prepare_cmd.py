"""``amls2 prepare``: cut a dataset into aligned HR/LR patch files (resumable, idempotent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from amls2.cli import add_max_pixels_argument
from amls2.config import SCALES, TRACKS
from amls2.data.degradations import VALIDATION_SEED

NAME = "prepare"
HELP = "crop HR images and their LR partners into aligned patch files with a manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="dataset name or folder")
    parser.add_argument("--scale", type=int, required=True, choices=SCALES)
    parser.add_argument("--track", required=True, choices=TRACKS)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--patch", type=int, default=120, help="HR patch size in px (default 120)")
    parser.add_argument("--stride", type=int, default=120, help="HR stride in px (default 120)")
    parser.add_argument("--data-dir", type=Path, help="data root (default $AMLS2_DATA)")
    parser.add_argument("--split", choices=("train", "valid"), help="DIV2K split")
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED, help="seed of synthesised LR")
    add_max_pixels_argument(parser)


def run(args: argparse.Namespace) -> int:
    from amls2.data.patches import PrepareConfig, prepare_patches

    config = PrepareConfig(
        dataset=args.dataset,
        scale=args.scale,
        track=args.track,
        out_dir=args.out,
        patch=args.patch,
        stride=args.stride,
        data_dir=args.data_dir,
        split=args.split,
        seed=args.seed,
    )
    manifest = prepare_patches(config)
    print(
        f"{manifest['n_patches']} patch pairs ({config.patch} px HR, "
        f"{config.patch // config.scale} px LR) from {manifest['n_images']} images in {args.out}"
    )
    return 0
