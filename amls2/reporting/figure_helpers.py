"""What every figure module of amls2.reporting shares: the track labels, atomic PNG saving, the
overlapping-label check, log axes labelled as plain numbers and point labels spread apart."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from amls2.fileio import atomic_path

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


def _overlapping_pairs(labelled_boxes, tolerance_px: float) -> list[tuple[str, str]]:
    """Pairs of (text, window extent) whose boxes overlap by more than ``tolerance_px`` in both
    directions."""
    found = []
    for i, (text_a, a) in enumerate(labelled_boxes):
        for text_b, b in labelled_boxes[i + 1 :]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > tolerance_px and dy > tolerance_px:
                found.append((text_a, text_b))
    return found


def overlapping_labels(fig: Figure, *, tolerance_px: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of drawn text labels of ``fig`` whose window extents overlap by more than
    ``tolerance_px`` in both directions (after ``fig.canvas.draw()``); empty when all read."""
    renderer = _agg_renderer(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    return _overlapping_pairs(boxes, tolerance_px)


def log_axis(axis, lo: float | None = None, hi: float | None = None) -> None:
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


# adjustText's text repulsion (x, y), strongest last: a pass that leaves two labels on top of
# each other (close points at the edge of the axes) is repeated with a stronger one.
_LABEL_FORCES: tuple[tuple[float, float], ...] = ((0.1, 0.2), (0.4, 0.8), (1.0, 2.0))


def spread_labels(ax, texts, points: np.ndarray) -> None:
    """Move point labels apart (adjustText) so that none overlaps another or a point; while two
    still overlap, again with a stronger repulsion (``_LABEL_FORCES``)."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    for force in _LABEL_FORCES:
        _agg_renderer(ax.figure)  # adjustText measures the texts: they need a drawn figure
        _, arrows = adjust_text(
            texts,
            x=points[:, 0],
            y=points[:, 1],
            ax=ax,
            expand=(1.3, 1.6),
            force_text=force,
            arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6},
            ensure_inside_axes=True,
        )
        renderer = _agg_renderer(ax.figure)
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        if not _overlapping_pairs(boxes, 0.5) or force == _LABEL_FORCES[-1]:
            return
        for arrow in arrows:  # the next pass draws its own
            arrow.remove()
