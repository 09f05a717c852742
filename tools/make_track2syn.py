"""Maintainer script: synthesise Track2syn, more training pairs for the Track 2 operator.

Every T91 and BSD200 HR image in its 8 orientations (4 quarter turns x mirror) is degraded by the
operator estimated from the Track2sim pairs (``amls2/operators/track2sim_x<s>.json``), into a
DIV2K-shaped tree: ``<out>/DIV2K_train_HR/<stem>_o<k>.png`` and
``<out>/DIV2K_train_LR_unknown/X<s>/<stem>_o<k>x<s>.png``. The orientations are made on the HR
image, before the operator: a flip of a degraded pair would mirror the operator's sub-pixel
offset and anisotropy, so the Track 2 recipes train without flips and get them from here.

Left out: any source that is a Track2sim valid image (compared by pixels), and the sources of
the last ``--holdout`` Track2sim train pairs, so that ``--holdout`` on Track2sim (the last
``--train-set``) validates on images Track2syn does not contain.

    python tools/make_track2syn.py --data-dir ../shared/datasets --out ../shared/datasets/Track2syn

Then train with ``--data-dir`` pointing at a root that holds both Track2sim and Track2syn.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amls2.data.operator import apply_operator, load_operator, shipped_operator_path
from amls2.fileio import atomic_write_text
from amls2.imaging.images import list_images, read_image, write_image

SOURCES = ("T91", "BSD200")
ORIENTATIONS = 8


def oriented(img: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` of 8: ``k % 4`` quarter turns, mirrored left-right when ``k >= 4``."""
    out = np.rot90(img, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


def excluded_sources(data_dir: Path, holdout: int) -> tuple[set[str], list[np.ndarray]]:
    """Track2sim's held-out train sources and its valid HR images (never in Track2syn)."""
    with open(data_dir / "Track2sim" / "names.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    train = [r for r in rows if r["split"] == "train"]
    held = {r["source"] for r in train[-holdout:]} if holdout else set()
    held |= {r["source"] for r in rows if r["split"] == "valid"}
    valid = [read_image(p) for p in list_images(data_dir / "Track2sim" / "DIV2K_valid_HR")]
    return held, valid


def is_one_of(img: np.ndarray, others: list[np.ndarray]) -> bool:
    return any(
        img.shape[0] >= o.shape[0]
        and img.shape[1] >= o.shape[1]
        and np.array_equal(img[: o.shape[0], : o.shape[1]], o)
        for o in others
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="root with T91, BSD200, Track2sim"
    )
    parser.add_argument("--out", type=Path, required=True, help="the Track2syn folder to write")
    parser.add_argument("--holdout", type=int, default=19, help="held-out Track2sim train pairs")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    operators = {s: load_operator(shipped_operator_path("track2sim", s)) for s in args.scales}
    held, valid = excluded_sources(args.data_dir, args.holdout)
    records, excluded = [], []
    paths = [(name, p) for name in SOURCES for p in list_images(args.data_dir / name / "HR")]
    for set_name, path in tqdm(paths, unit="image"):
        source = f"{set_name}/{path.name}"
        hr = read_image(path)
        if source in held or is_one_of(hr, valid):
            excluded.append(source)
            continue
        for k in range(ORIENTATIONS):
            stem = f"{path.stem}_o{k}"
            image = oriented(hr, k)
            for scale, operator in operators.items():
                lr_dir = args.out / "DIV2K_train_LR_unknown" / f"X{scale}"
                lr_dir.mkdir(parents=True, exist_ok=True)
                write_image(lr_dir / f"{stem}x{scale}.png", apply_operator(image, operator))
            (args.out / "DIV2K_train_HR").mkdir(parents=True, exist_ok=True)
            write_image(args.out / "DIV2K_train_HR" / f"{stem}.png", image)
            records.append(f"{stem}\t{source}\t{k}\n")
    atomic_write_text(args.out / "sources.tsv", "stem\tsource\torientation\n" + "".join(records))
    logging.info("%d HR images; %d sources left out", len(records), len(excluded))


if __name__ == "__main__":
    main()
