"""Maintainer script: the Track2sim tables of ``docs/track2.md``, as Markdown rows.

The ``y`` table comes from the shipped sidecars (``Selected_models/track2sim/*.json``, written by
``amls2 ship``); ``tests/test_readme.py`` checks it against them. The RGB table comes from the
records of ``amls2 evaluate ... --protocol rgb --json FILE``:

    python tools/track2_tables.py
    amls2 evaluate --model bicubic linear@track2sim ... --dataset Track2sim --track unknown \\
        --scale 2 3 4 --protocol rgb --json rgb.json
    python tools/track2_tables.py --rgb rgb.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODELS = ("linear", "srcnn", "post_srcnn", "iud_srcnn", "fd_srcnn", "edsr", "espcn")
SCALES = (2, 3, 4)
WEIGHTS = Path(__file__).resolve().parents[1] / "Selected_models" / "track2sim"


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _y_cell(scores: dict) -> str:
    """``PSNR (+over bicubic; linear +x; blind +y)`` from one sidecar's Track2sim scores."""
    parts = [_signed(scores["psnr"] - scores["bicubic_psnr"])]
    if "linear_model_psnr" in scores:
        parts.append(f"linear {_signed(scores['psnr'] - scores['linear_model_psnr'])}")
    if "blind_model_psnr" in scores:
        parts.append(f"blind {_signed(scores['blind_model_psnr'] - scores['bicubic_psnr'])}")
    return f"{scores['psnr']:.2f} ({'; '.join(parts)})"


def _target_cell(sidecars: list[dict]) -> str:
    """``source: x2 met, x3 -0.01, ...`` from the sidecars' derived targets."""
    targets = [side["targets"]["Track2sim"] for side in sidecars]
    verdicts = [
        f"x{scale} " + ("met" if t["gap"] >= 0 else f"{t['gap']:.2f}")
        for scale, t in zip(SCALES, targets, strict=True)
    ]
    return f"{targets[0]['source']}: {', '.join(verdicts)}"


def y_rows() -> list[str]:
    """The ``y`` protocol table's rows, one per model."""
    rows = []
    for model in MODELS:
        sidecars = [json.loads((WEIGHTS / f"{model}_x{s}.json").read_text()) for s in SCALES]
        cells = [_y_cell(side["validation"]["Track2sim"]) for side in sidecars]
        rows.append(f"| {model} | {' | '.join(cells)} | {_target_cell(sidecars)} |")
    return rows


def rgb_rows(records_file: Path) -> list[str]:
    """The RGB protocol table's rows from ``amls2 evaluate --json`` records."""
    records = json.loads(records_file.read_text())
    psnr = {(r["model"].split("@")[0], int(r["scale"])): r["psnr"] for r in records}
    bicubic = " | ".join(f"{psnr['bicubic', s]:.2f}" for s in SCALES)
    rows = [f"| bicubic | {bicubic} |"]
    for model in MODELS:
        cells = []
        for s in SCALES:
            gains = [_signed(psnr[(model, s)] - psnr[("bicubic", s)])]
            if model != "linear":
                gains.append(f"linear {_signed(psnr[(model, s)] - psnr[('linear', s)])}")
            cells.append(f"{psnr[(model, s)]:.2f} ({'; '.join(gains)})")
        rows.append(f"| {model} | {' | '.join(cells)} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rgb", type=Path, help="amls2 evaluate --json records (RGB protocol)")
    args = parser.parse_args(argv)
    rows = rgb_rows(args.rgb) if args.rgb else y_rows()
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
