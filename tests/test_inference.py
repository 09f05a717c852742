"""Tests of amls2.inference: tiling, receptive field, self-ensemble, model resolution."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from amls2 import inference, models  # noqa: E402
from amls2.errors import ConfigError, ModelError  # noqa: E402
from amls2.inference import (  # noqa: E402
    load_upscaler,
    receptive_field,
    super_resolve,
    tile_axis,
)


def conv_stack(kernels, *, channels=3, upsample=1, seed=0):
    """Sequential 'same' convs with random weights, then optional nearest upsampling."""
    rng = np.random.default_rng(seed)
    inp = keras.Input((None, None, channels))
    x = inp
    for k in kernels:
        layer = keras.layers.Conv2D(channels, k, padding="same")
        x = layer(x)
        layer.set_weights(
            [rng.normal(0, 0.2, (k, k, channels, channels)), rng.normal(0, 0.1, channels)]
        )
    if upsample > 1:
        x = keras.layers.UpSampling2D(upsample)(x)
    return keras.Model(inp, x)


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


# ----------------------------------------------------------------------------- receptive field


@pytest.mark.parametrize(
    ("kernels", "upsample", "input_kind", "scale", "expected"),
    [
        ((3,), 1, "lr", 2, 1),
        ((3, 3), 1, "lr", 2, 2),
        ((9, 1, 5), 1, "lr", 2, 6),
        ((5,), 2, "lr", 2, 2),
        # bicubic kind: ceil(radius / scale) + 2 px of bicubic reach, in LR pixels
        ((9, 1, 5), 1, "bicubic", 2, 5),
        ((9, 1, 5), 1, "bicubic", 4, 4),
    ],
)
def test_receptive_field_known_answers(kernels, upsample, input_kind, scale, expected):
    model = conv_stack(kernels, upsample=upsample)
    assert receptive_field(model, scale=scale, input_kind=input_kind) == expected


def test_receptive_field_sees_paths_that_are_dead_for_random_inputs():
    # A ReLU that is off for every input in [0, 1] still widens the field (structural probe).
    inp = keras.Input((None, None, 3))
    dead = keras.layers.Conv2D(3, 5, padding="same", activation="relu")
    x = keras.layers.Add()([keras.layers.Conv2D(3, 1, padding="same")(inp), dead(inp)])
    model = keras.Model(inp, x)
    dead.set_weights([-np.ones((5, 5, 3, 3), np.float32), -np.ones(3, np.float32)])
    assert receptive_field(model, scale=2, input_kind="lr") == 2


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


def test_too_small_overlap_changes_the_result():
    # The equality above is not automatic: with no overlap, interior tile borders differ.
    model = conv_stack((5, 5), upsample=2, seed=3)
    lr = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
    whole = super_resolve(model, lr, scale=2)
    tiled = super_resolve(model, lr, scale=2, tile=16, overlap=0)
    assert float(np.abs(whole - tiled).max()) > 1e-3


def test_super_resolve_output_is_clipped_float32():
    model = conv_stack((3,), upsample=3, seed=5)
    lr = np.random.default_rng(2).random((10, 12, 3), dtype=np.float32) * 4 - 2
    sr = super_resolve(model, lr, scale=3)
    assert sr.dtype == np.float32 and sr.shape == (30, 36, 3)
    assert sr.min() >= 0.0 and sr.max() <= 1.0


def test_bicubic_input_kind_feeds_the_float_matlab_upscale():
    from amls2 import images

    inp = keras.Input((None, None, 3))
    identity = keras.Model(inp, keras.layers.Identity()(inp))
    lr = np.random.default_rng(3).random((9, 11, 3), dtype=np.float32)
    sr = super_resolve(identity, lr, scale=3, input_kind="bicubic")
    expected = np.clip(images.imresize(lr, 3), 0, 1)
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


def test_self_ensemble_of_a_non_equivariant_model_differs():
    model = conv_stack((3,), upsample=2, seed=11)
    lr = np.random.default_rng(5).random((16, 16, 3), dtype=np.float32)
    plain = super_resolve(model, lr, scale=2)
    ensemble = super_resolve(model, lr, scale=2, self_ensemble=True)
    assert float(np.abs(plain - ensemble).max()) > 1e-3


@pytest.mark.parametrize(("k", "flip"), inference.ENSEMBLE_TRANSFORMS)
def test_ensemble_transforms_invert(k, flip):
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    back = inference._inverse(inference._forward(img, k, flip), k, flip)
    np.testing.assert_array_equal(back, img)


# ----------------------------------------------------------------------------- load_upscaler


def test_bicubic_upscaler_is_the_matlab_uint8_baseline():
    from amls2 import images

    up = load_upscaler("bicubic", scale=2)
    lr = np.random.default_rng(6).random((8, 10, 3), dtype=np.float32)
    assert up.is_bicubic and up.name == "bicubic"
    np.testing.assert_array_equal(up.upscale(lr), images.bicubic_upscale(lr, 2))


def test_unknown_model_name_lists_the_valid_names():
    with pytest.raises(ModelError) as info:
        load_upscaler("no_such_model", scale=2)
    message = str(info.value)
    assert "no_such_model" in message and "bicubic" in message and "srcnn" in message


def test_missing_shipped_weights_name_the_file_and_the_train_command(tmp_path, monkeypatch):
    from amls2 import config

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    with pytest.raises(ModelError) as info:
        load_upscaler("fsrcnn", scale=3, track="unknown")
    message = str(info.value)
    assert str(tmp_path / "unknown" / "fsrcnn_x3.keras") in message
    assert "amls2 train --model fsrcnn --scale 3 --track unknown" in message


def test_shipped_weights_load_by_registry_name(tmp_path, monkeypatch):
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 2, variant="tiny")
    save_model(model, tmp_path / "bicubic" / "espcn_x2.keras", {"track": "bicubic"})
    up = load_upscaler("espcn", scale=2, track="bicubic")
    assert up.name == "espcn" and up.input_kind == "lr" and not up.is_bicubic
    lr = np.random.default_rng(8).random((6, 7, 3), dtype=np.float32)
    np.testing.assert_allclose(up.upscale(lr), super_resolve(model, lr, scale=2), atol=1e-6)


def test_name_at_track_runs_the_other_tracks_weights(tmp_path, monkeypatch):
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 3, variant="tiny")
    save_model(model, tmp_path / "bicubic" / "espcn_x3.keras", {"track": "bicubic"})
    with pytest.raises(ModelError, match="unknown"):
        load_upscaler("espcn", scale=3, track="unknown")  # no unknown-track weights
    up = load_upscaler("espcn@bicubic", scale=3, track="unknown")
    assert (up.name, up.track, up.sidecar["track"]) == ("espcn@bicubic", "unknown", "bicubic")
    lr = np.random.default_rng(9).random((5, 6, 3), dtype=np.float32)
    np.testing.assert_allclose(up.upscale(lr), super_resolve(model, lr, scale=3), atol=1e-6)
    path = tmp_path / "bicubic" / "espcn_x3.keras"
    with pytest.raises(ModelError, match="track"):
        load_upscaler(str(path), scale=3, track="unknown")  # the sidecar says bicubic
    up = load_upscaler(f"{path}@bicubic", scale=3, track="unknown")
    assert (up.name, up.track) == (f"{path}@bicubic", "unknown")


@pytest.mark.parametrize("text", ["espcn@nope", "espcn@", "m.keras@x"])
def test_name_at_a_bad_track_is_a_clear_error(text, tmp_path, monkeypatch):
    from amls2 import config

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    with pytest.raises(ModelError, match="weights set"):
        load_upscaler(text, scale=3, track="unknown")


def test_weights_file_with_a_sidecar_for_another_scale_is_refused(tmp_path):
    from amls2.models.io import save_model

    path = save_model(
        models.build_model("srcnn", 2, variant="tiny"), tmp_path / "m.keras", {"track": "bicubic"}
    )
    with pytest.raises(ModelError, match="x2"):
        load_upscaler(str(path), scale=4, track="bicubic")
    up = load_upscaler(str(path), scale=2, track="bicubic")
    assert up.input_kind == "bicubic" and up.name == "m"


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_upscaler(str(tmp_path / "nope.keras"), scale=2)


@pytest.mark.parametrize(
    ("name", "scale", "weights_set", "expected"),
    [
        ("rfdn", 2, "bicubic", "amls2 train --recipe rfdn_x2"),
        ("srcnn", 2, "unknown", "amls2 train --recipe srcnn_x2_unknown"),
        ("edsr", 4, "track2sim", "amls2 train --recipe edsr_x4_track2sim"),
        ("espcn", 3, "bicubic", "amls2 train --model espcn --scale 3 --track bicubic"),
        ("espcn", 3, "track2sim", "amls2 train --model espcn --scale 3 --track unknown"),
    ],
)
def test_train_hint_points_at_the_shipped_recipe(name, scale, weights_set, expected):
    assert inference.train_hint(name, scale=scale, weights_set=weights_set) == expected


def test_name_at_a_weights_set_loads_that_folder_for_its_track(tmp_path, monkeypatch):
    """``edsr@track2sim`` reads Selected_models/track2sim/ and checks the sidecar says unknown."""
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 2, variant="tiny")
    save_model(model, tmp_path / "track2sim" / "espcn_x2.keras", {"track": "unknown"})
    up = load_upscaler("espcn@track2sim", scale=2, track="unknown")
    assert up.source == str(tmp_path / "track2sim" / "espcn_x2.keras")
    assert (up.name, up.track) == ("espcn@track2sim", "unknown")
    x3 = models.build_model("espcn", 3, variant="tiny")
    save_model(x3, tmp_path / "track2sim" / "espcn_x3.keras", {"track": "bicubic"})
    with pytest.raises(ModelError, match="bicubic"):
        load_upscaler("espcn@track2sim", scale=3, track="unknown")
