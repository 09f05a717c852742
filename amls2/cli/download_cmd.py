"""``amls2 download``: fetch and extract public dataset archives (resumable, verified, safe)."""

from __future__ import annotations

import argparse

NAME = "download"
HELP = (
    "download and extract datasets (DIV2K, Set5, Set14, B100, Urban100, T91); "
    "others print where to get them"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", metavar="NAME", nargs="+", help="dataset name(s), e.g. DIV2K Set5 T91"
    )
    parser.add_argument("--data-dir", help="data root (default $AMLS2_DATA, else ./Datasets)")
    parser.add_argument(
        "--parts",
        nargs="+",
        metavar="PART",
        help="archive parts or glob patterns, e.g. valid_HR 'valid_LR_bicubic_X*' "
        "(default: DIV2K train_HR valid_HR; the one archive of the other sets)",
    )
    parser.add_argument("--base-url", help="mirror to download from instead of the official URL")
    parser.add_argument(
        "--delete-archives", action="store_true", help="delete each archive after extraction"
    )
    parser.add_argument("--list-parts", action="store_true", help="list the parts and exit")


def run(args: argparse.Namespace) -> int:
    from amls2.data.datasets import get_dataset
    from amls2.data.download import download_dataset

    if args.list_parts:
        for name in args.names:
            info = get_dataset(name)
            for archive in info.archives:
                size = archive.approx_size or "size unknown"
                print(f"{name}  {archive.part:24s}  {archive.filename}  ({size})")
            if not info.archives:
                print(f"{name}: {info.source}")
        return 0
    for name in args.names:
        folder = download_dataset(
            name,
            args.data_dir,
            parts=args.parts,
            base_url=args.base_url,
            keep_archives=not args.delete_archives,
        )
        print(f"{name}: ready in {folder}")
    return 0
