"""Ship a finished training run into ``Selected_models/<weights set>/<model>_x<scale>.keras``.

The weight sets are ``config.WEIGHT_SETS``: ``bicubic``, ``unknown`` (blind models, trained on
random degradations) and ``track2sim`` (one fixed operator per scale, learned from the Track2sim
pairs); the default set of a run is its track.

Shipping copies the run's best model (atomically), evaluates it on the validation sets under the
``y`` protocol (whole images, bicubic baseline alongside), and writes beside it

* ``<model>_x<s>.json``: the run's sidecar (config, data, steps, wall time, machine, versions)
  plus ``validation`` (per dataset: PSNR/SSIM of the model and of bicubic), ``cost`` (parameters
  and multiply-adds for a 1280x720 output) and ``reproduce`` (the command that retrains it);
* ``<model>_x<s>.history.csv``: the run's per-epoch history (for the training-curve figures);

then regenerates ``Selected_models/README.md``, one table of every shipped model.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.errors import ConfigError, ModelError
from amls2.evaluation.scoring import EvalConfig, evaluate, model_labels
from amls2.fileio import atomic_paths, atomic_write_json, atomic_write_text, json_text
from amls2.inference.weights import (
    HISTORY_SUFFIX,
    history_path,
    shipped_weights_path,
    weight_set_dir,
    weights_root,
)

log = logging.getLogger(__name__)

DEFAULT_VAL_SETS: tuple[str, ...] = ("Set5", "Set14")

# The project's targets (y protocol, dB) per (model, track): published results to reach.
# The unknown track's target is relative: at least UNKNOWN_MARGIN_DB above bicubic.
PUBLISHED_TARGETS: dict[tuple[str, str], tuple[str, dict[str, tuple[float, float, float]]]] = {
    ("srcnn", "bicubic"): ("SRCNN, T91 (Dong et al. 2014)", {"Set5": (36.34, 32.39, 30.09)}),
    ("fd_srcnn", "bicubic"): (
        "SRCNN, ImageNet (Dong et al. 2016)",
        {"Set5": (36.66, 32.75, 30.48), "Set14": (32.45, 29.30, 27.50)},
    ),
    ("edsr", "bicubic"): (
        "FSRCNN (Dong et al. 2016)",
        {"Set5": (37.05, 33.18, 30.72), "Set14": (32.66, 29.37, 27.61)},
    ),
    # The fast model: FSRCNN's accuracy in OpenCV FSRCNN's time class (time: per_image.py).
    ("espcn", "bicubic"): (
        "FSRCNN (Dong et al. 2016; OpenCV's model)",
        {"Set5": (37.00, 33.16, 30.71), "Set14": (32.63, 29.43, 27.59)},
    ),
}
UNKNOWN_MARGIN_DB = 2.0
# Fixed-operator models (Track2sim): every one above the closed-form ``linear`` baseline solved
# from the same pairs, EDSR-small by 1.0 dB, FD-SRCNN (the seed's model) by 0.5 dB and the fast
# model by 0.3 dB; ``linear`` itself at least what a 9x9 luma filter of the pairs reached when the
# targets were set (31.85 / 28.85 / 27.13 dB at x2 / x3 / x4).
TRACK2SIM_MARGIN_OVER_LINEAR_DB: dict[str, float] = {"edsr": 1.0, "fd_srcnn": 0.5, "espcn": 0.3}
ABOVE_LINEAR_DB = 0.01
LINEAR_TRACK2SIM_TARGETS: tuple[float, float, float] = (31.85, 28.85, 27.13)
DEFAULT_SHIP_SETS: dict[str, tuple[str, ...]] = {"track2sim": ("Track2sim",)}


def targets_for(name: str, weights_set: str, scale: int, validation: dict) -> dict[str, Any]:
    """``{dataset: {target, source, gap}}`` (gap = PSNR - target; negative: not reached) of the
    model ``name`` of weight set ``weights_set`` (``config.WEIGHT_SETS``)."""
    result: dict[str, Any] = {}
    for dataset, scores in validation.items():
        if name == "linear" and weights_set != "unknown":
            target, source = _linear_target(weights_set, scale, scores)
        elif weights_set == "track2sim":
            if "linear_model_psnr" not in scores:
                continue
            margin = TRACK2SIM_MARGIN_OVER_LINEAR_DB.get(name, ABOVE_LINEAR_DB)
            target, source = scores["linear_model_psnr"] + margin, f"linear + {margin:g} dB"
        elif weights_set == "unknown":
            target = scores["bicubic_psnr"] + UNKNOWN_MARGIN_DB
            source = f"bicubic + {UNKNOWN_MARGIN_DB:g} dB"
        elif (name, weights_set) in PUBLISHED_TARGETS and dataset in PUBLISHED_TARGETS[
            (name, weights_set)
        ][1]:
            source, table = PUBLISHED_TARGETS[(name, weights_set)]
            target = table[dataset][scale - 2]
        else:
            continue
        gap = round(scores["psnr"] - target, 2)
        result[dataset] = {"target_psnr": round(target, 2), "source": source, "gap": gap}
    return result


def _linear_target(weights_set: str, scale: int, scores: dict) -> tuple[float, str]:
    """The ``linear`` baseline's target: above bicubic on the bicubic track, and on Track2sim
    at least the 9x9 luma filter's PSNR measured when the targets were set."""
    if weights_set == "track2sim":
        return LINEAR_TRACK2SIM_TARGETS[scale - 2], "the 9x9 luma filter's measured PSNR"
    return scores["bicubic_psnr"] + ABOVE_LINEAR_DB, "above bicubic"


def find_run_model(run_dir: str | os.PathLike) -> Path:
    """The one ``.keras`` file a training run folder holds (ModelError otherwise)."""
    run_dir = Path(run_dir)
    found = sorted(run_dir.glob("*.keras"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ModelError(f"{run_dir}: {what} .keras model(s) found; expected one finished run")
    return found[0]


def reproduce_command(recipe: str | None, sidecar: dict[str, Any]) -> str:
    """The command that retrains the model: its recipe if known, else its full options."""
    if recipe:
        return f"amls2 train --recipe {recipe} --data-dir ../shared/datasets"
    return (
        f"amls2 train --model {sidecar.get('name')} --scale {sidecar.get('scale')} "
        f"--track {sidecar.get('track')} --config config.json  # config.json = the sidecar's config"
    )


def validate_model(
    path: Path,
    *,
    scale: int,
    track: str,
    datasets: tuple[str, ...],
    data_dir=None,
    reference: Path | None = None,
    blind: Path | None = None,
    linear: Path | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """``({dataset: {psnr, ssim, bicubic_psnr, bicubic_ssim}}, {params, macs_720p})`` under the
    ``y`` protocol: the test scores and the model's cost (from the evaluation records).

    ``reference``: weights trained for the bicubic track, run on the same ``track`` data; adds
    ``bicubic_track_model_psnr`` (what the unknown-track training must beat). ``blind``: the blind
    (``unknown`` set) model of the same name; adds ``blind_model_psnr``. ``linear``: the shipped
    ``linear`` baseline of the same weight set; adds ``linear_model_psnr``.
    """
    references = {
        f"{ref}@{weights_set}": key
        for ref, weights_set, key in (
            (reference, "bicubic", "bicubic_track_model_psnr"),
            (blind, "unknown", "blind_model_psnr"),
            (linear, "track2sim", "linear_model_psnr"),
        )
        if ref is not None
    }
    models = (str(path), *references)
    # The records name each model by its evaluation label: map the labels to the keys.
    labels = dict(zip(model_labels(models)[1:], references.values(), strict=True))
    config = EvalConfig(
        models=models,
        datasets=datasets,
        scales=(scale,),
        tracks=(track,),
        data_dir=data_dir,
    )
    records = evaluate(config)
    validation = {
        record["dataset"]: {
            "protocol": record["protocol"],
            "psnr": round(record["psnr"], 4),
            "ssim": round(record["ssim"], 5),
            "bicubic_psnr": round(record["bicubic_psnr"], 4),
            "bicubic_ssim": round(record["bicubic_ssim"], 5),
        }
        for record in records
        if record["model"] not in labels
    }
    for record in records:
        if record["model"] in labels:
            validation[record["dataset"]][labels[record["model"]]] = round(record["psnr"], 4)
    cost = {key: records[0][key] for key in ("params", "macs_720p")}
    return validation, cost


def _run_identity(
    source: Path, sidecar: dict[str, Any], weights_set: str | None
) -> tuple[str, int, str, str]:
    """(name, scale, track, weights set) of a run's model, from its sidecar; the weights set
    defaults to the track and must be one for that track."""
    try:
        name, scale, track = sidecar["name"], int(sidecar["scale"]), sidecar["track"]
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{source}: its sidecar has no name/scale/track; cannot ship") from None
    amls2_config.check_track(track)
    weights_set = amls2_config.check_weights_set(weights_set or track)
    if amls2_config.WEIGHT_SETS[weights_set] != track:
        raise ModelError(
            f"{source}: a {track}-track model cannot ship in weights set {weights_set}"
        )
    return name, scale, track, weights_set


def ship_run(
    run_dir: str | os.PathLike,
    *,
    recipe: str | None = None,
    weights_dir: str | os.PathLike | None = None,
    datasets: tuple[str, ...] | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    weights_set: str | None = None,
) -> Path:
    """Copy the run's model into the weights folder with its evaluated sidecar and history.

    ``weights_set``: default the run's track. ``datasets`` (the test sets): default Set5 and
    Set14, or for ``track2sim`` the Track2sim valid split.
    """
    from amls2.models.io import read_sidecar  # imports TensorFlow

    run_dir = Path(run_dir)
    source = find_run_model(run_dir)
    sidecar = read_sidecar(source)
    name, scale, track, weights_set = _run_identity(source, sidecar, weights_set)
    if datasets is None:
        datasets = DEFAULT_SHIP_SETS.get(weights_set, DEFAULT_VAL_SETS)
    weights_dir = weights_root(weights_dir)
    target = shipped_weights_path(
        name, scale=scale, weights_set=weights_set, weights_dir=weights_dir
    )
    if target.exists() and not force:
        raise ModelError(f"{target}: already shipped (use --force to replace it)")
    with tempfile.TemporaryDirectory() as scratch:
        deployed, deployment = deployable_model(source, sidecar, Path(scratch))
        validation, cost = _validate_against_the_shipped(
            deployed, name, scale, track, weights_set, weights_dir, tuple(datasets), data_dir
        )
        shipped = {
            **sidecar,
            **deployment,
            "weights_set": weights_set,
            "validation": validation,
            "targets": targets_for(name, weights_set, scale, validation),
            "cost": cost,
            "reproduce": reproduce_command(recipe, sidecar),
            "recipe": recipe,
            "run": run_dir.name,
        }
        # The sidecar is renamed into place first: the model never appears without its sidecar.
        try:
            with atomic_paths(target.with_suffix(".json"), target) as (side_tmp, model_tmp):
                side_tmp.write_text(json_text(shipped), encoding="utf-8")
                shutil.copyfile(deployed, model_tmp)
        except OSError as exc:  # a full disk, a file-size limit: nothing half-shipped is left
            raise ModelError(f"{target}: cannot write ({exc.strerror or exc})") from None
    history = run_dir / "history.csv"
    if history.is_file():
        atomic_write_text(
            history_path(name, scale=scale, weights_set=weights_set, weights_dir=weights_dir),
            history.read_text(),
        )
    write_index(weights_dir)
    log.info("shipped %s -> %s", source, target)
    return target


def _validate_against_the_shipped(
    deployed: Path, name, scale, track, weights_set, weights_dir, datasets, data_dir
):
    """``validate_model`` of ``deployed``; on the unknown track, also the bicubic-track model of
    the same name on the same data, and for fixed-operator models the blind model too: what the
    training must beat."""
    reference = shipped_weights_path(
        name, scale=scale, weights_set="bicubic", weights_dir=weights_dir
    )
    blind = shipped_weights_path(name, scale=scale, weights_set="unknown", weights_dir=weights_dir)
    linear = shipped_weights_path(
        "linear", scale=scale, weights_set="track2sim", weights_dir=weights_dir
    )
    fixed = weights_set == "track2sim"
    return validate_model(
        deployed,
        scale=scale,
        track=track,
        datasets=datasets,
        data_dir=data_dir,
        reference=reference if track != "bicubic" and reference.is_file() else None,
        blind=blind if fixed and blind.is_file() else None,
        linear=linear if fixed and name != "linear" and linear.is_file() else None,
    )


def deployable_model(
    source: Path, sidecar: dict[str, Any], scratch: Path
) -> tuple[Path, dict[str, Any]]:
    """The file to ship for the run's model ``source``, and what was done to it for the
    sidecar: ``source`` itself, or, when it was trained with edge-oriented convolution blocks,
    its copy with every block merged into the plain 3x3 convolution it computes
    (``models.ecb.merge_into_plain``, written to ``scratch``)."""
    from amls2.models.ecb import has_edge_blocks, merge_into_plain
    from amls2.models.io import load_model, save_model

    model = load_model(source)[0]
    if not has_edge_blocks(model):
        return source, {}
    merged = scratch / source.name
    save_model(merge_into_plain(model), merged, sidecar)
    note = "trained as edge-oriented convolution blocks, shipped merged into plain 3x3 convolutions"
    return merged, {"deployed": note}


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
  model linear + 0.3 dB, every other model above linear.

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
92059, 94079, 95006, 97017) for the `bicubic` and `unknown` recipes, the last 10 Track2sim
training pairs for `track2sim`. Every recipe in `amls2/recipes/` holds them out.

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
On `track2sim/`, longer training was measured not to move EDSR-small x2: 20000 steps of the
`edsr_x2_track2sim` recipe instead of 5000 lowered the training loss by 3 % while the held-out
PSNR stayed within its epoch-to-epoch spread (27.5-28.4 dB).
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
    reference = "vs blind" if fixed else "vs bicubic-track"
    key = "blind_model_psnr" if fixed else "bicubic_track_model_psnr"
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


# ----------------------------------------------------------------------------- README summary

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


def refresh_sidecars(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Add the derived ``targets`` to shipped sidecars that lack them (older ships)."""
    updated = []
    for weights_set in amls2_config.WEIGHT_SETS:
        for side in sorted(weight_set_dir(weights_set, weights_dir).glob("*.json")):
            data = json.loads(side.read_text())
            if "targets" in data or "validation" not in data:
                continue
            data["targets"] = targets_for(
                data["name"], weights_set, int(data["scale"]), data["validation"]
            )
            atomic_write_json(side, data)
            updated.append(side)
    return updated


def write_index(weights_dir: str | os.PathLike | None = None) -> Path:
    """(Re)write ``<weights_dir>/README.md`` from the shipped sidecars."""
    weights_dir = weights_root(weights_dir)
    return atomic_write_text(weights_dir / "README.md", index_markdown(weights_dir))
