"""Tests of amls2.training: outputs, resume after SIGKILL, divergence, determinism, early
stopping, distillation, fine-tuning, configs, recipes and the ``amls2 train`` options.

All runs are tiny (espcn "tiny", 16 px patches, a few dozen steps) on synthetic PNG images.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from amls2.errors import ConfigError
from amls2.evaluation import scoring
from amls2.training import (
    DataConfig,
    DistillConfig,
    OptimConfig,
    TrainConfig,
    engine,
    model_setup,
    result,
    train,
)
from amls2.training import config as train_config


def write_synthetic_set(folder: Path, count: int, shape, seed: int) -> Path:
    """Smooth random colour images (bicubic-enlarged noise) as PNGs."""
    from amls2.imaging import images, resize

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((shape[0] // 8, shape[1] // 8, 3))
        img = np.clip(resize.imresize(small, output_shape=shape), 0, 1)
        images.write_image(folder / f"img{i}.png", img)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic_set(root / "train", 4, (48, 40), seed=0)
    write_synthetic_set(root / "val", 2, (24, 24), seed=1)
    return root


def tiny_config(data: Path, out_dir: Path, **overrides) -> TrainConfig:
    config = TrainConfig(
        model="espcn",
        variant="tiny",
        scale=2,
        data=DataConfig(
            train_sets=(str(data / "train"),),
            val_sets=(str(data / "val"),),
            patch_size=16,
            batch_size=4,
        ),
        optim=OptimConfig(learning_rate=1e-3),
        epochs=2,
        steps_per_epoch=6,
        steps_per_execution=3,
        checkpoint_every=6,
        out_dir=str(out_dir),
        precision="float32",  # exact comparisons below; "auto" would differ between CPUs
    )
    return dataclasses.replace(config, **overrides)


def weights_of(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def assert_same_weights(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def test_tiny_run_writes_every_output(data, tmp_path):
    config = tiny_config(data, tmp_path / "run")
    result = train(config, progress=False)
    out = tmp_path / "run"
    assert result.steps == 12 and result.epochs_run == 2 and not result.stopped_early
    assert json.loads((out / "config.json").read_text())["model"] == "espcn"
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["step"]) for r in rows] == [6, 12]
    assert all(float(r["val_psnr"]) > 0 and 0 < float(r["val_ssim"]) <= 1 for r in rows)
    assert any((out / "tensorboard").iterdir())
    assert (out / engine.CHECKPOINT_NAME).is_file()
    assert result.model_path == out / "espcn-tiny_x2_bicubic.keras" and result.model_path.is_file()
    sidecar = json.loads(result.model_path.with_suffix(".json").read_text())
    assert sidecar["scale"] == 2 and sidecar["track"] == "bicubic"
    assert sidecar["steps"] == 12 and sidecar["epochs"] == 2
    assert sidecar["best_epoch"] == result.best_epoch
    assert sidecar["metrics"]["psnr"] == pytest.approx(result.best_psnr)
    assert {"platform", "cpu_model", "cpu_count"} <= set(sidecar["machine"])
    assert sidecar["config"]["data"]["patch_size"] == 16
    # The saved best model is the returned one.
    from amls2.models.io import load_model

    loaded, _ = load_model(result.model_path, scale=2, track="bicubic")
    assert_same_weights(weights_of(loaded), weights_of(result.model))


def test_mixed_bfloat16_trains_and_saves_a_float32_model(data, tmp_path):
    import keras

    config = tiny_config(data, tmp_path / "run", precision="mixed_bfloat16")
    result = train(config, progress=False)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert all(layer.dtype_policy.name == "float32" for layer in result.model.layers)
    assert np.isfinite(result.best_psnr)
    from amls2.models.io import load_model

    loaded, sidecar = load_model(result.model_path, scale=2, track="bicubic")
    assert sidecar["config"]["precision"] == "mixed_bfloat16"
    assert all(layer.dtype_policy.name == "float32" for layer in loaded.layers)
    assert_same_weights(weights_of(loaded), weights_of(result.model))


def test_mixed_float16_scales_the_loss_and_changes_every_weight(data, tmp_path):
    import keras

    start = train(tiny_config(data, tmp_path / "start", epochs=1), progress=False)
    initial = weights_of(start.model)  # known starting weights, copied in by init_from
    config = tiny_config(
        data,
        tmp_path / "run",
        precision="mixed_float16",
        epochs=1,
        init_from=str(start.model_path),
    )
    result = train(config, progress=False)
    assert np.isfinite(result.history[-1]["loss"]) and np.isfinite(result.best_psnr)
    assert keras.config.dtype_policy().name == "float32"
    for before, after in zip(initial, weights_of(result.model), strict=True):
        assert after.dtype == np.float32 and not np.array_equal(before, after)
    sidecar = json.loads(result.model_path.with_suffix(".json").read_text())
    assert sidecar["precision"] == "mixed_float16"


def test_loss_scale_optimizer_only_for_float16():
    import keras

    config = TrainConfig()
    assert isinstance(
        model_setup.make_optimizer(config, loss_scaling=True), keras.optimizers.LossScaleOptimizer
    )
    assert not isinstance(model_setup.make_optimizer(config), keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize(
    "flags, gpus, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, [], "mixed_bfloat16"),  # AMD Zen 4, Intel Cooper Lake
        ({"avx2", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16"),  # Intel Sapphire Rapids
        ({"avx2", "fma"}, [], "float32"),  # AMD EPYC Zen 2/3: bfloat16 emulated, 11x slower
        (set(), [], "float32"),  # unknown CPU (no /proc/cpuinfo)
        ({"avx2", "avx512_bf16"}, ["/physical_device:GPU:0"], "mixed_float16"),
    ],
)
def test_auto_precision_follows_the_hardware(flags, gpus, expected):
    from amls2.training.precision import auto_precision

    precision, reason = auto_precision(flags, gpus)
    assert precision == expected and reason


def test_auto_precision_reads_cpuinfo_and_is_recorded(data, tmp_path, monkeypatch):
    from amls2.training import precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n\nflags\t: avx512_bf16\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "fma"}  # the first CPU's line
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(precision, "gpu_names", lambda: [])
    assert precision.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"  # explicit wins
    config = tiny_config(data, tmp_path / "run", precision="auto", epochs=1)
    result = train(config, progress=False)
    sidecar = json.loads(result.model_path.with_suffix(".json").read_text())
    assert sidecar["config"]["precision"] == "auto" and sidecar["precision"] == "float32"


def test_shipped_recipes_choose_precision_by_machine():
    for name in train_config.recipe_names():
        assert train_config.load_recipe(name).precision == "auto", name


def test_holdout_validates_on_the_last_training_images_only(data, tmp_path):
    """--holdout 1: the last training image is left out of training and chooses the checkpoint;
    no other set is validated on."""
    from amls2.data import pipeline

    train_set = str(data / "train")
    kept = pipeline.load_training_images([train_set], scale=2, track="bicubic", holdout=1)
    assert [n.rsplit("/", 1)[1] for n in kept.names] == ["img0", "img1", "img2"]
    held = pipeline.load_validation_images(
        [], scale=2, track="bicubic", holdout_set=train_set, holdout=1
    )
    assert [image.name for image in held] == ["train-holdout/img3"]
    config = tiny_config(data, tmp_path / "run", epochs=1)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, val_sets=(), holdout=1)
    )
    result = train(config, progress=False)
    sidecar = json.loads(result.model_path.with_suffix(".json").read_text())
    assert sidecar["data"]["train_images"] == 3 and sidecar["data"]["val_images"] == 1
    assert sidecar["metrics"]["val_sets"] == [f"last 1 of {train_set} (held out)"]
    assert np.isfinite(result.best_psnr)


@pytest.mark.parametrize("holdout, message", [(4, "only 4 image"), (-1, ">= 0")])
def test_bad_holdout_is_refused(data, tmp_path, holdout, message):
    from amls2.errors import DatasetError

    config = tiny_config(data, tmp_path / "run")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, holdout=holdout))
    with pytest.raises((ConfigError, DatasetError), match=f"--holdout .*{message}"):
        train(config, progress=False)


def test_a_small_models_default_run_improves_on_bicubic(tmp_path):
    """The training defaults (image skip with a zero-initialised tail, Adam 5e-4 cosine, held-out
    validation) make even a short run of a tiny model beat bicubic on held-out images."""
    from amls2.data import pipeline
    from amls2.imaging import metrics
    from amls2.inference import upscaler

    config = train_config.default_config(
        "espcn",
        variant="tiny",
        steps=300,
        steps_per_epoch=300,
        steps_per_execution=50,
        out_dir=str(tmp_path / "run"),
        precision="float32",
        data={"train_sets": ["samples"], "holdout": 2, "patch_size": 48},
    )
    assert config.hparams == {"image_skip": "bicubic"} and config.optim.schedule == "cosine"
    result = train(config, progress=False)
    held = pipeline.load_validation_images(
        [], scale=2, track="bicubic", holdout_set="samples", holdout=2
    )
    bicubic = np.mean(
        [
            metrics.evaluate_pair(upscaler.bicubic_baseline(v.lr, 2), v.hr, scale=2)["psnr"]
            for v in held
        ]
    )
    assert result.best_psnr > bicubic + 0.05, (result.best_psnr, bicubic)


def test_cli_without_a_recipe_uses_the_models_defaults_and_merges_hparams():
    import argparse

    from amls2.cli import train_cmd

    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    args = parser.parse_args(["--model", "fsrcnn", "--hparams", '{"m": 2}', "--lr", "1e-3"])
    config = train_config.config_from_dict(train_cmd.config_dict_from_args(args))
    assert config.hparams == {"image_skip": "bicubic", "m": 2}
    assert config.optim.learning_rate == 1e-3 and config.optim.schedule == "cosine"
    assert config.data.holdout == 10 and config.data.val_sets == () and config.precision == "auto"
    recipe = train_cmd.config_dict_from_args(parser.parse_args(["--recipe", "edsr_x2"]))
    assert recipe["data"]["patch_size"] == 64  # a recipe is not mixed with the defaults


def test_every_registered_model_has_training_defaults():
    from amls2.models import build_model, model_names
    from amls2.models.training_defaults import HPARAMS

    assert sorted(HPARAMS) == sorted(model_names())
    for name in model_names():
        config = train_config.default_config(name, variant="tiny")
        build_model(name, 2, variant="tiny", **config.hparams)  # the hparams exist


def test_unknown_precision_is_refused(data, tmp_path):
    with pytest.raises(ConfigError, match="--precision"):
        train(tiny_config(data, tmp_path / "run", precision="float16"), progress=False)


def test_same_seed_gives_identical_weights_other_seed_differs(data, tmp_path):
    first = train(tiny_config(data, tmp_path / "a"), progress=False)
    second = train(tiny_config(data, tmp_path / "b"), progress=False)
    other = train(tiny_config(data, tmp_path / "c", seed=1), progress=False)
    assert_same_weights(weights_of(first.model), weights_of(second.model))
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(weights_of(first.model), weights_of(other.model), strict=True)
    )


def test_rerun_of_a_finished_run_resumes_at_the_end(data, tmp_path):
    config = tiny_config(data, tmp_path / "run")
    first = train(config, progress=False)
    again = train(config, progress=False)
    assert again.resumed_from_step == 12 and again.steps == 12
    assert [r["epoch"] for r in again.history] == [1, 2]
    assert_same_weights(weights_of(first.model), weights_of(again.model))


def test_other_config_in_the_same_folder_is_refused_unless_force(data, tmp_path):
    train(tiny_config(data, tmp_path / "run"), progress=False)
    changed = tiny_config(data, tmp_path / "run", seed=5)
    with pytest.raises(ConfigError, match="different config.json"):
        train(changed, progress=False)
    result = train(changed, force=True, progress=False)
    assert result.resumed_from_step == 0 and result.steps == 12


def test_exploding_loss_stops_with_a_clear_error(data, tmp_path):
    # Adam moves every weight by ~lr per step: the squared error overflows to inf, then NaN.
    config = tiny_config(
        data,
        tmp_path / "run",
        optim=OptimConfig(learning_rate=1e30, loss="l2"),
    )
    with pytest.raises(result.DivergedError, match="--lr 1e\\+30: training diverged"):
        train(config, progress=False)


def test_divergence_after_a_good_epoch_keeps_that_model(data, tmp_path, monkeypatch):
    config = tiny_config(data, tmp_path / "run", epochs=3)
    real = engine._Trainer.make_step_function

    def poisoned(self):
        run_steps = real(self)
        calls = {"n": 0}

        def run(iterator, n):
            calls["n"] += 1
            loss = run_steps(iterator, n)
            # From the 3rd call (epoch 2) on, report a NaN loss as a diverged step would.
            return loss if calls["n"] < 3 else loss * float("nan")

        return run

    monkeypatch.setattr(engine._Trainer, "make_step_function", poisoned)
    with pytest.raises(result.DivergedError, match="best model so far is kept"):
        train(config, progress=False)
    model_file = tmp_path / "run" / "espcn-tiny_x2_bicubic.keras"
    sidecar = json.loads(model_file.with_suffix(".json").read_text())
    assert sidecar["best_epoch"] == 1 and sidecar["steps"] == 6


def test_early_stopping_restores_the_best_weights(data, tmp_path, monkeypatch):
    scripted = iter([20.0, 25.0, 22.0, 21.0, 30.0, 31.0])
    seen = []

    def fake_evaluate(model, images, *, scale, input_kind):
        seen.append(weights_of(model))
        return next(scripted), 0.5

    monkeypatch.setattr(scoring, "validation_scores", fake_evaluate)
    config = tiny_config(data, tmp_path / "run", epochs=6, early_stopping_patience=2)
    result = train(config, progress=False)
    assert result.stopped_early and result.epochs_run == 4
    assert result.best_epoch == 2 and result.best_psnr == 25.0
    assert_same_weights(weights_of(result.model), seen[1])
    from amls2.models.io import load_model

    saved, sidecar = load_model(result.model_path)
    assert_same_weights(weights_of(saved), seen[1])
    assert sidecar["stopped_early"] is True and sidecar["epochs"] == 4


def test_distillation_with_alpha_zero_equals_plain_training(data, tmp_path):
    teacher = train(tiny_config(data, tmp_path / "teacher", epochs=1), progress=False)
    plain = train(tiny_config(data, tmp_path / "plain"), progress=False)
    distill = DistillConfig(teacher=str(teacher.model_path), alpha=0.0)
    zero = train(tiny_config(data, tmp_path / "zero", distill=distill), progress=False)
    assert_same_weights(weights_of(plain.model), weights_of(zero.model), atol=1e-6)
    half = dataclasses.replace(distill, alpha=0.5)
    mixed = train(tiny_config(data, tmp_path / "half", distill=half), progress=False)
    assert not np.allclose(weights_of(plain.model)[0], weights_of(mixed.model)[0])


def test_bicubic_input_model_trains_and_validates(data, tmp_path):
    config = tiny_config(data, tmp_path / "run", model="srcnn", epochs=1)
    result = train(config, progress=False)
    assert result.model_path.is_file() and result.best_psnr > 10


def test_unknown_track_trains_on_several_degraded_versions(data, tmp_path):
    config = tiny_config(data, tmp_path / "run", track="unknown", epochs=1)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, variants=2))
    result = train(config, progress=False)
    assert result.steps == 6 and result.model_path.name == "espcn-tiny_x2_unknown.keras"


def test_init_from_copies_matching_layers_and_skips_the_upsampler(data, tmp_path):
    from amls2.models import build_model

    x2 = train(tiny_config(data, tmp_path / "x2", epochs=1), progress=False)
    x3 = build_model("espcn", 3, variant="tiny")
    loaded, skipped = model_setup.load_matching_weights(x3, str(x2.model_path))
    assert loaded and skipped  # the feature layers fit, the x3 sub-pixel layer does not
    first_x2 = model_setup._weighted_layers(x2.model)[0].get_weights()
    first_x3 = model_setup._weighted_layers(x3)[0].get_weights()
    assert_same_weights(first_x2, first_x3)


def test_perceptual_loss_without_weights_names_the_option(data, tmp_path):
    config = tiny_config(data, tmp_path / "run", optim=OptimConfig(loss="perceptual"))
    with pytest.raises(ConfigError, match="--vgg-weights"):
        train(config, progress=False)
    missing = OptimConfig(loss="perceptual", vgg_weights=str(tmp_path / "none.h5"))
    with pytest.raises(ConfigError, match="--vgg-weights .*no such file"):
        train(tiny_config(data, tmp_path / "run", optim=missing), progress=False)


def test_perceptual_loss_trains_with_a_vgg19_weights_file(data, tmp_path):
    """The real code path with a local weights file in the ImageNet "notop" layout (random
    weights here: nothing can be downloaded). Every student weight must move."""
    import keras

    vgg_path = tmp_path / "vgg19_notop.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(vgg_path)
    optim = OptimConfig(learning_rate=1e-3, loss="perceptual", vgg_weights=str(vgg_path))
    config = tiny_config(data, tmp_path / "run", optim=optim, epochs=1, steps_per_epoch=3)
    start = weights_of(model_setup.build_with_policy(config, "float32"))
    result = train(config, progress=False)
    assert np.isfinite(result.history[-1]["loss"])
    for before, after in zip(start, weights_of(result.model), strict=True):
        assert not np.array_equal(before, after)
    with warnings.catch_warnings():
        # A file that does not fit is one error, not a warning per layer left unfilled.
        warnings.filterwarnings("error", message=".*freshly-initialized")
        bad = tmp_path / "not_vgg.weights.h5"
        keras.applications.MobileNetV2(include_top=False, weights=None).save_weights(bad)
        optim = OptimConfig(loss="perceptual", vgg_weights=str(bad))
        with pytest.raises(ConfigError, match="--vgg-weights .*not_vgg"):
            train(tiny_config(data, tmp_path / "bad", optim=optim), progress=False)


@pytest.mark.parametrize(
    "overrides,option",
    [
        ({"scale": 5}, "--scale"),
        ({"track": "blurry"}, "--track"),
        ({"optim": OptimConfig(schedule="linear")}, "--schedule"),
        ({"optim": OptimConfig(schedule="step")}, "--decay-epochs"),
        ({"optim": OptimConfig(loss="l3")}, "--loss"),
        ({"epochs": 0}, "--epochs"),
        ({"init_from": "/no/such/model.keras"}, "--init-from"),
        ({"distill": DistillConfig(teacher="/no/such.keras")}, "--teacher"),
    ],
)
def test_bad_options_raise_config_error_naming_them(data, tmp_path, overrides, option):
    with pytest.raises(ConfigError, match=option):
        train(tiny_config(data, tmp_path / "run", **overrides), progress=False)


@pytest.mark.parametrize("schedule,expected", [("constant", 1.0), ("step", 0.25), ("cosine", 0.0)])
def test_learning_rate_schedules_at_the_end_of_the_run(schedule, expected):
    config = TrainConfig(
        epochs=4,
        steps_per_epoch=10,
        optim=OptimConfig(learning_rate=1.0, schedule=schedule, decay_epochs=2, decay_factor=0.5),
    )
    optimizer = model_setup.make_optimizer(config)
    schedule_fn = optimizer._learning_rate
    value = schedule_fn(40) if callable(schedule_fn) else schedule_fn
    assert float(np.asarray(value)) == pytest.approx(expected, abs=1e-6)


def test_config_json_round_trip():
    from amls2.config import from_json, to_json

    config = TrainConfig(
        model="rfdn",
        hparams={"filters": 8},
        data=DataConfig(train_sets=("T91", "BSD200")),
        distill=DistillConfig(teacher="t.keras", alpha=0.3),
    )
    assert from_json(TrainConfig, to_json(config)) == config


@pytest.mark.parametrize("name", train_config.recipe_names())
def test_every_recipe_is_a_valid_config(name):
    from amls2.models import build_model, get_spec

    config = train_config.load_recipe(name)
    assert config.model in __import__("amls2.models", fromlist=["MODELS"]).MODELS
    assert config.scale in get_spec(config.model).scales
    assert config.data.patch_size % config.scale == 0
    if config.init_from is None:
        train_config.validate(config)
    build_model(config.model, config.scale, variant=config.variant, **config.hparams)


def test_recipe_init_from_shipped_weights_resolves_from_any_folder(tmp_path, monkeypatch):
    from amls2 import config as amls2_config

    monkeypatch.chdir(tmp_path)
    config = train_config.load_recipe("srcnn_x3")
    assert Path(config.init_from) == amls2_config.SELECTED_MODELS_DIR / "bicubic" / "srcnn_x2.keras"
    assert Path(config.init_from).is_absolute()


def test_recipes_cover_the_shipped_models():
    names = train_config.recipe_names()
    for model in ("srcnn", "post_srcnn", "iud_srcnn", "fd_srcnn", "rfdn", "edsr"):
        assert f"{model}_x2" in names
    assert any(name.endswith("_x3") for name in names) and any(n.endswith("_x4") for n in names)
    assert any("unknown" in name for name in names)


def parse_train_args(argv):
    from amls2.cli import build_parser

    return build_parser().parse_args(["train", *argv])


def test_cli_precedence_recipe_then_config_file_then_options(tmp_path):
    from amls2.cli import train_cmd

    config_file = tmp_path / "job.json"
    config_file.write_text(json.dumps({"seed": 9, "data": {"batch_size": 8}, "epochs": 3}))
    args = parse_train_args(
        [
            "--recipe", "rfdn_x2", "--config", str(config_file),
            "--epochs", "5", "--train-set", "T91+BSD200", "--no-jit",
        ]
    )  # fmt: skip
    config = train_config.config_from_dict(train_cmd.config_dict_from_args(args))
    recipe = train_config.load_recipe("rfdn_x2")
    assert config.model == recipe.model and config.variant == recipe.variant
    assert config.seed == 9 and config.data.batch_size == 8  # from the file
    assert config.epochs == 5 and config.data.train_sets == ("T91", "BSD200")  # from options
    assert config.jit_compile is False
    assert config.data.patch_size == recipe.data.patch_size  # untouched by the file


def test_cli_reports_divergence_as_a_one_line_error(data, tmp_path, capsys):
    from amls2.cli import main

    argv = [
        "train", "--model", "espcn", "--variant", "tiny", "--scale", "2",
        "--train-set", str(data / "train"), "--val-set", str(data / "val"),
        "--patch-size", "16", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "6",
        "--lr", "1e30", "--loss", "l2", "--out-dir", str(tmp_path / "run"), "--no-progress",
        "--holdout", "0",  # the defaults hold out 10 images; this set has 4
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0]


# ----------------------------------------------------------------------------- SIGKILL resume

_KILL_AFTER_CHECKPOINTS = """
import os, signal, sys
from amls2.training import engine
real = engine.save_checkpoint
count = {"n": 0}
def save_then_die(*args, **kwargs):
    real(*args, **kwargs)
    count["n"] += 1
    if count["n"] == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
engine.save_checkpoint = save_then_die
from amls2.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli_argv(data: Path, out_dir: Path) -> list[str]:
    return [
        "train", "--model", "espcn", "--variant", "tiny", "--scale", "2",
        "--train-set", str(data / "train"), "--val-set", str(data / "val"),
        "--patch-size", "16", "--batch-size", "4", "--lr", "1e-3",
        "--epochs", "3", "--steps-per-epoch", "12", "--steps-per-execution", "2",
        "--checkpoint-every", "4", "--out-dir", str(out_dir), "--no-progress",
        "--holdout", "0", "--precision", "float32",  # 4 training images; exact comparisons
    ]  # fmt: skip


def run_cli(argv, *, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    if kill_after is None:
        command = [sys.executable, "-m", "amls2", *argv]
    else:
        env["KILL_AFTER"] = str(kill_after)
        command = [sys.executable, "-c", _KILL_AFTER_CHECKPOINTS, *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_sigkill_mid_epoch_then_same_command_resumes(data, tmp_path):
    out = tmp_path / "run"
    # Checkpoints at steps 4, 8, 12 (end of epoch 1), 16: killed right after the one at 16,
    # i.e. in the middle of epoch 2.
    killed = run_cli(cli_argv(data, out), kill_after=4)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = json.loads(str(np.load(out / engine.CHECKPOINT_NAME)["state"]))
    assert state["step"] == 16 and [r["epoch"] for r in state["history"]] == [1]

    resumed = run_cli(cli_argv(data, out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr and "from step 16" in resumed.stderr
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [12, 24, 36]

    # The interrupted-and-resumed run ends where an uninterrupted run ends.
    straight = run_cli(cli_argv(data, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    final = np.load(out / engine.CHECKPOINT_NAME)
    reference = np.load(tmp_path / "straight" / engine.CHECKPOINT_NAME)
    model_keys = [k for k in final.files if k.startswith("model_")]
    assert model_keys
    for key in model_keys:
        np.testing.assert_allclose(final[key], reference[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("error", "rgb_mse"),
    [
        ((0.1, 0.1, 0.1), 0.01),  # grey: luma moves by 0.1 x the weights' sum
        ((0.2, -0.1, 0.0), 0.05 / 3),
        ((0.0, 0.0, 0.0), 0.0),  # identical images: zero loss
    ],
)
def test_l2_luma_loss_is_the_y_protocols_mse_plus_a_tenth_of_rgb(error, rgb_mse):
    from amls2.imaging import images
    from amls2.training.losses import LUMA_LOSS_RGB_WEIGHT, make_loss

    target = np.random.default_rng(0).random((2, 4, 5, 3), np.float32) * 0.5
    pred = target + np.array(error, np.float32)
    # The y protocol's luma (0..255 scale, offset 16) of the two images, back on the [0, 1] scale.
    luma_diff = (images.rgb_to_y(target[0]) - images.rgb_to_y(pred[0])) / 255.0
    expected = np.mean(luma_diff**2) + LUMA_LOSS_RGB_WEIGHT * rgb_mse
    loss = np.asarray(make_loss("l2_luma")(target, pred))
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-9)


def test_chroma_only_error_costs_only_the_rgb_share():
    from amls2.training.losses import LUMA_LOSS_RGB_WEIGHT, LUMA_WEIGHTS, make_loss

    # An error orthogonal to the luma weights leaves Y unchanged.
    w = np.array(LUMA_WEIGHTS)
    error = np.cross(w, [1.0, 0.0, 0.0]).astype(np.float32) * 0.1
    target = np.full((1, 3, 3, 3), 0.5, np.float32)
    loss = np.asarray(make_loss("l2_luma")(target, target + error))
    np.testing.assert_allclose(loss, LUMA_LOSS_RGB_WEIGHT * np.mean(error**2), rtol=1e-4)


@pytest.mark.parametrize("same_hparams", [True, False])
def test_init_from_warns_when_a_copied_layer_has_another_activation(tmp_path, caplog, same_hparams):
    """FD-SRCNN built with and without intermediate skips has the same shapes, but its
    intermediate reconstructors are linear heads in one and sigmoid images in the other."""
    import logging

    from amls2.models import build_model

    small = dict(features=4, width=4, mid_width=4, n_series=2, image_skip="bicubic")
    source = build_model("fd_srcnn", 2, intermediate_skip=True, **small)
    source.save(tmp_path / "source.keras")
    target = build_model("fd_srcnn", 2, intermediate_skip=same_hparams, **small)
    with caplog.at_level(logging.WARNING, logger="amls2.training.model_setup"):
        loaded, skipped = model_setup.load_matching_weights(target, str(tmp_path / "source.keras"))
    assert not skipped and len(loaded) == len(model_setup._weighted_layers(target))
    warned = [r for r in caplog.records if "another activation" in r.getMessage()]
    assert bool(warned) != same_hparams
    if warned:
        assert "linear -> sigmoid" in warned[0].getMessage()
