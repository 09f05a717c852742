"""amls2.reporting.demo: the scripted flows on the embedded samples, with tiny models saved into a temporary
Selected_models folder (weights_dir)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from amls2 import config as amls2_config
from amls2.data import datasets, pairing, patches
from amls2.errors import ConfigError, MissingWeightsError, ModelError
from amls2.evaluation import scoring
from amls2.imaging import images, metrics
from amls2.inference import upscaler, weights
from amls2.reporting import demo, demo_training

CROP = 48  # HR px: a multiple of 2, 3 and 4


def save_tiny(weights_dir: Path, model: str, scale: int, track: str) -> Path:
    """A tiny untrained model saved as shipped weights <weights_dir>/<track>/<model>_x<s>.keras."""
    from amls2.models import build_model
    from amls2.models.io import save_model

    path = weights.shipped_weights_path(
        model, scale=scale, weights_set=track, weights_dir=weights_dir
    )
    net = build_model(model, scale, variant="tiny")
    return save_model(net, path, {"track": track, "scale": scale})


def write_history(path: Path) -> None:
    path.write_text(
        "epoch,step,loss,learning_rate,val_psnr,val_ssim\n1,10,0.1,0.001,25.0,0.80\n"
        "2,20,0.05,0.001,26.0,0.82\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """fd_srcnn (lr input) and srcnn (bicubic input) tiny models, bicubic x2 and unknown x2."""
    root = tmp_path_factory.mktemp("Selected_models")
    for track in ("bicubic", "unknown"):
        for model in ("fd_srcnn", "srcnn"):
            save_tiny(root, model, 2, track)
    write_history(
        weights.history_path("fd_srcnn", scale=2, weights_set="bicubic", weights_dir=root)
    )
    return root


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "nope"}, "mode"),
        ({"tracks": ("blurry",)}, "--track"),
        ({"scales": (5,)}, "--scale"),
        ({"crop": 4}, "--crop"),
        ({"limit": 0}, "--limit"),
        ({"models": ("nosuchnet",)}, "nosuchnet"),
        ({"datasets": ()}, "--dataset"),
    ],
)
def test_config_rejects_bad_options(options, message):
    with pytest.raises((ConfigError, ModelError), match=message):
        demo.DemoConfig(**options)


def test_config_round_trips_through_json(tmp_path):
    config = demo.DemoConfig(out_dir=tmp_path, scales=(2,), models=("fd_srcnn",), crop=None)
    path = amls2_config.save_config(config, tmp_path / "c.json")
    assert amls2_config.load_config(demo.DemoConfig, path) == config


# ----------------------------------------------------------------------------- weights


def test_models_for_adds_shipped_extras(tmp_path):
    save_tiny(tmp_path, "espcn", 2, "bicubic")
    config = demo.DemoConfig(weights_dir=tmp_path)
    assert demo.models_for(config, "bicubic") == [*demo.DEFAULT_MODELS, "espcn"]
    assert demo.models_for(config, "unknown") == list(demo.DEFAULT_MODELS)


def test_find_missing_lists_absent_weights_with_hints(weights_dir):
    config = demo.DemoConfig(weights_dir=weights_dir, models=("fd_srcnn", "rfdn"), scales=(2, 3))
    missing = {(m.track, m.model, m.scale): m for m in demo.find_missing(config)}
    assert set(missing) == {
        ("bicubic", "fd_srcnn", 3),
        ("bicubic", "rfdn", 2),
        ("bicubic", "rfdn", 3),
        ("unknown", "fd_srcnn", 3),
        ("unknown", "rfdn", 2),
        ("unknown", "rfdn", 3),
    }
    assert missing[("bicubic", "rfdn", 2)].hint == "amls2 train --recipe rfdn_x2"
    lines = weights.missing_summary(missing.values())
    assert len(lines) == 4  # one per track x model
    assert any(line.startswith("rfdn (bicubic) x2 x3:") for line in lines)


def test_load_upscaler_from_a_weights_dir_names_model_and_runs(weights_dir, rng):
    upscaler = weights.load_upscaler("srcnn", scale=2, track="bicubic", weights_dir=weights_dir)
    assert (upscaler.name, upscaler.input_kind, upscaler.scale) == ("srcnn", "bicubic", 2)
    sr = upscaler.upscale(rng.random((10, 12, 3), dtype=np.float32))
    assert sr.shape == (20, 24, 3) and sr.dtype == np.float32


def test_missing_weights_in_a_weights_dir_say_what_to_run(weights_dir):
    with pytest.raises(MissingWeightsError, match=r"rfdn_x4\.keras.*amls2 train --recipe rfdn_x4"):
        weights.load_upscaler("rfdn", scale=4, track="bicubic", weights_dir=weights_dir)


# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_centre_crop_pair_stays_aligned(scale):
    """Known answer: for the bicubic track the cropped LR equals the crop of the full LR, and
    the crop of the HR is centred on a multiple of the scale."""
    pair = pairing.load_pairs("samples", scale=scale, track="bicubic", limit=1)[0]
    crop = patches.centre_crop_pair(pair, 50, scale)
    size = 50 // scale * scale
    assert crop.hr.shape == (size, size, 3)
    assert crop.lr.shape == (size // scale, size // scale, 3)
    y = (pair.hr.shape[0] - size) // 2 // scale * scale
    x = (pair.hr.shape[1] - size) // 2 // scale * scale
    np.testing.assert_array_equal(crop.hr, pair.hr[y : y + size, x : x + size])
    np.testing.assert_array_equal(
        crop.lr, pair.lr[y // scale : (y + size) // scale, x // scale : (x + size) // scale]
    )


def test_demo_pairs_limit_and_crop():
    pairs = demo.demo_pairs("samples", scale=3, track="unknown", limit=2, crop=CROP)
    assert [p.name for p in pairs] == [p.stem for p in datasets.sample_paths()[:2]]
    assert all(p.hr.shape == (CROP, CROP, 3) and p.lr.shape == (16, 16, 3) for p in pairs)


def test_default_datasets_without_data_root(tmp_path):
    assert demo.default_datasets(tmp_path) == ("samples",)


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_upscalers_matches_metrics(weights_dir):
    pairs = demo.demo_pairs("samples", scale=2, track="bicubic", limit=2, crop=CROP)
    up = weights.load_upscaler("fd_srcnn", scale=2, track="bicubic", weights_dir=weights_dir)
    records, kept = scoring.evaluate_upscalers(
        [up], pairs, dataset="samples", scale=2, track="bicubic", keep=1
    )
    assert [r["model"] for r in records] == ["bicubic", "fd_srcnn"]
    assert set(kept) == {"bicubic", "fd_srcnn"}
    expected = metrics.evaluate_pair(
        upscaler.bicubic_baseline(pairs[1].lr, 2), pairs[1].hr, scale=2
    )
    np.testing.assert_allclose(kept["bicubic"], upscaler.bicubic_baseline(pairs[1].lr, 2))
    assert records[0]["images"][1]["psnr"] == pytest.approx(expected["psnr"])
    sr = up.upscale(pairs[0].lr)
    model_psnr = metrics.evaluate_pair(sr, pairs[0].hr, scale=2)["psnr"]
    assert records[1]["images"][0]["psnr"] == pytest.approx(model_psnr, abs=1e-6)
    assert records[1]["bicubic_psnr"] == pytest.approx(records[0]["psnr"])


def test_model_costs_skip_bicubic(weights_dir):
    from amls2.models.cost import count_params

    up = weights.load_upscaler("srcnn", scale=2, track="bicubic", weights_dir=weights_dir)
    bic = weights.load_upscaler("bicubic", scale=2)
    costs = demo.model_costs([bic, up])
    assert list(costs) == ["srcnn"]
    assert costs["srcnn"]["params"] == count_params(up.model)
    assert costs["srcnn"]["macs"] > 0


# ----------------------------------------------------------------------------- flows


def test_run_shipped_with_and_without_weights(weights_dir, tmp_path):
    config = demo.DemoConfig(
        out_dir=tmp_path / "out",
        scales=(2, 3),
        models=("fd_srcnn", "srcnn"),
        weights_dir=weights_dir,
        crop=CROP,
        limit=2,
    )
    result = demo.run(config)
    rows = {(r["track"], r["model"], r["scale"]) for r in result.records}
    # x2: bicubic + both models; x3: no weights -> bicubic only.
    assert rows == {
        (t, m, s)
        for t in ("bicubic", "unknown")
        for m, s in [("bicubic", 2), ("fd_srcnn", 2), ("srcnn", 2), ("bicubic", 3)]
    }
    assert {(m.track, m.model, m.scale) for m in result.missing} == {
        (t, m, 3) for t in ("bicubic", "unknown") for m in ("fd_srcnn", "srcnn")
    }
    out = config.out_dir
    for name in ("results.md", "results.json", "results.csv", demo.CONFIG_FILE):
        assert out / name in result.written and (out / name).is_file()
    for t in ("bicubic", "unknown"):
        for s in (2, 3):
            assert (out / "figures" / f"compare_{t}_x{s}.png").is_file()
    assert amls2_config.load_config(demo.DemoConfig, out / demo.CONFIG_FILE) == config
    saved = json.loads((out / "results.json").read_text())
    assert len(saved) == len(result.records)
    assert "fd_srcnn PSNR / SSIM" in (out / "results.md").read_text()


def test_render_demo_writes_reviewer_figures(weights_dir, tmp_path):
    config = demo.DemoConfig(
        mode="render",
        out_dir=tmp_path / "demo",
        tracks=("bicubic",),
        scales=(2,),
        models=("fd_srcnn", "srcnn"),
        weights_dir=weights_dir,
        crop=CROP,
        limit=1,
    )
    result = demo.run(config)
    names = {p.name for p in result.written}
    assert {
        "fd_srcnn_architecture.png",
        "results_table.png",
        "compare_bicubic_x2.png",
        "curves_bicubic_fd_srcnn_x2.png",
        "psnr_vs_cost_bicubic_x2.png",
    } <= names
    # srcnn has weights but no history CSV: noted, not drawn.
    assert "curves_bicubic_srcnn_x2.png" not in names
    assert any("no training history for srcnn" in n for n in result.notes)
    assert all(p.parent == config.out_dir for p in result.written)


def test_render_demo_without_any_weights(tmp_path):
    config = demo.DemoConfig(
        mode="render", out_dir=tmp_path / "d", scales=(4,), weights_dir=tmp_path / "none",
        crop=CROP, limit=1,
    )  # fmt: skip
    result = demo.run(config)
    assert {r["model"] for r in result.records} == {"bicubic"}
    assert len(result.missing) == 2 * len(demo.DEFAULT_MODELS)
    assert (config.out_dir / "fd_srcnn_architecture.png").is_file()
    assert not list(config.out_dir.glob("psnr_vs_cost_*"))


@pytest.mark.parametrize("track", ["bicubic", "unknown"])
def test_run_training_quick(tmp_path, track):
    config = demo.DemoConfig(
        mode="train",
        out_dir=tmp_path,
        tracks=(track,),
        scales=(2,),
        crop=CROP,
        limit=1,
        quick=True,
        steps=4,
    )
    result = demo.run(config)
    assert [r["model"] for r in result.records] == ["bicubic", "fd_srcnn"]
    run = f"fd_srcnn_x2_{track}"
    assert (tmp_path / "patches" / f"{track}_x2" / "manifest.json").is_file()
    assert (tmp_path / "runs" / run / "history.csv").is_file()
    assert (tmp_path / "figures" / f"curves_{run}.png").is_file()
    example = tmp_path / "examples" / f"{datasets.sample_paths()[0].stem}_{run}.png"
    assert images.read_image(example).shape == (CROP, CROP, 3)


# ----------------------------------------------------------------------------- helpers


def test_training_config_quick_and_full(tmp_path):
    quick = demo_training.training_config(
        "rfdn", scale=3, track="unknown", quick=True, out_dir=tmp_path
    )
    assert (quick.variant, quick.total_steps, quick.data.train_sets) == ("tiny", 20, ("samples",))
    assert quick.output_dir == tmp_path
    # Full: the model's training defaults (amls2 train --model NAME), 600 steps unless told.
    full = demo_training.training_config(
        "fd_srcnn", scale=3, track="bicubic", quick=False, out_dir=tmp_path
    )
    assert (full.scale, full.total_steps, full.init_from) == (3, 600, None)
    assert full.hparams == {"image_skip": "bicubic", "activation": "prelu"}
    assert (full.data.train_sets, full.data.val_sets, full.data.holdout) == (("T91",), (), 10)
    short = demo_training.training_config(
        "edsr", scale=2, track="unknown", quick=False, out_dir=tmp_path, steps=50
    )
    assert short.total_steps == 50 and short.track == "unknown"


def test_architecture_figure_draws_the_shipped_model_and_says_so(tmp_path):
    """The shipped FD-SRCNN (PReLU, image skip, zero-started head), not the seed's default;
    without shipped weights the title says it shows the builder's defaults."""
    shipped = demo.architecture_figure("fd_srcnn", 2)
    title = shipped.axes[0].get_title() or shipped.texts[0].get_text()
    assert "as shipped" in title and "image_skip=bicubic" in title
    default = demo.architecture_figure("fd_srcnn", 2, weights_dir=tmp_path)
    assert "builder defaults" in (default.axes[0].get_title() or default.texts[0].get_text())
