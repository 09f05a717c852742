"""Figures for reports and notebooks (the only matplotlib code of the package).

Every function returns a ``matplotlib.figure.Figure`` built directly (Agg rendering, no pyplot
global state, nothing is shown); ``save_figure`` writes it as a PNG atomically. Images are float32
HxWx3 RGB in [0, 1]; records are the dicts of ``amls2.evaluation.scoring``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.ticker import NullFormatter, ScalarFormatter

from amls2.errors import Amls2Error, ConfigError
from amls2.fileio import atomic_path
from amls2.imaging import metrics

HIGHLIGHT = "#fde68a"  # best cell per row in the results table


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


# ----------------------------------------------------------------------------- results table


def results_table(
    records: Sequence[Mapping[str, Any]], *, title: str = "PSNR (dB) / SSIM"
) -> Figure:
    """Table figure: rows track x dataset x scale, columns models, cells "PSNR / SSIM"; the best
    PSNR of each row is highlighted (as the seed project's performance table)."""
    if not records:
        raise ConfigError("results_table: no records")
    models = list(dict.fromkeys(r["model"] for r in records))
    rows = list(dict.fromkeys((r["track"], r["dataset"], int(r["scale"])) for r in records))
    index = {(r["track"], r["dataset"], int(r["scale"]), r["model"]): r for r in records}
    cells, best_cols = [], []
    for key in rows:
        found = [index.get((*key, m)) for m in models]
        cells.append(
            [
                "-" if r is None else f"{float(r['psnr']):.2f} / {float(r['ssim']):.4f}"
                for r in found
            ]
        )
        psnrs = [float(r["psnr"]) if r is not None else -math.inf for r in found]
        best_cols.append(int(np.argmax(psnrs)))
    row_labels = [f"{t} | {d} | x{s}" for t, d, s in rows]
    fig = Figure(figsize=(2.2 + 1.9 * len(models), 0.8 + 0.35 * len(rows)))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title)
    table = ax.table(
        cellText=cells, rowLabels=row_labels, colLabels=models, loc="center", cellLoc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    for row, col in enumerate(best_cols):
        cell = table[row + 1, col]
        cell.set_facecolor(HIGHLIGHT)
        cell.get_text().set_fontweight("bold")
    return fig


# ----------------------------------------------------------------------------- visual comparison


def most_informative_region(
    hr: np.ndarray,
    *,
    size: int,
    best: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
) -> tuple[int, int]:
    """Top-left (row, col) of the ``size`` x ``size`` crop to zoom into.

    With ``best`` and ``baseline`` SR images: where the best model's squared-error reduction over
    the baseline is largest; otherwise where the HR gradient energy is largest. Box sums via an
    integral image (exhaustive over all positions).
    """
    h, w = hr.shape[:2]
    size = min(size, h, w)
    if best is not None and baseline is not None:
        score = ((baseline - hr) ** 2 - (best - hr) ** 2).sum(axis=-1)
    else:
        gray = hr.mean(axis=-1)
        gy, gx = np.gradient(gray)
        score = gx**2 + gy**2
    integral = np.pad(np.cumsum(np.cumsum(score, axis=0), axis=1), ((1, 0), (1, 0)))
    boxes = (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )
    row, col = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
    return int(row), int(col)


def _default_region(hr, panels, scores, crop: int) -> tuple[int, int, int]:
    """(row, col, size): where the best panel gains most over "bicubic" (or the first panel),
    or the HR's busiest region when there is one panel."""
    baseline_name = "bicubic" if "bicubic" in panels else next(iter(panels))
    others = [n for n in panels if n != baseline_name]
    if others:
        best_name = max(others, key=lambda n: scores[n]["psnr"])
        row, col = most_informative_region(
            hr, size=crop, best=panels[best_name], baseline=panels[baseline_name]
        )
    else:
        row, col = most_informative_region(hr, size=crop)
    return row, col, min(crop, *hr.shape[:2])


def visual_comparison(
    hr: np.ndarray,
    panels: Mapping[str, np.ndarray],
    *,
    scale: int,
    protocol: str = "y",
    region: tuple[int, int, int] | None = None,
    crop: int = 64,
    title: str | None = None,
) -> Figure:
    """HR and each SR panel (e.g. {"bicubic": ..., "fsrcnn": ...}) side by side.

    Top row: the full images with the zoom region outlined; bottom row: the zoomed region, with
    PSNR/SSIM (``amls2.imaging.metrics``, ``protocol``) under each panel. ``region`` is (row, col, size);
    by default the ``crop`` x ``crop`` region where the best panel gains most over "bicubic" (or
    the first panel), or the HR's busiest region when there is one panel.
    """
    if not panels:
        raise ConfigError("visual_comparison: give at least one SR panel")
    for name, img in panels.items():
        if img.shape != hr.shape:
            raise ConfigError(f"visual_comparison: panel {name!r} is {img.shape}, HR is {hr.shape}")
    scores = {
        n: metrics.evaluate_pair(img, hr, scale=scale, protocol=protocol)
        for n, img in panels.items()
    }
    row, col, size = region or _default_region(hr, panels, scores, crop)
    names = ["HR", *panels]
    images = [hr, *panels.values()]
    fig = Figure(figsize=(2.6 * len(names), 5.6))
    if title:
        fig.suptitle(title)
    axes = fig.subplots(2, len(names), squeeze=False)
    for i, (name, img) in enumerate(zip(names, images, strict=True)):
        top, bottom = axes[0, i], axes[1, i]
        top.imshow(np.clip(img, 0, 1))
        top.add_patch(Rectangle((col, row), size, size, fill=False, edgecolor="red", linewidth=1.2))
        top.set_title(name)
        bottom.imshow(
            np.clip(img[row : row + size, col : col + size], 0, 1), interpolation="nearest"
        )
        if name == "HR":
            bottom.set_xlabel("PSNR / SSIM")
        else:
            s = scores[name]
            bottom.set_xlabel(f"{s['psnr']:.2f} dB / {s['ssim']:.4f}")
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


# ----------------------------------------------------------------------------- training curves


def read_history(run: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a training history CSV (epoch, loss, learning_rate, val_psnr, val_ssim, ...) as
    floats. ``run`` is a run folder holding ``history.csv``, or the CSV file itself (the shipped
    models keep theirs as ``<model>_x<s>.history.csv``)."""
    path = Path(run)
    if path.suffix != ".csv":
        path = path / "history.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise Amls2Error(f"{path}: cannot read training history ({exc.strerror})") from None
    if not rows:
        raise Amls2Error(f"{path}: empty training history")
    columns: dict[str, list[float]] = {}
    for key in rows[0]:
        try:
            columns[key] = [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows]
        except ValueError:
            continue  # non-numeric column (e.g. a timestamp)
    if "epoch" not in columns:
        raise Amls2Error(f"{path}: no 'epoch' column")
    return columns


def training_curves(run_dir: str | os.PathLike, *, title: str | None = None) -> Figure:
    """Loss (log scale), learning rate and validation PSNR/SSIM against epoch for one run
    (a run folder or its history CSV, see :func:`read_history`)."""
    history = read_history(run_dir)
    epoch = history["epoch"]
    # Constrained layout: the suptitle, subplot titles and the twin axis labels never overlap.
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    fig.suptitle(title or Path(run_dir).name)
    ax_loss, ax_lr, ax_val = fig.subplots(1, 3)
    for key in [k for k in history if "loss" in k]:
        ax_loss.plot(epoch, history[key], label=key)
    ax_loss.set_yscale("log")
    ax_loss.set_title("loss")
    ax_loss.legend()
    lr_key = "learning_rate" if "learning_rate" in history else "lr"
    if lr_key in history:
        ax_lr.plot(epoch, history[lr_key])
    ax_lr.set_title("learning rate")
    if "val_psnr" in history:
        ax_val.plot(epoch, history["val_psnr"], color="tab:blue", label="val PSNR")
    ax_val.set_title("validation")
    ax_val.set_ylabel("PSNR (dB)")
    if "val_ssim" in history:
        twin = ax_val.twinx()
        twin.plot(epoch, history["val_ssim"], color="tab:orange", label="val SSIM")
        twin.set_ylabel("SSIM")
        lines = ax_val.get_lines() + twin.get_lines()
        ax_val.legend(lines, [line.get_label() for line in lines], loc="lower right")
    elif "val_psnr" in history:
        ax_val.legend(loc="lower right")
    for ax in (ax_loss, ax_lr, ax_val):
        ax.set_xlabel("epoch")
    return fig


# ----------------------------------------------------------------------------- cost plots


def psnr_vs_cost(
    records: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, float]],
    *,
    dataset: str,
    scale: int,
) -> Figure:
    """PSNR on ``dataset`` x``scale`` against multiply-adds (left) and parameters (right).

    ``costs`` maps model name -> {"macs": multiply-adds per output image, "params": count}, e.g.
    from ``amls2.models.cost``. Models without a cost entry (bicubic) are drawn as a horizontal line.
    """
    chosen = [r for r in records if r["dataset"] == dataset and int(r["scale"]) == int(scale)]
    if not chosen:
        raise ConfigError(f"psnr_vs_cost: no records for {dataset} x{scale}")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    fig.suptitle(f"{dataset} x{scale}")
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(
        axes, ("macs", "params"), ("multiply-adds (G)", "parameters (K)"), strict=True
    ):
        divisor = 1e9 if key == "macs" else 1e3
        for record in chosen:
            cost = costs.get(record["model"])
            if cost is None or key not in cost:
                ax.axhline(float(record["psnr"]), color="gray", linestyle="--", linewidth=1)
                ax.annotate(
                    record["model"],
                    (0.01, float(record["psnr"])),
                    xycoords=("axes fraction", "data"),
                )
                continue
            x = float(cost[key]) / divisor
            ax.scatter([x], [float(record["psnr"])])
            ax.annotate(
                record["model"],
                (x, float(record["psnr"])),
                textcoords="offset points",
                xytext=(4, 4),
            )
        ax.set_xscale("log")
        # Plain numbers, and no minor labels: log-axis minor tick labels overlapped.
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"PSNR vs {key}")
        ax.grid(True, alpha=0.3)
    return fig


def psnr_vs_time(rows: Sequence[Mapping[str, Any]], *, dataset: str, scale: int) -> Figure:
    """PSNR against milliseconds per image (log scale), one point per model and weight set, from
    the rows of ``benchmarks/per_image.py`` (``model``, ``weights_set``, ``psnr``,
    ``ms_per_image``); the bicubic baseline of each weight set is a horizontal line."""
    if not rows:
        raise ConfigError(f"psnr_vs_time: no rows for {dataset} x{scale}")
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    sets = sorted({r["weights_set"] for r in rows})
    for index, weights_set in enumerate(sets):
        color = f"C{index}"
        for row in (r for r in rows if r["weights_set"] == weights_set):
            if row["model"] == "bicubic":
                ax.axhline(float(row["psnr"]), color=color, linestyle="--", linewidth=1)
                label = f"bicubic ({row.get('dataset', weights_set)})"
                ax.annotate(label, (0.01, float(row["psnr"])), xycoords=("axes fraction", "data"))
                continue
            point = (float(row["ms_per_image"]), float(row["psnr"]))
            ax.scatter(*point, color=color)
            ax.annotate(row["model"], point, textcoords="offset points", xytext=(4, 4))
        data = next((r.get("dataset") for r in rows if r["weights_set"] == weights_set), None)
        ax.scatter(
            [], [], color=color, label=f"{weights_set} weights" + (f", {data}" if data else "")
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("milliseconds per image (log scale; whole upscale call)")
    ax.set_ylabel("PSNR (dB, Y, border shaved)")
    ax.set_title(f"x{scale}: accuracy against time per image ({dataset} unless marked)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def psnr_gain(record: Mapping[str, Any]) -> Figure:
    """Per-image PSNR gain of one record's model over bicubic (bars, sorted), mean as a line."""
    images = list(record.get("images", []))
    if not images or "bicubic_psnr" not in images[0]:
        raise ConfigError("psnr_gain: the record has no per-image bicubic_psnr values")
    gains = sorted(
        ((img["name"], float(img["psnr"]) - float(img["bicubic_psnr"])) for img in images),
        key=lambda item: item[1],
    )
    fig = Figure(figsize=(max(5, 0.35 * len(gains) + 2), 3.8))
    ax = fig.add_subplot()
    names, values = zip(*gains, strict=True)
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
    ax.bar(range(len(values)), values, color=colors)
    ax.axhline(float(np.mean(values)), color="black", linestyle="--", linewidth=1, label="mean")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("PSNR gain over bicubic (dB)")
    ax.set_title(f"{record['model']} on {record['dataset']} x{record['scale']}")
    ax.legend()
    return fig


def robustness_sweep(
    rows: Sequence[Mapping[str, Any]], models: Sequence[str], *, title: str | None = None
) -> Figure:
    """Gain over bicubic (dB) against each swept degradation (``robustness.run_sweep`` rows), one
    panel per family with a line per model; the trained range is shaded, bicubic is the 0 line."""
    families = list(dict.fromkeys(row["family"] for row in rows))
    columns = min(3, len(families))
    grid = math.ceil(len(families) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * grid), layout="constrained")
    axes = fig.subplots(grid, columns, squeeze=False).ravel()
    for ax, family in zip(axes, families, strict=False):
        group = [row for row in rows if row["family"] == family]
        x = np.arange(len(group))
        for i, row in enumerate(group):
            if row["in_training_range"]:
                ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
        for model in models:
            ax.plot(x, [row[model] for row in group], marker="o", label=model)
        ax.axhline(0.0, color="black", linewidth=1, linestyle="--")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{row['value']:g}" for row in group])
        ax.set_title(family)
        ax.set_ylabel("gain over bicubic (dB)")
    for ax in axes[len(families) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "Blind models across fixed degradations (grey: trained range)")
    return fig


# ----------------------------------------------------------------------------- architecture


def _layer_label(layer) -> str:
    """Layer type plus kernel, filters, stride and activation when it has them."""
    parts = [type(layer).__name__]
    config = layer.get_config()
    if "kernel_size" in config:
        parts.append("x".join(str(k) for k in config["kernel_size"]))
    if "filters" in config:
        parts.append(f"{config['filters']}")
    if "pool_size" in config:
        parts.append("pool " + "x".join(str(k) for k in config["pool_size"]))
    strides = config.get("strides")
    if strides and any(int(s) != 1 for s in np.atleast_1d(strides)):
        parts.append("/" + "x".join(str(s) for s in np.atleast_1d(strides)))
    if "scale" in config:
        parts.append(f"s={config['scale']}")
    activation = config.get("activation")
    if isinstance(activation, str) and activation != "linear":
        parts.append(activation)
    return " ".join(parts)


def _layer_edges(model) -> tuple[list[str], list[tuple[str, str]]]:
    """Layer names in topological order and (from, to) edges, from the functional config."""
    config = model.get_config()
    names: list[str] = []
    edges: list[tuple[str, str]] = []

    def histories(value):
        if isinstance(value, dict):
            if "keras_history" in value:
                yield value["keras_history"][0]
            elif (
                "config" in value
                and isinstance(value["config"], dict)
                and "keras_history" in value["config"]
            ):
                yield value["config"]["keras_history"][0]
            else:
                for item in value.values():
                    yield from histories(item)
        elif isinstance(value, list | tuple):
            if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
                yield value[0]  # legacy [name, node, tensor] triple
            else:
                for item in value:
                    yield from histories(item)

    for entry in config.get("layers", []):
        name = entry.get("name") or entry["config"]["name"]
        names.append(name)
        for source in histories(entry.get("inbound_nodes", [])):
            edges.append((source, name))
    if not names:  # Sequential or subclassed: a chain of layers
        names = [layer.name for layer in model.layers]
        edges = list(zip(names, names[1:], strict=False))
    return names, list(dict.fromkeys(edges))


def architecture_diagram(model, *, title: str | None = None) -> Figure:
    """Boxes per layer (type, kernel, filters, stride, activation), top to bottom in graph order,
    with arrows for connections; connections that skip layers (shortcuts) curve on the side."""
    names, edges = _layer_edges(model)
    by_name = {layer.name: layer for layer in model.layers}
    position = {name: i for i, name in enumerate(names)}
    n = len(names)
    fig = Figure(figsize=(6.5, 0.5 * n + 1.2))
    ax = fig.add_subplot()
    ax.set_title(title or model.name)
    ax.set_xlim(-2.2, 3.6)
    ax.set_ylim(-n + 0.3, 1.0)
    ax.axis("off")
    box_w, box_h = 3.6, 0.55
    for name in names:
        y = -position[name]
        layer = by_name.get(name)
        label = _layer_label(layer) if layer is not None else name
        ax.add_patch(
            FancyBboxPatch(
                (-box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor="#e0ecff",
                edgecolor="#1f4e99",
            )
        )
        ax.text(0, y, label, ha="center", va="center", fontsize=7)
    for source, target in edges:
        if source not in position or target not in position:
            continue
        y0, y1 = -position[source], -position[target]
        skip = position[target] - position[source]
        if skip == 1:
            start, end, style = (0, y0 - box_h / 2), (0, y1 + box_h / 2), "arc3"
        else:
            # Shortcut: leave and enter on the right, bowed out more the longer it is.
            start, end = (box_w / 2, y0), (box_w / 2, y1)
            # arc3 bulges by about rad * length / 2: keep the bulge between 0.35 and 1.3 units.
            bulge = min(1.3, 0.35 + 0.06 * skip)
            style = f"arc3,rad={-2 * bulge / skip:.3f}"
        ax.add_patch(
            FancyArrowPatch(
                start, end, connectionstyle=style, arrowstyle="-|>", mutation_scale=8, linewidth=0.8
            )
        )
    return fig
