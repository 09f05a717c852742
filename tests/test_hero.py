"""The README's hero figure: the crop PSNR under each panel, the best in bold, readable labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from amls2.errors import ConfigError
from amls2.reporting import demo, hero


def grey(value: int, shape=(40, 48)) -> np.ndarray:
    return np.full((*shape, 3), value / 255.0, dtype=np.float32)


@pytest.mark.parametrize("levels", [1, 2, 5])
def test_crop_psnr_of_a_uniform_grey_offset(levels):
    """``levels`` grey levels in RGB are ``levels * 219 / 255`` in BT.601 Y."""
    expected = 20 * math.log10(255.0 / (levels * 219.0 / 255.0))
    got = hero.crop_psnr(grey(100 + levels), grey(100), (4, 6, 16))
    assert got == pytest.approx(expected, abs=1e-9)


def test_crop_psnr_only_sees_the_crop():
    hr = grey(100)
    sr = hr.copy()
    sr[:10] = 0.0  # wrong outside the box only
    assert hero.crop_psnr(sr, hr, (20, 10, 16)) == math.inf
    assert hero.crop_psnr(sr, hr, (0, 10, 16)) < 20


def text_boxes(fig):
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontweight"))
        if t.get_visible() and t.get_text()
    ]


def hero_examples(rows: int):
    rng = np.random.default_rng(0)
    examples = []
    for i in range(rows):
        hr = rng.random((48, 64, 3)).astype(np.float32)
        outputs = {
            "bicubic": np.clip(hr + 0.10, 0, 1),
            "linear": np.clip(hr + 0.05, 0, 1),
            "edsr": np.clip(hr + 0.02, 0, 1),
        }
        examples.append((f"image{i}", hr, outputs, (8, 12, 24)))
    return examples


def captions(fig) -> list:
    """The text under each crop (the x labels of the axes)."""
    return [ax.xaxis.label for ax in fig.axes if ax.xaxis.label.get_text()]


@pytest.mark.parametrize("rows", [1, 2])
def test_hero_marks_the_best_crop_and_no_labels_overlap(rows):
    examples = hero_examples(rows)
    fig = hero.plot_hero(examples, title="bicubic track x4, Set5")
    bold = [t.get_text() for t in captions(fig) if t.get_fontweight() == "bold"]
    # One best crop per row: edsr's, the smallest error.
    expected = [f"{hero.crop_psnr(out['edsr'], hr, box):.2f} dB" for _, hr, out, box in examples]
    assert bold == expected
    boxes = text_boxes(fig)
    assert sum(text == "crop PSNR (dB)" for text, _ in boxes) == rows
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1 :]:
            assert not a.overlaps(b), (text_a, text_b)


def test_hero_refuses_mismatched_outputs_and_no_examples():
    (name, hr, outputs, box) = hero_examples(1)[0]
    with pytest.raises(ConfigError, match="linear"):
        hero.plot_hero([(name, hr, {**outputs, "linear": hr[:-2]}, box)], title="t")
    with pytest.raises(ConfigError, match="at least one"):
        hero.plot_hero([], title="t")


def test_without_data_the_hero_shows_a_bundled_photo(tmp_path):
    """No Set5/Set14 under the data root and no shipped weights: bicubic on the first sample."""
    config = demo.DemoConfig(
        mode="render",
        out_dir=tmp_path / "demo",
        datasets=("samples",),
        data_dir=tmp_path / "no-data",
        weights_dir=tmp_path / "no-weights",
    )
    [(dataset, pair)] = hero.hero_pairs(config)
    assert dataset == "samples"
    fig = hero.hero_figure(config)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1:3] == ["HR", "bicubic"] and "x4" in fig.get_suptitle()
