"""Evaluating upscalers: the one evaluation loop, its PSNR/SSIM records, and the ``evaluate`` job.

:func:`evaluate_pairs` is the only code that runs models over images to score them: the
``amls2 evaluate`` job (:func:`evaluate`), the demo and notebooks (:func:`evaluate_upscalers`), the
robustness sweep, shipping and validation during training (:func:`validation_scores`) all call it.
Tables and files of the records are :mod:`amls2.evaluation.tables`.

One record per model x dataset x scale (JSON-ready dict)::

    {"model", "dataset", "scale", "track", "protocol",
     "psnr", "ssim",                  # means of the per-image values (as published tables)
     "bicubic_psnr", "bicubic_ssim",  # the MATLAB-exact bicubic baseline on the same images
     "seconds",                       # wall time of the model's inference over the dataset
     "params", "macs_720p",           # model cost (None for bicubic): parameters, and
                                      # multiply-adds for one 1280x720 output
     "images": [{"name", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim"}]}

Metrics follow ``amls2.imaging.metrics`` (protocol "y": uint8, BT.601 Y, ``scale`` px shaved per border;
"rgb": uint8 RGB, ``scale + 2`` px shaved). LR images come from ``pairing.load_pair``: the
dataset's own LR files when present (e.g. MATLAB-made ``LR_bicubic/X<s>``), otherwise synthesised
with the fixed validation seed. Identical SR and HR give PSNR ``inf``, stored in JSON as "inf".
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from amls2 import config as amls2_config
from amls2.data import pairing
from amls2.errors import ConfigError, MissingWeightsError
from amls2.imaging import images, metrics
from amls2.inference.upscaler import Upscaler, bicubic_baseline
from amls2.inference.weights import BICUBIC, load_upscaler, looks_like_path

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
        if self.protocol not in metrics.PROTOCOLS:
            raise ConfigError(
                f"--protocol {self.protocol!r}: unknown; valid: {list(metrics.PROTOCOLS)}"
            )
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
    path = save_dir / model / dataset / f"x{scale}" / f"{name}.png"
    images.write_image(path, sr)


_SHIPPED_STEM = re.compile(r"^(?P<name>.+)_x(?P<scale>\d+)$")


def _path_parts(text: str) -> tuple[list[str], str]:
    """A model path's folders and file stem (absolute, ``..`` resolved), and its ``@SET``."""
    base, at, weights_set = text.rpartition("@")
    if not at or weights_set not in amls2_config.WEIGHT_SETS:
        base, weights_set = text, ""
    path = Path(os.path.abspath(Path(base).expanduser()))
    return [*path.parent.parts, path.stem], f"@{weights_set}" if weights_set else ""


def _shipped_label(text: str) -> str | None:
    """``NAME@SET`` for a path laid out as shipped weights (``.../<set>/<name>_x<s>.keras``)."""
    if "@" in text:
        return None
    path = Path(text)
    match = _SHIPPED_STEM.match(path.stem)
    if match and path.suffix.lower() == ".keras" and path.parent.name in amls2_config.WEIGHT_SETS:
        return f"{match['name']}@{path.parent.name}"
    return None


def model_labels(models: Sequence[str]) -> list[str]:
    """One unique label per ``--model`` value, the same in every table and file.

    Names (``espcn``, ``espcn@unknown``, ``bicubic``) are their own labels; a path laid out as
    shipped weights (``Selected_models/unknown/edsr_x2.keras``) is ``NAME@SET``
    (``edsr@unknown``); any other path is its file stem, lengthened by as many parent folders as
    it takes to tell it from the other models (``a/edsr_x2`` and ``b/edsr_x2``). A model given
    twice keeps its first label; a later twin gets ``#2``, ``#3``...
    """
    texts = [str(m) for m in models]
    paths = {t for t in texts if looks_like_path(t.rpartition("@")[0] or t)}
    labels = {t: t for t in texts if t not in paths}
    shipped = {t: _shipped_label(t) for t in paths}
    labels.update({t: label for t, label in shipped.items() if label})
    rest = sorted(t for t in paths if t not in labels)
    parts = {t: _path_parts(t) for t in rest}
    for text in rest:
        folders, at = parts[text]
        for depth in range(1, len(folders) + 1):
            label = "/".join(folders[-depth:]) + at
            others = ["/".join(parts[o][0][-depth:]) + parts[o][1] for o in rest if o != text]
            if label not in others and label not in labels.values():
                break
        labels[text] = label
    result: list[str] = []
    for text in texts:
        label = labels[text]
        if label in result:  # the same model given twice (or two files alike down to the root)
            label = f"{label}#{sum(r == label or r.startswith(label + '#') for r in result) + 1}"
        result.append(label)
    return result


def _load_upscalers(config: EvalConfig, scale: int, track: str) -> list[Upscaler]:
    """The models of ``config`` at ``scale``, named by :func:`model_labels`; missing shipped
    weights skipped if asked."""
    upscalers = []
    for model, label in zip(config.models, model_labels(config.models), strict=True):
        try:
            upscaler = load_upscaler(model, scale=scale, track=track)
            upscalers.append(dataclasses.replace(upscaler, name=label))
        except MissingWeightsError as exc:
            if not config.skip_missing:
                raise
            log.warning("skipped: %s", exc)
    return upscalers


def upscaler_cost(upscaler: Upscaler) -> tuple[int | None, int | None]:
    """(parameters, multiply-adds for a 1280x720 output) of a model; (None, None) for bicubic."""
    if upscaler.is_bicubic:
        return None, None
    from amls2.models.cost import report_cost  # imports TensorFlow

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
    records: list[dict[str, Any]] = []
    # Models and their costs depend on the scale only: load and count them once per scale.
    loaded: dict[int, tuple[list, list]] = {}
    for dataset in config.datasets:
        label = dataset_label(dataset)
        for scale in config.scales:
            if scale not in loaded:
                upscalers = _load_upscalers(config, scale, track)
                loaded[scale] = (upscalers, [upscaler_cost(u) for u in upscalers])
            upscalers, costs = loaded[scale]
            sources = pairing.resolve_pairs(
                dataset, scale=scale, track=track, data_dir=config.data_dir
            )
            if config.limit is not None:
                sources = sources[: config.limit]
            bar = tqdm(sources, desc=f"{label} x{scale}", unit="img", disable=not progress,
                       leave=False)  # fmt: skip
            pairs = (pairing.load_pair(source, scale=scale, track=track) for source in bar)
            save = None
            if config.save_images is not None:

                def save(index, pair, upscaler, sr, label=label, scale=scale):
                    _save_sr(config.save_images, upscaler.name, label, scale, pair.name, sr)

            with bar:  # closed (and cleared) on an error too: the error line stands alone
                found = evaluate_pairs(
                    upscalers, pairs, dataset=label, scale=scale, track=track,
                    protocol=config.protocol, tile=config.tile, self_ensemble=config.self_ensemble,
                    costs=costs, on_output=save,
                )  # fmt: skip
            for record in found:
                log.info(
                    "%s %s x%d: %.2f dB / %.4f (bicubic %.2f dB)",
                    record["model"],
                    label,
                    scale,
                    record["psnr"],
                    record["ssim"],
                    record["bicubic_psnr"],
                )
            records += found
    return records


# ----------------------------------------------------------------------------- the loop


def evaluate_pairs(
    upscalers: Sequence[Upscaler],
    pairs: Iterable[Any],
    *,
    dataset: str,
    scale: int,
    track: str,
    protocol: str = "y",
    tile: int | None = None,
    self_ensemble: bool = False,
    costs: Sequence[tuple[int | None, int | None]] | None = None,
    baseline: bool = True,
    on_output: Callable[[int, Any, Upscaler, np.ndarray], None] | None = None,
) -> list[dict[str, Any]]:
    """The evaluation loop: every upscaler on every pair, one record per upscaler, in order.

    ``pairs``: objects with ``name``, ``lr``, ``hr`` and ``grayscale`` (``pairing.Pair``,
    ``pipeline.ValidationImage``), consumed once (a generator keeps one image in memory).
    The bicubic baseline of each pair is computed once and shared: it gives every image its
    ``bicubic_psnr``/``bicubic_ssim`` (left out with ``baseline=False``) and is the output of a
    bicubic upscaler. ``seconds`` counts each upscaler's inference only; ``costs``: (params,
    multiply-adds) per upscaler. ``on_output(index, pair, upscaler, sr)`` sees every SR image.
    """
    per_model: list[list[dict[str, Any]]] = [[] for _ in upscalers]
    seconds = [0.0 for _ in upscalers]
    for index, pair in enumerate(pairs):
        scored = _score_pair(
            upscalers, pair, scale=scale, protocol=protocol, tile=tile,
            self_ensemble=self_ensemble, baseline=baseline,
        )  # fmt: skip
        for i, (upscaler, (sr, image, elapsed)) in enumerate(zip(upscalers, scored, strict=True)):
            per_model[i].append(image)
            seconds[i] += elapsed
            if on_output is not None:
                on_output(index, pair, upscaler, sr)
    costs = costs or [(None, None)] * len(upscalers)
    return [
        make_record(
            model=upscaler.name,
            dataset=dataset,
            scale=scale,
            track=track,
            protocol=protocol,
            images=per_model[i],
            seconds=seconds[i],
            params=costs[i][0],
            macs_720p=costs[i][1],
        )  # fmt: skip
        for i, upscaler in enumerate(upscalers)
    ]


def _score_pair(
    upscalers: Sequence[Upscaler],
    pair: Any,
    *,
    scale: int,
    protocol: str,
    tile: int | None,
    self_ensemble: bool,
    baseline: bool,
) -> list[tuple[np.ndarray, dict[str, Any], float]]:
    """(SR image, per-image record, seconds) of every upscaler on one pair."""
    # One-channel HR files (Set14's bridge) are scored on their grey values.
    score = functools.partial(
        metrics.evaluate_pair, hr=pair.hr, scale=scale, protocol=protocol, grayscale=pair.grayscale
    )
    bicubic_sr, bicubic, bicubic_seconds = None, None, 0.0
    if baseline or any(u.is_bicubic for u in upscalers):
        start = time.perf_counter()
        bicubic_sr = bicubic_baseline(pair.lr, scale)
        bicubic_seconds = time.perf_counter() - start
        bicubic = score(bicubic_sr)
    scored = []
    for upscaler in upscalers:
        if upscaler.is_bicubic:
            # The baseline is deterministic: reuse it rather than compute it twice.
            sr, scores, elapsed = bicubic_sr, bicubic, bicubic_seconds
        else:
            start = time.perf_counter()
            sr = upscaler.upscale(pair.lr, tile=tile, self_ensemble=self_ensemble)
            elapsed = time.perf_counter() - start
            scores = score(sr)
        image = {"name": pair.name, "psnr": scores["psnr"], "ssim": scores["ssim"]}
        if baseline:
            image.update(bicubic_psnr=bicubic["psnr"], bicubic_ssim=bicubic["ssim"])
        scored.append((sr, image, elapsed))
    return scored


def evaluate_upscalers(
    upscalers: Sequence[Upscaler],
    pairs: Sequence[Any],
    *,
    dataset: str,
    scale: int,
    track: str,
    tile: int | None = None,
    keep: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score bicubic and every upscaler on ``pairs``: one record per upscaler (bicubic first,
    ``y`` protocol), and the SR images of pair ``keep`` by upscaler name (with "bicubic") for
    figures. Grayscale HR files are scored on their grey values."""
    kept: dict[str, np.ndarray] = {}

    def keep_image(index, pair, upscaler, sr):
        if index == keep:
            kept[upscaler.name] = sr

    bicubic = load_upscaler(BICUBIC, scale=scale, track=track)
    records = evaluate_pairs(
        [bicubic, *upscalers], pairs, dataset=dataset, scale=scale, track=track, tile=tile,
        on_output=keep_image,
    )  # fmt: skip
    return records, kept


def validation_scores(model, images: Sequence[Any], *, scale: int, input_kind: str):
    """Mean PSNR/SSIM (dB, ``y`` protocol) of a Keras ``model`` over whole validation images
    (``pipeline.ValidationImage``): what the trainer chooses checkpoints on."""
    upscaler = Upscaler(name="model", scale=scale, track="", input_kind=input_kind, model=model)
    [record] = evaluate_pairs(
        [upscaler], images, dataset="validation", scale=scale, track="", baseline=False
    )
    return record["psnr"], record["ssim"]
