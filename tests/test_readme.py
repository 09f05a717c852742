"""The README's results table of the shipped models says what their sidecars say.

Every cell of the "Track | Dataset | Scale | bicubic PSNR / SSIM | <model> PSNR / SSIM ..." table
is compared with the ``validation`` numbers that ``amls2 ship`` measured and stored in
``Selected_models/<weights set>/<model>_x<s>.json``, so that the two cannot drift apart.
"""

from __future__ import annotations

import json

import pytest

from amls2.config import PROJECT_ROOT
from amls2.inference import weights

README = PROJECT_ROOT / "README.md"
TABLE_HEAD = "| Track | Dataset | Scale | bicubic PSNR / SSIM |"


def results_table() -> tuple[list[str], list[list[str]]]:
    """(column names, rows of cells) of the README's results table of the shipped models."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TABLE_HEAD))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    head = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    return head, rows


def sidecar(model: str, track: str, scale: int) -> dict:
    path = weights.shipped_weights_path(model, scale=scale, weights_set=track)
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def shown(value: float, stored: int, digits: int) -> set[str]:
    """How a value stored rounded to ``stored`` decimals can appear with ``digits`` decimals: the
    exact value lies within half a stored unit of it, on either side of a rounding boundary."""
    half = 0.5 * 10.0**-stored
    return {f"{v:.{digits}f}" for v in (value - half, value, value + half)}


def matches(text: str, psnr: float, ssim: float) -> bool:
    """``text`` ("PSNR / SSIM", 2 and 4 decimals) is the sidecar's PSNR (stored with 4 decimals)
    and SSIM (5 decimals)."""
    shown_psnr, shown_ssim = text.split(" / ")
    return shown_psnr in shown(psnr, 4, 2) and shown_ssim in shown(ssim, 5, 4)


def test_the_readme_has_the_results_table():
    head, rows = results_table()
    models = [name.removesuffix(" PSNR / SSIM") for name in head[3:]]
    assert models[0] == "bicubic" and len(models) > 1
    assert rows and all(len(row) == len(head) for row in rows)


@pytest.mark.parametrize("row", results_table()[1], ids=lambda row: "-".join(row[:3]))
def test_readme_results_match_the_shipped_sidecars(row):
    head, _ = results_table()
    models = [name.removesuffix(" PSNR / SSIM") for name in head[4:]]
    track, dataset, scale = row[0], row[1], int(row[2].removeprefix("x"))
    for model, text in zip(models, row[4:], strict=True):
        scores = sidecar(model, track, scale)["validation"][dataset]
        assert matches(text, scores["psnr"], scores["ssim"]), (model, text, scores)
        # Bicubic on the same LR images: the same in every sidecar of this row.
        bicubic = scores["bicubic_psnr"], scores["bicubic_ssim"]
        assert matches(row[3], *bicubic), (model, "bicubic", row[3], bicubic)
