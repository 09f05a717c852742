"""The README and docs/ say what the shipped models' sidecars say.

* The README's summary table is exactly what ``amls2 ship --index-only`` generates from the
  sidecars (``shipped_index.summary_markdown``), and ``Selected_models/README.md`` is exactly
  ``shipped_index.index_markdown``.
* Every cell of the hand-written tables in ``docs/`` (both tracks on Set5/Set14, the cost table,
  the Track2sim table, bicubic against the published baselines) is compared with the
  ``validation`` and ``cost`` numbers that ``amls2 ship`` measured and stored in
  ``Selected_models/<weights set>/<model>_x<s>.json``, so that the two cannot drift apart.
* The README's first screen has the hero figure, the commands and the notebooks' command; every
  relative link of the README and docs/ resolves; no page tells the development history.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from amls2.config import PROJECT_ROOT, SELECTED_MODELS_DIR
from amls2.errors import ConfigError
from amls2.evaluation import shipped_index
from amls2.inference import weights

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
RESULTS = DOCS / "results.md"
TRACK2 = DOCS / "track2.md"
PROTOCOL = DOCS / "protocol.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def table(page: Path, head: str) -> tuple[list[str], list[list[str]]]:
    """(column names, rows of cells) of the Markdown table of ``page`` whose header line starts
    with ``head``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [cell.strip() for cell in lines[start].strip().strip("|").split("|")], rows


RESULTS_HEAD = "| Track | Dataset | Scale | bicubic PSNR / SSIM |"
COST_HEAD = "| Track | Model | x2 params / MACs (720p) |"
TRACK2SIM_HEAD = "| model | x2 | x3 | x4 | target |"
BICUBIC_HEAD = "| Dataset | Scale | bicubic PSNR / SSIM | published |"


def sidecar(model: str, weights_set: str, scale: int) -> dict:
    path = weights.shipped_weights_path(model, scale=scale, weights_set=weights_set)
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


def gain_shown(text: str, psnr: float, reference: float) -> bool:
    """``text`` ("+1.04") is ``psnr - reference`` to 2 decimals (each stored with 4)."""
    return text in {f"{psnr - reference + d:+.2f}" for d in (-1e-4, 0.0, 1e-4)}


# ----------------------------------------------------------------------------- README


def test_the_readme_summary_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    expected = shipped_index.replace_generated_block(text, shipped_index.summary_markdown())
    assert text == expected, "rerun `amls2 ship --index-only` to regenerate the summary table"


def test_the_summary_table_has_every_model_shipped_at_x4():
    _, rows = table(README, "| model | params | MACs (720p) |")
    shown_models = {row[0].split("`")[1] for row in rows if "`" in row[0]}
    shipped = {
        path.stem.removesuffix("_x4")
        for weights_set in ("bicubic", "track2sim")
        for path in (SELECTED_MODELS_DIR / weights_set).glob("*_x4.keras")
    }
    assert shown_models == shipped and rows[0][0] == "bicubic interpolation"
    if (SELECTED_MODELS_DIR / "bicubic" / "linear_x4.json").is_file():
        assert "linear" in shown_models


def test_the_selected_models_index_is_the_generated_one():
    text = (SELECTED_MODELS_DIR / "README.md").read_text(encoding="utf-8")
    assert text == shipped_index.index_markdown(SELECTED_MODELS_DIR), (
        "rerun amls2 ship --index-only"
    )


def test_the_first_screen_has_the_hero_figure_and_the_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 210
    assert any("(demo/hero.png)" in line for line in lines[:12])
    assert (PROJECT_ROOT / "demo" / "hero.png").is_file()
    text = "\n".join(lines)
    for command in (
        "pip install -e . && python main.py",
        'python -m pytest -m "not slow"',
        'pip install -e ".[notebooks]"',
        "jupyter lab notebooks/",
    ):
        assert command in text, command


def test_the_summary_block_is_replaced_and_the_rest_kept():
    text = f"intro\n{shipped_index.SUMMARY_BEGIN}\nold table\n{shipped_index.SUMMARY_END}\nrest\n"
    new = shipped_index.replace_generated_block(text, "| new |")
    assert (
        new == f"intro\n{shipped_index.SUMMARY_BEGIN}\n| new |\n{shipped_index.SUMMARY_END}\nrest\n"
    )
    assert shipped_index.replace_generated_block(new, "| new |") == new
    with pytest.raises(ConfigError, match="markers"):
        shipped_index.replace_generated_block("no markers", "| new |")


# ----------------------------------------------------------------------------- docs/ tables


@pytest.mark.parametrize("row", table(RESULTS, RESULTS_HEAD)[1], ids=lambda row: "-".join(row[:3]))
def test_results_match_the_shipped_sidecars(row):
    head, _ = table(RESULTS, RESULTS_HEAD)
    models = [name.removesuffix(" PSNR / SSIM") for name in head[4:]]
    assert head[3] == "bicubic PSNR / SSIM" and models
    track, dataset, scale = row[0], row[1], int(row[2].removeprefix("x"))
    for model, text in zip(models, row[4:], strict=True):
        scores = sidecar(model, track, scale)["validation"][dataset]
        assert matches(text, scores["psnr"], scores["ssim"]), (model, text, scores)
        # Bicubic on the same LR images: the same in every sidecar of this row.
        bicubic = scores["bicubic_psnr"], scores["bicubic_ssim"]
        assert matches(row[3], *bicubic), (model, "bicubic", row[3], bicubic)


@pytest.mark.parametrize("row", table(RESULTS, COST_HEAD)[1], ids=lambda row: row[1])
def test_costs_match_the_shipped_sidecars(row):
    track, model = row[0], row[1].split(" ")[0]
    for scale, text in zip((2, 3, 4), row[2:], strict=True):
        cost = sidecar(model, track, scale)["cost"]
        params, macs = text.split(" / ")
        assert params == f"{round(cost['params'] / 1000):,} k", (model, scale, text)
        assert macs == f"{cost['macs_720p'] / 1e9:.1f} G", (model, scale, text)


CELL = re.compile(
    r"(\d+\.\d\d) \(([+-]\d+\.\d\d)(?:; linear ([+-]\d+\.\d\d))?(?:; blind ([+-]\d+\.\d\d))?\)"
)


@pytest.mark.parametrize("row", table(TRACK2, TRACK2SIM_HEAD)[1], ids=lambda row: row[0])
def test_track2sim_results_match_the_shipped_sidecars(row):
    for scale, text in zip((2, 3, 4), row[1:4], strict=True):
        scores = sidecar(row[0], "track2sim", scale)["validation"]["Track2sim"]
        psnr, gain, over_linear, blind = CELL.fullmatch(text).groups()
        assert psnr in shown(scores["psnr"], 4, 2), (scale, text)
        assert gain_shown(gain, scores["psnr"], scores["bicubic_psnr"]), (scale, text)
        if over_linear is not None:
            assert gain_shown(over_linear, scores["psnr"], scores["linear_model_psnr"])
        else:
            assert "linear_model_psnr" not in scores, (scale, text)
        if blind is not None:
            assert gain_shown(blind, scores["blind_model_psnr"], scores["bicubic_psnr"])
        else:
            assert "blind_model_psnr" not in scores


@pytest.mark.parametrize("row", table(PROTOCOL, BICUBIC_HEAD)[1], ids=lambda row: "-".join(row[:2]))
def test_the_bicubic_table_matches_the_bicubic_scores_in_the_sidecars(row):
    dataset, scale = row[0], int(row[1].removeprefix("x"))
    scores = sidecar("edsr", "bicubic", scale)["validation"][dataset]
    assert matches(row[2], scores["bicubic_psnr"], scores["bicubic_ssim"]), (row, scores)


# ----------------------------------------------------------------------------- every page

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
HISTORY = re.compile(
    r"\bsessions?\b|\bissue \d+|\bwork item|\bno CPU time left|\bshipped before\b|"
    r"\bearlier (?:run|version|table)s?\b|\bprevious (?:run|session|shipped)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (page.parent / target).exists(), (page.name, target)


@pytest.mark.parametrize(
    "page", [*PAGES, SELECTED_MODELS_DIR / "README.md"], ids=lambda p: p.parent.name + p.name
)
def test_no_page_tells_the_development_history(page):
    found = HISTORY.findall(page.read_text(encoding="utf-8"))
    assert not found, (page.name, found)
