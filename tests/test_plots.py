"""Tests of amls2.reporting.plots: every figure function returns a Figure and saves a non-empty PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from amls2.errors import ConfigError
from amls2.reporting import comparison, diagrams, figure_helpers, notebook_figures, plots


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
    path = figure_helpers.save_figure(fig, tmp_path / name)
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def _assert_readable(fig):
    """No two drawn text labels overlap (window extents after a draw)."""
    assert figure_helpers.overlapping_labels(fig) == []


def test_overlap_check_catches_two_labels_on_top_of_each_other():
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "first label")
    assert figure_helpers.overlapping_labels(fig) == []
    ax.text(0.52, 0.51, "second label")
    assert figure_helpers.overlapping_labels(fig) == [("first label", "second label")]


def test_overlap_check_ignores_tick_labels_outside_the_view():
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_xlim(0.2, 0.25)  # the 0, 0.5, 1 labels exist but are not drawn
    drawn = {t.get_text() for t in figure_helpers._drawn_texts(fig)}
    assert "1.0" not in drawn
    _assert_readable(fig)


def test_results_table_rows_scale_model_columns_cost_and_tracks(tmp_path):
    records = [dict(r) for r in RECORDS] + [
        {**_record(m, "Track2sim", s, p, 0.8), "track": "unknown", "weights_set": "track2sim"}
        for m, p in (("bicubic", 27.0), ("rfdn", 28.0))
        for s in (2, 4)
    ]
    costs = {("rfdn", 2): {"params": 400e3, "macs": 8e9}, ("fsrcnn", 2): {"params": 12e3}}
    fig = plots.results_table(records, costs=costs)
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    header = [cells[(0, j)].get_text().get_text() for j in range(7)]
    assert header[:4] == ["x", "model", "params (K)", "MACs (G)"]
    assert header[4:] == [
        "Track 1\n(bicubic)\nSet5",
        "Track 1\n(bicubic)\nSet14",
        "Track 2\n(Track2sim operator)\nTrack2sim",
    ]
    rows = [[cells[(i, j)].get_text().get_text() for j in range(7)] for i in range(1, 7)]
    assert [r[:2] for r in rows[:3]] == [
        ["x2", "bicubic interp."],
        ["x2", "fsrcnn"],
        ["x2", "rfdn"],
    ]
    assert rows[2][2:4] == ["400.0", "8.0"] and rows[1][2:4] == ["12.0", "-"]
    assert rows[2][4] == "32.50 / 0.9000" and rows[1][6] == "-"
    best = cells[(3, 4)]  # rfdn, the best on Set5 x2
    assert best.get_text().get_fontweight() == "bold"
    assert cells[(2, 4)].get_text().get_fontweight() != "bold"
    _assert_readable(fig)
    _saved(fig, tmp_path, "table.png")


def test_most_informative_region_finds_the_improved_patch():
    hr = np.zeros((40, 50, 3), np.float32)
    baseline = hr + 0.1
    best = baseline.copy()
    best[20:28, 30:38] = 0.0  # the model fixes exactly this patch
    assert comparison.most_informative_region(hr, size=8, best=best, baseline=baseline) == (20, 30)
    hr2 = np.zeros((40, 50, 3), np.float32)
    hr2[5:9, 10:14] = 1.0  # the only edges
    row, col = comparison.most_informative_region(hr2, size=6)
    assert 3 <= row <= 5 and 8 <= col <= 10


def test_visual_comparison_one_hr_then_crops_scored_per_crop(tmp_path, rng):
    from amls2.imaging import metrics

    hr = rng.random((48, 48, 3)).astype(np.float32)
    lr = hr[::2, ::2]
    panels = {
        "fd_srcnn": np.clip(hr + 0.01, 0, 1),
        "bicubic": np.clip(hr + 0.05, 0, 1),
        "linear": np.clip(hr + 0.03, 0, 1),
    }
    fig = comparison.visual_comparison(
        hr, panels, scale=2, lr=lr, regions=[(4, 6, 16), (28, 28, 16)]
    )
    axes = fig.axes
    # One HR overview, then two rows of LR, bicubic, linear, the model and the HR crop.
    assert len(axes) == 1 + 2 * 5
    assert axes[0].get_title() == "HR (ground truth)" and len(axes[0].patches) == 2
    assert [ax.get_title() for ax in axes[1:6]] == [
        "LR (nearest)", "bicubic", "linear", "fd_srcnn", "HR",
    ]  # fmt: skip
    crop_score = metrics.evaluate_pair(panels["fd_srcnn"][28:44, 28:44], hr[28:44, 28:44], scale=2)
    label = axes[9].xaxis.label
    assert label.get_text() == f"{crop_score['psnr']:.2f} / {crop_score['ssim']:.3f}"
    assert label.get_fontweight() == "bold"  # the best of its row
    assert axes[7].xaxis.label.get_fontweight() == "normal"
    assert "of each crop" in fig.get_suptitle()
    _assert_readable(fig)
    _saved(fig, tmp_path, "visual.png")


def test_visual_comparison_default_crops_do_not_overlap(rng):
    hr = rng.random((64, 64, 3)).astype(np.float32)
    panels = {"bicubic": np.clip(hr + 0.05, 0, 1), "model": np.clip(hr + 0.01, 0, 1)}
    fig = comparison.visual_comparison(hr, panels, scale=2, crop=16, crops=2)
    (a, b) = [(p.get_x(), p.get_y()) for p in fig.axes[0].patches]
    assert abs(a[0] - b[0]) >= 16 or abs(a[1] - b[1]) >= 16
    _assert_readable(fig)


def test_informative_regions_are_best_first_and_disjoint():
    hr = np.zeros((40, 50, 3), np.float32)
    baseline = hr + 0.1
    best = baseline.copy()
    best[20:28, 30:38] = 0.0
    best[2:8, 2:8] = 0.0  # a smaller second improvement
    found = comparison.informative_regions(hr, size=8, count=2, best=best, baseline=baseline)
    assert found[0] == (20, 30)
    assert abs(found[1][0] - 20) >= 8 or abs(found[1][1] - 30) >= 8


def test_visual_comparison_rejects_a_panel_of_the_wrong_size(rng):
    from amls2.errors import ConfigError

    hr = rng.random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="panel 'x'"):
        comparison.visual_comparison(hr, {"x": hr[:8]}, scale=2)


def test_training_curves_from_history_csv(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = ["epoch,loss,lr,val_psnr,val_ssim"]
    lines += [f"{e},{1 / (e + 1)},{1e-3 * 0.5**e},{30 + e},{0.8 + e / 100}" for e in range(5)]
    (run / "history.csv").write_text("\n".join(lines) + "\n")
    fig = plots.training_curves(run, val_set="Set5")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["training loss", "learning rate", "validation on Set5"]
    assert fig.axes[0].get_xlabel() == "epoch"  # no step column
    assert len(fig.axes) == 4  # + the SSIM twin axis
    legend = fig.axes[2].get_legend()  # PSNR and SSIM share one legend
    assert [t.get_text() for t in legend.get_texts()] == ["val PSNR", "val SSIM"]
    _assert_readable(fig)
    _saved(fig, tmp_path, "curves.png")


def test_training_curves_in_steps_with_checkpoint_bicubic_and_one_epoch(tmp_path):
    path = tmp_path / "edsr_x2.history.csv"
    lines = ["epoch,step,loss,learning_rate,val_psnr,val_ssim"]
    lines += [
        f"{e},{e * 500},{0.02 / (e + 1)},{1e-3 * 0.5**e},{30 + e},{0.8 + e / 100}"
        for e in range(1, 5)
    ]
    path.write_text("\n".join(lines) + "\n")
    fig = plots.training_curves(path, val_set="Set5", chosen_epoch=3, bicubic_psnr=29.5)
    loss, lr_axis, val = fig.axes[:3]
    assert loss.get_xlabel() == "training step"
    np.testing.assert_allclose(lr_axis.lines[0].get_xdata(), [500, 1000, 1500, 2000])
    np.testing.assert_allclose(lr_axis.lines[0].get_ydata(), [1e-3 * 0.5**e for e in range(1, 5)])
    assert all(line.get_marker() == "o" for line in loss.lines[:1] + val.lines[:1])
    labels = [t.get_text() for t in val.get_legend().get_texts()]
    assert "bicubic interp. 29.50 dB" in labels and "kept checkpoint (step 1500)" in labels
    # Loss ticks are plain numbers, not 2x10^-2.
    _ = figure_helpers.overlapping_labels(fig)
    ticks = [t.get_text() for t in loss.get_yticklabels() if t.get_text()]
    assert ticks and not any("10^" in t or "times" in t for t in ticks)
    _assert_readable(fig)
    one = tmp_path / "one.history.csv"
    one.write_text("epoch,step,loss,learning_rate,val_psnr,val_ssim\n1,600,0.04,1e-5,26.9,0.75\n")
    fig = plots.training_curves(one)
    assert fig.axes[2].lines[0].get_marker() == "o"  # a single point still shows
    _assert_readable(fig)


def test_training_curves_missing_history_is_a_clear_error(tmp_path):
    from amls2.errors import Amls2Error

    with pytest.raises(Amls2Error, match="history.csv"):
        plots.training_curves(tmp_path)


COSTS = {
    "fsrcnn": {"macs": 2e9, "params": 12e3},
    "rfdn": {"macs": 8e9, "params": 400e3},
    "fd_srcnn": {"macs": 9e9, "params": 420e3},
    "iud_srcnn": {"macs": 9.5e9, "params": 430e3},
}


def test_psnr_vs_cost_published_points_pareto_and_readable_labels(tmp_path):
    records = [
        _record(m, "Set5", 2, p, 0.9)
        for m, p in [
            ("bicubic", 28.0),
            ("fsrcnn", 32.0),
            ("rfdn", 32.5),
            ("fd_srcnn", 31.9),
            ("iud_srcnn", 31.95),
        ]
    ]
    fig = plots.psnr_vs_cost(records, COSTS, dataset="Set5", scale=2, track="bicubic")
    assert "Track 1 (bicubic)" in fig.get_suptitle() and "Set5 x2" in fig.get_suptitle()
    macs_axis = fig.axes[0]
    texts = {t.get_text() for t in macs_axis.texts}
    assert set(plots.PUBLISHED_SET5) <= texts and {"rfdn", "fd_srcnn", "iud_srcnn"} <= texts
    # The y range fits the models and the published points, not the bicubic baseline (28.0).
    lo, hi = macs_axis.get_ylim()
    assert 28.0 < lo < 31.9 and hi > 38.0
    assert any("below this axis" in t for t in texts)
    legend = fig.legends[0]
    assert any("CARN" in t.get_text() for t in legend.get_texts())
    ticks = [t.get_text() for t in macs_axis.get_xticklabels() if t.get_text()]
    _ = figure_helpers.overlapping_labels(fig)
    ticks = [t.get_text() for t in macs_axis.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 3
    _assert_readable(fig)
    _saved(fig, tmp_path, "cost.png")


# The shipped Track2sim x4 models (PSNR dB; multiply-adds per 720p output; parameters): with
# one adjustText pass the labels of post_srcnn@track2sim and fd_srcnn@track2sim stayed on top
# of each other at the right edge of the parameters panel.
TRACK2SIM_X4 = {
    "linear@track2sim": (27.20, 0.7e9, 11664),
    "srcnn@track2sim": (27.67, 63.7e9, 126947),
    "post_srcnn@track2sim": (28.21, 16.3e9, 257395),
    "iud_srcnn@track2sim": (28.21, 32.6e9, 514790),
    "fd_srcnn@track2sim": (28.11, 180.4e9, 1325634),
    "espcn@track2sim": (28.15, 1.6e9, 28352),
    "edsr@track2sim": (28.67, 21.2e9, 244627),
}


def test_psnr_vs_cost_keeps_long_labels_of_close_points_apart():
    records = [_record("bicubic", "Track2sim", 4, 25.16, 0.6)] + [
        _record(name, "Track2sim", 4, psnr, 0.8) for name, (psnr, _, _) in TRACK2SIM_X4.items()
    ]
    costs = {name: {"macs": m, "params": p} for name, (_, m, p) in TRACK2SIM_X4.items()}
    fig = plots.psnr_vs_cost(
        records, costs, dataset="Track2sim", scale=4, track="track2sim", published=False
    )
    assert "Track2sim operator" in fig.get_suptitle()
    assert figure_helpers.overlapping_labels(fig) == []


def test_psnr_vs_cost_without_published_points_off_set5(tmp_path):
    fig = plots.psnr_vs_cost(RECORDS, COSTS, dataset="Set14", scale=4, track="unknown")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert not set(plots.PUBLISHED_SET5) & texts
    assert "Track 2 (unknown, blind models)" in fig.get_suptitle()
    _assert_readable(fig)


def test_pareto_front_keeps_only_undominated_points():
    points = [(1, 30.0), (2, 29.0), (3, 31.0), (4, 31.0), (5, 32.0)]
    assert plots.pareto_front(points) == [(1, 30.0), (3, 31.0), (5, 32.0)]


def test_psnr_gain_bars(tmp_path):
    gain = plots.psnr_gain(RECORDS[-1])
    bars = gain.axes[0].patches
    assert len(bars) == 3
    assert sorted(round(b.get_height(), 3) for b in bars) == [1.25, 1.5, 1.75]
    _assert_readable(gain)
    _saved(gain, tmp_path, "gain.png")


def test_psnr_vs_time_one_axis_per_dataset(tmp_path):
    rows = [
        {"weights_set": ws, "dataset": d, "model": m, "scale": 2, "psnr": p, "ms_per_image": t}
        for ws, d, m, p, t in [
            ("bicubic", "Set5", "bicubic", 33.7, 1.2),
            ("bicubic", "Set5", "edsr", 37.4, 28.0),
            ("bicubic", "Set5", "espcn", 37.0, 2.6),
            ("bicubic", "Set5", "fsrcnn", 37.05, 2.8),
            ("track2sim", "Track2sim", "bicubic", 27.7, 1.2),
            ("track2sim", "Track2sim", "edsr", 29.7, 28.0),
        ]
    ]
    fig = plots.psnr_vs_time(
        rows, dataset="Set5", scale=2, cpu="CPU: test", image_sizes={"Set5": "HR 256-512 px"}
    )
    top, bottom = fig.axes
    assert "Set5, HR 256-512 px" in top.get_title() and "Track2sim" in bottom.get_title()
    assert "CPU: test" in fig.get_suptitle()
    assert sorted(float(x) for x in top.collections[0].get_offsets()[:, 0]) == [2.6, 2.8, 28.0]
    assert top.get_ylim()[0] > 33.7  # fitted to the models; bicubic noted below the axis
    assert top.get_xscale() == "log"
    _assert_readable(fig)
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
    names, edges = diagrams._layer_edges(model)
    assert names == ["lr", "c1", "c2", "up", "add"]
    assert set(edges) == {("lr", "c1"), ("c1", "c2"), ("c2", "up"), ("up", "add"), ("c1", "add")}
    fig = diagrams.architecture_diagram(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "Conv2D 5x5 8 relu" in texts and "Conv2D 3x3 8 /2x2" in texts
    assert fig.axes[0].get_title() == "toy"
    _assert_readable(fig)
    _saved(fig, tmp_path, "arch.png")


@pytest.mark.parametrize(
    ("scale", "hparams", "modules"),
    [(2, {}, 1), (3, {"n_series": 2, "width": 16}, 1), (4, {"image_skip": "bicubic"}, 2)],
)
def test_fd_srcnn_diagram_follows_the_model_config(tmp_path, scale, hparams, modules):
    pytest.importorskip("keras")
    from amls2.models import build_model

    model = build_model("fd_srcnn", scale, **hparams)
    layout = diagrams.fd_srcnn_layout(model)
    series = hparams.get("n_series", 3)
    assert layout["n_modules"] == modules and layout["n_series"] == series
    assert layout["scale"] == scale and layout["width"] == hparams.get("width", 64)
    fig = diagrams.fd_srcnn_diagram(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("conv block" in t for t in texts) == modules * series
    assert sum(t.startswith("max-pool") for t in texts) == modules * (series - 1)
    assert any(t.startswith(f"x{scale} output") and f"{scale}H×{scale}W×3" in t for t in texts)
    assert any("global shortcut" in t for t in texts)
    assert ("carried shortcut" in " ".join(texts)) == (modules == 2)
    _assert_readable(fig)
    _saved(fig, tmp_path, "fd.png")


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
    _assert_readable(fig)
    assert figure_helpers.save_figure(fig, tmp_path / "sweep.png").is_file()


@pytest.mark.parametrize("scales", [(2,), (2, 3, 4)])
def test_operator_kernels_draws_each_scale_readably(scales, tmp_path):
    from amls2.data.degradations import make_kernel
    from amls2.data.operator import operator_from_kernel

    ops = [
        operator_from_kernel(make_kernel(1.0 * s, 0.6 * s, 30.0, size=4 * s + 3), s) for s in scales
    ]
    fig = notebook_figures.operator_kernels(ops, title="Track2sim operator kernels")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(scales)
    # The titles state each kernel's size and its offset from bicubic's grid (0 for a centred
    # kernel at odd scales).
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith(f"x{scales[0]}: {4 * scales[0] + 3}x{4 * scales[0] + 3}")
    _assert_readable(fig)
    _saved(fig, tmp_path, "kernels.png")


def test_operator_kernels_needs_an_operator():
    with pytest.raises(ConfigError):
        notebook_figures.operator_kernels([])


@pytest.mark.parametrize("n_models", [1, 3])
def test_psnr_gain_grouped_is_one_readable_chart(n_models, tmp_path):
    records = [_record(f"model{i}", "Set5", 2, 31.0 + i, 0.9) for i in range(n_models)]
    fig = notebook_figures.psnr_gain_grouped([RECORDS[0], *records])
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * n_models  # three images, one bar per model each
    assert "Set5 x2" in ax.get_title()
    _assert_readable(fig)
    _saved(fig, tmp_path, "gain.png")
