"""Ship a finished training run into ``Selected_models/<track>/<model>_x<scale>.keras``.

Shipping copies the run's best model (atomically), evaluates it on the validation sets under the
``y`` protocol (whole images, bicubic baseline alongside), and writes beside it

* ``<model>_x<s>.json``: the run's sidecar (config, data, steps, wall time, machine, versions)
  plus ``validation`` (per dataset: PSNR/SSIM of the model and of bicubic), ``cost`` (parameters
  and multiply-adds for a 1280x720 output) and ``reproduce`` (the command that retrains it);
* ``<model>_x<s>.history.csv``: the run's per-epoch history (for the training-curve figures);

then regenerates ``Selected_models/README.md``, one table of every shipped model.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.errors import ModelError
from amls2.fileio import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_VAL_SETS: tuple[str, ...] = ("Set5", "Set14")
HISTORY_SUFFIX = ".history.csv"

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
}
UNKNOWN_MARGIN_DB = 2.0


def targets_for(name: str, track: str, scale: int, validation: dict) -> dict[str, Any]:
    """``{dataset: {target, source, gap}}`` (gap = PSNR - target; negative: not reached)."""
    result: dict[str, Any] = {}
    for dataset, scores in validation.items():
        if track == "unknown":
            target = scores["bicubic_psnr"] + UNKNOWN_MARGIN_DB
            source = f"bicubic + {UNKNOWN_MARGIN_DB:g} dB"
        elif (name, track) in PUBLISHED_TARGETS and dataset in PUBLISHED_TARGETS[(name, track)][1]:
            source, table = PUBLISHED_TARGETS[(name, track)]
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


def shipped_path(weights_dir: Path, track: str, name: str, scale: int) -> Path:
    """``<weights_dir>/<track>/<name>_x<scale>.keras``."""
    return Path(weights_dir) / track / f"{name}_x{scale}.keras"


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
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """``({dataset: {psnr, ssim, bicubic_psnr, bicubic_ssim}}, {params, macs_720p})`` under the
    ``y`` protocol: the validation scores and the model's cost (from the evaluation records).

    ``reference``: weights trained for the bicubic track, run on the same ``track`` data; adds
    ``bicubic_track_model_psnr`` (what the unknown-track training must beat).
    """
    from amls2.evaluation import EvalConfig, evaluate

    reference_label = f"{reference}@bicubic" if reference else None
    models = (str(path),) + ((reference_label,) if reference else ())
    config = EvalConfig(
        models=models, datasets=datasets, scales=(scale,), tracks=(track,), data_dir=data_dir
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
        if record["model"] != reference_label
    }
    for record in records:
        if record["model"] == reference_label:
            validation[record["dataset"]]["bicubic_track_model_psnr"] = round(record["psnr"], 4)
    cost = {key: records[0][key] for key in ("params", "macs_720p")}
    return validation, cost


def ship_run(
    run_dir: str | os.PathLike,
    *,
    recipe: str | None = None,
    weights_dir: str | os.PathLike | None = None,
    datasets: tuple[str, ...] = DEFAULT_VAL_SETS,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Copy the run's model into the weights folder with its evaluated sidecar and history."""
    from amls2.models.io import read_sidecar

    run_dir = Path(run_dir)
    source = find_run_model(run_dir)
    sidecar = read_sidecar(source)
    try:
        name, scale, track = sidecar["name"], int(sidecar["scale"]), sidecar["track"]
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{source}: its sidecar has no name/scale/track; cannot ship") from None
    amls2_config.check_track(track)
    weights_dir = Path(weights_dir) if weights_dir else amls2_config.SELECTED_MODELS_DIR
    target = shipped_path(weights_dir, track, name, scale)
    if target.exists() and not force:
        raise ModelError(f"{target}: already shipped (use --force to replace it)")
    # On the unknown track, also run the bicubic-track model of the same name on the same data.
    reference = shipped_path(weights_dir, "bicubic", name, scale)
    if track == "bicubic" or not reference.is_file():
        reference = None
    validation, cost = validate_model(
        source,
        scale=scale,
        track=track,
        datasets=tuple(datasets),
        data_dir=data_dir,
        reference=reference,
    )
    shipped = {
        **sidecar,
        "validation": validation,
        "targets": targets_for(name, track, scale, validation),
        "cost": cost,
        "reproduce": reproduce_command(recipe, sidecar),
        "recipe": recipe,
        "run": run_dir.name,
    }
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    atomic_write_json(target.with_suffix(".json"), shipped)
    history = run_dir / "history.csv"
    if history.is_file():
        atomic_write_text(target.with_name(target.stem + HISTORY_SUFFIX), history.read_text())
    write_index(weights_dir)
    log.info("shipped %s -> %s", source, target)
    return target


def shipped_sidecars(weights_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every shipped model's sidecar (with its ``file``), ordered by track, name and scale."""
    import json

    rows = []
    for track in amls2_config.TRACKS:
        for path in sorted((Path(weights_dir) / track).glob("*.keras")):
            side = path.with_suffix(".json")
            data = json.loads(side.read_text()) if side.is_file() else {}
            rows.append({**data, "file": f"{track}/{path.name}"})
    order = {track: i for i, track in enumerate(amls2_config.TRACKS)}
    return sorted(
        rows, key=lambda r: (order.get(r.get("track"), 9), r.get("name", ""), r.get("scale", 0))
    )


def _cell(validation: dict[str, Any], dataset: str) -> str:
    scores = validation.get(dataset)
    if not scores:
        return "-"
    gain = scores["psnr"] - scores["bicubic_psnr"]
    return f"{scores['psnr']:.2f} / {scores['ssim']:.4f} ({gain:+.2f})"


def _reference_cell(validation: dict[str, Any]) -> str:
    """``Set5 +0.91, Set14 +0.62``: gain over the bicubic-track model on the same data."""
    cells = [
        f"{dataset} {scores['psnr'] - scores['bicubic_track_model_psnr']:+.2f}"
        for dataset, scores in validation.items()
        if "bicubic_track_model_psnr" in scores
    ]
    return ", ".join(cells) or "-"


def _target_cell(targets: dict[str, Any]) -> str:
    """``Set5 36.66 (-2.62), Set14 ...``: each target PSNR with "met" or the gap to it."""
    cells = []
    for dataset, target in targets.items():
        verdict = "met" if target["gap"] >= 0 else f"{target['gap']:+.2f}"
        cells.append(f"{dataset} {target['target_psnr']:.2f} ({verdict})")
    return ", ".join(cells) or "-"


def index_markdown(weights_dir: str | os.PathLike) -> str:
    """The table of every shipped model (``Selected_models/README.md``)."""
    lines = [
        "# Selected_models: the shipped weights",
        "",
        "Made by `amls2 ship RUN_DIR --recipe NAME` after `amls2 train --recipe NAME`; this page is",
        "regenerated from the sidecars on every ship (`amls2 ship --index-only`). Metrics: PSNR (dB)",
        "/ SSIM on whole images, BT.601 Y channel, `scale` pixels shaved (the `y` protocol); in",
        "brackets the gain over MATLAB-exact bicubic on the same LR images. For `unknown`, the LR",
        "images are the stand-in degradation with the fixed validation seed. Targets: the published",
        "results each model should reach (`amls2/shipping.py`), or bicubic + 2 dB on the unknown track.",
        "`vs bicubic-track`: on the unknown track, the gain over the same model trained on the",
        "bicubic track, run on the same (unknown-track) LR images.",
        "",
        "| file | model | track | scale | Set5 | Set14 | target (gap) | vs bicubic-track "
        "| params | MACs (720p) | steps | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in shipped_sidecars(weights_dir):
        validation = row.get("validation", {})
        cost = row.get("cost", {})
        variant = f" ({row['variant']})" if row.get("variant") else ""
        wall = row.get("wall_time_s")
        lines.append(
            f"| `{row['file']}` | {row.get('name', '?')}{variant} | {row.get('track', '?')} "
            f"| x{row.get('scale', '?')} | {_cell(validation, 'Set5')} "
            f"| {_cell(validation, 'Set14')} | {_target_cell(row.get('targets', {}))} "
            f"| {_reference_cell(validation)} | {cost.get('params', 0):,} "
            f"| {cost.get('macs_720p', 0) / 1e9:.1f} G | {row.get('steps', '-')} "
            f"| {'-' if wall is None else f'{wall / 60:.1f} min'} |"
        )
    lines += [
        "",
        "Each `<model>_x<s>.json` sidecar holds the full training config (recipe), the data, steps,",
        "wall time and machine, the validation metrics and the command that reproduces the model;",
        "`<model>_x<s>.history.csv` is its per-epoch training history.",
        "",
    ]
    return "\n".join(lines)


def refresh_sidecars(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Add the derived ``targets`` to shipped sidecars that lack them (older ships)."""
    import json

    weights_dir = Path(weights_dir) if weights_dir else amls2_config.SELECTED_MODELS_DIR
    updated = []
    for track in amls2_config.TRACKS:
        for side in sorted((weights_dir / track).glob("*.json")):
            data = json.loads(side.read_text())
            if "targets" in data or "validation" not in data:
                continue
            data["targets"] = targets_for(
                data["name"], track, int(data["scale"]), data["validation"]
            )
            atomic_write_json(side, data)
            updated.append(side)
    return updated


def write_index(weights_dir: str | os.PathLike | None = None) -> Path:
    """(Re)write ``<weights_dir>/README.md`` from the shipped sidecars."""
    weights_dir = Path(weights_dir) if weights_dir else amls2_config.SELECTED_MODELS_DIR
    return atomic_write_text(Path(weights_dir) / "README.md", index_markdown(weights_dir))
