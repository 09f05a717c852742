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
from amls2.errors import ModelError
from amls2.evaluation import EvalConfig, evaluate, model_labels
from amls2.fileio import atomic_paths, atomic_write_json, atomic_write_text, json_text
from amls2.weights import (
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
# Fixed-operator models (Track2sim): the best model at least +2.5 dB over bicubic, FD-SRCNN (the
# seed's model) +2.0 dB; every one must also beat the blind model of the same name.
TRACK2SIM_MARGIN_DB: dict[str, float] = {"edsr": 2.5, "fd_srcnn": 2.0}
DEFAULT_SHIP_SETS: dict[str, tuple[str, ...]] = {"track2sim": ("Track2sim",)}


def targets_for(name: str, weights_set: str, scale: int, validation: dict) -> dict[str, Any]:
    """``{dataset: {target, source, gap}}`` (gap = PSNR - target; negative: not reached) of the
    model ``name`` of weight set ``weights_set`` (``config.WEIGHT_SETS``)."""
    result: dict[str, Any] = {}
    for dataset, scores in validation.items():
        if weights_set == "track2sim":
            margin = TRACK2SIM_MARGIN_DB.get(name)
            if margin is not None:
                target, source = scores["bicubic_psnr"] + margin, f"bicubic + {margin:g} dB"
            elif "blind_model_psnr" in scores:
                target, source = scores["blind_model_psnr"] + 0.01, "above the blind model"
            else:
                continue
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
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """``({dataset: {psnr, ssim, bicubic_psnr, bicubic_ssim}}, {params, macs_720p})`` under the
    ``y`` protocol: the test scores and the model's cost (from the evaluation records).

    ``reference``: weights trained for the bicubic track, run on the same ``track`` data; adds
    ``bicubic_track_model_psnr`` (what the unknown-track training must beat). ``blind``: the blind
    (``unknown`` set) model of the same name; adds ``blind_model_psnr``.
    """
    labels = {
        f"{ref}@{weights_set}": key
        for ref, weights_set, key in (
            (reference, "bicubic", "bicubic_track_model_psnr"),
            (blind, "unknown", "blind_model_psnr"),
        )
        if ref is not None
    }
    models = (str(path), *labels)
    config = EvalConfig(
        models=models, datasets=datasets, scales=(scale,), tracks=(track,), data_dir=data_dir
    )
    records = evaluate(config)
    # The records name each model by its evaluation label: map the references' to their keys.
    labels = dict(zip(model_labels(models)[1:], labels.values(), strict=True))
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
    # On the unknown track, also run the bicubic-track model of the same name on the same data,
    # and for fixed-operator models the blind model too: what the training must beat.
    reference = shipped_weights_path(
        name, scale=scale, weights_set="bicubic", weights_dir=weights_dir
    )
    blind = shipped_weights_path(name, scale=scale, weights_set="unknown", weights_dir=weights_dir)
    with tempfile.TemporaryDirectory() as scratch:
        deployed, deployment = deployable_model(source, sidecar, Path(scratch))
        validation, cost = validate_model(
            deployed,
            scale=scale,
            track=track,
            datasets=tuple(datasets),
            data_dir=data_dir,
            reference=reference if track != "bicubic" and reference.is_file() else None,
            blind=blind if weights_set == "track2sim" and blind.is_file() else None,
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
gain over MATLAB-exact bicubic on the same LR images. The test sets are never used to choose a
checkpoint (see "Checkpoint choice" below). Targets: the published results each model should
reach (`amls2/shipping.py`).

Three weight sets, one folder each (`--model NAME@SET` picks one; without `@SET` the set named
like `--track` is used):

* `bicubic/`: Track 1, bicubic degradation.
* `unknown/`: **blind** models for images of unknown origin, trained on random degradations
  (the stand-in: Gaussian blur, decimation, noise, JPEG). Tested on Set5/Set14 degraded with the
  fixed validation seed. Target: bicubic + 2 dB. `vs bicubic-track`: gain over the same model
  trained on the bicubic track, on the same LR images.
* `track2sim/`: **fixed-operator** models, NTIRE 2017 Track 2 as the challenge defines it: one
  unknown degradation per scale, learned from the `Track2sim` training pairs (`amls2 train
  --recipe NAME_xS_track2sim`; with the real DIV2K, add `--train-set DIV2K`). They fit that
  operator only. Tested on the Track2sim valid split. Targets: EDSR-small (the best model)
  bicubic + 2.5 dB, FD-SRCNN bicubic + 2.0 dB, the others above the blind model of the same
  name (`vs blind`; the fast model `espcn` has no blind model, so no target there).

`espcn` is the fast model (variant `fast`): its bicubic-track target is FSRCNN's published
accuracy, in OpenCV FSRCNN's time class (the time is measured by `benchmarks/per_image.py`, not
here).
"""

INDEX_OUTRO = """
Each `<model>_x<s>.json` sidecar holds the full training config (recipe), the data, steps,
wall time, machine and precision, the test metrics and the command that reproduces the model;
`<model>_x<s>.history.csv` is its per-epoch training history.

Checkpoint choice (`chosen on`): the `track2sim` models chose their checkpoint on the last 10
Track2sim training pairs, held out of training (`--holdout 10`): never on a reported set. The
`bicubic` and `unknown` models shipped before that rule chose it on Set5, which they also report;
in brackets, how much that flatters their Set5 number: the best minus the last epoch's Set5 PSNR
in their history (`+0.00`: the last epoch was kept, the choice changed nothing). The recipes now
hold out the last 10 BSD200 images instead.
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


def index_markdown(weights_dir: str | os.PathLike) -> str:
    """The tables of every shipped model, one per weight set (``Selected_models/README.md``)."""
    lines = [INDEX_INTRO]
    rows = shipped_sidecars(weights_dir)
    for weights_set in amls2_config.WEIGHT_SETS:
        group = [row for row in rows if row["weights_set"] == weights_set]
        if group:
            lines += [f"## `{weights_set}/`", "", *_set_table(group, weights_dir), ""]
    lines.append(INDEX_OUTRO)
    return "\n".join(lines)


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
