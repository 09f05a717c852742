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
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from amls2.errors import Amls2Error, ConfigError
from amls2.fileio import atomic_path
from amls2.imaging import metrics

HIGHLIGHT = "#fde68a"  # best cell per row in the results table
DPI = 100  # saved figures: the text of a 7-8 pt label reads at this resolution
# How figures name the weight sets: "bicubic" is also the name of the interpolation baseline,
# so the track is never called just "bicubic".
TRACK_LABELS: dict[str, str] = {
    "bicubic": "Track 1 (bicubic)",
    "unknown": "Track 2 (unknown, blind models)",
    "track2sim": "Track 2 (Track2sim operator)",
}
BASELINE_LABEL = "bicubic interp."


def track_label(track: str | None) -> str:
    """The figures' name of a track / weight set (``TRACK_LABELS``), else ``track`` itself."""
    return TRACK_LABELS.get(track or "", track or "")


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


# ----------------------------------------------------------------------------- label checks


def _drawn_texts(fig: Figure) -> list[Text]:
    """The non-empty visible text artists of ``fig`` that a draw shows (tick labels only for
    ticks inside their axis' view interval: matplotlib keeps, but does not draw, the others)."""
    hidden: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = abs(hi - lo) or 1.0
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo - 1e-9 * span <= tick.get_loc() <= hi + 1e-9 * span:
                    hidden.update({id(tick.label1), id(tick.label2)})
    texts = []
    for text in fig.findobj(Text):
        if id(text) in hidden or not text.get_text().strip():
            continue
        artist, visible = text, True
        while artist is not None and visible:  # a text inside an invisible axes is not drawn
            visible = artist.get_visible()
            artist = getattr(artist, "axes", None) if artist is text else None
        if visible:
            texts.append(text)
    return texts


def _agg_renderer(fig: Figure):
    """Draw ``fig`` on an Agg canvas (attached when it has none) and return the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def overlapping_labels(fig: Figure, *, tolerance_px: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of drawn text labels of ``fig`` whose window extents overlap by more than
    ``tolerance_px`` in both directions (after ``fig.canvas.draw()``); empty when all read."""
    renderer = _agg_renderer(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    found = []
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1 :]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > tolerance_px and dy > tolerance_px:
                found.append((text_a, text_b))
    return found


def _log_axis(axis, lo: float | None = None, hi: float | None = None) -> None:
    """Log scale labelled as plain numbers (not 2x10^-2): at 1, 2 and 5 per decade over a few
    decades, every decade over many, and at every integer multiple within one decade
    (``lo``/``hi``: the data range; default the axis' current limits)."""
    if lo is None or hi is None:
        lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(max(hi, 1e-300) / max(lo, 1e-300)) if lo > 0 else 3.0
    if decades < 1.0:
        subs: tuple[float, ...] = tuple(range(1, 10))
    elif decades <= 3.0:
        subs = (1.0, 2.0, 5.0)
    elif decades <= 5.0:
        subs = (1.0, 3.0)
    else:
        subs = (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    axis.set_minor_formatter(NullFormatter())


def _spread_labels(ax, texts, points: np.ndarray) -> None:
    """Move point labels apart (adjustText) so that none overlaps another or a point."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    _agg_renderer(ax.figure)  # adjustText measures the texts: they need a renderer
    adjust_text(
        texts,
        x=points[:, 0],
        y=points[:, 1],
        ax=ax,
        expand=(1.3, 1.6),
        arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6},
        ensure_inside_axes=True,
    )


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

    def track_of(r):
        return r.get("weights_set") or r["track"]

    models = list(dict.fromkeys(r["model"] for r in records))
    first = [m for m in ("bicubic", "linear") if m in models]
    models = first + [m for m in models if m not in first]
    scales = sorted({int(r["scale"]) for r in records})
    columns = list(dict.fromkeys((track_of(r), r["dataset"]) for r in records))
    index = {(track_of(r), r["dataset"], int(r["scale"]), r["model"]): r for r in records}
    costs = costs or {}
    header = ["x", "model", "params (K)", "MACs (G)"]
    header += [f"{track_label(t)}\n{d}" for t, d in columns]
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
    widths = [0.35, 1.1, 0.75, 0.75] + [1.35] * len(columns)
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
        elif cells[row - 1][0] != (cells[row - 2][0] if row > 1 else None):
            cell.visible_edges = "closed"
    for row, col in bold:
        cell = table[row + 1, col]
        cell.set_facecolor(HIGHLIGHT)
        cell.get_text().set_fontweight("bold")
    return fig


# ----------------------------------------------------------------------------- visual comparison


def _box_scores(score: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``score`` over every ``size`` x ``size`` box (integral image), by top-left."""
    integral = np.pad(np.cumsum(np.cumsum(score, axis=0), axis=1), ((1, 0), (1, 0)))
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


def _region_score(hr, best, baseline) -> np.ndarray:
    if best is not None and baseline is not None:
        return ((baseline - hr) ** 2 - (best - hr) ** 2).sum(axis=-1)
    gy, gx = np.gradient(hr.mean(axis=-1))
    return gx**2 + gy**2


def informative_regions(
    hr: np.ndarray,
    *,
    size: int,
    count: int = 1,
    best: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Top-left (row, col) of up to ``count`` non-overlapping ``size`` x ``size`` crops, best
    first: where the best model's squared-error reduction over the baseline is largest (with
    ``best`` and ``baseline``), else where the HR gradient energy is largest."""
    size = min(size, *hr.shape[:2])
    boxes = _box_scores(_region_score(hr, best, baseline), size)
    chosen: list[tuple[int, int]] = []
    for _ in range(count):
        row, col = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
        if chosen and not np.isfinite(boxes[row, col]):
            break
        chosen.append((int(row), int(col)))
        # No later crop may overlap this one.
        boxes[max(0, row - size + 1) : row + size, max(0, col - size + 1) : col + size] = -np.inf
    return chosen


def most_informative_region(
    hr: np.ndarray,
    *,
    size: int,
    best: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
) -> tuple[int, int]:
    """Top-left (row, col) of the ``size`` x ``size`` crop to zoom into (see
    :func:`informative_regions`)."""
    return informative_regions(hr, size=size, best=best, baseline=baseline)[0]


def _nearest_upscale(lr: np.ndarray, scale: int, shape: tuple[int, ...]) -> np.ndarray:
    """The LR input shown at HR size by pixel repetition (what the model was given)."""
    big = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    out = np.zeros(shape, np.float32)
    h, w = min(shape[0], big.shape[0]), min(shape[1], big.shape[1])
    out[:h, :w] = big[:h, :w]
    return out


def _ordered_panels(panels: Mapping[str, np.ndarray]) -> list[str]:
    """bicubic, then ``linear``, then every other model in the given order."""
    first = [n for n in ("bicubic", "linear") if n in panels]
    return first + [n for n in panels if n not in first]


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
    lr: np.ndarray | None = None,
    protocol: str = "y",
    region: tuple[int, int, int] | None = None,
    regions: Sequence[tuple[int, int, int]] | None = None,
    crop: int = 64,
    crops: int = 1,
    title: str | None = None,
) -> Figure:
    """The HR image once with the crop box(es), then for each crop one row of zoomed crops: the
    LR input (nearest-neighbour, when ``lr`` is given), bicubic, ``linear`` when present, every
    other panel in order, and the HR crop; under each, that crop's PSNR / SSIM
    (``amls2.imaging.metrics``, ``protocol``, ``scale`` px shaved from the crop), the best in bold.

    ``regions`` (or one ``region``): (row, col, size) crops; by default ``crops`` non-overlapping
    ``crop`` x ``crop`` crops where the best panel gains most over "bicubic" (or the first
    panel), or the HR's busiest regions when there is one panel.
    """
    if not panels:
        raise ConfigError("visual_comparison: give at least one SR panel")
    for name, img in panels.items():
        if img.shape != hr.shape:
            raise ConfigError(f"visual_comparison: panel {name!r} is {img.shape}, HR is {hr.shape}")
    names = _ordered_panels(panels)
    images = {n: panels[n] for n in names}
    if lr is not None:
        images = {"LR (nearest)": _nearest_upscale(lr, scale, hr.shape), **images}
    if regions is None:
        regions = [region] if region is not None else _default_regions(hr, panels, crop, crops)
    panel = 1.7  # inches per crop
    overview_w = panel * len(regions) * hr.shape[1] / hr.shape[0]
    fig = Figure(
        figsize=(panel * (len(images) + 1) + overview_w, (panel + 0.45) * len(regions) + 0.8)
    )
    fig.set_layout_engine("constrained")
    grid = fig.add_gridspec(
        len(regions), len(images) + 2, width_ratios=[overview_w / panel, *[1] * (len(images) + 1)]
    )
    overview = fig.add_subplot(grid[:, 0])
    overview.imshow(np.clip(hr, 0, 1))
    overview.set_title("HR (ground truth)", fontsize=9)
    overview.set_axis_off()
    for k, (row, col, size) in enumerate(regions):
        colour = f"C{3 + k}"
        overview.add_patch(
            Rectangle((col, row), size, size, fill=False, edgecolor=colour, linewidth=1.5)
        )
        crop_hr = hr[row : row + size, col : col + size]
        scores = {
            n: metrics.evaluate_pair(
                img[row : row + size, col : col + size], crop_hr, scale=scale, protocol=protocol
            )
            for n, img in images.items()
        }
        best = max(scores, key=lambda n: scores[n]["psnr"])
        for j, (name, img) in enumerate([*images.items(), ("HR", hr)]):
            ax = fig.add_subplot(grid[k, j + 1])
            ax.imshow(
                np.clip(img[row : row + size, col : col + size], 0, 1), interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
            if k == 0:
                ax.set_title(name, fontsize=8)
            if name == "HR":
                ax.set_xlabel("PSNR / SSIM", fontsize=7.5)
                continue
            s = scores[name]
            ax.set_xlabel(
                f"{s['psnr']:.2f} / {s['ssim']:.3f}",
                fontsize=7.5,
                fontweight="bold" if name == best else "normal",
            )
    caption = (
        f"Numbers: PSNR (dB) / SSIM of each crop (Y, {scale} px shaved from the crop), best in bold"
    )
    fig.suptitle((f"{title}\n" if title else "") + caption, fontsize=9)
    return fig


def _default_regions(hr, panels, crop: int, count: int) -> list[tuple[int, int, int]]:
    size = min(crop, *hr.shape[:2])
    baseline_name = "bicubic" if "bicubic" in panels else next(iter(panels))
    others = [n for n in panels if n not in (baseline_name, "linear")]
    if others:
        psnr = {n: metrics.psnr(panels[n], hr, scale=1) for n in others}
        best_name = max(others, key=psnr.get)
        found = informative_regions(
            hr, size=size, count=count, best=panels[best_name], baseline=panels[baseline_name]
        )
    else:
        found = informative_regions(hr, size=size, count=count)
    return [(r, c, size) for r, c in found]


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
    for key in [k for k in history if "loss" in k]:
        ax_loss.plot(x, history[key], label=key, **style)
    ax_loss.set_yscale("log")
    losses = [v for k in history if "loss" in k for v in history[k] if v > 0]
    if losses:
        lo, hi = min(losses) / 1.25, max(losses) * 1.25
        if hi / lo < 10:  # within a decade: label every multiple, over exactly this range
            ax_loss.set_ylim(lo, hi)
        _log_axis(ax_loss.yaxis, lo, hi)
    ax_loss.set_title("training loss")
    ax_loss.set_ylabel("loss (log scale)")
    if ax_loss.lines:
        ax_loss.legend(fontsize=8)
    lr_key = "learning_rate" if "learning_rate" in history else "lr"
    if lr_key in history:
        ax_lr.plot(x, history[lr_key], **style)
    ax_lr.set_title("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    where = f" on {val_set}" if val_set else ""
    ax_val.set_title(f"validation{where}")
    ax_val.set_ylabel("PSNR (dB, Y)")
    handles = []
    if "val_psnr" in history:
        handles += ax_val.plot(x, history["val_psnr"], color="tab:blue", label="val PSNR", **style)
    if bicubic_psnr is not None:
        handles.append(
            ax_val.axhline(
                bicubic_psnr,
                color="0.4",
                linestyle="--",
                linewidth=1,
                label=f"bicubic interp. {bicubic_psnr:.2f} dB",
            )  # fmt: skip
        )
    if "val_ssim" in history:
        twin = ax_val.twinx()
        handles += twin.plot(x, history["val_ssim"], color="tab:orange", label="val SSIM", **style)
        twin.set_ylabel("SSIM")
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
    if len(x) == 1:  # one point: give the axes some width around it
        for ax in (ax_loss, ax_lr, ax_val):
            ax.set_xlim(x[0] * 0.5, x[0] * 1.5)
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
        _log_axis(ax.xaxis)
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR (dB, Y)")
        ax.grid(True, which="major", alpha=0.3)
        _spread_labels(ax, texts, np.array(every, dtype=float).reshape(-1, 2))
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
            _spread_labels(ax, texts, points)
    _log_axis(axes[-1].xaxis)
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


# ----------------------------------------------------------------------------- hero figure


def crop_psnr(sr: np.ndarray, hr: np.ndarray, box: tuple[int, int, int]) -> float:
    """PSNR (dB) of the ``box`` = (row, col, size) crop of ``sr`` against the same crop of
    ``hr``: BT.601 Y in [0, 255] as the ``y`` protocol, nothing shaved (a crop has no border of
    the image to leave out)."""
    row, col, size = box
    window = (slice(row, row + size), slice(col, col + size))
    a, b = (metrics.prepare(img[window], scale=0) for img in (sr, hr))
    return metrics.psnr_from_mse(float(np.mean((a - b) ** 2)), metrics.DATA_RANGE)


def plot_hero(
    examples: Sequence[tuple[str, np.ndarray, Mapping[str, np.ndarray], tuple[int, int, int]]],
    *,
    title: str,
) -> Figure:
    """One row per example ``(name, hr, outputs, box)``: the HR image with the ``box`` = (row,
    col, size) outlined, then the zoomed ``box`` of the HR and of each output (e.g. bicubic, a
    linear baseline, the best model), with that crop's PSNR (``crop_psnr``) under it; the best
    output of the row is in bold. ``title`` names the track, data set and scale."""
    if not examples:
        raise ConfigError("plot_hero: give at least one example")
    columns = 2 + max(len(outputs) for _, _, outputs, _ in examples)
    fig = Figure(figsize=(2.3 * columns, 2.75 * len(examples) + 0.5))
    fig.suptitle(title)
    axes = fig.subplots(len(examples), columns, squeeze=False)
    for row_axes, (name, hr, outputs, box) in zip(axes, examples, strict=True):
        _hero_row(row_axes, name, hr, outputs, box)
    fig.subplots_adjust(wspace=0.06, hspace=0.3, top=0.9 if len(examples) == 1 else 0.93)
    return fig


def _hero_row(axes, name: str, hr: np.ndarray, outputs: Mapping[str, np.ndarray], box) -> None:
    for label, img in outputs.items():
        if img.shape != hr.shape:
            raise ConfigError(f"plot_hero: {name} {label!r} is {img.shape}, HR is {hr.shape}")
    row, col, size = box
    psnrs = {label: crop_psnr(img, hr, box) for label, img in outputs.items()}
    best = max(psnrs, key=psnrs.get)
    axes[0].imshow(np.clip(hr, 0, 1))
    axes[0].add_patch(Rectangle((col, row), size, size, fill=False, edgecolor="red", linewidth=1.5))
    axes[0].set_xlabel(name, fontsize=9)
    panels = [
        ("HR", hr, "crop PSNR (dB)"),
        *((k, v, f"{psnrs[k]:.2f} dB") for k, v in outputs.items()),
    ]
    for ax, (label, img, caption) in zip(axes[1:], panels, strict=False):
        ax.imshow(np.clip(img[row : row + size, col : col + size], 0, 1), interpolation="nearest")
        ax.set_title(label, fontsize=9)
        weight = "bold" if label == best else "normal"
        ax.set_xlabel(caption, fontsize=9, fontweight=weight)
    for ax in axes[1 + len(panels) :]:
        ax.axis("off")
    for ax in axes[: 1 + len(panels)]:
        ax.set_xticks([])
        ax.set_yticks([])


# ----------------------------------------------------------------------------- FD-SRCNN diagram

BLOCK_COLOURS: dict[str, str] = {
    "input": "#e5e7eb",
    "features": "#c7d2fe",
    "conv block": "#bfdbfe",
    "upsampler": "#fed7aa",
    "reconstructor": "#bbf7d0",
    "max-pool": "#e9d5ff",
    "output": "#fecaca",
}


def fd_srcnn_layout(model) -> dict[str, Any]:
    """FD-SRCNN's block configuration read from a built model's layers: input ``features``,
    ``width``, ``mid_width``, ``n_series`` per module, ``n_modules`` and their ``stride``,
    ``upsampler``, ``activation``, ``channels`` and how many bicubic image skips it has."""
    kinds = [type(layer).__name__ for layer in model.layers]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    channels = int(model.input_shape[-1])
    recs = [c for c in convs if c.get_config()["filters"] == channels]
    pools = [layer for layer in model.layers if type(layer).__name__ == "MaxPooling2D"]
    if len(convs) < 4 or not recs:
        raise ConfigError(f"{model.name}: not an FD-SRCNN (no feature conv + block series)")
    n_modules = len(recs) - len(pools)
    first = convs[0].get_config()
    activation = first.get("activation")
    if activation in (None, "linear"):
        activation = kinds[model.layers.index(convs[0]) + 1]
    stride = int(pools[0].get_config()["pool_size"][0]) if pools else None
    upsampler = "transposed" if any("Transpose" in k for k in kinds) else "subpixel"
    layout = {
        "channels": channels,
        "features": int(first["filters"]),
        "feature_kernel": int(first["kernel_size"][0]),
        "width": int(convs[1].get_config()["filters"]),
        "mid_width": int(convs[2].get_config()["filters"]),
        "n_modules": n_modules,
        "n_series": len(recs) // n_modules,
        "upsampler": upsampler,
        "activation": str(activation),
        "bicubic_skips": sum(k == "BicubicUpsample" for k in kinds),
    }
    if stride is None:  # one series per module: the scale is in the model's name
        scale = int(str(model.name).rsplit("x", 1)[-1]) if "_x" in model.name else 2
        stride = 2 if n_modules == 2 else scale
    layout["stride"] = stride
    layout["scale"] = stride**n_modules
    return layout


def _dims(factor: int, channels: int) -> str:
    return f"H×W×{channels}" if factor == 1 else f"{factor}H×{factor}W×{channels}"


def _block(ax, x, y, text, kind, *, width=3.0, height=1.0):
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.05",
            facecolor=BLOCK_COLOURS[kind],
            edgecolor="0.3",
            linewidth=0.8,
        )  # fmt: skip
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=7, linespacing=1.25)
    return (x, y, width, height)


def _arrow(ax, start, end, *, style="arc3", dashed=False, colour="0.2"):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            connectionstyle=style,
            arrowstyle="-|>",
            mutation_scale=9,
            linewidth=0.9,
            color=colour,
            linestyle="--" if dashed else "-",
            shrinkA=0,
            shrinkB=0,
        )  # fmt: skip
    )


def _bottom(box):
    return (box[0], box[1] - box[3] / 2 - 0.05)


def _top(box):
    return (box[0], box[1] + box[3] / 2 + 0.05)


def _right(box):
    return (box[0] + box[2] / 2 + 0.05, box[1])


def _left(box):
    return (box[0] - box[2] / 2 - 0.05, box[1])


def _path_arrow(ax, points, *, colour="0.2", dashed=False) -> None:
    """A polyline through ``points`` (data coordinates) with an arrow head on the last leg."""
    xs, ys = zip(*points, strict=True)
    ax.plot(xs[:-1], ys[:-1], color=colour, linewidth=0.9, linestyle="--" if dashed else "-")
    _arrow(ax, points[-2], points[-1], dashed=dashed, colour=colour)
    ax.plot(xs[-2:-1], ys[-2:-1], color=colour, linewidth=0)  # keep the corner in the limits


def fd_srcnn_diagram(model, *, title: str | None = None) -> Figure:
    """Block-level diagram of a built FD-SRCNN (:func:`fd_srcnn_layout` of its layers): the LR
    input and feature conv, each upscaling module's block series (conv block -> transposed-conv
    upsampler with its local shortcut -> reconstructor, max-pooling down between series), the
    global shortcuts, the exits and the tensor shapes; one colour per kind of block."""
    cfg = fd_srcnn_layout(model)
    s, n, c, n_mod = cfg["stride"], cfg["n_series"], cfg["channels"], cfg["n_modules"]
    act = cfg["activation"]
    up_name = "transposed conv" if cfg["upsampler"] == "transposed" else "sub-pixel conv"
    col_w, row_h, box_w = 5.0, 6.6, 3.6
    ys = (0.0, -1.6, -3.2)  # conv block, upsampler, reconstructor rows of a module
    bottom = -row_h * (n_mod - 1) + ys[2] - (3.0 if n_mod > 1 else 1.9)
    width_units = col_w * (n + 2)
    fig = Figure(figsize=(0.6 * width_units, 0.6 * (1.4 - bottom) + 0.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-2.6, width_units - col_w / 2)
    ax.set_ylim(bottom, 0.9)
    ax.set_aspect("equal")
    ax.set_axis_off()
    fig.suptitle(title or f"{model.name}: block diagram", fontsize=10)
    factor = 1
    source = _block(ax, 0, ys[0], f"LR input\n{_dims(1, c)}", "input")
    k = cfg["feature_kernel"]
    feats = _block(
        ax, 0, ys[1],
        f"input features\nconv {k}×{k}×{cfg['features']} {act}\n{_dims(1, cfg['features'])}",
        "features",
    )  # fmt: skip
    _arrow(ax, _bottom(source), _top(feats))
    module_in, last_rec, pool_box = feats, feats, feats
    for m in range(n_mod):
        top = -m * row_h
        if m:  # the next module starts from the previous module's image
            label = f"x{factor} image (module {m} exit)\n{_dims(factor, c)}"
            module_in = _block(ax, 0, top + ys[1], label, "output")
            y_path = top + row_h + ys[2] - 2.0
            _path_arrow(
                ax, [_bottom(last_rec), (last_rec[0], y_path), (0, y_path), _top(module_in)]
            )
        out_factor = factor * s
        for i in range(n):
            x = (i + 1) * col_w
            conv_box = _block(
                ax, x, top + ys[0],
                f"module {m + 1} · series {i + 1}: conv block\n5×5×{cfg['width']} → "
                f"3×3×{cfg['mid_width']} → 1×1×{cfg['width']} {act}\n"
                f"{_dims(factor, cfg['width'])}",
                "conv block", width=box_w, height=1.1,
            )  # fmt: skip
            up_box = _block(
                ax, x, top + ys[1],
                f"{up_name} 5×5 /{s}, add the local\nshortcut ({up_name} 1×1 /{s}), {act}"
                f"\n{_dims(out_factor, cfg['width'])}",
                "upsampler", width=box_w, height=1.1,
            )  # fmt: skip
            last = i == n - 1
            if last and m == n_mod - 1 and cfg["bicubic_skips"]:
                head = "linear conv 3×3 (residual)"
            elif cfg["bicubic_skips"] > 1:
                head = "linear 3×3 + bicubic of input"
            else:
                head = "conv 3×3 sigmoid"
            extra = "add global shortcut(s),\n" if last else ""
            rec_box = _block(
                ax, x, top + ys[2], f"reconstructor: {extra}{head}\n{_dims(out_factor, c)}",
                "reconstructor", width=box_w, height=1.1,
            )  # fmt: skip
            if i == 0:
                _arrow(ax, _right(module_in), _left(conv_box))
            else:
                _arrow(ax, _top(pool_box), _left(conv_box), style="angle,angleA=90,angleB=0")
            _arrow(ax, _bottom(conv_box), _top(up_box))
            _arrow(ax, _bottom(up_box), _top(rec_box))
            # Local shortcut: the series input skips the conv block into the upsampler's add.
            start = (x - box_w / 2 - 0.05, top + ys[0] - 0.3)
            _arrow(ax, start, _left(up_box), style="arc3,rad=0.6", dashed=True, colour="tab:red")
            if not last:
                pool_box = _block(
                    ax, x + col_w / 2, top + ys[1], f"max-pool\n/{s}\n{_dims(factor, c)}",
                    "max-pool", width=1.15, height=1.1,
                )  # fmt: skip
                _arrow(ax, _right(rec_box), _bottom(pool_box), style="angle,angleA=0,angleB=90")
        # Global shortcut: the module's input, upsampled, joins before the last reconstructor.
        y_line = top + ys[2] - 1.0
        _path_arrow(
            ax,
            [_bottom(module_in), (0, y_line), (rec_box[0], y_line), _bottom(rec_box)],
            colour="tab:red", dashed=True,
        )  # fmt: skip
        ax.text(
            col_w * (n + 1) / 2, y_line - 0.3,
            f"global shortcut: {up_name} 5×5 /{s} of the module input",
            ha="center", va="top", fontsize=7, color="tab:red",
        )  # fmt: skip
        factor = out_factor
        last_rec = rec_box
    if n_mod > 1:  # the input features also reach the last reconstructor (stride = scale)
        y_line = bottom + 0.9
        _path_arrow(
            ax,
            [_left(feats), (-2.3, feats[1]), (-2.3, y_line), (last_rec[0] + 0.4, y_line),
             (last_rec[0] + 0.4, last_rec[1] - 0.6)],
            colour="tab:purple", dashed=True,
        )  # fmt: skip
        ax.text(
            col_w * (n + 1) / 2, y_line - 0.3,
            f"carried shortcut: {up_name} 5×5 /{cfg['scale']} of the input features",
            ha="center", va="top", fontsize=7, color="tab:purple",
        )  # fmt: skip
    skip = "\n+ bicubic upscale of LR" if cfg["bicubic_skips"] else ""
    exit_box = _block(
        ax, (n + 1) * col_w, last_rec[1],
        f"x{cfg['scale']} output{skip}\n{_dims(cfg['scale'], c)}", "output", width=2.8, height=1.1,
    )  # fmt: skip
    _arrow(ax, _right(last_rec), _left(exit_box))
    handles = [
        Patch(facecolor=colour, edgecolor="0.3", label=kind)
        for kind, colour in BLOCK_COLOURS.items()
    ]
    handles.append(Line2D([], [], color="tab:red", linestyle="--", label="shortcut"))
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7.5,
        frameon=False,
    )  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- operators


def operator_kernels(operators: Sequence[Any], *, title: str | None = None) -> Figure:
    """The blur kernels of estimated degradation operators (``amls2.data.operator.Operator``),
    one panel per operator, drawn in HR pixels relative to MATLAB bicubic's LR pixel centre (the
    cross at 0, 0); the dot is the kernel's centroid, so its distance from the cross is the
    operator's sub-pixel offset."""
    if not operators:
        raise ConfigError("operator_kernels: no operators to draw")
    fig = Figure(figsize=(3.3 * len(operators), 3.6), layout="constrained")
    axes = fig.subplots(1, len(operators), squeeze=False)[0]
    for ax, op in zip(axes, operators, strict=True):
        kernel = op.kernel_array
        size = kernel.shape[0]
        # Tap t sits at HR offset t - size//2 from the kernel centre, which is start - (s-1)/2
        # from MATLAB's LR pixel centre.
        shift = op.decimation_start - (op.scale - 1) / 2 - size // 2
        lo, hi = shift - 0.5, shift + size - 0.5
        ax.imshow(
            kernel / kernel.max(),
            cmap="magma",
            extent=(lo, hi, hi, lo),
            vmin=min(0.0, kernel.min() / kernel.max()),
        )
        dy, dx = op.offset
        ax.plot(
            [0],
            [0],
            marker="+",
            color="cyan",
            markersize=12,
            markeredgewidth=1.5,
            label="bicubic centre",
        )
        ax.plot([dx], [dy], marker="o", color="white", markersize=4, label="kernel centroid")
        ax.set_title(f"x{op.scale}: {size}x{size}, offset ({dy:+.2f}, {dx:+.2f})", fontsize=9)
        ax.set_xlabel("x (HR px)")
        ax.set_ylabel("y (HR px)")
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    fig.suptitle(title or "Estimated operator kernels (max-normalised); offset (dy, dx) in HR px")
    return fig


def psnr_gain_grouped(records: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """Per-image PSNR gain over bicubic (dB) of several models on one track, dataset and scale,
    as one grouped bar chart: a group per image, a bar per model, the legend outside the axes."""
    models = [r for r in records if r["model"] != "bicubic" and r.get("images")]
    if not models:
        raise ConfigError("psnr_gain_grouped: no model records with per-image values")
    names = [img["name"] for img in models[0]["images"]]
    width = 0.8 / len(models)
    fig = Figure(
        figsize=(max(6.0, 0.5 * len(names) * len(models) ** 0.5 + 3), 3.8), layout="constrained"
    )
    ax = fig.add_subplot()
    for i, record in enumerate(models):
        by_name = {img["name"]: img["psnr"] - img["bicubic_psnr"] for img in record["images"]}
        x = np.arange(len(names)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, [by_name.get(n, np.nan) for n in names], width, label=record["model"])
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("PSNR gain over bicubic (dB)")
    first = models[0]
    ax.set_title(
        title or f"{track_label(first.get('track'))}, {first['dataset']} x{first['scale']}"
    )
    fig.legend(loc="outside right upper", fontsize=7)
    return fig
