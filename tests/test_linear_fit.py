"""The closed-form linear fit: known operators are recovered, streaming does not change the fit,
the fit beats bicubic on bicubic-track pairs, the Keras layers compute what the NumPy reference
does, and a closed-form run (``amls2 train --model linear``) solves, saves and reloads."""

from __future__ import annotations

import numpy as np
import pytest

from amls2.imaging import images, metrics, resize
from amls2.training import linear_fit
from amls2.training.linear_fit import NormalEquations, accumulate, apply_filters


def smooth_image(rng, shape, channels=3) -> np.ndarray:
    """Random colour image with natural-looking correlations (bicubic-enlarged noise)."""
    small = rng.random((shape[0] // 4, shape[1] // 4, channels))
    return np.clip(resize.imresize(small, output_shape=shape), 0, 1)


def known_filters(rng, factor: int, kernel_size: int) -> np.ndarray:
    """Random phase filters summing to one, zero outside the central 5x5."""
    filters = np.zeros((factor * factor, kernel_size, kernel_size), np.float32)
    pad = (kernel_size - 5) // 2
    taps = rng.normal(0, 0.1, (factor * factor, 5, 5)) + 1 / 25
    filters[:, pad : pad + 5, pad : pad + 5] = taps / taps.sum(axis=(1, 2), keepdims=True)
    return filters


@pytest.mark.parametrize(("factor", "kernel_size"), [(2, 9), (3, 7), (4, 5)])
def test_known_linear_operator_is_recovered(rng, factor, kernel_size):
    truth = known_filters(rng, factor, kernel_size)
    sources = [smooth_image(rng, (40, 36)) for _ in range(3)]
    pairs = [(lr, apply_filters(lr, truth)) for lr in sources]
    fitted = accumulate(pairs, factor=factor, kernel_size=kernel_size).solve(ridge=1e-12)
    np.testing.assert_allclose(fitted, truth, atol=1e-4)


@pytest.mark.parametrize("batches", [1, 2, 5])
def test_fit_is_the_same_streamed_in_one_batch_or_many(rng, batches):
    pairs = [(smooth_image(rng, (20, 24)), smooth_image(rng, (40, 48))) for _ in range(5)]
    whole = accumulate(pairs, factor=2, kernel_size=5)
    bounds = np.linspace(0, len(pairs), batches + 1).astype(int)
    chunks = [pairs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    parts = [accumulate(chunk, factor=2, kernel_size=5) for chunk in chunks]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merged(part)
    assert merged.rows == whole.rows == 5 * 20 * 24
    np.testing.assert_allclose(merged.gram, whole.gram, rtol=1e-12)
    np.testing.assert_allclose(merged.solve(), whole.solve(), atol=1e-6)


def test_row_chunks_do_not_change_the_equations(rng, monkeypatch):
    source, target = smooth_image(rng, (30, 20)), smooth_image(rng, (60, 40))
    luma = linear_fit.offset_free_luma
    whole = NormalEquations.empty(2, 5).add(luma(source), luma(target))
    monkeypatch.setattr(linear_fit, "_ROWS_PER_CHUNK", 7)
    chunked = NormalEquations.empty(2, 5).add(luma(source), luma(target))
    np.testing.assert_allclose(chunked.gram, whole.gram, rtol=1e-12)
    np.testing.assert_allclose(chunked.rhs, whole.rhs, rtol=1e-12)


def test_empty_equations_refuse_to_solve():
    with pytest.raises(ValueError, match="no image"):
        NormalEquations.empty(2, 5).solve()


def test_offset_free_luma_is_y_minus_its_offset(rng):
    img = rng.random((6, 5, 3))
    np.testing.assert_allclose(
        linear_fit.offset_free_luma(img), (images.rgb_to_y(img) - 16) / 255, atol=1e-12
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fit_beats_bicubic_on_bicubic_track_pairs(rng, scale):
    from amls2.data import datasets

    photos = [images.mod_crop(images.read_image(p), scale) for p in datasets.sample_paths()]
    pairs = [(resize.bicubic_downscale(hr, scale), hr) for hr in photos]
    train, test = pairs[:-2], pairs[-2:]
    filters = accumulate(train, factor=scale, kernel_size=9).solve()
    for lr, hr in test:
        linear = np.clip(apply_filters(lr, filters), 0, 1)
        bicubic = resize.bicubic_upscale(lr, scale)
        gain = metrics.psnr(linear, hr, scale=scale) - metrics.psnr(bicubic, hr, scale=scale)
        assert gain > 0.05, f"x{scale}: linear only {gain:+.3f} dB over bicubic"


@pytest.mark.parametrize("scale", [2, 3])
def test_keras_linear_model_computes_the_numpy_filters(rng, scale):
    from amls2.models import build_model
    from amls2.training.closed_form import closed_form_layers, set_filters

    model = build_model("linear", scale)
    filters = known_filters(rng, scale, 9)
    (layer,) = closed_form_layers(model)
    set_filters(layer, filters)
    lr = smooth_image(rng, (12, 10))
    out = model.predict(lr[None].astype(np.float32), verbose=0)[0]
    np.testing.assert_allclose(out, apply_filters(lr, filters), atol=1e-5)


def test_untrained_linear_model_is_matlab_bicubic(rng):
    from amls2.models import build_model

    lr = smooth_image(rng, (12, 10))
    out = build_model("linear", 3).predict(lr[None].astype(np.float32), verbose=0)[0]
    np.testing.assert_allclose(out, resize.bicubic_upscale_float(lr, 3), atol=1e-5)


@pytest.mark.parametrize(
    ("name", "variant", "hparams"),
    [
        ("edsr", "tiny", {"image_skip": "linear"}),
        ("espcn", "tiny", {"image_skip": "linear"}),
        ("fd_srcnn", "tiny", {"image_skip": "linear"}),
        ("iud_srcnn", "tiny", {"image_skip": "linear"}),
    ],
)
def test_zeroed_heads_make_a_network_its_linear_skip(rng, name, variant, hparams):
    from amls2.models import build_model
    from amls2.training.closed_form import closed_form_layers, set_filters, zero_residual_heads

    model = build_model(name, 2, variant=variant, **hparams)
    filters = known_filters(rng, 2, 9)
    for layer in closed_form_layers(model):
        set_filters(layer, filters)
    for weight in model.trainable_weights:  # a trained-looking network, heads included
        weight.assign(rng.normal(0, 0.1, weight.shape).astype(np.float32))
    assert zero_residual_heads(model)
    lr = smooth_image(rng, (12, 12))
    out = model.predict(lr[None].astype(np.float32), verbose=0)[0]
    np.testing.assert_allclose(out, apply_filters(lr, filters), atol=1e-5)


def test_closed_form_run_solves_saves_and_reloads(tmp_path):
    from amls2.data import datasets
    from amls2.models.io import load_model
    from amls2.training import DataConfig, TrainConfig, train

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in datasets.sample_paths()[:4]:
        images.write_image(folder / f"{path.stem}.png", images.read_image(path)[:96, :128])
    config = TrainConfig(
        model="linear",
        scale=2,
        data=DataConfig(train_sets=(str(folder),), holdout=1, patch_size=16, variants=1),
        out_dir=str(tmp_path / "run"),
        precision="float32",
    )
    result = train(config, progress=False)
    assert result.closed_form and result.steps == 0 and result.best_psnr is not None
    model, sidecar = load_model(result.model_path)
    assert sidecar["closed_form"]["ridge"] in (1e-6, 1e-5, 1e-4, 1e-3)
    lr = resize.bicubic_downscale(images.read_image(datasets.sample_paths()[0])[:48, :48], 2)
    x = lr[None].astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), result.model.predict(x, verbose=0))


def test_polyphase_fit_on_the_bicubic_image_recovers_an_lr_phase_filter(rng):
    """SRCNN's closed-form skip (``PolyphaseLinear`` on the bicubic upscale) reaches what a
    phase filter of the LR image does, to within a small error, on pairs made by that filter."""
    from amls2.models import build_model
    from amls2.training.closed_form import closed_form_layers, set_filters, zero_residual_heads

    truth = known_filters(rng, 2, 5)
    lrs = [smooth_image(rng, (24, 20)) for _ in range(4)]
    pairs = [(resize.bicubic_upscale_float(lr, 2), apply_filters(lr, truth)) for lr in lrs]
    filters = accumulate(pairs[:3], factor=2, kernel_size=5, split=2).solve(ridge=1e-9)
    assert filters.shape == (4, 4, 5, 5)
    model = build_model(
        "srcnn", 2, variant="tiny", residual=True, linear_residual=True, activation="prelu"
    )
    (layer,) = closed_form_layers(model)
    set_filters(layer, filters)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(0, 0.1, weight.shape).astype(np.float32))
    assert zero_residual_heads(model)
    bicubic, hr = pairs[3]
    out = model.predict(bicubic[None].astype(np.float32), verbose=0)[0]
    assert metrics.psnr(np.clip(out, 0, 1), np.clip(hr, 0, 1), scale=2) > 45
