"""``amls2 estimate-operator``: estimate a fixed degradation operator from a dataset's pairs."""

from __future__ import annotations

import argparse

from amls2.config import SCALES, TRACKS

NAME = "estimate-operator"
HELP = "estimate the blur-decimate operator of a paired dataset's train split, as a JSON file"
EPILOG = (
    "Least squares on LR ~ (HR * k) decimated by the scale, plus a bias, over the train split "
    "only (the valid split is never read). Every Nth pair (--holdout-every) is held out to pick "
    "the kernel size among --kernel-sizes (default 2s+1, 4s-1, 4s+3) and the border rule, and to "
    "measure how well the operator re-makes those LR images (whole images, RGB, uint8; recorded "
    "in the file's 'check'). Apply it with `amls2 degrade HR_DIR OUT_DIR --operator FILE`. "
    "Example: amls2 estimate-operator Track2sim --scale 2 --out track2sim_x2.json"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("dataset", metavar="DATASET", help="dataset name or folder with LR pairs")
    parser.add_argument("--scale", type=int, required=True, choices=SCALES)
    parser.add_argument("--out", required=True, metavar="JSON", help="operator file to write")
    parser.add_argument("--track", default="unknown", choices=TRACKS, help="LR folder to pair")
    parser.add_argument(
        "--holdout-every", type=int, default=10, help="hold out every Nth train pair (default 10)"
    )
    parser.add_argument(
        "--kernel-sizes", type=int, nargs="+", metavar="K", help="odd kernel widths to try"
    )
    parser.add_argument("--data-dir", help="data root for dataset names (default $AMLS2_DATA)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from amls2.data.operator import save_operator
    from amls2.data.operator_fit import estimate_from_dataset
    from amls2.errors import ConfigError
    from amls2.fileio import check_writable_file

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"--out {out}: already exists; use --force to overwrite")
    check_writable_file(out, "--out")
    s = args.scale
    sizes = args.kernel_sizes or [2 * s + 1, 4 * s - 1, 4 * s + 3]
    op = estimate_from_dataset(
        args.dataset,
        s,
        track=args.track,
        data_dir=args.data_dir,
        holdout_every=args.holdout_every,
        sizes=sizes,
    )
    save_operator(op, out)
    remade = op.check["remade_heldout"]
    dy, dx = op.offset
    print(
        f"x{s}: {op.kernel_size}x{op.kernel_size} kernel, sum {op.kernel_sum:.4f}, offset "
        f"(dy, dx) = ({dy:+.3f}, {dx:+.3f}) HR px from MATLAB bicubic's grid, border "
        f"{op.border}; re-made held-out LR {remade['psnr_db']} dB (min {remade['psnr_min_db']}), "
        f"residual noise sigma {remade['noise_sigma_levels']} levels -> {out}"
    )
    return 0
