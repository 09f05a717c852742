"""Evaluating upscalers on benchmark datasets: PSNR/SSIM records, tables, and the ``evaluate`` job.

One record per model x dataset x scale (JSON-ready dict)::

    {"model", "dataset", "scale", "track", "protocol",
     "psnr", "ssim",                  # means of the per-image values (as published tables)
     "bicubic_psnr", "bicubic_ssim",  # the MATLAB-exact bicubic baseline on the same images
     "seconds",                       # wall time of the model's inference over the dataset
     "params", "macs_720p",           # model cost (None for bicubic): parameters, and
                                      # multiply-adds for one 1280x720 output
     "images": [{"name", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim"}]}

Metrics follow ``amls2.metrics`` (protocol "y": uint8, BT.601 Y, ``scale`` px shaved per border;
"rgb": uint8 RGB, ``scale + 2`` px shaved). LR images come from ``datasets.load_pair``: the
dataset's own LR files when present (e.g. MATLAB-made ``LR_bicubic/X<s>``), otherwise synthesised
with the fixed validation seed. Identical SR and HR give PSNR ``inf``, stored in JSON as "inf".
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from amls2 import config as amls2_config
from amls2.errors import ConfigError, MissingWeightsError
from amls2.fileio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

RECORD_KEYS: tuple[str, ...] = (
    "model",
    "dataset",
    "scale",
    "track",
    "protocol",
    "psnr",
    "ssim",
    "bicubic_psnr",
    "bicubic_ssim",
    "seconds",
    "params",
    "macs_720p",
    "images",
)
IMAGE_KEYS: tuple[str, ...] = ("name", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """An ``amls2 evaluate`` job (saved as ``<json stem>.config.json`` next to the JSON output).

    ``models`` are NAME_OR_PATHs (``"bicubic"``, registry names, ``.keras``/``.h5`` files);
    ``datasets`` are names or folders; ``tile`` is in LR pixels (None: whole image); ``limit``
    evaluates only the first images of each dataset (quick looks). ``skip_missing``: a registry
    name without shipped weights for a scale is left out of that scale (logged) instead of
    stopping the job.
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    scales: tuple[int, ...] = (2, 3, 4)
    tracks: tuple[str, ...] = ("bicubic",)
    protocol: str = "y"
    self_ensemble: bool = False
    tile: int | None = None
    data_dir: Path | None = None
    save_images: Path | None = None
    limit: int | None = None
    skip_missing: bool = False

    def __post_init__(self) -> None:
        from amls2.metrics import PROTOCOLS

        if not self.models:
            raise ConfigError("--model: give at least one model (e.g. bicubic)")
        if not self.datasets:
            raise ConfigError("--dataset: give at least one dataset name or folder")
        if not self.scales:
            raise ConfigError("--scale: give at least one scale")
        for scale in self.scales:
            amls2_config.check_scale(scale)
        if not self.tracks:
            raise ConfigError("--track: give at least one track")
        for track in self.tracks:
            amls2_config.check_track(track)
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {self.protocol!r}: unknown; valid: {list(PROTOCOLS)}")
        if self.tile is not None and self.tile < 0:
            raise ConfigError(f"--tile {self.tile}: must be positive (0 or omitted: whole image)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit}: must be at least 1")


# ----------------------------------------------------------------------------- aggregation


def mean_of(values: Iterable[float]) -> float:
    """Mean of per-image values (inf if any is inf, as for identical images; nan if empty)."""
    values = [float(v) for v in values]
    if not values:
        return float("nan")
    return float(np.mean(values))


def summarize(images: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Dataset means of the per-image ``psnr``/``ssim``/``bicubic_*`` values."""
    keys = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
    return {key: mean_of(img[key] for img in images if key in img) for key in keys}


def make_record(
    *,
    model: str,
    dataset: str,
    scale: int,
    track: str,
    protocol: str,
    images: Sequence[dict[str, Any]],
    seconds: float,
    params: int | None = None,
    macs_720p: int | None = None,
) -> dict[str, Any]:
    """One result record (see the module doc) with the means computed from ``images``."""
    means = summarize(images)
    return {
        "model": model,
        "dataset": dataset,
        "scale": int(scale),
        "track": track,
        "protocol": protocol,
        "psnr": means["psnr"],
        "ssim": means["ssim"],
        "bicubic_psnr": means["bicubic_psnr"],
        "bicubic_ssim": means["bicubic_ssim"],
        "seconds": float(seconds),
        "params": params,
        "macs_720p": macs_720p,
        "images": [dict(img) for img in images],
    }


# ----------------------------------------------------------------------------- the job


def dataset_label(name_or_dir: str | os.PathLike) -> str:
    """Short dataset name for tables: the registry name, or the folder's name."""
    text = str(name_or_dir)
    path = Path(text)
    return path.name if (os.sep in text or path.is_dir()) else text


def _save_sr(save_dir: Path, model: str, dataset: str, scale: int, name: str, sr: np.ndarray):
    from amls2 import images

    path = save_dir / model / dataset / f"x{scale}" / f"{name}.png"
    images.write_image(path, sr)


def _load_upscalers(config: EvalConfig, scale: int, track: str) -> list:
    """The models of ``config`` at ``scale``; missing shipped weights skipped if asked."""
    from amls2.inference import load_upscaler

    upscalers = []
    for model in config.models:
        try:
            upscalers.append(load_upscaler(model, scale=scale, track=track))
        except MissingWeightsError as exc:
            if not config.skip_missing:
                raise
            log.warning("skipped: %s", exc)
    return upscalers


def _cost(upscaler) -> tuple[int | None, int | None]:
    """(parameters, multiply-adds for a 1280x720 output) of a model; (None, None) for bicubic."""
    if upscaler.is_bicubic:
        return None, None
    from amls2.models.cost import report_cost

    cost = report_cost(upscaler.model)
    return cost["params"], cost["macs_720p"]


def evaluate(config: EvalConfig, *, progress: bool = False) -> list[dict[str, Any]]:
    """Run ``config``: for every track x dataset x scale, every model; returns the records.

    Pairs are loaded one at a time (memory stays at one image); the bicubic baseline of each image
    is computed once and shared by all models. ``seconds`` counts only the model's inference.
    """
    records: list[dict[str, Any]] = []
    for track in config.tracks:
        records += _evaluate_track(config, track, progress)
    return records


def _evaluate_track(config: EvalConfig, track: str, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from amls2 import datasets, metrics
    from amls2.inference import bicubic_baseline

    records: list[dict[str, Any]] = []
    # Models and their costs depend on the scale only: load and count them once per scale.
    loaded: dict[int, tuple[list, list]] = {}
    for dataset in config.datasets:
        label = dataset_label(dataset)
        for scale in config.scales:
            if scale not in loaded:
                upscalers = _load_upscalers(config, scale, track)
                loaded[scale] = (upscalers, [_cost(u) for u in upscalers])
            upscalers, costs = loaded[scale]
            sources = datasets.resolve_pairs(
                dataset, scale=scale, track=track, data_dir=config.data_dir
            )
            if config.limit is not None:
                sources = sources[: config.limit]
            per_model: list[list[dict[str, Any]]] = [[] for _ in upscalers]
            seconds = [0.0 for _ in upscalers]
            desc = f"{label} x{scale}"
            for source in tqdm(sources, desc=desc, unit="img", disable=not progress, leave=False):
                pair = datasets.load_pair(source, scale=scale, track=track)
                start = time.perf_counter()
                bicubic_sr = bicubic_baseline(pair.lr, scale)
                bicubic_seconds = time.perf_counter() - start
                # One-channel HR files (Set14's bridge) are scored on their grey values.
                score = functools.partial(
                    metrics.evaluate_pair,
                    hr=pair.hr,
                    scale=scale,
                    protocol=config.protocol,
                    grayscale=pair.grayscale,
                )
                bicubic = score(bicubic_sr)
                for i, upscaler in enumerate(upscalers):
                    if upscaler.is_bicubic:
                        # The baseline is deterministic: reuse it rather than compute it twice.
                        sr, scores = bicubic_sr, bicubic
                        seconds[i] += bicubic_seconds
                    else:
                        start = time.perf_counter()
                        sr = upscaler.upscale(
                            pair.lr, tile=config.tile, self_ensemble=config.self_ensemble
                        )
                        seconds[i] += time.perf_counter() - start
                        scores = score(sr)
                    per_model[i].append(
                        {
                            "name": pair.name,
                            "psnr": scores["psnr"],
                            "ssim": scores["ssim"],
                            "bicubic_psnr": bicubic["psnr"],
                            "bicubic_ssim": bicubic["ssim"],
                        }
                    )
                    if config.save_images is not None:
                        _save_sr(config.save_images, upscaler.name, label, scale, pair.name, sr)
            for i, upscaler in enumerate(upscalers):
                params, macs = costs[i]
                record = make_record(
                    model=upscaler.name,
                    dataset=label,
                    scale=scale,
                    track=track,
                    protocol=config.protocol,
                    images=per_model[i],
                    seconds=seconds[i],
                    params=params,
                    macs_720p=macs,
                )
                log.info(
                    "%s %s x%d: %.2f dB / %.4f (bicubic %.2f dB)",
                    upscaler.name,
                    label,
                    scale,
                    record["psnr"],
                    record["ssim"],
                    record["bicubic_psnr"],
                )
                records.append(record)
    return records


# ----------------------------------------------------------------------------- tables


def _models_in_order(records: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in records))


def _rows_in_order(records: Sequence[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return list(dict.fromkeys((r["track"], r["dataset"], int(r["scale"])) for r in records))


def _index(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    return {(r["track"], r["dataset"], int(r["scale"]), r["model"]): r for r in records}


def _cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "-"
    return f"{_fmt(record['psnr'], 2)} / {_fmt(record['ssim'], 4)}"


def _fmt(value: float, digits: int) -> str:
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """Rows: dataset x scale (and track when several); columns: model PSNR / SSIM (means)."""
    models = _models_in_order(records)
    rows = _rows_in_order(records)
    index = _index(records)
    several_tracks = len({t for t, _, _ in rows}) > 1
    head = (["Track"] if several_tracks else []) + ["Dataset", "Scale"]
    head += [f"{m} PSNR / SSIM" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for track, dataset, scale in rows:
        cells = ([track] if several_tracks else []) + [dataset, f"x{scale}"]
        cells += [_cell(index.get((track, dataset, scale, m))) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def weight_sets_markdown(records: Sequence[dict[str, Any]]) -> str:
    """Records of ``NAME@SET`` models as one row per dataset x scale x NAME and one column per
    weight set: mean PSNR (dB) with the gain over bicubic on the same LR images in brackets."""
    cells: dict[tuple[str, int, str], dict[str, str]] = {}
    sets: list[str] = []
    for r in records:
        name, _, weights_set = str(r["model"]).partition("@")
        if not weights_set:
            continue
        sets += [weights_set] if weights_set not in sets else []
        gain = r["psnr"] - r["bicubic_psnr"]
        key = (r["dataset"], int(r["scale"]), name)
        cells.setdefault(key, {})[weights_set] = f"{r['psnr']:.2f} ({gain:+.2f})"
    head = ["Dataset", "Scale", "Model", *(f"@{s}" for s in sets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (dataset, scale, name), row in cells.items():
        values = [row.get(s, "-") for s in sets]
        lines.append("| " + " | ".join([dataset, f"x{scale}", name, *values]) + " |")
    return "\n".join(lines) + "\n"


def cost_markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """Rows: track x model (bicubic left out); columns: parameters and multiply-adds (one 1280x720
    output) per scale. Empty string when no record has a cost."""
    costs: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    for r in records:
        if r.get("params") is not None:
            costs.setdefault((r["track"], r["model"]), {})[int(r["scale"])] = (
                r["params"],
                r["macs_720p"],
            )
    if not costs:
        return ""
    scales = sorted({s for per_scale in costs.values() for s in per_scale})
    head = ["Track", "Model"] + [f"x{s} params / MACs (720p)" for s in scales]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (track, model), per_scale in costs.items():
        cells = [track, model]
        for s in scales:
            cost = per_scale.get(s)
            cells.append("-" if cost is None else f"{cost[0] / 1e3:,.0f} k / {cost[1] / 1e9:.1f} G")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(records: Sequence[dict[str, Any]]) -> str:
    """One CSV row per record (without the per-image list)."""
    buffer = io.StringIO()
    fields = [k for k in RECORD_KEYS if k != "images"] + ["n_images"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: record[k] for k in fields if k in record}
        row["n_images"] = len(record.get("images", []))
        writer.writerow(row)
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    for char in ("\\", "&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text


def latex_table(records: Sequence[dict[str, Any]]) -> str:
    """A booktabs tabular: rows dataset x scale, columns model PSNR/SSIM, best PSNR in bold."""
    models = _models_in_order(records)
    rows = _rows_in_order(records)
    index = _index(records)
    lines = [
        r"\begin{tabular}{ll" + "c" * len(models) + "}",
        r"\toprule",
        "Dataset & Scale & " + " & ".join(_latex_escape(m) for m in models) + r" \\",
        r"\midrule",
    ]
    for track, dataset, scale in rows:
        found = [index.get((track, dataset, scale, m)) for m in models]
        best = max((r["psnr"] for r in found if r is not None), default=None)
        cells = []
        for record in found:
            if record is None:
                cells.append("-")
                continue
            text = f"{_fmt(record['psnr'], 2)} / {_fmt(record['ssim'], 4)}"
            cells.append(r"\textbf{" + text + "}" if record["psnr"] == best else text)
        lines.append(f"{_latex_escape(dataset)} & $\\times{scale}$ & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- output files


def json_ready(value: Any) -> Any:
    """Records with non-finite floats as strings ("inf", "nan"): strict JSON has no infinity."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def config_path_for(json_path: str | os.PathLike) -> Path:
    """Where the EvalConfig of a JSON output is saved: ``<stem>.config.json`` beside it."""
    path = Path(json_path)
    return path.with_name(f"{path.stem}.config.json")


def check_outputs(
    *,
    json_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    latex_path: str | os.PathLike | None = None,
    save_images: str | os.PathLike | None = None,
) -> None:
    """ConfigError naming the option unless every requested output can be written: checked
    before evaluating, so that an evaluation is not lost to an unwritable path at its end."""
    from amls2.fileio import check_writable_file, check_writable_folder

    for option, path in (("--json", json_path), ("--csv", csv_path), ("--latex", latex_path)):
        if path is not None:
            check_writable_file(path, option)
    if json_path is not None:
        check_writable_file(config_path_for(json_path), "--json")
    if save_images is not None:
        check_writable_folder(save_images, "--save-images")


def write_outputs(
    records: Sequence[dict[str, Any]],
    config: EvalConfig,
    *,
    json_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    latex_path: str | os.PathLike | None = None,
) -> list[Path]:
    """Write the requested outputs atomically (and the config beside the JSON); return the paths."""
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_json(json_path, json_ready(list(records))))
        written.append(amls2_config.save_config(config, config_path_for(json_path)))
    if csv_path is not None:
        written.append(atomic_write_text(csv_path, csv_text(records)))
    if latex_path is not None:
        written.append(atomic_write_text(latex_path, latex_table(records)))
    return written
