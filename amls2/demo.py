"""The scripted demo flows behind ``python main.py`` and the helpers the notebooks call.

Three flows, one frozen :class:`DemoConfig` each (saved as ``demo_config.json`` next to the
outputs):

* :func:`run_shipped` (``python main.py``): load the shipped weights
  ``<weights_dir>/<track>/<model>_x<scale>.keras``, super-resolve the validation images for both
  tracks and every scale, score bicubic and every model (PSNR/SSIM, ``y`` protocol: BT.601 Y,
  ``scale`` px shaved) and write the table (markdown, JSON, CSV) and the comparison figures.
  Missing weights are skipped with a note naming the command that trains them.
* :func:`run_training` (``python main.py --train``): the seed project's scripted flow: cut patches
  with :mod:`amls2.patches`, train one model briefly with :func:`amls2.training.train`, evaluate it
  against bicubic, write example images and figures.
* :func:`render_demo` (``python main.py --render-demo``): the figures reviewers open in ``demo/``
  (results table, FD-SRCNN architecture, visual comparisons, training curves, PSNR against cost).

Images are float32 HxWx3 RGB in [0, 1]. To stay fast on a CPU the validation images are cut to a
centre crop of ``crop`` HR pixels (rounded down to a multiple of the scale; LR cropped at the
aligned position, so the pair stays exact) unless ``crop`` is None. The module also runs the
notebooks (``python -m amls2.demo notebooks [--full]``), used to refresh their committed outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from amls2 import config as amls2_config
from amls2.errors import Amls2Error, ConfigError, ModelError

log = logging.getLogger(__name__)

# The project's core models (SRCNN family, the seed's IUD/FD-SRCNN, one light model).
DEFAULT_MODELS: tuple[str, ...] = ("srcnn", "post_srcnn", "iud_srcnn", "fd_srcnn", "edsr")
MODES: tuple[str, ...] = ("shipped", "train", "render")
DEFAULT_OUT_DIR = Path("outputs/demo")
DEMO_DIR = amls2_config.PROJECT_ROOT / "demo"
NOTEBOOKS_DIR = amls2_config.PROJECT_ROOT / "notebooks"
NOTEBOOK_OUTPUT_DIR = amls2_config.PROJECT_ROOT / "outputs" / "notebooks"
CONFIG_FILE = "demo_config.json"
# Multiply-adds are counted for one 1280x720 output image (the NTIRE efficient-SR convention).
# Environment variables the notebooks' parameter cells read.
QUICK_ENV = "AMLS2_QUICK"
OUTPUT_ENV = "AMLS2_OUTPUT"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """One demo job.

    ``mode``: "shipped", "train" or "render" (see the module doc). ``models``: registry names
    (None: ``DEFAULT_MODELS`` plus any other model found in ``weights_dir``); ``train_model`` is
    the one trained by the "train" mode. ``datasets``: validation sets (names or folders).
    ``crop``: HR centre-crop side in pixels (None: whole images); ``limit``: first images only.
    ``weights_dir``: the shipped weights (None: the repository's ``Selected_models``).
    ``quick``: the "train" mode uses the tiny variant, small patches and ``steps`` (default 20)
    steps. ``tile``: LR tile size for inference (None: whole image).
    """

    mode: str = "shipped"
    out_dir: Path = DEFAULT_OUT_DIR
    tracks: tuple[str, ...] = amls2_config.TRACKS
    scales: tuple[int, ...] = amls2_config.SCALES
    models: tuple[str, ...] | None = None
    datasets: tuple[str, ...] = ("samples",)
    data_dir: Path | None = None
    weights_dir: Path | None = None
    crop: int | None = 256
    limit: int | None = None
    tile: int | None = None
    quick: bool = False
    train_model: str = "fd_srcnn"
    steps: int | None = None
    seed: int = 0
    dpi: int = 100

    def __post_init__(self) -> None:
        # None: the repository's Selected_models; strings (notebook parameters) become Paths.
        weights = amls2_config.SELECTED_MODELS_DIR if self.weights_dir is None else self.weights_dir
        object.__setattr__(self, "weights_dir", Path(weights))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r}: unknown; valid: {list(MODES)}")
        if not self.tracks:
            raise ConfigError("--track: give at least one track")
        for track in self.tracks:
            amls2_config.check_track(track)
        if not self.scales:
            raise ConfigError("--scale: give at least one scale")
        for scale in self.scales:
            amls2_config.check_scale(scale)
        if not self.datasets:
            raise ConfigError("--dataset: give at least one dataset")
        for option, value in (("--crop", self.crop), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{option} {value}: must be at least 1")
        if self.crop is not None and self.crop < 12:
            raise ConfigError(f"--crop {self.crop}: too small (at least 12 px)")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps {self.steps}: must be at least 1")
        from amls2 import models

        for name in (*(self.models or ()), self.train_model):
            models.get_spec(name)  # ModelError listing the valid names


@dataclasses.dataclass(frozen=True)
class Missing:
    """Shipped weights that are not there, and the command that trains them."""

    track: str
    model: str
    scale: int
    path: Path
    hint: str


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What a demo flow produced: the result records, every file written, what it skipped."""

    out_dir: Path
    records: tuple[dict[str, Any], ...]
    written: tuple[Path, ...]
    missing: tuple[Missing, ...] = ()
    notes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- shipped weights


def weights_path(model: str, *, scale: int, track: str, weights_dir: str | os.PathLike) -> Path:
    """``<weights_dir>/<track>/<model>_x<scale>.keras``."""
    return Path(weights_dir) / track / f"{model}_x{scale}.keras"


def history_path(model: str, *, scale: int, track: str, weights_dir: str | os.PathLike) -> Path:
    """The training history shipped beside the weights: ``<model>_x<scale>.history.csv``."""
    return Path(weights_dir) / track / f"{model}_x{scale}.history.csv"


def shipped_models(weights_dir: str | os.PathLike, track: str) -> list[str]:
    """Registry models with at least one ``<model>_x<s>.keras`` in ``<weights_dir>/<track>``."""
    from amls2 import models

    folder = Path(weights_dir) / track
    if not folder.is_dir():
        return []
    names = models.model_names()
    found = {p.stem.rsplit("_x", 1)[0] for p in folder.glob("*_x*.keras")}
    return [n for n in names if n in found]


def models_for(config: DemoConfig, track: str) -> list[str]:
    """The models a demo shows for ``track``: the configured ones, else the core four plus any
    other shipped model."""
    if config.models is not None:
        return list(config.models)
    extra = [m for m in shipped_models(config.weights_dir, track) if m not in DEFAULT_MODELS]
    return [*DEFAULT_MODELS, *extra]


def load_shipped(
    model: str, *, scale: int, track: str, weights_dir: str | os.PathLike | None = None
):
    """The shipped upscaler of ``model`` (an ``inference.Upscaler`` named ``model``).

    Raises ModelError naming the missing file and the command that trains it.
    """
    from amls2 import inference

    weights_dir = amls2_config.SELECTED_MODELS_DIR if weights_dir is None else weights_dir
    path = weights_path(model, scale=scale, track=track, weights_dir=weights_dir)
    if not path.is_file():
        hint = inference.train_hint(model, scale=scale, weights_set=track)
        raise ModelError(f"{path}: no shipped weights for {model} x{scale} ({track}); run `{hint}`")
    upscaler = inference.load_upscaler(path, scale=scale, track=track)
    return dataclasses.replace(upscaler, name=model)


def load_shipped_or_note(
    model: str, *, scale: int, track: str, weights_dir: str | os.PathLike | None = None
) -> tuple[Any, str]:
    """``(upscaler, "")``, or ``(None, note)`` with a markdown note saying what to run."""
    try:
        return load_shipped(model, scale=scale, track=track, weights_dir=weights_dir), ""
    except ModelError as exc:
        return None, f"**Skipped {model} x{scale} ({track})**: {exc}"


def find_missing(config: DemoConfig) -> list[Missing]:
    """Every (track, model, scale) of ``config`` without shipped weights."""
    from amls2 import inference

    missing = []
    for track in config.tracks:
        for model in models_for(config, track):
            for scale in config.scales:
                path = weights_path(model, scale=scale, track=track, weights_dir=config.weights_dir)
                if not path.is_file():
                    hint = inference.train_hint(model, scale=scale, weights_set=track)
                    missing.append(Missing(track, model, scale, path, hint))
    return missing


def missing_summary(missing: Sequence[Missing]) -> list[str]:
    """One line per (track, model): the scales without weights and the commands that train them."""
    grouped: dict[tuple[str, str], list[Missing]] = {}
    for item in missing:
        grouped.setdefault((item.track, item.model), []).append(item)
    lines = []
    for (track, model), items in grouped.items():
        scales = " ".join(f"x{m.scale}" for m in items)
        hints = "; ".join(dict.fromkeys(m.hint for m in items))
        folder = items[0].path.parent
        lines.append(f"{model} ({track}) {scales}: no weights in {folder}; train: {hints}")
    return lines


def missing_markdown(missing: Sequence[Missing]) -> str:
    """A markdown note for notebooks: the skipped models and what trains them, or "all found"."""
    if not missing:
        return "All shipped weights found."
    lines = "\n".join(f"- {line}" for line in missing_summary(missing))
    return f"**Missing shipped weights** (skipped):\n\n{lines}\n"


# ----------------------------------------------------------------------------- data


def centre_crop_pair(pair, crop: int, scale: int):
    """The pair cut to the centre ``crop`` x ``crop`` HR pixels (rounded down to a multiple of
    ``scale``; clipped to the image), the LR cut at the aligned position ``(y/s, x/s)``."""
    from amls2 import datasets, patches

    h, w = pair.hr.shape[:2]
    size = min(crop, h, w) // scale * scale
    # Top-left corner on the LR grid so the LR crop is exactly the HR crop's partner.
    y = (h - size) // 2 // scale * scale
    x = (w - size) // 2 // scale * scale
    hr, lr = patches.crop_pair(pair.hr, pair.lr, y, x, size, scale)
    return datasets.Pair(pair.name, np.ascontiguousarray(hr), np.ascontiguousarray(lr),
                         pair.params, pair.grayscale)  # fmt: skip


def demo_pairs(
    dataset: str,
    *,
    scale: int,
    track: str,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    crop: int | None = None,
) -> list:
    """Validation pairs of ``dataset`` (LR synthesised with the validation seed when the dataset
    has no LR files), optionally only the first ``limit`` and cut to a centre crop."""
    from amls2 import datasets

    pairs = datasets.load_pairs(dataset, scale=scale, track=track, data_dir=data_dir, limit=limit)
    return [centre_crop_pair(p, crop, scale) for p in pairs] if crop else pairs


def default_datasets(data_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Set5 and Set14 when they are under the data root, else the embedded ``samples``."""
    from amls2 import datasets

    found = tuple(n for n in ("Set5", "Set14") if datasets.dataset_status(n, data_dir).present)
    return found or (datasets.SAMPLES,)


# ----------------------------------------------------------------------------- evaluation


def evaluate_upscalers(
    upscalers: Sequence[Any],
    pairs: Sequence[Any],
    *,
    dataset: str,
    scale: int,
    track: str,
    tile: int | None = None,
    keep: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score bicubic and every upscaler on ``pairs``: one ``evaluation`` record per upscaler
    (bicubic first, ``y`` protocol), and the SR images of pair ``keep`` by upscaler name (with
    "bicubic") for figures. Grayscale HR files are scored on their grey values."""
    from amls2 import evaluation, inference, metrics

    per_model: dict[str, list[dict[str, Any]]] = {"bicubic": []}
    per_model.update({u.name: [] for u in upscalers})
    seconds = dict.fromkeys(per_model, 0.0)
    kept: dict[str, np.ndarray] = {}
    for index, pair in enumerate(pairs):

        def score(sr, pair=pair):
            return metrics.evaluate_pair(sr, pair.hr, scale=scale, grayscale=pair.grayscale)

        start = time.perf_counter()
        bicubic_sr = inference.bicubic_baseline(pair.lr, scale)
        seconds["bicubic"] += time.perf_counter() - start
        bicubic = score(bicubic_sr)
        outputs = {"bicubic": (bicubic_sr, bicubic)}
        for upscaler in upscalers:
            start = time.perf_counter()
            sr = upscaler.upscale(pair.lr, tile=tile)
            seconds[upscaler.name] += time.perf_counter() - start
            outputs[upscaler.name] = (sr, score(sr))
        for name, (sr, scores) in outputs.items():
            per_model[name].append(
                {
                    "name": pair.name,
                    "psnr": scores["psnr"],
                    "ssim": scores["ssim"],
                    "bicubic_psnr": bicubic["psnr"],
                    "bicubic_ssim": bicubic["ssim"],
                }
            )
            if index == keep:
                kept[name] = sr
    records = [
        evaluation.make_record(
            model=name,
            dataset=dataset,
            scale=scale,
            track=track,
            protocol="y",
            images=images,
            seconds=seconds[name],
        )
        for name, images in per_model.items()
    ]
    return records, kept


def comparison_figure(hr: np.ndarray, panels: Mapping[str, np.ndarray], *, scale: int, title: str):
    """``plots.visual_comparison`` of ``panels`` (bicubic and models) against ``hr``."""
    from amls2 import plots

    crop = max(24, min(hr.shape[:2]) // 4)
    return plots.visual_comparison(hr, dict(panels), scale=scale, crop=crop, title=title)


def model_costs(upscalers: Sequence[Any]) -> dict[str, dict[str, float]]:
    """``{name: {"macs", "params"}}``: multiply-adds for one 1280x720 output image and parameter
    count of each (non-bicubic) upscaler, for ``plots.psnr_vs_cost``."""
    from amls2.models.cost import report_cost

    costs = {}
    for upscaler in upscalers:
        if upscaler.model is None:
            continue
        cost = report_cost(upscaler.model)
        costs[upscaler.name] = {"macs": float(cost["macs_720p"]), "params": float(cost["params"])}
    return costs


def write_tables(records: Sequence[dict[str, Any]], out_dir: Path, stem: str = "results"):
    """``<stem>.md`` (markdown table), ``<stem>.json`` (records) and ``<stem>.csv``, atomically."""
    from amls2 import evaluation
    from amls2.fileio import atomic_write_json, atomic_write_text

    return [
        atomic_write_text(out_dir / f"{stem}.md", evaluation.markdown_table(records)),
        atomic_write_json(out_dir / f"{stem}.json", evaluation.json_ready(list(records))),
        atomic_write_text(out_dir / f"{stem}.csv", evaluation.csv_text(records)),
    ]


def _save(fig, path: Path, dpi: int) -> Path:
    from amls2 import plots

    return plots.save_figure(fig, path, dpi=dpi)


# ----------------------------------------------------------------------------- python main.py


def _evaluate_track_scale(
    config: DemoConfig, track: str, scale: int, figure_dir: Path, written: list[Path]
):
    """Records for one track x scale over ``config.datasets`` (shipped models that exist), and
    ``<figure_dir>/compare_<track>_x<s>.png`` of the first image of the first dataset."""
    upscalers = []
    for model in models_for(config, track):
        path = weights_path(model, scale=scale, track=track, weights_dir=config.weights_dir)
        if path.is_file():
            upscalers.append(
                load_shipped(model, scale=scale, track=track, weights_dir=config.weights_dir)
            )
    records = []
    for i, dataset in enumerate(config.datasets):
        pairs = demo_pairs(
            dataset,
            scale=scale,
            track=track,
            data_dir=config.data_dir,
            limit=config.limit,
            crop=config.crop,
        )
        from amls2.evaluation import dataset_label

        found, kept = evaluate_upscalers(
            upscalers, pairs, dataset=dataset_label(dataset), scale=scale, track=track,
            tile=config.tile,
        )  # fmt: skip
        records += found
        if i == 0 and pairs:
            title = f"{track} x{scale}: {pairs[0].name} ({dataset_label(dataset)})"
            fig = comparison_figure(pairs[0].hr, kept, scale=scale, title=title)
            path = figure_dir / f"compare_{track}_x{scale}.png"
            written.append(_save(fig, path, config.dpi))
    return records, upscalers


def run_shipped(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """``python main.py``: shipped weights vs bicubic for every track and scale (see module doc).

    Writes ``results.md/.json/.csv``, ``figures/compare_<track>_x<s>.png``,
    ``figures/results_table.png`` and ``demo_config.json`` under ``config.out_dir``.
    """
    from tqdm import tqdm

    from amls2 import plots

    written: list[Path] = [amls2_config.save_config(config, config.out_dir / CONFIG_FILE)]
    missing = find_missing(config)
    for line in missing_summary(missing):
        log.warning("skipped %s", line)
    records: list[dict[str, Any]] = []
    jobs = [(t, s) for t in config.tracks for s in config.scales]
    for track, scale in tqdm(jobs, desc="demo", unit="job", disable=not progress):
        figure_dir = config.out_dir / "figures"
        found, _ = _evaluate_track_scale(config, track, scale, figure_dir, written)
        records += found
    written += write_tables(records, config.out_dir)
    fig = plots.results_table(records, title="PSNR (dB) / SSIM, y protocol")
    written.append(_save(fig, config.out_dir / "figures" / "results_table.png", config.dpi))
    notes = crop_notes(config)
    return DemoResult(config.out_dir, tuple(records), tuple(written), tuple(missing), notes)


def crop_notes(config: DemoConfig) -> tuple[str, ...]:
    """What the numbers are computed on, for the user (crops/limits differ from the benchmark)."""
    notes = []
    if config.crop:
        notes.append(
            f"images cut to their centre {config.crop}x{config.crop} HR px (speed); "
            "use --crop 0 for whole images"
        )
    if config.limit:
        notes.append(f"only the first {config.limit} image(s) of each dataset")
    return tuple(notes)


# ----------------------------------------------------------------------------- --train


def training_config(
    model: str,
    *,
    scale: int,
    track: str,
    quick: bool,
    out_dir: str | os.PathLike,
    train_sets: Sequence[str] | None = None,
    val_sets: Sequence[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
):
    """A ``TrainConfig`` for the demo and notebooks, training into ``out_dir``.

    Quick: the model's "tiny" variant on ``train_sets`` (default the embedded samples), 48 px
    patches, batch 8, ``steps`` (default 20) steps in 2 epochs, 2 validation images. Full: the
    model's training defaults (``amls2 train --model NAME``: T91 with its last 10 images held
    out to choose the checkpoint) for ``steps`` (default 600) steps; ``train_sets`` and
    ``val_sets`` replace the defaults' sets.
    """
    from amls2 import datasets
    from amls2.training import DataConfig, TrainConfig
    from amls2.training.config import default_config

    data_dir = None if data_dir is None else str(data_dir)
    if quick:
        steps = steps or 20
        return TrainConfig(
            model=model,
            variant="tiny",
            scale=scale,
            track=track,
            data=DataConfig(
                train_sets=tuple(train_sets or (datasets.SAMPLES,)),
                val_sets=tuple(val_sets or (datasets.SAMPLES,)),
                data_dir=data_dir,
                patch_size=48,
                batch_size=8,
                variants=2,
                val_limit=2,
            ),
            epochs=2,
            steps_per_epoch=max(1, steps // 2),
            steps=steps,
            seed=seed,
            out_dir=str(out_dir),
            steps_per_execution=10,
            checkpoint_every=1000,
        )
    data: dict[str, Any] = {"data_dir": data_dir}
    if train_sets:
        data["train_sets"] = list(train_sets)
    if val_sets:
        data["val_sets"] = list(val_sets)
    return default_config(
        model,
        scale=scale,
        track=track,
        steps=steps or 600,
        out_dir=str(out_dir),
        seed=seed,
        data=data,
    )


def upscaler_from_training(result, config) -> Any:
    """An ``inference.Upscaler`` around a training result's model (named like the model)."""
    from amls2 import inference
    from amls2.models import get_spec

    return inference.Upscaler(
        name=config.model,
        scale=config.scale,
        track=config.track,
        input_kind=get_spec(config.model).input_kind,
        model=result.model,
        source=str(result.model_path or ""),
    )


def run_training(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """``python main.py --train``: for each track x scale, cut patches from the first dataset
    (``amls2.patches``), train ``config.train_model`` on them, evaluate it against bicubic on the
    validation crops, and write the table, curves, comparison figures and SR example images."""
    from amls2 import images, plots
    from amls2.patches import PrepareConfig, prepare_patches
    from amls2.training import train

    out = config.out_dir
    written: list[Path] = [amls2_config.save_config(config, out / CONFIG_FILE)]
    records: list[dict[str, Any]] = []
    patch = 48 if config.quick else 96
    for track in config.tracks:
        for scale in config.scales:
            run = f"{config.train_model}_x{scale}_{track}"
            lcm = 12  # HR patch and stride: multiples of every scale
            prepare = PrepareConfig(
                dataset=config.datasets[0],
                scale=scale,
                track=track,
                out_dir=out / "patches" / f"{track}_x{scale}",
                patch=patch,
                stride=(2 * patch if config.quick else patch) // lcm * lcm,
                data_dir=config.data_dir,
                seed=config.seed,
            )
            manifest = prepare_patches(prepare, progress=progress)
            log.info("%s: %d patches in %s", run, manifest["n_patches"], prepare.out_dir)
            train_config = training_config(
                config.train_model,
                scale=scale,
                track=track,
                quick=config.quick,
                out_dir=out / "runs" / run,
                # The HR patches; their LR partners are re-made on the fly (identical for
                # bicubic, fresh random degradations for unknown).
                train_sets=[str(prepare.out_dir / "HR")],
                # Full runs choose the checkpoint on held-out patches, never on the datasets
                # reported below; quick runs only smoke-test the flow.
                val_sets=list(config.datasets) if config.quick else None,
                data_dir=config.data_dir,
                steps=config.steps or (20 if config.quick else 400),
                seed=config.seed,
            )
            result = train(train_config, force=True, progress=progress)
            if result.model_path is not None:
                written.append(result.model_path)
            upscaler = upscaler_from_training(result, train_config)
            pairs = demo_pairs(
                config.datasets[0], scale=scale, track=track, data_dir=config.data_dir,
                limit=config.limit, crop=config.crop,
            )  # fmt: skip
            from amls2.evaluation import dataset_label

            found, kept = evaluate_upscalers(
                [upscaler], pairs, dataset=dataset_label(config.datasets[0]), scale=scale,
                track=track, tile=config.tile,
            )  # fmt: skip
            records += found
            figures = out / "figures"
            fig = plots.training_curves(result.out_dir, title=run)
            written.append(_save(fig, figures / f"curves_{run}.png", config.dpi))
            if pairs:
                title = f"{track} x{scale}: {pairs[0].name} ({config.train_model}, brief training)"
                fig = comparison_figure(pairs[0].hr, kept, scale=scale, title=title)
                written.append(_save(fig, figures / f"compare_{track}_x{scale}.png", config.dpi))
                example = out / "examples" / f"{pairs[0].name}_{run}.png"
                images.write_image(example, kept[upscaler.name])
                written.append(example)
    written += write_tables(records, out)
    notes = (*crop_notes(config), "brief training: far below the shipped models' quality")
    return DemoResult(out, tuple(records), tuple(written), (), notes)


# ----------------------------------------------------------------------------- demo/ figures


def shipped_training_curves(model: str, *, scale: int, track: str, weights_dir):
    """``plots.training_curves`` of the history CSV shipped beside the weights, or None."""
    from amls2 import plots

    source = history_path(model, scale=scale, track=track, weights_dir=weights_dir)
    if not source.is_file():
        return None
    # plots.training_curves reads <dir>/history.csv: give it a folder holding a copy.
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(source, Path(tmp) / "history.csv")
        return plots.training_curves(tmp, title=f"{model} x{scale} ({track})")


def architecture_figure(model: str = "fd_srcnn", scale: int = 2):
    """``plots.architecture_diagram`` of ``build_model(model, scale)`` (default hyperparameters)."""
    from amls2 import plots
    from amls2.models import build_model

    return plots.architecture_diagram(
        build_model(model, scale), title=f"{model} x{scale} architecture"
    )


def render_demo(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """The reviewers' figures in ``config.out_dir`` (``demo/``): ``results_table.png``,
    ``fd_srcnn_architecture.png``, ``compare_<track>_x<s>.png``, ``curves_<track>_<model>_x<s>.png``
    (from the shipped history CSVs) and ``psnr_vs_cost_<track>_x<s>.png`` (when a model has
    weights), plus ``results.md/.json/.csv`` and ``demo_config.json``. Models without weights are
    skipped and listed in ``missing``."""
    from tqdm import tqdm

    from amls2 import plots
    from amls2.evaluation import dataset_label

    out = config.out_dir
    written: list[Path] = [amls2_config.save_config(config, out / CONFIG_FILE)]
    written.append(_save(architecture_figure("fd_srcnn", 2), out / "fd_srcnn_architecture.png",
                         config.dpi))  # fmt: skip
    missing = find_missing(config)
    for line in missing_summary(missing):
        log.warning("skipped %s", line)
    notes: list[str] = list(crop_notes(config))
    records: list[dict[str, Any]] = []
    jobs = [(t, s) for t in config.tracks for s in config.scales]
    for track, scale in tqdm(jobs, desc="render", unit="job", disable=not progress):
        found, upscalers = _evaluate_track_scale(config, track, scale, out, written)
        records += found
        for upscaler in upscalers:
            fig = shipped_training_curves(
                upscaler.name, scale=scale, track=track, weights_dir=config.weights_dir
            )
            if fig is None:
                notes.append(f"no training history for {upscaler.name} x{scale} ({track})")
                continue
            path = out / f"curves_{track}_{upscaler.name}_x{scale}.png"
            written.append(_save(fig, path, config.dpi))
        if upscalers:
            fig = plots.psnr_vs_cost(
                found, model_costs(upscalers), dataset=dataset_label(config.datasets[0]),
                scale=scale,
            )  # fmt: skip
            written.append(_save(fig, out / f"psnr_vs_cost_{track}_x{scale}.png", config.dpi))
    written += write_tables(records, out)
    fig = plots.results_table(records, title="PSNR (dB) / SSIM, y protocol")
    written.append(_save(fig, out / "results_table.png", config.dpi))
    return DemoResult(out, tuple(records), tuple(written), tuple(missing), tuple(notes))


def run(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """Dispatch on ``config.mode``."""
    flows = {"shipped": run_shipped, "train": run_training, "render": render_demo}
    return flows[config.mode](config, progress=progress)


# ----------------------------------------------------------------------------- notebook helpers


def notebook_output_dir(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Where notebook ``name`` writes: ``<out_dir>/<name>``; default ``<repo>/outputs/notebooks``
    (git-ignored), never inside the repository's tracked files."""
    base = Path(out_dir) if out_dir else NOTEBOOK_OUTPUT_DIR
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_grid(tiles: Mapping[str, np.ndarray], *, cell: int = 160, columns: int = 4) -> np.ndarray:
    """A labelled mosaic (float32 RGB [0, 1]) of ``tiles``, each resized (nearest neighbour, so
    LR pixels stay visible) to fit a ``cell`` x ``cell`` square. Single-channel tiles (kernels)
    are normalised to their maximum and shown grey."""
    import cv2

    from amls2 import images

    label_h = 18
    rows = -(-len(tiles) // columns)
    # Built in uint8: OpenCV draws text on 8-bit images only.
    grid = np.full((rows * (cell + label_h), min(columns, len(tiles)) * cell, 3), 255, np.uint8)
    for i, (label, tile) in enumerate(tiles.items()):
        tile = np.asarray(tile, dtype=np.float32)
        if tile.ndim == 2:
            tile = np.repeat((tile / max(float(tile.max()), 1e-12))[..., None], 3, axis=2)
        factor = cell / max(tile.shape[:2])
        size = (max(1, round(tile.shape[1] * factor)), max(1, round(tile.shape[0] * factor)))
        resized = cv2.resize(images.to_uint8(tile), size, interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, columns)
        y, x = r * (cell + label_h) + label_h, c * cell
        grid[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        cv2.putText(grid, label[:24], (x + 2, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return images.to_float(grid)


def png_bytes(img: np.ndarray) -> bytes:
    """``img`` (float32 RGB [0, 1]) encoded as 8-bit PNG bytes, e.g. for ``IPython.display.Image``."""
    import cv2

    from amls2 import images

    ok, data = cv2.imencode(".png", cv2.cvtColor(images.to_uint8(img), cv2.COLOR_RGB2BGR))
    if not ok:
        raise Amls2Error("png_bytes: OpenCV could not encode the image")
    return data.tobytes()


def hr_lr_examples(
    dataset: str = "samples",
    *,
    tracks: Sequence[str] = amls2_config.TRACKS,
    scales: Sequence[int] = amls2_config.SCALES,
    data_dir: str | os.PathLike | None = None,
    index: int = 0,
    crop: int = 96,
) -> dict[str, np.ndarray]:
    """HR crop and its LR partners (every track and scale) of image ``index``, for ``image_grid``."""
    tiles: dict[str, np.ndarray] = {}
    for track in tracks:
        for scale in scales:
            pair = demo_pairs(
                dataset, scale=scale, track=track, data_dir=data_dir, limit=index + 1, crop=crop
            )[index]
            tiles.setdefault(f"HR {pair.name}", pair.hr)
            tiles[f"LR {track} x{scale}"] = pair.lr
    return tiles


DEGRADATION_KEYS: tuple[str, ...] = (
    "kernel_type",
    "sigma_x",
    "sigma_y",
    "angle_deg",
    "noise_sigma",
    "jpeg_quality",
)


def degradation_markdown(pairs: Sequence[Any]) -> str:
    """A Markdown table of the stand-in degradation parameters drawn for each pair (``pair.params``:
    blur sigmas in HR px, angle in degrees, noise sigma in 8-bit grey levels, JPEG quality; "-"
    where a step was not applied), numbers to two decimals."""

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    keys = DEGRADATION_KEYS
    rows = ["| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for pair in pairs:
        params = pair.params or {}
        rows.append(f"| {pair.name} | " + " | ".join(fmt(params.get(k)) for k in keys) + " |")
    return "\n".join(rows) + "\n"


def example_kernels(scale: int, *, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` blur kernels of the ``unknown`` stand-in at ``scale`` (labelled by sigmas)."""
    from amls2 import degradations

    spec = degradations.DEFAULT_SPEC
    kernels = {}
    for i in range(count):
        params = degradations.sample_params(spec, scale, degradations.rng_for(seed, f"k{i}"))
        kernel = degradations.make_kernel(
            params["sigma_x"],
            params["sigma_y"],
            params["angle_deg"],
            size=params["kernel_size"],
            shift=params["kernel_shift"],
        )
        label = f"s{params['sigma_x']:.1f}/{params['sigma_y']:.1f} {params['angle_deg']:.0f}deg"
        kernels[label] = kernel
    return kernels


def status_table(names: Sequence[str], data_dir: str | os.PathLike | None = None) -> str:
    """Markdown table of ``datasets.dataset_status`` for ``names``: where, layout, counts."""
    from amls2 import datasets

    lines = ["| Dataset | Present | Layout | Images (found/expected) | Location |", "|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        s = datasets.dataset_status(name, data_dir)
        counts = ", ".join(f"{split}: {found}/{expected}" for split, found, expected in s.counts)
        lines.append(f"| {name} | {'yes' if s.present else 'no'} | {s.layout} | {counts} | `{s.location}` |")  # fmt: skip
    return "\n".join(lines) + "\n"


def pick_data(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The datasets a notebook uses: DIV2K when present (train/valid splits), else T91 + Set5
    under the data root, else the embedded samples for both. Returns {"train", "val"}."""
    from amls2 import datasets

    if datasets.dataset_status("DIV2K", data_dir).present:
        return {"train": "DIV2K", "val": "DIV2K"}
    if (
        datasets.dataset_status("T91", data_dir).present
        and datasets.dataset_status("Set5", data_dir).present
    ):
        return {"train": "T91", "val": "Set5"}
    return {"train": datasets.SAMPLES, "val": datasets.SAMPLES}


def execute_notebook(
    path: str | os.PathLike,
    *,
    quick: bool = True,
    output_dir: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    timeout: int = 1800,
):
    """Run a notebook top to bottom in a fresh kernel (cwd: its folder) with ``AMLS2_QUICK`` and
    ``AMLS2_OUTPUT`` set for its parameter cell; optionally save it (with outputs) to ``save_to``
    atomically. Returns the executed ``nbformat`` notebook; a failing cell raises nbclient's
    CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    from amls2.fileio import atomic_write_text

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env[QUICK_ENV] = "1" if quick else "0"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if output_dir is not None:
        env[OUTPUT_ENV] = str(output_dir)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    drop_native_log_lines(notebook)
    compact_images(notebook)
    if save_to is not None:
        save_to = Path(save_to)
        mode = save_to.stat().st_mode & 0o777 if save_to.exists() else 0o644
        atomic_write_text(save_to, nbformat.writes(notebook))
        # fileio's temporary files are created 0600: keep the notebook's permissions.
        save_to.chmod(mode)
    return notebook


# TensorFlow's C++ (absl) start-up lines, which no environment variable silences: dropped from
# the stderr outputs of executed notebooks so that committed notebooks show only results.
_NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |"
    r"To enable the following instructions)"
)


def drop_native_log_lines(notebook) -> None:
    """Remove TensorFlow's native log lines from the stderr stream outputs of ``notebook``."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = output["text"].splitlines(keepends=True)
                output["text"] = "".join(x for x in lines if not _NATIVE_LOG_LINE.match(x))
                if not output["text"].strip():
                    continue
            kept.append(output)
        cell["outputs"] = kept


# PNG outputs larger than this are photographic comparisons; they are stored as JPEG so that the
# committed notebooks stay small (demo/ keeps the lossless PNGs of the same figures).
COMPACT_PNG_BYTES = 150_000
COMPACT_JPEG_QUALITY = 90


def compact_images(notebook) -> int:
    """Re-encode ``image/png`` outputs over COMPACT_PNG_BYTES as ``image/jpeg`` (quality 90, the
    image itself unchanged in size); returns how many were re-encoded."""
    import base64

    import cv2

    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png = data.get("image/png")
            if png is None:
                continue
            raw = base64.b64decode(png if isinstance(png, str) else "".join(png))
            if len(raw) <= COMPACT_PNG_BYTES:
                continue
            image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, COMPACT_JPEG_QUALITY])
            if not ok or len(jpeg) >= len(raw):
                continue
            del data["image/png"]
            data["image/jpeg"] = base64.b64encode(jpeg.tobytes()).decode("ascii")
            count += 1
    return count


def notebook_paths() -> list[Path]:
    """The course notebooks ``notebooks/0*.ipynb`` in order."""
    return sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))


def _notebooks_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amls2.demo notebooks",
        description="Execute the notebooks in place (refreshing their committed outputs).",
    )
    parser.add_argument("--full", action="store_true", help="full mode (default: quick mode)")
    parser.add_argument("names", nargs="*", help="notebook files (default: notebooks/0*.ipynb)")
    args = parser.parse_args(argv)
    paths = [Path(n) for n in args.names] or notebook_paths()
    for path in paths:
        start = time.perf_counter()
        execute_notebook(path, quick=not args.full, save_to=path)
        print(f"{path}: executed in {time.perf_counter() - start:.0f} s")  # noqa: T201
    return 0


if __name__ == "__main__":  # python -m amls2.demo notebooks [--full]
    if sys.argv[1:2] != ["notebooks"]:
        sys.exit("usage: python -m amls2.demo notebooks [--full] [NOTEBOOK ...]")
    sys.exit(_notebooks_main(sys.argv[2:]))
