"""The notebooks' own figures: the estimated Track 2 operators' kernels and the per-image gain
over bicubic of several models in one grouped chart (figure code: this module, ``plots``,
``comparison``, ``diagrams``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from amls2.errors import ConfigError
from amls2.reporting.figure_helpers import track_label


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
