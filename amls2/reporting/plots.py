"""The results figures: the results table, training curves, PSNR against cost and time, the
robustness sweep.

One of the reporting figure modules (with ``comparison``, ``diagrams``, ``hero`` and
``figure_helpers``: the only matplotlib code of the package). Every function returns a
``matplotlib.figure.Figure`` built directly (Agg rendering, no pyplot global state, nothing is
shown); ``figure_helpers.save_figure`` writes it as a PNG atomically. Images are float32 HxWx3 RGB
in [0, 1]; records are the dicts of ``amls2.evaluation.scoring``.
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
from matplotlib.lines import Line2D

from amls2.errors import Amls2Error, ConfigError
from amls2.reporting.figure_helpers import BASELINE_LABEL, log_axis, spread_labels, track_label

HIGHLIGHT = "#fde68a"  # best cell per row in the results table


# ----------------------------------------------------------------------------- results table


def _format_count(value: float | None, unit: float, digits: int) -> str:
    return "-" if value is None else f"{float(value) / unit:.{digits}f}"


def results_table(
    records: Sequence[Mapping[str, Any]],
    *,
    costs: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
    title: str = "PSNR (dB) / SSIM",
) -> Figure:
    """Table figure: one row per scale x model (the interpolation baseline first), columns the
    parameters and multiply-adds (from ``costs[(model, scale)]``: "params", "macs" for a
    1280x720 output) then PSNR / SSIM per track (``weights_set`` of a record, else its
    ``track``) x dataset. The best PSNR of each column within a scale is bold on yellow."""
    if not records:
        raise ConfigError("results_table: no records")
    columns, cells, bold = _table_cells(records, costs or {})
    header = ["x", "model", "params (K)", "MACs (G)"]
    # the track label broken before its bracket: the columns are narrow
    header += [track_label(t).replace(" (", "\n(", 1) + f"\n{d}" for t, d in columns]
    return _draw_table(cells, header, bold, title)


def _track_of(record: Mapping[str, Any]) -> str:
    return record.get("weights_set") or record["track"]


def _table_cells(records, costs):
    """The table's (track, dataset) columns, its rows of text and the (row, column) of the best
    PSNR of each column within a scale."""
    models = list(dict.fromkeys(r["model"] for r in records))
    first = [m for m in ("bicubic", "linear") if m in models]
    models = first + [m for m in models if m not in first]
    scales = sorted({int(r["scale"]) for r in records})
    columns = list(dict.fromkeys((_track_of(r), r["dataset"]) for r in records))
    index = {(_track_of(r), r["dataset"], int(r["scale"]), r["model"]): r for r in records}
    cells, bold = [], []
    for scale in scales:
        rows = [m for m in models if any((*c, scale, m) in index for c in columns)]
        first = len(cells)
        for model in rows:
            cost = costs.get((model, scale), {})
            row = [f"x{scale}", BASELINE_LABEL if model == "bicubic" else model]
            row += [
                _format_count(cost.get("params"), 1e3, 1),
                _format_count(cost.get("macs"), 1e9, 1),
            ]
            for track, dataset in columns:
                r = index.get((track, dataset, scale, model))
                row.append("-" if r is None else f"{float(r['psnr']):.2f} / {float(r['ssim']):.4f}")
            cells.append(row)
        for j, (track, dataset) in enumerate(columns):
            psnrs = [
                float(index[(track, dataset, scale, m)]["psnr"])
                if (track, dataset, scale, m) in index
                else -math.inf
                for m in rows
            ]
            if rows and max(psnrs) > -math.inf:
                bold.append((first + int(np.argmax(psnrs)), 4 + j))
    return columns, cells, bold


def _draw_table(cells: list[list[str]], header: list[str], bold, title: str) -> Figure:
    """The table figure of ``cells`` under ``header``, the ``bold`` cells bold on yellow."""
    columns = len(header) - 4
    widths = [0.35, 1.5, 0.75, 0.75] + [1.35] * columns
    fig = Figure(figsize=(sum(widths) + 0.2, 0.55 + 0.24 * (len(cells) + 2)))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.4 / fig.get_figheight()))
    ax.axis("off")
    fig.suptitle(title, y=0.995, va="top", fontsize=10)
    table = ax.table(
        cellText=cells,
        colLabels=header,
        loc="upper center",
        cellLoc="center",
        colWidths=[w / sum(widths) for w in widths],
        bbox=(0, 0, 1, 1),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#e5e7eb")
            cell.get_text().set_fontweight("bold")
            cell.set_height(cell.get_height() * 2.6)  # three lines: track, its kind, data set
        elif cells[row - 1][0] != (cells[row - 2][0] if row > 1 else None):
            cell.visible_edges = "closed"
    for row, col in bold:
        cell = table[row + 1, col]
        cell.set_facecolor(HIGHLIGHT)
        cell.get_text().set_fontweight("bold")
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


def _loss_panel(ax, history: dict[str, list[float]], x, style) -> None:
    """Every loss column of ``history`` against ``x``, on a log axis labelled as numbers."""
    for key in [k for k in history if "loss" in k]:
        ax.plot(x, history[key], label=key, **style)
    ax.set_yscale("log")
    losses = [v for k in history if "loss" in k for v in history[k] if v > 0]
    if losses:
        lo, hi = min(losses) / 1.25, max(losses) * 1.25
        if hi / lo < 10:  # within a decade: label every multiple, over exactly this range
            ax.set_ylim(lo, hi)
        log_axis(ax.yaxis, lo, hi)
    ax.set_title("training loss")
    ax.set_ylabel("loss (log scale)")
    if ax.lines:
        ax.legend(fontsize=8)


def _validation_panel(ax, history, x, style, val_set, bicubic_psnr) -> list:
    """Validation PSNR (and SSIM on a twin axis) against ``x``, the bicubic level as a dashed
    line: the legend handles."""
    where = f" on {val_set}" if val_set else ""
    ax.set_title(f"validation{where}")
    ax.set_ylabel("PSNR (dB, Y)")
    handles = []
    if "val_psnr" in history:
        handles += ax.plot(x, history["val_psnr"], color="tab:blue", label="val PSNR", **style)
    if bicubic_psnr is not None:
        handles.append(
            ax.axhline(
                bicubic_psnr,
                color="0.4",
                linestyle="--",
                linewidth=1,
                label=f"bicubic interp. {bicubic_psnr:.2f} dB",
            )  # fmt: skip
        )
    if "val_ssim" in history:
        twin = ax.twinx()
        handles += twin.plot(x, history["val_ssim"], color="tab:orange", label="val SSIM", **style)
        twin.set_ylabel("SSIM")
    return handles


def training_curves(
    run_dir: str | os.PathLike,
    *,
    title: str | None = None,
    val_set: str | None = None,
    chosen_epoch: int | None = None,
    bicubic_psnr: float | None = None,
) -> Figure:
    """Loss (log scale), learning rate and validation PSNR/SSIM against training step (epoch
    when the history has no ``step`` column) for one run (a run folder or its history CSV, see
    :func:`read_history`), a marker on every logged point. ``val_set`` names the validation
    data; ``chosen_epoch`` (the kept checkpoint) is a vertical line; ``bicubic_psnr`` (bicubic
    interpolation on the same validation data) a horizontal one."""
    history = read_history(run_dir)
    by_step = "step" in history
    x = history["step"] if by_step else history["epoch"]
    chosen_x = None
    if chosen_epoch is not None and chosen_epoch in history["epoch"]:
        chosen_x = x[history["epoch"].index(chosen_epoch)]
    fig = Figure(figsize=(12, 3.7), layout="constrained")
    fig.suptitle(title or Path(run_dir).name)
    ax_loss, ax_lr, ax_val = fig.subplots(1, 3)
    style = {"marker": "o", "markersize": 3.5}
    _loss_panel(ax_loss, history, x, style)
    lr_key = "learning_rate" if "learning_rate" in history else "lr"
    if lr_key in history:
        ax_lr.plot(x, history[lr_key], **style)
    ax_lr.set_title("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    handles = _validation_panel(ax_val, history, x, style, val_set, bicubic_psnr)
    for ax in (ax_loss, ax_lr, ax_val):
        ax.set_xlabel("training step" if by_step else "epoch")
        ax.grid(True, alpha=0.3)
        if chosen_x is not None:
            line = ax.axvline(chosen_x, color="tab:green", linewidth=1, linestyle=":")
            if ax is ax_val:
                line.set_label(
                    f"kept checkpoint (step {chosen_x:g})" if by_step else "kept checkpoint"
                )
                handles.append(line)
        if not by_step:
            ax.xaxis.get_major_locator().set_params(integer=True)
    if handles:
        ax_val.legend(handles, [h.get_label() for h in handles], loc="lower right", fontsize=7.5)
    if len(x) == 1:  # one point (a closed-form fit sits at step 0): some width around it
        half = max(abs(x[0]) * 0.5, 1.0)
        for ax in (ax_loss, ax_lr, ax_val):
            ax.set_xlim(x[0] - half, x[0] + half)
    return fig


# ----------------------------------------------------------------------------- cost plots

# Published Set5 results of reference models, bicubic track, PSNR on Y (dB), parameters and
# multiply-adds for a 1280x720 output (the convention of both papers and of amls2.models.cost):
# scale -> (params, MACs, PSNR).
# SRCNN, FSRCNN, VDSR, CARN-M: Ahn, Kang, Sohn, "Fast, Accurate, and Lightweight
#   Super-Resolution with Cascading Residual Network", ECCV 2018, Table 2 (CARN).
# IMDN: Hui, Gao, Yang, Wang, "Lightweight Image Super-Resolution with Information
#   Multi-distillation Network", ACM MM 2019, Table 3.
PUBLISHED_SET5: dict[str, dict[int, tuple[float, float, float]]] = {
    "SRCNN": {2: (57e3, 52.7e9, 36.66), 3: (57e3, 52.7e9, 32.75), 4: (57e3, 52.7e9, 30.48)},
    "FSRCNN": {2: (12e3, 6.0e9, 37.00), 3: (12e3, 5.0e9, 33.16), 4: (12e3, 4.6e9, 30.71)},
    "VDSR": {2: (665e3, 612.6e9, 37.53), 3: (665e3, 612.6e9, 33.66), 4: (665e3, 612.6e9, 31.35)},
    "CARN-M": {2: (412e3, 91.2e9, 37.53), 3: (415e3, 46.1e9, 33.99), 4: (417e3, 32.5e9, 31.92)},
    "IMDN": {2: (694e3, 158.8e9, 38.00), 3: (703e3, 71.5e9, 34.36), 4: (715e3, 40.9e9, 32.21)},
}
PUBLISHED_SOURCE = (
    "published: Set5 PSNR and cost from the CARN (ECCV 2018) and IMDN (ACM MM 2019) papers"
)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and PSNR (higher), by cost."""
    front: list[tuple[float, float]] = []
    for cost, psnr in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or psnr > front[-1][1]:
            front.append((cost, psnr))
    return front


def _fitted_ylim(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.5)
    return lo - 0.15 * span, hi + 0.2 * span


def _baseline_line(ax, psnr: float, label: str) -> None:
    """A dashed line at the baseline PSNR, or a note at the bottom when it is below the axis."""
    lo, hi = ax.get_ylim()
    if lo <= psnr <= hi:
        ax.axhline(psnr, color="0.4", linestyle="--", linewidth=1)
        ax.annotate(
            f"{label} {psnr:.2f} dB", (0.01, psnr), xycoords=("axes fraction", "data"),
            xytext=(0, 3), textcoords="offset points", fontsize=7.5, color="0.3",
        )  # fmt: skip
    else:
        ax.annotate(
            f"{label}: {psnr:.2f} dB (below this axis)", (0.01, 0.015),
            xycoords="axes fraction", fontsize=7.5, color="0.3",
        )  # fmt: skip


def _cost_panel(ax, key: str, label: str, ours, refs, baselines, costs) -> None:
    """One panel of ``psnr_vs_cost``: PSNR against ``key`` ("macs" or "params") of our models
    (``ours``), the published ones (``refs``), their Pareto front and the baseline lines."""
    divisor = 1e9 if key == "macs" else 1e3
    points = [(float(c[key]) / divisor, p) for _, c, p in ours if key in c]
    ref_points = [(v[1 if key == "macs" else 0] / divisor, v[2]) for _, v in refs]
    ax.set_xscale("log")
    texts = []
    if points:
        ax.scatter(*zip(*points, strict=True), color="tab:blue", zorder=3)
    if ref_points:
        ax.scatter(*zip(*ref_points, strict=True), color="tab:gray", marker="s", zorder=3)
    names = [n for n, c, _ in ours if key in c] + [n for n, _ in refs]
    every = points + ref_points
    front = pareto_front(every)
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="tab:green", linewidth=1, zorder=2)
    values = [p for _, p in every] or [float(r["psnr"]) for r in baselines]
    ax.set_ylim(*_fitted_ylim(values))
    if every:
        xs = [x for x, _ in every]
        ax.set_xlim(min(xs) / 2.2, max(xs) * 2.2)
    for name, (x, y) in zip(names, every, strict=True):
        colour = "tab:blue" if name in costs else "0.35"
        texts.append(ax.text(x, y, name, fontsize=8, color=colour))
    for record in baselines:
        _baseline_line(ax, float(record["psnr"]), BASELINE_LABEL)
    log_axis(ax.xaxis)
    ax.set_xlabel(label)
    ax.set_ylabel("PSNR (dB, Y)")
    ax.grid(True, which="major", alpha=0.3)
    spread_labels(ax, texts, np.array(every, dtype=float).reshape(-1, 2))


def psnr_vs_cost(
    records: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, float]],
    *,
    dataset: str,
    scale: int,
    track: str | None = None,
    published: bool | None = None,
) -> Figure:
    """PSNR on ``dataset`` x``scale`` against multiply-adds (left) and parameters (right), log
    axes, with the Pareto front of all points, labels kept apart and the legend outside.

    ``costs`` maps model name -> {"macs": multiply-adds per 1280x720 output, "params": count},
    e.g. from ``amls2.models.cost``. Models without a cost entry (bicubic) are a reference line.
    ``published`` (default: for the bicubic track on Set5) adds ``PUBLISHED_SET5``."""
    chosen = [r for r in records if r["dataset"] == dataset and int(r["scale"]) == int(scale)]
    if not chosen:
        raise ConfigError(f"psnr_vs_cost: no records for {dataset} x{scale}")
    if published is None:
        published = dataset == "Set5" and track in (None, "bicubic")
    ours = [
        (r["model"], costs[r["model"]], float(r["psnr"])) for r in chosen if r["model"] in costs
    ]
    baselines = [r for r in chosen if r["model"] not in costs]
    refs = [(n, v[scale]) for n, v in PUBLISHED_SET5.items() if published and scale in v]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    where = f"{track_label(track)}, " if track else ""
    fig.suptitle(f"{where}{dataset} x{scale}: PSNR against cost")
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(
        axes, ("macs", "params"), ("multiply-adds per 1280x720 output (G)", "parameters (K)"),
        strict=True,
    ):  # fmt: skip
        _cost_panel(ax, key, label, ours, refs, baselines, costs)
    handles = [Line2D([], [], color="tab:blue", marker="o", linestyle="", label="this project")]
    if refs:
        handles.append(
            Line2D([], [], color="tab:gray", marker="s", linestyle="", label=PUBLISHED_SOURCE)
        )
    handles.append(Line2D([], [], color="tab:green", label="Pareto front (all points)"))
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False
    )
    return fig


def psnr_vs_time(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    scale: int,
    cpu: str | None = None,
    image_sizes: Mapping[str, str] | None = None,
) -> Figure:
    """PSNR against milliseconds per image (log scale), one point per model, one axis per data
    set (``dataset`` of a row, else ``dataset``), from the rows of ``benchmarks/per_image.py``
    (``model``, ``weights_set``, ``psnr``, ``ms_per_image``, ``dataset``); each axis' bicubic
    row is a reference line. ``cpu`` and ``image_sizes`` (data set -> e.g. "HR 256-512 px")
    go into the title."""
    if not rows:
        raise ConfigError(f"psnr_vs_time: no rows for {dataset} x{scale}")
    groups = list(dict.fromkeys((r["weights_set"], r.get("dataset", dataset)) for r in rows))
    fig = Figure(figsize=(7.5, 3.0 * len(groups) + 1.0), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, sharex=True)[:, 0]
    for ax, (weights_set, data) in zip(axes, groups, strict=True):
        group = [
            r for r in rows if r["weights_set"] == weights_set and r.get("dataset", dataset) == data
        ]
        models = [r for r in group if r["model"] != "bicubic"]
        ax.set_xscale("log")
        if models:
            points = np.array([(float(r["ms_per_image"]), float(r["psnr"])) for r in models])
            ax.scatter(points[:, 0], points[:, 1], color="tab:blue", zorder=3)
            ax.set_ylim(*_fitted_ylim(list(points[:, 1])))
        for row in (r for r in group if r["model"] == "bicubic"):
            if not models:
                ax.set_ylim(*_fitted_ylim([float(row["psnr"])]))
            _baseline_line(ax, float(row["psnr"]), BASELINE_LABEL)
        size = f", {image_sizes[data]}" if image_sizes and data in image_sizes else ""
        ax.set_title(f"{track_label(weights_set)} weights on {data}{size}", fontsize=9)
        ax.set_ylabel("PSNR (dB, Y)")
        ax.grid(True, which="major", alpha=0.3)
        if models:
            texts = [
                ax.text(x, y, r["model"], fontsize=8)
                for (x, y), r in zip(points, models, strict=True)
            ]
            xs = points[:, 0]
            ax.set_xlim(min(xs.min(), 1.0) / 2, xs.max() * 2.5)
            spread_labels(ax, texts, points)
    log_axis(axes[-1].xaxis)
    axes[-1].set_xlabel("milliseconds per image (log scale; whole upscale call, best of repeats)")
    machine = f"\n{cpu}" if cpu else ""
    fig.suptitle(f"x{scale}: PSNR against time per image{machine}", fontsize=10)
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
