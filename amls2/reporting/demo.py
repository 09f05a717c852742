"""The scripted demo flows behind ``python main.py`` and the helpers the notebooks call.

Three flows, one frozen :class:`DemoConfig` each (saved as ``demo_config.json`` next to the
outputs):

* :func:`run_shipped` (``python main.py``): load the shipped weights
  ``<weights_dir>/<track>/<model>_x<scale>.keras``, super-resolve the validation images for both
  tracks and every scale, score bicubic and every model (PSNR/SSIM, ``y`` protocol: BT.601 Y,
  ``scale`` px shaved) and write the table (markdown, JSON, CSV) and the comparison figures.
  Missing weights are skipped with a note naming the command that trains them.
* :func:`run_training` (``python main.py --train``): the seed project's scripted flow: cut patches
  with :mod:`amls2.data.patches`, train one model briefly with :func:`amls2.training.train`, evaluate it
  against bicubic, write example images and figures.
* :func:`render_demo` (``python main.py --render-demo``): the figures reviewers open in ``demo/``
  (results table, FD-SRCNN architecture, visual comparisons, training curves, PSNR against cost).

Images are float32 HxWx3 RGB in [0, 1]. To stay fast on a CPU the validation images are cut to a
centre crop of ``crop`` HR pixels (rounded down to a multiple of the scale; LR cropped at the
aligned position, so the pair stays exact) unless ``crop`` is None. The notebooks use the same
data crops, training configs and figures; their other helpers are in :mod:`amls2.reporting.notebook_helpers`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from amls2 import config as amls2_config
from amls2.data import datasets, pairing, patches
from amls2.errors import DatasetError, MissingWeightsError
from amls2.evaluation.scoring import dataset_label, evaluate_upscalers, upscaler_cost
from amls2.evaluation.tables import write_tables
from amls2.imaging import images
from amls2.inference import weights
from amls2.reporting import comparison, diagrams, plots
from amls2.reporting.demo_config import (  # noqa: F401  (part of this module's API)
    CONFIG_FILE,
    DEFAULT_MODELS,
    DEFAULT_OUT_DIR,
    DEMO_DIR,
    MODES,
    DemoConfig,
    DemoResult,
)
from amls2.reporting.demo_training import (  # noqa: F401  (part of this module's API)
    train_on_patches,
    training_config,
    upscaler_from_training,
)
from amls2.reporting.figure_helpers import save_figure, track_label
from amls2.reporting.hero import HERO_FILE, hero_figure

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- shipped weights


def models_for(config: DemoConfig, track: str) -> list[str]:
    """The models a demo shows for ``track``: the configured ones, else the core five plus any
    other shipped model."""
    if config.models is not None:
        return list(config.models)
    shipped = weights.shipped_models(track, weights_dir=config.weights_dir)
    extra = [m for m in shipped if m not in DEFAULT_MODELS]
    return [*DEFAULT_MODELS, *extra]


def find_missing(config: DemoConfig) -> list[weights.Missing]:
    """Every (track, model, scale) of ``config`` without shipped weights."""
    return [
        item
        for track in config.tracks
        for item in weights.missing_weights(
            models_for(config, track),
            scales=config.scales,
            weights_set=track,
            weights_dir=config.weights_dir,
        )  # fmt: skip
    ]


# ----------------------------------------------------------------------------- data


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
    pairs = pairing.load_pairs(dataset, scale=scale, track=track, data_dir=data_dir, limit=limit)
    return [patches.centre_crop_pair(p, crop, scale) for p in pairs] if crop else pairs


def default_datasets(data_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Set5 and Set14 when they are under the data root, else the embedded ``samples``."""
    found = tuple(n for n in ("Set5", "Set14") if datasets.dataset_status(n, data_dir).present)
    return found or (datasets.SAMPLES,)


# ----------------------------------------------------------------------------- figures


# Images where the models differ visibly (fine stripes, text), shown by the comparison figures.
COMPARE_IMAGES: dict[str, str] = {"Set5": "butterfly", "Set14": "ppt3", "Track2sim": "0803"}
# Track2sim's valid split is Set5 + Set14 under its operator: 0803 is Set5's butterfly.
TRACK2SIM = "Track2sim"


def comparison_figure(
    hr: np.ndarray,
    panels: Mapping[str, np.ndarray],
    *,
    scale: int,
    title: str,
    lr: np.ndarray | None = None,
    crops: int = 2,
):
    """``comparison.visual_comparison`` of ``panels`` (bicubic and models) against ``hr``: ``crops``
    zoomed crops, the LR input first when ``lr`` is given."""
    crop = max(24, min(hr.shape[:2]) // 5)
    return comparison.visual_comparison(
        hr, dict(panels), scale=scale, lr=lr, crop=crop, crops=crops, title=title
    )


def compare_index(pairs: Sequence[Any], dataset: str) -> int:
    """The index of the dataset's comparison image (``COMPARE_IMAGES``), else 0."""
    names = [p.name for p in pairs]
    wanted = COMPARE_IMAGES.get(dataset_label(dataset))
    return names.index(wanted) if wanted in names else 0


def model_costs(upscalers: Sequence[Any]) -> dict[str, dict[str, float]]:
    """``{name: {"macs", "params"}}``: multiply-adds for one 1280x720 output image and parameter
    count of each (non-bicubic) upscaler, for ``plots.psnr_vs_cost``."""
    costs = {}
    for upscaler in upscalers:
        if not upscaler.is_bicubic:
            params, macs = upscaler_cost(upscaler)
            costs[upscaler.name] = {"macs": float(macs), "params": float(params)}
    return costs


def _save(fig, path: Path, dpi: int) -> Path:
    return save_figure(fig, path, dpi=dpi)


# ----------------------------------------------------------------------------- python main.py


def _evaluate_track_scale(
    config: DemoConfig, track: str, scale: int, figure_dir: Path, written: list[Path]
):
    """Records for one track x scale over ``config.datasets`` (shipped models that exist), and
    ``<figure_dir>/compare_<track>_x<s>.png`` of the first image of the first dataset."""
    upscalers = []
    for model in models_for(config, track):
        try:
            upscalers.append(
                weights.load_upscaler(
                    model, scale=scale, track=track, weights_dir=config.weights_dir
                )
            )
        except MissingWeightsError:
            continue  # listed by find_missing
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
        keep = compare_index(pairs, dataset)
        found, kept = evaluate_upscalers(
            upscalers, pairs, dataset=dataset_label(dataset), scale=scale, track=track,
            tile=config.tile, keep=keep,
        )  # fmt: skip
        records += found
        if pairs:
            pair = pairs[keep]
            label = track_label(track)
            title = f"{label} x{scale}: {pair.name} ({dataset_label(dataset)})"
            fig = comparison_figure(pair.hr, kept, scale=scale, title=title, lr=pair.lr)
            suffix = "" if i == 0 else f"_{pair.name}"
            path = figure_dir / f"compare_{track}_x{scale}{suffix}.png"
            written.append(_save(fig, path, config.dpi))
    return records, upscalers


def _render_track2sim(config: DemoConfig, out: Path, written: list[Path]):
    """The fixed-operator weights on the Track2sim valid split, when it is under the data root:
    ``compare_track2sim_x<s>.png`` and ``psnr_vs_cost_track2sim_x<s>.png`` per scale, and the
    records (``weights_set`` "track2sim") and costs for the results table."""
    records: list[dict[str, Any]] = []
    costs: dict[tuple[str, int], dict[str, float]] = {}
    try:  # a plain DIV2K-shaped folder under the data root, not a registered dataset
        datasets.find_dataset(TRACK2SIM, config.data_dir)
    except DatasetError:
        return records, costs
    names = weights.shipped_models("track2sim", weights_dir=config.weights_dir)
    for scale in config.scales:
        ups = []
        for name in names:
            try:
                ups.append(weights.load_upscaler(f"{name}@track2sim", scale=scale, track="unknown",
                                                 weights_dir=config.weights_dir))  # fmt: skip
            except MissingWeightsError:
                continue  # not shipped at this scale
        if not ups:
            continue
        pairs = demo_pairs(TRACK2SIM, scale=scale, track="unknown", data_dir=config.data_dir)
        keep = compare_index(pairs, TRACK2SIM)
        found, kept = evaluate_upscalers(
            ups, pairs, dataset=TRACK2SIM, scale=scale, track="unknown", keep=keep
        )
        found = [{**r, "weights_set": "track2sim"} for r in found]
        records += found
        title = f"Track 2 (fixed operator) x{scale}: Set5 butterfly under the Track2sim operator"
        fig = comparison_figure(pairs[keep].hr, kept, scale=scale, title=title, lr=pairs[keep].lr)
        written.append(_save(fig, out / f"compare_track2sim_x{scale}.png", config.dpi))
        scale_costs = model_costs(ups)
        costs.update({(m, scale): c for m, c in scale_costs.items()})
        # The title names the weight set: the points need not repeat "@track2sim".
        plain = {name: name.removesuffix("@track2sim") for name in scale_costs}
        fig = plots.psnr_vs_cost(
            [{**r, "model": plain.get(r["model"], r["model"])} for r in found],
            {plain[name]: cost for name, cost in scale_costs.items()},
            dataset=TRACK2SIM, scale=scale, track="track2sim", published=False,
        )  # fmt: skip
        written.append(_save(fig, out / f"psnr_vs_cost_track2sim_x{scale}.png", config.dpi))
    return records, costs


def run_shipped(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """``python main.py``: shipped weights vs bicubic for every track and scale (see module doc).

    Writes ``results.md/.json/.csv``, ``figures/compare_<track>_x<s>.png``,
    ``figures/results_table.png`` and ``demo_config.json`` under ``config.out_dir``.
    """
    written: list[Path] = [amls2_config.save_config(config, config.out_dir / CONFIG_FILE)]
    missing = find_missing(config)
    for line in weights.missing_summary(missing):
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


def run_training(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """``python main.py --train``: for each track x scale, cut patches from the first dataset
    (``amls2.data.patches``), train ``config.train_model`` on them, evaluate it against bicubic on the
    validation crops, and write the table, curves, comparison figures and SR example images."""
    out = config.out_dir
    written: list[Path] = [amls2_config.save_config(config, out / CONFIG_FILE)]
    records: list[dict[str, Any]] = []
    for track in config.tracks:
        for scale in config.scales:
            upscaler, run_dir = train_on_patches(config, track, scale, written, progress)
            run = f"{config.train_model}_x{scale}_{track}"
            pairs = demo_pairs(
                config.datasets[0], scale=scale, track=track, data_dir=config.data_dir,
                limit=config.limit, crop=config.crop,
            )  # fmt: skip
            found, kept = evaluate_upscalers(
                [upscaler], pairs, dataset=dataset_label(config.datasets[0]), scale=scale,
                track=track, tile=config.tile,
            )  # fmt: skip
            records += found
            figures = out / "figures"
            fig = plots.training_curves(run_dir, title=run)
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


def shipped_training_curves(
    model: str, *, scale: int, track: str, weights_dir, records: Sequence[Mapping] = ()
):
    """``plots.training_curves`` of the history CSV shipped beside the weights (validation set
    and kept epoch from the weights' sidecar; the bicubic level from ``records`` when they
    score bicubic on that validation set), or None."""
    source = weights.history_path(model, scale=scale, weights_set=track, weights_dir=weights_dir)
    if not source.is_file():
        return None
    sidecar_path = source.with_name(f"{model}_x{scale}.json")
    sidecar = {}
    if sidecar_path.is_file():
        import json

        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    val_sets = (sidecar.get("data") or {}).get("val_sets") or []
    val_set = ", ".join(str(v) for v in val_sets) or None
    bicubic = next(
        (
            float(r["psnr"])
            for r in records
            if r["model"] == "bicubic" and val_sets == [r["dataset"]] and int(r["scale"]) == scale
        ),
        None,
    )
    return plots.training_curves(
        source,
        title=f"{model} x{scale}, {track_label(track)}",
        val_set=val_set,
        chosen_epoch=sidecar.get("best_epoch"),
        bicubic_psnr=bicubic,
    )


def architecture_figure(model: str = "fd_srcnn", scale: int = 2, weights_dir=None):
    """``diagrams.architecture_diagram`` of the shipped bicubic-track ``model`` (its trained
    hyperparameters: for FD-SRCNN PReLU, the image skip and the zero-started linear head), or of
    the builder's default when no weights are shipped; the title says which."""
    from amls2.errors import MissingWeightsError
    from amls2.models import build_model  # the registry imports TensorFlow

    try:
        shipped = weights.load_upscaler(
            model, scale=scale, track="bicubic", weights_dir=weights_dir
        )
    except MissingWeightsError:
        built = build_model(model, scale)
        return _diagram(model, built, title=f"{model} x{scale}: builder defaults")
    hparams = ", ".join(f"{k}={v}" for k, v in (shipped.sidecar.get("hparams") or {}).items())
    return _diagram(
        model,
        shipped.model,
        title=f"{model} x{scale} as shipped ({hparams or 'default hyperparameters'})",
    )


def _diagram(name: str, model, *, title: str):
    """The block diagram for FD-SRCNN, the layer graph for other models."""
    if name == "fd_srcnn":
        return diagrams.fd_srcnn_diagram(model, title=title)
    return diagrams.architecture_diagram(model, title=title)


def render_demo(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """The reviewers' figures in ``config.out_dir`` (``demo/``): ``hero.png`` (the README's
    first figure, ``hero_figure``), ``results_table.png``,
    ``fd_srcnn_architecture.png``, ``compare_<track>_x<s>.png``, ``curves_<track>_<model>_x<s>.png``
    (from the shipped history CSVs) and ``psnr_vs_cost_<track>_x<s>.png`` (when a model has
    weights), plus ``results.md/.json/.csv`` and ``demo_config.json``. Models without weights are
    skipped and listed in ``missing``."""
    out = config.out_dir
    written: list[Path] = [amls2_config.save_config(config, out / CONFIG_FILE)]
    written.append(_save(hero_figure(config), out / HERO_FILE, config.dpi))
    written.append(_save(architecture_figure("fd_srcnn", 2, config.weights_dir),
                         out / "fd_srcnn_architecture.png",
                         config.dpi))  # fmt: skip
    missing = find_missing(config)
    for line in weights.missing_summary(missing):
        log.warning("skipped %s", line)
    notes: list[str] = list(crop_notes(config))
    records: list[dict[str, Any]] = []
    costs: dict[tuple[str, int], dict[str, float]] = {}
    jobs = [(t, s) for t in config.tracks for s in config.scales]
    for track, scale in tqdm(jobs, desc="render", unit="job", disable=not progress):
        found, upscalers = _evaluate_track_scale(config, track, scale, out, written)
        records += found
        costs.update({(m, scale): c for m, c in model_costs(upscalers).items()})
        for upscaler in upscalers:
            fig = shipped_training_curves(
                upscaler.name, scale=scale, track=track, weights_dir=config.weights_dir,
                records=found,
            )  # fmt: skip
            if fig is None:
                notes.append(f"no training history for {upscaler.name} x{scale} ({track})")
                continue
            path = out / f"curves_{track}_{upscaler.name}_x{scale}.png"
            written.append(_save(fig, path, config.dpi))
        if upscalers:
            fig = plots.psnr_vs_cost(
                found, model_costs(upscalers), dataset=dataset_label(config.datasets[0]),
                scale=scale, track=track,
            )  # fmt: skip
            written.append(_save(fig, out / f"psnr_vs_cost_{track}_x{scale}.png", config.dpi))
    track2_records, track2_costs = _render_track2sim(config, out, written)
    records += track2_records
    written += write_tables(records, out)
    title = "PSNR (dB) / SSIM, Y channel, scale px shaved; MACs per 1280x720 output"
    fig = plots.results_table(records, costs={**costs, **track2_costs}, title=title)
    written.append(_save(fig, out / "results_table.png", config.dpi))
    return DemoResult(out, tuple(records), tuple(written), tuple(missing), tuple(notes))


def run(config: DemoConfig, *, progress: bool = False) -> DemoResult:
    """Dispatch on ``config.mode``."""
    flows = {"shipped": run_shipped, "train": run_training, "render": render_demo}
    return flows[config.mode](config, progress=progress)
