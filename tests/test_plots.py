"""Tests of amls2.reporting.plots: every figure function returns a Figure and saves a non-empty PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from amls2.errors import ConfigError
from amls2.reporting import plots


def _record(model, dataset, scale, psnr, ssim, track="bicubic"):
    images = [
        {
            "name": f"img{i}",
            "psnr": psnr + d,
            "ssim": ssim,
            "bicubic_psnr": 30.0 + d / 2,
            "bicubic_ssim": 0.9,
        }
        for i, d in enumerate((-0.5, 0.0, 0.5))
    ]
    return {
        "model": model,
        "dataset": dataset,
        "scale": scale,
        "track": track,
        "protocol": "y",
        "psnr": psnr,
        "ssim": ssim,
        "bicubic_psnr": 30.0,
        "bicubic_ssim": 0.9,
        "seconds": 0.1,
        "images": images,
    }


RECORDS = [
    _record(m, d, s, p + (s == 2), 0.9)
    for m, p in (("bicubic", 30.0), ("fsrcnn", 31.0), ("rfdn", 31.5))
    for d in ("Set5", "Set14")
    for s in (2, 4)
]


def _saved(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    path = plots.save_figure(fig, tmp_path / name)
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_results_table_highlights_the_best_model_per_row(tmp_path):
    fig = plots.results_table(RECORDS)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "PSNR (dB) / SSIM"
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    # 4 rows (dataset x scale) + header; rfdn (column 2) is the best everywhere.
    assert cells[(1, 2)].get_facecolor()[:3] != cells[(1, 0)].get_facecolor()[:3]
    assert cells[(1, 2)].get_text().get_text() == "32.50 / 0.9000"
    _saved(fig, tmp_path, "table.png")


def test_most_informative_region_finds_the_improved_patch():
    hr = np.zeros((40, 50, 3), np.float32)
    baseline = hr + 0.1
    best = baseline.copy()
    best[20:28, 30:38] = 0.0  # the model fixes exactly this patch
    assert plots.most_informative_region(hr, size=8, best=best, baseline=baseline) == (20, 30)
    hr2 = np.zeros((40, 50, 3), np.float32)
    hr2[5:9, 10:14] = 1.0  # the only edges
    row, col = plots.most_informative_region(hr2, size=6)
    assert 3 <= row <= 5 and 8 <= col <= 10


def test_visual_comparison_panels_titles_and_scores(tmp_path, rng):
    hr = rng.random((48, 48, 3)).astype(np.float32)
    panels = {"bicubic": np.clip(hr + 0.05, 0, 1), "model": np.clip(hr + 0.01, 0, 1)}
    fig = plots.visual_comparison(hr, panels, scale=2, crop=16)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["HR", "bicubic", "model"]
    assert fig.axes[5].get_xlabel().endswith(tuple("0123456789"))
    assert "dB" in fig.axes[4].get_xlabel()
    _saved(fig, tmp_path, "visual.png")


def test_visual_comparison_rejects_a_panel_of_the_wrong_size(rng):
    from amls2.errors import ConfigError

    hr = rng.random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="panel 'x'"):
        plots.visual_comparison(hr, {"x": hr[:8]}, scale=2)


def test_training_curves_from_history_csv(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = ["epoch,loss,lr,val_psnr,val_ssim"]
    lines += [f"{e},{1 / (e + 1)},{1e-3 * 0.5**e},{30 + e},{0.8 + e / 100}" for e in range(5)]
    (run / "history.csv").write_text("\n".join(lines) + "\n")
    fig = plots.training_curves(run)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["loss", "learning rate", "validation"]
    assert len(fig.axes) == 4  # + the SSIM twin axis
    legend = fig.axes[2].get_legend()  # PSNR and SSIM share one legend
    assert [t.get_text() for t in legend.get_texts()] == ["val PSNR", "val SSIM"]
    assert fig.get_layout_engine() is not None  # constrained: titles and labels do not overlap
    _saved(fig, tmp_path, "curves.png")


def test_training_curves_from_an_engine_history_file(tmp_path):
    """The engine's columns (``learning_rate``) and a shipped ``<model>_x<s>.history.csv``."""
    path = tmp_path / "edsr_x2.history.csv"
    lines = ["epoch,step,loss,learning_rate,val_psnr,val_ssim"]
    lines += [
        f"{e},{e * 10},{1 / (e + 1)},{1e-3 * 0.5**e},{30 + e},{0.8 + e / 100}" for e in range(4)
    ]
    path.write_text("\n".join(lines) + "\n")
    fig = plots.training_curves(path)
    lr_axis = fig.axes[1]
    assert lr_axis.get_title() == "learning rate"
    np.testing.assert_allclose(lr_axis.lines[0].get_ydata(), [1e-3 * 0.5**e for e in range(4)])


def test_training_curves_missing_history_is_a_clear_error(tmp_path):
    from amls2.errors import Amls2Error

    with pytest.raises(Amls2Error, match="history.csv"):
        plots.training_curves(tmp_path)


def test_psnr_vs_cost_and_gain(tmp_path):
    costs = {"fsrcnn": {"macs": 2e9, "params": 12e3}, "rfdn": {"macs": 8e9, "params": 400e3}}
    fig = plots.psnr_vs_cost(RECORDS, costs, dataset="Set5", scale=2)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["PSNR vs macs", "PSNR vs params"]
    _saved(fig, tmp_path, "cost.png")
    gain = plots.psnr_gain(RECORDS[-1])
    bars = gain.axes[0].patches
    assert len(bars) == 3
    assert sorted(round(b.get_height(), 3) for b in bars) == [1.25, 1.5, 1.75]
    _saved(gain, tmp_path, "gain.png")


def test_psnr_vs_time_draws_a_point_per_model_and_a_line_per_baseline(tmp_path):
    rows = [
        {"weights_set": ws, "model": m, "scale": 2, "psnr": p, "ms_per_image": t}
        for ws, m, p, t in [
            ("bicubic", "bicubic", 33.7, 1.2),
            ("bicubic", "edsr", 37.4, 28.0),
            ("bicubic", "espcn", 37.0, 2.6),
            ("track2sim", "bicubic", 27.7, 1.2),
            ("track2sim", "edsr", 29.7, 28.0),
        ]
    ]
    fig = plots.psnr_vs_time(rows, dataset="Set5", scale=2)
    ax = fig.axes[0]
    assert len(ax.lines) == 2  # one bicubic line per weight set
    points = [c for c in ax.collections if len(c.get_offsets())]
    assert sorted(float(c.get_offsets()[0][0]) for c in points) == [2.6, 28.0, 28.0]
    assert ax.get_xscale() == "log"
    _saved(fig, tmp_path, "time.png")
    with pytest.raises(ConfigError):
        plots.psnr_vs_time([], dataset="Set5", scale=2)


def test_architecture_diagram_walks_the_graph(tmp_path):
    keras = pytest.importorskip("keras")
    inp = keras.Input((None, None, 3), name="lr")
    x = keras.layers.Conv2D(8, 5, padding="same", activation="relu", name="c1")(inp)
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
    y = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(y)
    out = keras.layers.Add(name="add")([x, y])
    model = keras.Model(inp, out, name="toy")
    names, edges = plots._layer_edges(model)
    assert names == ["lr", "c1", "c2", "up", "add"]
    assert set(edges) == {("lr", "c1"), ("c1", "c2"), ("c2", "up"), ("up", "add"), ("c1", "add")}
    fig = plots.architecture_diagram(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "Conv2D 5x5 8 relu" in texts and "Conv2D 3x3 8 /2x2" in texts
    assert fig.axes[0].get_title() == "toy"
    _saved(fig, tmp_path, "arch.png")


def test_robustness_sweep_one_panel_per_family_with_the_trained_range_shaded(tmp_path):
    rows = [
        {"family": "blur", "value": v, "in_training_range": v <= 2, "a": 1.0, "b": 0.5}
        for v in (0.5, 2.0, 3.0)
    ] + [{"family": "noise", "value": 5, "in_training_range": True, "a": 0.2, "b": -0.1}]
    fig = plots.robustness_sweep(rows, ["a", "b"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["blur", "noise"]
    assert len(visible[0].lines) == 3  # two models and the bicubic line
    assert len(visible[0].patches) == 2  # the two in-range blur cases are shaded
    assert visible[0].get_legend() is not None
    assert plots.save_figure(fig, tmp_path / "sweep.png").is_file()
