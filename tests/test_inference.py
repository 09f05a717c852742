"""Tests of amls2.inference.upscaler: tiling (equal to whole-image inference), self-ensemble, clipping."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from amls2 import models  # noqa: E402
from amls2.errors import ConfigError  # noqa: E402
from amls2.inference import upscaler  # noqa: E402
from amls2.inference.receptive_field import receptive_field  # noqa: E402
from amls2.inference.upscaler import super_resolve, tile_axis  # noqa: E402


def symmetric_model(scale: int):
    """3x3 conv whose kernel is invariant under flips and quarter turns, then nearest x``scale``:
    the model commutes with all 8 symmetries, so self-ensemble must not change its output."""
    base = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]], np.float32)
    mix = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]], np.float32)
    kernel = base[:, :, None, None] * mix[None, None]
    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same")
    x = keras.layers.UpSampling2D(scale)(conv(inp))
    conv.set_weights([kernel, np.array([0.01, -0.02, 0.03], np.float32)])
    return keras.Model(inp, x)


# ----------------------------------------------------------------------------- tile_axis


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "align"),
    [
        (100, 30, 5, 1),
        (97, 32, 8, 1),
        (60, 24, 6, 6),
        (10, 30, 5, 1),
        (64, 20, 0, 1),
        (31, 30, 7, 1),
    ],
)
def test_tile_axis_kept_parts_partition_and_keep_the_overlap(length, tile, overlap, align):
    tiles = tile_axis(length, tile, overlap, align)
    assert tiles[0].keep_start == 0 and tiles[-1].keep_stop == length
    for a, b in zip(tiles, tiles[1:], strict=False):
        assert a.keep_stop == b.keep_start
    for t in tiles:
        assert t.size == min(tile, length)
        assert t.start >= 0 and t.start + t.size <= length
        assert t.keep_start < t.keep_stop
        # Kept parts are `overlap` away from tile borders that are not image borders.
        if t.start > 0:
            assert t.keep_start - t.start >= overlap
        if t.start + t.size < length:
            assert t.start + t.size - t.keep_stop >= overlap
    if length % align == 0:
        assert all(t.start % align == 0 for t in tiles)


def test_tile_axis_rejects_a_tile_smaller_than_twice_the_overlap():
    with pytest.raises(ConfigError, match="--tile 10"):
        tile_axis(100, 10, 5)


# ----------------------------------------------------------------------------- tiled == whole


def _zoo_model(name: str, scale: int):
    # EDSR's tiny variant uses RCAN channel attention (global pooling: unbounded field); the
    # EDSR architecture itself is tested without it.
    extra = {"attention": False} if name == "edsr" else {}
    return models.build_model(name, scale, variant="tiny", **extra)


ZOO_CASES = [(name, 2) for name in models.model_names()] + [
    ("iud_srcnn", 3),
    ("fd_srcnn", 4),
    ("rfdn", 4),
    ("srcnn", 3),
]


@pytest.mark.parametrize(("name", "scale"), ZOO_CASES)
def test_tiled_inference_equals_whole_image_on_every_model_family(name, scale):
    model = _zoo_model(name, scale)
    kind = models.get_spec(name).input_kind
    radius = receptive_field(model, scale=scale, input_kind=kind)
    tile = 2 * radius + 8
    # LR sizes multiple of 6 (RFDN's pooling grid) with at least 2 tiles per axis.
    h = int(np.ceil((tile + 10) / 6) * 6)
    w = h + 6
    lr = np.random.default_rng(7).random((h, w, 3), dtype=np.float32)
    whole = super_resolve(model, lr, scale=scale, input_kind=kind)
    tiled = super_resolve(model, lr, scale=scale, input_kind=kind, tile=tile, batch_size=3)
    assert whole.shape == tiled.shape == (h * scale, w * scale, 3)
    assert float(np.abs(whole - tiled).max()) < 1e-4


def test_too_small_overlap_changes_the_result(conv_stack):
    # The equality above is not automatic: with no overlap, interior tile borders differ.
    model = conv_stack((5, 5), upsample=2, seed=3)
    lr = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
    whole = super_resolve(model, lr, scale=2)
    tiled = super_resolve(model, lr, scale=2, tile=16, overlap=0)
    assert float(np.abs(whole - tiled).max()) > 1e-3


def test_super_resolve_output_is_clipped_float32(conv_stack):
    model = conv_stack((3,), upsample=3, seed=5)
    lr = np.random.default_rng(2).random((10, 12, 3), dtype=np.float32) * 4 - 2
    sr = super_resolve(model, lr, scale=3)
    assert sr.dtype == np.float32 and sr.shape == (30, 36, 3)
    assert sr.min() >= 0.0 and sr.max() <= 1.0


def test_bicubic_input_kind_feeds_the_float_matlab_upscale():
    from amls2.imaging import resize

    inp = keras.Input((None, None, 3))
    identity = keras.Model(inp, keras.layers.Identity()(inp))
    lr = np.random.default_rng(3).random((9, 11, 3), dtype=np.float32)
    sr = super_resolve(identity, lr, scale=3, input_kind="bicubic")
    expected = np.clip(resize.imresize(lr, 3), 0, 1)
    np.testing.assert_allclose(sr, expected, atol=1e-6)


# ----------------------------------------------------------------------------- self-ensemble


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("tile", [None, 12])
def test_self_ensemble_of_an_equivariant_model_is_the_plain_output(scale, tile):
    model = symmetric_model(scale)
    lr = np.random.default_rng(4).random((20, 26, 3), dtype=np.float32)
    plain = super_resolve(model, lr, scale=scale, tile=tile)
    ensemble = super_resolve(model, lr, scale=scale, tile=tile, self_ensemble=True)
    np.testing.assert_allclose(ensemble, plain, atol=1e-6)


def test_self_ensemble_of_a_non_equivariant_model_differs(conv_stack):
    model = conv_stack((3,), upsample=2, seed=11)
    lr = np.random.default_rng(5).random((16, 16, 3), dtype=np.float32)
    plain = super_resolve(model, lr, scale=2)
    ensemble = super_resolve(model, lr, scale=2, self_ensemble=True)
    assert float(np.abs(plain - ensemble).max()) > 1e-3


@pytest.mark.parametrize(("k", "flip"), upscaler.ENSEMBLE_TRANSFORMS)
def test_ensemble_transforms_invert(k, flip):
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    back = upscaler._inverse(upscaler._forward(img, k, flip), k, flip)
    np.testing.assert_array_equal(back, img)


def test_one_trace_per_model_is_not_reported_as_retracing():
    """Each model gets its own tf.function, traced once; TensorFlow would warn about
    "retracing" after five models (it did in the committed notebooks)."""
    import logging

    import tensorflow as tf

    from amls2.inference import model_call

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    tf.get_logger().addHandler(handler)
    try:
        for _ in range(8):
            model = models.build_model("espcn", 2, variant="tiny")
            model_call.run_batch(model, np.zeros((1, 8, 8, 3), np.float32))
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]


# ----------------------------------------------------------------------------- convolution budget


def _recording_calls(monkeypatch) -> list[tuple[int, ...]]:
    """The batch shapes every model call of ``super_resolve`` sees."""
    shapes: list[tuple[int, ...]] = []
    real = upscaler.run_batch

    def recording(model, batch, **kwargs):
        shapes.append(batch.shape)
        return real(model, batch, **kwargs)

    monkeypatch.setattr(upscaler, "run_batch", recording)
    return shapes


@pytest.mark.parametrize(("shape", "tile"), [((40, 52), None), ((40, 52), 36), ((23, 70), None)])
def test_calls_stay_within_the_convolution_budget_and_give_the_whole_image_output(
    conv_stack, monkeypatch, shape, tile
):
    model = conv_stack((3, 5), upsample=2, seed=4)  # 3 maps into every conv
    lr = np.random.default_rng(5).random((*shape, 3), dtype=np.float32)
    whole = super_resolve(model, lr, scale=2)
    budget = 4 * 3 * 20**2  # 20x20 px of 3 float32 maps per call
    monkeypatch.setattr(upscaler.onednn, "conv_input_budget_bytes", lambda: budget)
    calls = _recording_calls(monkeypatch)
    capped = super_resolve(model, lr, scale=2, tile=tile)
    assert len(calls) > 0 and all(4 * 3 * h * w <= budget for _, h, w, _ in calls)
    assert float(np.abs(whole - capped).max()) < 1e-5


def test_no_budget_means_one_whole_image_call(conv_stack, monkeypatch):
    model = conv_stack((3,), upsample=2)
    monkeypatch.setattr(upscaler.onednn, "conv_input_budget_bytes", lambda: None)
    calls = _recording_calls(monkeypatch)
    super_resolve(model, np.zeros((64, 48, 3), np.float32), scale=2)
    assert calls == [(1, 64, 48, 3)]


def test_a_budget_smaller_than_the_overlap_runs_the_whole_image(conv_stack, monkeypatch, caplog):
    model = conv_stack((9, 9), upsample=2)  # an 8 px receptive field: tiles need > 16 px
    monkeypatch.setattr(upscaler.onednn, "conv_input_budget_bytes", lambda: 4 * 3 * 12**2)
    calls = _recording_calls(monkeypatch)
    super_resolve(model, np.zeros((30, 30, 3), np.float32), scale=2)
    assert calls == [(1, 30, 30, 3)]
    assert "no tile" in caplog.text
