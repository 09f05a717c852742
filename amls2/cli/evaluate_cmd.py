"""``amls2 evaluate``: PSNR/SSIM of models (and the bicubic baseline) on benchmark datasets.

Prints a Markdown table (rows dataset x scale, columns model PSNR / SSIM) and optionally writes
JSON (with the EvalConfig beside it as ``<stem>.config.json``), CSV and LaTeX, all atomically.
Existing output files are replaced (they are results of this command, rewritten atomically).
Every output location is checked to be writable before the evaluation starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amls2.cli import add_max_pixels_argument

NAME = "evaluate"
HELP = "PSNR/SSIM of models and the bicubic baseline on datasets (Markdown table, JSON/CSV/LaTeX)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        metavar="NAME_OR_PATH",
        help="'bicubic', a registry name (shipped weights), NAME@TRACK (the weights shipped for "
        "TRACK, e.g. srcnn@bicubic on --track unknown) or a .keras/.h5 file",
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        required=True,
        metavar="NAME_OR_DIR",
        help="dataset names or folders",
    )
    parser.add_argument("--scale", nargs="+", type=int, default=[2, 3, 4], metavar="S")
    parser.add_argument(
        "--track",
        nargs="+",
        default=["bicubic"],
        metavar="TRACK",
        help="bicubic and/or unknown (default: bicubic)",
    )
    parser.add_argument(
        "--protocol",
        default="y",
        help="y: BT.601 Y, shave scale (SISR papers; default); rgb: RGB, shave scale+2 (NTIRE)",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="x8 flips/rotations average")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the records as JSON")
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write one CSV row per record")
    parser.add_argument("--latex", type=Path, metavar="OUT", help="write a LaTeX table")
    parser.add_argument("--save-images", type=Path, metavar="DIR", help="write SR images here")
    parser.add_argument(
        "--data-dir", type=Path, metavar="D", help="data root (default $AMLS2_DATA)"
    )
    parser.add_argument("--tile", type=int, metavar="N", help="tiled inference, N LR pixels")
    parser.add_argument(
        "--limit", type=int, metavar="K", help="only the first K images per dataset"
    )
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out model names whose shipped weights are missing for a scale (logged)",
    )
    add_max_pixels_argument(parser)


def run(args: argparse.Namespace) -> int:
    from amls2.evaluation import scoring, tables

    config = scoring.EvalConfig(
        models=tuple(args.model),
        datasets=tuple(args.dataset),
        scales=tuple(args.scale),
        tracks=tuple(args.track),
        protocol=args.protocol,
        self_ensemble=args.self_ensemble,
        tile=args.tile or None,
        data_dir=args.data_dir,
        save_images=args.save_images,
        limit=args.limit,
        skip_missing=args.skip_missing,
    )
    tables.check_outputs(
        json_path=args.json,
        csv_path=args.csv,
        latex_path=args.latex,
        save_images=args.save_images,
    )
    records = scoring.evaluate(config, progress=True)
    labels = [m for m in args.model if m != "bicubic"]
    if labels and all("@" in m for m in labels):
        # NAME@SET only: one column per weight set reads better than one per label.
        print(tables.weight_sets_markdown(records), end="")
    else:
        print(tables.markdown_table(records), end="")
    cost = tables.cost_markdown_table(records)
    if cost:
        print("\n" + cost, end="")
    tables.write_outputs(
        records, config, json_path=args.json, csv_path=args.csv, latex_path=args.latex
    )
    return 0
