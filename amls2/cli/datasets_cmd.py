"""``amls2 datasets``: every known dataset, where it is expected and how complete it is locally."""

from __future__ import annotations

import argparse

from amls2.config import data_root

NAME = "datasets"
HELP = "list the known datasets and what of them is on disk"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data root (default $AMLS2_DATA, else ./Datasets)")


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from amls2.data.datasets import DATASETS, dataset_status

    rows = []
    for name, info in DATASETS.items():
        status = dataset_status(name, args.data_dir)
        counts = ", ".join(
            f"{found}/{expected}" if split == "all" else f"{split} {found}/{expected}"
            for split, found, expected in status.counts
        )
        state = "complete" if status.complete else ("partial" if status.present else "missing")
        get = "embedded" if info.embedded else ("amls2 download" if info.archives else "manual")
        rows.append(
            [
                name,
                state,
                counts,
                status.layout,
                ", ".join(status.lr_folders) or "-",
                get,
                str(status.location),
            ]
        )
    header = ["dataset", "status", "HR images", "layout", "LR folders", "get", "location"]
    print(f"data root: {data_root(args.data_dir)}")
    print(format_table(rows, header))
    return 0
