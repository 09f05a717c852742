"""The README's hero figure (``hero.png``): for an image of each benchmark set, the zoomed box where
the best shipped model gains most over bicubic, with the PSNR of each crop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from amls2.data import datasets, pairing
from amls2.errors import ConfigError, MissingWeightsError
from amls2.evaluation.scoring import dataset_label
from amls2.imaging import metrics
from amls2.inference import weights
from amls2.reporting.comparison import most_informative_region
from amls2.reporting.demo_config import DemoConfig


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


# The README's hero figure: an image where models differ visibly from each benchmark set.
HERO_IMAGES: tuple[tuple[str, str], ...] = (("Set5", "butterfly"), ("Set14", "ppt3"))


HERO_SCALE = 4


HERO_TRACK = "bicubic"


HERO_CROP = 64  # HR px of the zoomed box (at most a third of the image's shorter side)


HERO_FILE = "hero.png"


def best_shipped_model(weights_set: str, scale: int, dataset: str, weights_dir=None) -> str | None:
    """The model of ``weights_set`` with the highest shipped ``dataset`` PSNR at ``scale``, from
    the sidecars (None when nothing is shipped there)."""
    from amls2.evaluation.shipped_index import shipped_sidecars

    scored = [
        (row["validation"][dataset]["psnr"], row["name"])
        for row in shipped_sidecars(weights.weights_root(weights_dir))
        if row["weights_set"] == weights_set
        and row.get("scale") == scale
        and dataset in row.get("validation", {})
    ]
    return max(scored)[1] if scored else None


def hero_pairs(config: DemoConfig) -> list:
    """The hero figure's pairs: ``HERO_IMAGES`` found under the data root, else the first image
    of the first configured dataset (the bundled photos without data)."""
    found = []
    for dataset, image in HERO_IMAGES:
        if datasets.dataset_status(dataset, config.data_dir).present:
            pairs = pairing.load_pairs(
                dataset, scale=HERO_SCALE, track=HERO_TRACK, data_dir=config.data_dir
            )
            found += [(dataset, p) for p in pairs if p.name == image]
    if found:
        return found
    first = config.datasets[0]
    pairs = pairing.load_pairs(
        first, scale=HERO_SCALE, track=HERO_TRACK, data_dir=config.data_dir, limit=1
    )
    return [(dataset_label(first), pairs[0])]


def hero_figure(config: DemoConfig):
    """``plot_hero`` at x``HERO_SCALE`` on the bicubic track: for each ``hero_pairs`` image,
    bicubic, the ``linear`` baseline when it is shipped, and the shipped model with the best Set5
    PSNR, zoomed on the box where that model gains most over bicubic."""
    names = ["bicubic"]
    shipped = weights.shipped_models(HERO_TRACK, weights_dir=config.weights_dir)
    if "linear" in shipped:
        names.append("linear")
    best = best_shipped_model(HERO_TRACK, HERO_SCALE, "Set5", config.weights_dir)
    if best is None and shipped:
        best = shipped[-1]
    if best is not None and best not in names:
        names.append(best)
    upscalers = []
    for name in names:
        try:
            upscalers.append(weights.load_upscaler(name, scale=HERO_SCALE, track=HERO_TRACK,
                                                   weights_dir=config.weights_dir))  # fmt: skip
        except MissingWeightsError:
            continue  # not shipped at the hero's scale
    names = [u.name for u in upscalers]
    examples, sources = [], []
    for dataset, pair in hero_pairs(config):
        outputs = {u.name: u.upscale(pair.lr) for u in upscalers}
        size = min(HERO_CROP, min(pair.hr.shape[:2]) // 3)
        row, col = most_informative_region(
            pair.hr, size=size, best=outputs[names[-1]], baseline=outputs["bicubic"]
        )
        examples.append((f"{pair.name} ({dataset})", pair.hr, outputs, (row, col, size)))
        sources.append(dataset)
    title = (
        f"{HERO_TRACK} track x{HERO_SCALE}, {' and '.join(dict.fromkeys(sources))}: "
        "zoomed crops, PSNR of each crop (Y)"
    )
    return plot_hero(examples, title=title)
