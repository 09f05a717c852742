"""The visual comparison: where models differ most from bicubic (``informative_regions``) and the
figure of zoomed crops of HR, bicubic and every model (``visual_comparison``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from amls2.errors import ConfigError
from amls2.imaging import metrics


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


def _crop_row(fig, grid, k: int, box, images, hr, colour, *, scale: int, protocol: str) -> None:
    """Row ``k`` of ``visual_comparison``: the ``box`` crop of every image then of the HR, each
    with its PSNR / SSIM against the HR crop, the best in bold; frames in ``colour``."""
    row, col, size = box
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
        ax.imshow(np.clip(img[row : row + size, col : col + size], 0, 1), interpolation="nearest")
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
        _crop_row(fig, grid, k, (row, col, size), images, hr, colour, scale=scale,
                  protocol=protocol)  # fmt: skip
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
