"""The generated pages of the shipped weights: ``Selected_models/README.md`` (one table of every
shipped model, from the sidecars) and the summary table of the repository's README.md (PSNR/SSIM,
cost and time per image), between its generated-block markers."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.errors import ConfigError
from amls2.fileio import atomic_write_text
from amls2.inference.weights import (
    HISTORY_SUFFIX,
    weight_set_dir,
    weights_root,
)


def shipped_sidecars(weights_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every shipped model's sidecar (with its ``file`` and ``weights_set``), ordered by weight
    set, name and scale."""
    rows = []
    for weights_set in amls2_config.WEIGHT_SETS:
        for path in sorted(weight_set_dir(weights_set, weights_dir).glob("*.keras")):
            side = path.with_suffix(".json")
            data = json.loads(side.read_text()) if side.is_file() else {}
            rows.append({**data, "file": f"{weights_set}/{path.name}", "weights_set": weights_set})
    order = {weights_set: i for i, weights_set in enumerate(amls2_config.WEIGHT_SETS)}
    return sorted(
        rows, key=lambda r: (order[r["weights_set"]], r.get("name", ""), r.get("scale", 0))
    )


def _cell(validation: dict[str, Any], dataset: str) -> str:
    scores = validation.get(dataset)
    if not scores:
        return "-"
    gain = scores["psnr"] - scores["bicubic_psnr"]
    return f"{scores['psnr']:.2f} / {scores['ssim']:.4f} ({gain:+.2f})"


def _reference_cell(validation: dict[str, Any], key: str = "bicubic_track_model_psnr") -> str:
    """``Set5 +0.91, Set14 +0.62``: gain over a reference model (``key``) on the same data."""
    cells = [
        f"{dataset} {scores['psnr'] - scores[key]:+.2f}"
        for dataset, scores in validation.items()
        if key in scores
    ]
    return ", ".join(cells) or "-"


def _target_cell(targets: dict[str, Any]) -> str:
    """``Set5 36.66 (-2.62), Set14 ...``: each target PSNR with "met" or the gap to it."""
    cells = []
    for dataset, target in targets.items():
        verdict = "met" if target["gap"] >= 0 else f"{target['gap']:+.2f}"
        cells.append(f"{dataset} {target['target_psnr']:.2f} ({verdict})")
    return ", ".join(cells) or "-"


INDEX_INTRO = """# Selected_models: the shipped weights

Made by `amls2 ship RUN_DIR --recipe NAME` after `amls2 train --recipe NAME`; this page is
regenerated from the sidecars on every ship (`amls2 ship --index-only`). Metrics: PSNR (dB) /
SSIM on whole images, BT.601 Y channel, `scale` pixels shaved (the `y` protocol); in brackets the
gain over MATLAB-exact bicubic on the same LR images. The recipes choose the checkpoint on
training images held out of training; the `chosen on` column says, for each model, what chose
its checkpoint (see "Checkpoint choice" below). Targets: the published results each model should
reach (`amls2/evaluation/shipping.py`).

Three weight sets, one folder each (`--model NAME@SET` picks one; without `@SET` the set named
like `--track` is used):

* `bicubic/`: Track 1, bicubic degradation.
* `unknown/`: **blind** models for images of unknown origin, trained on random degradations
  (the stand-in: Gaussian blur, decimation, noise, JPEG). Tested on Set5/Set14 degraded with the
  fixed validation seed. Target: bicubic + 2 dB. `vs bicubic-track`: gain over the same model
  trained on the bicubic track, on the same LR images.
* `track2sim/`: **fixed-operator** models, NTIRE 2017 Track 2 as the challenge defines it: one
  unknown degradation per scale, learned from the `Track2sim` training pairs and from Track2syn,
  more pairs made by the operator estimated from them (`amls2 train --recipe
  NAME_xS_track2sim`; with the real DIV2K, add `--train-set DIV2K`). They fit that operator
  only. Tested on the Track2sim valid split. Targets: `linear` (the closed-form baseline) at
  least 31.85 / 28.85 / 27.13 dB; EDSR-small linear + 1.0 dB, FD-SRCNN linear + 0.5 dB, the fast
  model linear + 0.3 dB, every other model above linear (`vs linear`).

`espcn` is the fast model (variant `fast`): its bicubic-track target is FSRCNN's published
accuracy, in OpenCV FSRCNN's time class (the time is measured by `benchmarks/per_image.py`, not
here).
"""


INDEX_OUTRO = """
Each `<model>_x<s>.json` sidecar holds the full training config (recipe), the data, steps,
wall time, machine and precision, the test metrics and the command that reproduces the model;
`<model>_x<s>.history.csv` is its per-epoch training history.

## Checkpoint choice (`chosen on`)

`held out`: the checkpoint was chosen on training images held out of training, never on a
reported set: the last 10 BSD200 images by file name (78019, 80099, 8049, 8143, 87065, 90076,
92059, 94079, 95006, 97017) for the `bicubic` and `unknown` recipes, the last 10 or 19 Track2sim
training pairs for `track2sim` (19 where Track2syn is trained on: its sources leave those out).
Every recipe in `amls2/recipes/` holds them out.

`Set5 (+x dB)`: the checkpoint was chosen on Set5, which the model also reports. In brackets, by
how much that choice can flatter its Set5 number: the best minus the last epoch's Set5 PSNR in
its own history (`+0.00`: the best epoch was the last one, so the choice changed nothing).
Retraining such a model with its recipe moves it to `held out`.
"""


INDEX_ANALYSIS = """
## Against the targets

Bicubic track (`bicubic/`):

* SRCNN reaches the paper's T91 result on Set5 at every scale (SRCNN, Dong et al. 2014:
  36.34 / 32.39 / 30.09 dB).
* EDSR-small (`edsr`, 8 residual blocks of 32 channels, 20-46 G multiply-adds per 720p frame)
  beats FSRCNN on Set5 and Set14 at every scale. Against VDSR (37.53 / 33.66 / 31.35 dB on Set5,
  33.03 / 29.77 / 28.01 dB on Set14, 612 G multiply-adds) it is at or above VDSR on Set5 x3 and
  Set14 x2 and within 0.04 dB of it elsewhere.
* FD-SRCNN reaches SRCNN's ImageNet result (Dong et al. 2016) at x2 and x3 on both sets and on
  Set5 x4; on Set14 x4 it is 0.02 dB short. Its x2 model gives every intermediate
  reconstruction the image skip (`intermediate_skip=True`); its x3 and x4 models use the seed's
  sigmoid reconstructions.
* The fast model `espcn` reaches FSRCNN's published accuracy at x2 and x4 on both sets and on
  Set14 x3; on Set5 x3 it is 0.01 dB short.

Blind models (`unknown/`): every one beats the bicubic-track model of the same name on the same
LR images (`vs bicubic-track`). The stand-in degradation mixes blur, noise and JPEG, and the
blind models are short fine-tunes (600-9000 steps) of the bicubic ones: only EDSR-small at x2
and x3 on Set5 reaches bicubic + 2 dB.
"""


TRACK2SIM_NOTE = """
On `track2sim/`, every model's image skip is the closed-form `linear` filter solved from the
pairs (SRCNN: the same on its bicubic input, a filter per pixel phase, so its training crops
start on the LR grid) and the network learns the residual over it, trained without flips (a flip
mirrors the operator's sub-pixel offset). How and why: `docs/track2.md`.
"""


REPORTED_SETS: tuple[str, ...] = ("Set5", "Set14")


def checkpoint_choice(row: dict[str, Any], weights_dir: str | os.PathLike) -> str:
    """What chose the shipped checkpoint: ``held out`` (no reported set), or for the models
    chosen on a reported test set, how much that choice flatters it: the best minus the last
    epoch's validation PSNR in its history (0.00: the last epoch was kept anyway)."""
    chosen_on = row.get("metrics", {}).get("val_sets") or []
    if not any(name in REPORTED_SETS for name in chosen_on):
        return "held out" if chosen_on else "last epoch"
    history = Path(weights_dir) / (row["file"].removesuffix(".keras") + HISTORY_SUFFIX)
    try:
        with open(history, encoding="utf-8") as handle:
            psnrs = [float(r["val_psnr"]) for r in csv.DictReader(handle) if r.get("val_psnr")]
    except (OSError, KeyError, ValueError):
        psnrs = []
    bias = f" (+{max(psnrs) - psnrs[-1]:.2f} dB)" if psnrs else ""
    return f"{'+'.join(chosen_on)}{bias}"


def _set_table(rows: list[dict[str, Any]], weights_dir: str | os.PathLike) -> list[str]:
    """The Markdown table of one weight set: one column per test set its sidecars hold."""
    datasets = list(dict.fromkeys(d for row in rows for d in row.get("validation", {})))
    fixed = rows[0]["weights_set"] == "track2sim"
    reference = "vs linear" if fixed else "vs bicubic-track"
    key = "linear_model_psnr" if fixed else "bicubic_track_model_psnr"
    lines = [
        f"| file | model | scale | {' | '.join(datasets)} | target (gap) | {reference} "
        "| params | MACs (720p) | steps | best epoch | chosen on | wall time |",
        "|---|---|---|" + "---|" * len(datasets) + "---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        validation = row.get("validation", {})
        cost = row.get("cost", {})
        variant = f" ({row['variant']})" if row.get("variant") else ""
        wall = row.get("wall_time_s")
        cells = " | ".join(_cell(validation, d) for d in datasets)
        lines.append(
            f"| `{row['file']}` | {row.get('name', '?')}{variant} | x{row.get('scale', '?')} "
            f"| {cells} | {_target_cell(row.get('targets', {}))} "
            f"| {_reference_cell(validation, key)} | {cost.get('params', 0):,} "
            f"| {cost.get('macs_720p', 0) / 1e9:.1f} G | {row.get('steps', '-')} "
            f"| {row.get('best_epoch', '-')} of {row.get('epochs', '-')} "
            f"| {checkpoint_choice(row, weights_dir)} "
            f"| {'-' if wall is None else f'{wall / 60:.1f} min'} |"
        )
    return lines


def _target_summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line each for the models of a weight set that meet every target and those that miss
    one (with the largest gap), from the sidecars' ``targets``."""
    met, missed = [], []
    for row in rows:
        gaps = [t["gap"] for t in row.get("targets", {}).values()]
        if not gaps:
            continue
        label = f"{row.get('name', '?')} x{row.get('scale', '?')}"
        if min(gaps) >= 0:
            met.append(label)
        else:
            missed.append(f"{label} ({min(gaps):+.2f} dB)")
    lines = []
    if met:
        lines.append(f"Every target met: {', '.join(met)}.")
    if missed:
        lines.append(f"Short of a target (largest gap): {', '.join(missed)}.")
    return lines


def index_markdown(weights_dir: str | os.PathLike) -> str:
    """The tables of every shipped model, one per weight set, the analysis against the targets
    and the checkpoint choice (``Selected_models/README.md``)."""
    lines = [INDEX_INTRO]
    rows = shipped_sidecars(weights_dir)
    for weights_set in amls2_config.WEIGHT_SETS:
        group = [row for row in rows if row["weights_set"] == weights_set]
        if group:
            lines += [f"## `{weights_set}/`", "", *_set_table(group, weights_dir), ""]
            lines += [*_target_summary(group), ""]
    lines += [INDEX_ANALYSIS, TRACK2SIM_NOTE, INDEX_OUTRO]
    return "\n".join(lines)


# The README's summary table sits between these markers; ``amls2 ship --index-only`` rewrites it.
SUMMARY_BEGIN = "<!-- summary table: generated by `amls2 ship --index-only`, do not edit -->"


SUMMARY_END = "<!-- end of summary table -->"


SUMMARY_SCALE = 4


SUMMARY_DATASET = "Set5"


# Written by ``benchmarks/per_image.py --record``: the time column of the summary table.
TIMING_FILE = "per_image_time.json"


TIMING_COMMAND = (
    "python benchmarks/per_image.py --dataset Set5 --scales 4 --weights-sets bicubic "
    "--record Selected_models/per_image_time.json"
)


def _sidecar_index(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["weights_set"], r.get("name", ""), int(r.get("scale", 0))): r for r in rows}


def read_timings(weights_dir: str | os.PathLike) -> tuple[str | None, dict[tuple[str, str], float]]:
    """(machine, ``{(weights set, model): ms per image}``) of the ``SUMMARY_SCALE`` rows that
    ``benchmarks/per_image.py --record`` wrote to ``<weights_dir>/per_image_time.json`` for the
    bicubic track on ``SUMMARY_DATASET`` and for Track2sim; (None, {}) without that file."""
    path = Path(weights_dir) / TIMING_FILE
    if not path.is_file():
        return None, {}
    data = json.loads(path.read_text(encoding="utf-8"))
    times = {
        (row["weights_set"], row["model"]): float(row["ms_per_image"])
        for row in data.get("rows", [])
        if int(row["scale"]) == SUMMARY_SCALE
        and (row["weights_set"] != "bicubic" or row["dataset"] == SUMMARY_DATASET)
    }
    return data.get("machine"), times


def _score(row: dict[str, Any] | None, dataset: str) -> dict[str, float] | None:
    return (row or {}).get("validation", {}).get(dataset)


def summary_markdown(weights_dir: str | os.PathLike | None = None) -> str:
    """The README's summary table, from the sidecars: every model shipped for the bicubic track
    or Track2sim at x``SUMMARY_SCALE`` (bicubic interpolation first), its parameters and
    multiply-adds, its Set5 PSNR / SSIM on the bicubic track, its Track2sim PSNR / SSIM (the
    fixed-operator weights) and its time per Set5 image (``read_timings``)."""
    weights_dir = weights_root(weights_dir)
    index = _sidecar_index(shipped_sidecars(weights_dir))
    machine, times = read_timings(weights_dir)
    names = sorted(
        {name for (ws, name, scale) in index if ws in ("bicubic", "track2sim")
         and scale == SUMMARY_SCALE},
        key=lambda n: (n != "linear", _summary_cost(index, n)["macs_720p"], n),
    )  # fmt: skip
    x = f"x{SUMMARY_SCALE}"
    lines = [
        f"| model | params | MACs (720p) | {SUMMARY_DATASET} {x}, bicubic track (PSNR / SSIM) "
        f"| Track2sim {x} (PSNR / SSIM) | ms per {SUMMARY_DATASET} image ({x}) |",
        "|---|---:|---:|---|---|---:|",
    ]
    bicubic = _baseline_scores(index)
    lines.append(
        f"| bicubic interpolation | 0 | - | {_pair(bicubic[0])} | {_pair(bicubic[1])} "
        f"| {_ms(times.get(('bicubic', 'bicubic')))} |"
    )
    for name in names:
        track1 = index.get(("bicubic", name, SUMMARY_SCALE))
        track2 = index.get(("track2sim", name, SUMMARY_SCALE))
        cost = _summary_cost(index, name)
        variant = (track1 or track2 or {}).get("variant")
        label = f"`{name}`" + (f" ({variant})" if variant else "")
        lines.append(
            f"| {label} | {cost['params']:,} | {cost['macs_720p'] / 1e9:.1f} G "
            f"| {_pair(_score(track1, SUMMARY_DATASET))} | {_pair(_score(track2, 'Track2sim'))} "
            f"| {_ms(times.get(('bicubic', name)))} |"
        )
    lines += [
        "",
        f"PSNR (dB) / SSIM on whole images, `y` protocol (BT.601 Y, {SUMMARY_SCALE} px shaved); "
        "Track2sim: its valid split (Set5 + Set14 under its fixed operator). MACs: multiply-adds "
        "for one 1280x720 output. Time: `Upscaler.upscale` on each LR image, best of 5, mean "
        f"over the set, from `{TIMING_COMMAND}`"
        + (f" ({machine})." if machine else ": no record yet, run it on a quiet machine."),
    ]
    return "\n".join(lines)


def _summary_cost(index: dict, name: str) -> dict[str, int]:
    """Parameters and multiply-adds of ``name`` at ``SUMMARY_SCALE`` (the same architecture in
    both weight sets)."""
    for weights_set in ("bicubic", "track2sim"):
        row = index.get((weights_set, name, SUMMARY_SCALE))
        if row and row.get("cost"):
            return row["cost"]
    return {"params": 0, "macs_720p": 0}


def _baseline_scores(index: dict) -> tuple[dict | None, dict | None]:
    """Bicubic interpolation's (Set5 bicubic-track, Track2sim) scores, as every sidecar of that
    weight set stores them beside its own."""
    found = []
    for weights_set, dataset in (("bicubic", SUMMARY_DATASET), ("track2sim", "Track2sim")):
        scores = next(
            (
                _score(row, dataset)
                for (ws, _, scale), row in sorted(index.items())
                if ws == weights_set and scale == SUMMARY_SCALE and _score(row, dataset)
            ),
            None,
        )
        found.append(
            {"psnr": scores["bicubic_psnr"], "ssim": scores["bicubic_ssim"]} if scores else None
        )
    return found[0], found[1]


def _pair(scores: dict[str, float] | None) -> str:
    return "-" if not scores else f"{scores['psnr']:.2f} / {scores['ssim']:.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def replace_generated_block(text: str, block: str, *, source: str = "README.md") -> str:
    """``text`` with what lies between ``SUMMARY_BEGIN`` and ``SUMMARY_END`` replaced by
    ``block`` (ConfigError naming ``source`` when a marker is missing)."""
    start, end = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
    if start < 0 or end < start:
        raise ConfigError(
            f"{source}: no summary-table markers ({SUMMARY_BEGIN!r} ... {SUMMARY_END!r})"
        )
    return f"{text[: start + len(SUMMARY_BEGIN)]}\n{block}\n{text[end:]}"


def write_readme_summary(
    readme: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None
) -> Path:
    """Rewrite the summary table of ``readme`` (default the repository's README.md) from the
    sidecars in ``weights_dir``; the rest of the file is kept as it is."""
    readme = Path(readme) if readme is not None else amls2_config.PROJECT_ROOT / "README.md"
    if not readme.is_file():
        raise ConfigError(f"{readme}: no such README")
    text = readme.read_text(encoding="utf-8")
    updated = replace_generated_block(text, summary_markdown(weights_dir), source=str(readme))
    if updated != text:
        atomic_write_text(readme, updated)
    return readme


def write_index(weights_dir: str | os.PathLike | None = None) -> Path:
    """(Re)write ``<weights_dir>/README.md`` from the shipped sidecars."""
    weights_dir = weights_root(weights_dir)
    return atomic_write_text(weights_dir / "README.md", index_markdown(weights_dir))
