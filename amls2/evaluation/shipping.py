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

then regenerates ``Selected_models/README.md``, one table of every shipped model
(:mod:`amls2.evaluation.shipped_index`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.errors import ModelError
from amls2.evaluation.scoring import EvalConfig, evaluate, model_labels
from amls2.evaluation.shipped_index import write_index
from amls2.fileio import atomic_paths, atomic_write_json, atomic_write_text, json_text
from amls2.inference.weights import (
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


def _write_shipped(target: Path, sidecar: dict[str, Any], model: Path) -> None:
    """Write ``sidecar`` and a copy of ``model`` at ``target``, both atomically."""
    # The sidecar is renamed into place first: the model never appears without its sidecar.
    try:
        with atomic_paths(target.with_suffix(".json"), target) as (side_tmp, model_tmp):
            side_tmp.write_text(json_text(sidecar), encoding="utf-8")
            shutil.copyfile(model, model_tmp)
    except OSError as exc:  # a full disk, a file-size limit: nothing half-shipped is left
        raise ModelError(f"{target}: cannot write ({exc.strerror or exc})") from None


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
        _write_shipped(target, shipped, deployed)
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


# ----------------------------------------------------------------------------- sidecars


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
