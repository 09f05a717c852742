"""The model zoo: registry, shapes, training, errors, cost counting and the ``models`` command."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from amls2.errors import ModelError
from amls2.models import MODELS, build_info, build_model, get_spec, model_names, resolve_hparams
from amls2.models.cost import count_macs, count_params, input_hw_for_output

NAMES = model_names()
SCALES = (2, 3, 4)
LR_HW = (7, 9)  # odd on purpose: every layer must work on any size


def expected_output_hw(name: str, scale: int, hw=LR_HW) -> tuple[int, int]:
    factor = 1 if get_spec(name).input_kind == "bicubic" else scale
    return hw[0] * factor, hw[1] * factor


def random_batch(n: int, hw, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *hw, channels), dtype=np.float32)


# -- registry --------------------------------------------------------------------------------


def test_registry_lists_the_required_models():
    required = {"srcnn", "pre_srcnn", "post_srcnn", "iud_srcnn", "fd_srcnn", "fsrcnn", "espcn"}
    required |= {"edsr", "resnet_sr", "rfdn", "esrcnn", "dsrcnn"}
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete_and_read_only(name):
    spec = get_spec(name)
    assert spec.name == name
    assert spec.input_kind in ("lr", "bicubic")
    assert spec.scales == SCALES
    assert spec.paper and spec.summary
    assert "tiny" in spec.variants
    with pytest.raises(TypeError):
        spec.default_hparams["x"] = 1  # read-only mapping
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


def test_variants_change_hparams_and_overrides_win():
    assert resolve_hparams("srcnn", "955")["kernels"] == (9, 5, 5)
    assert resolve_hparams("srcnn")["kernels"] == (9, 1, 5)
    assert resolve_hparams("edsr", "small", filters=16) == {
        **MODELS["edsr"].default_hparams,
        "n_blocks": 8,
        "filters": 16,
    }


# -- shapes of the real default architectures --------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_default_model_output_shape_on_odd_input(name, scale):
    keras.utils.set_random_seed(0)
    model = build_model(name, scale)
    assert model.name == f"{name}_x{scale}"
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)
    out = np.asarray(model(random_batch(1, LR_HW), training=False))
    assert out.shape == (1, *expected_output_hw(name, scale), 3)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", NAMES)
def test_any_channel_count_and_even_size(name):
    model = build_model(name, 2, channels=1, variant="tiny")
    out = np.asarray(model(random_batch(1, (6, 4), channels=1)))
    assert out.shape == (1, *expected_output_hw(name, 2, (6, 4)), 1)


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_builds(name):
    for variant in get_spec(name).variants:
        model = build_model(name, 4, variant=variant)
        shape = model.compute_output_shape((1, 5, 6, 3))
        assert tuple(shape[1:3]) == expected_output_hw(name, 4, (5, 6))


@pytest.mark.parametrize("name", NAMES)
def test_no_lambda_layers(name):
    model = build_model(name, 2)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in kinds


def test_sigmoid_heads_where_the_seed_has_them():
    model = build_model("post_srcnn", 2, variant="tiny")
    assert model.layers[-1].get_config()["activation"] == "sigmoid"
    out = np.asarray(model(random_batch(1, LR_HW) * 50 - 25))
    assert out.min() >= 0 and out.max() <= 1


def test_build_info_records_how_the_model_was_built():
    model = build_model("edsr", 3, variant="small", res_scale=0.1)
    info = build_info(model)
    assert info["name"] == "edsr" and info["scale"] == 3 and info["variant"] == "small"
    assert info["hparams"]["res_scale"] == 0.1 and info["hparams"]["filters"] == 32
    assert build_info(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])) is None


# -- one training step changes every trainable weight -----------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", [n for n in NAMES if n != "linear"])  # linear: solved, not trained
def test_one_training_step_changes_every_trainable_weight(name, scale):
    keras.utils.set_random_seed(1)
    assert_one_step_changes_every_weight(build_model(name, scale, variant="tiny"), name, scale)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ["post_srcnn", "iud_srcnn", "fd_srcnn"])
def test_prelu_image_skip_variant_trains_every_weight(name, scale):
    """The shipped form of the seed models: PReLU activations and the bicubic image skip. The
    residual heads start at zero (the untrained model is bicubic), so the layers before a head
    first get a gradient once it has moved: IUD-SRCNN's first iteration in the third step."""
    from amls2.models.layers import BicubicUpsample

    keras.utils.set_random_seed(1)
    model = build_model(name, scale, variant="tiny", activation="prelu", image_skip="bicubic")
    assert any(isinstance(layer, keras.layers.PReLU) for layer in model.layers)
    x = random_batch(1, LR_HW, seed=3)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(BicubicUpsample(scale)(x)))
    assert_one_step_changes_every_weight(model, name, scale, steps=3)


@pytest.mark.parametrize("scale", SCALES)
def test_fd_srcnn_intermediate_skip_starts_at_bicubic_and_trains_every_weight(scale):
    """Every reconstruction, the intermediate ones too, is a zero-started residual over bicubic:
    the untrained model is exactly bicubic, and no sigmoid is left in it."""
    from amls2.models.layers import BicubicUpsample

    keras.utils.set_random_seed(1)
    hparams = {"activation": "prelu", "image_skip": "bicubic", "intermediate_skip": True}
    model = build_model("fd_srcnn", scale, variant="tiny", **hparams)
    activations = [getattr(layer, "activation", None) for layer in model.layers]
    assert keras.activations.sigmoid not in activations
    seed = build_model("fd_srcnn", scale, variant="tiny", image_skip="bicubic")
    assert keras.activations.sigmoid in [getattr(la, "activation", None) for la in seed.layers]
    x = random_batch(1, LR_HW, seed=3)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(BicubicUpsample(scale)(x)))
    # Each zero-started head passes gradient on once it has moved: at x4 four heads are chained.
    assert_one_step_changes_every_weight(model, "fd_srcnn", scale, steps=5)


def test_fd_srcnn_intermediate_skip_needs_the_image_skip():
    with pytest.raises(ModelError, match="intermediate_skip"):
        build_model("fd_srcnn", 2, variant="tiny", intermediate_skip=True)


def assert_one_step_changes_every_weight(model, name, scale, steps=1):
    import tensorflow as tf

    # Random (not constant) inputs and targets: with a constant image, PReLU slopes and ReLU
    # units see no negative values / no spatial variation and legitimately get zero gradient.
    x = random_batch(2, LR_HW, seed=1)
    y = random_batch(2, expected_output_hw(name, scale), seed=2)
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(x, training=True) - y))  # L1
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    unchanged = [
        v.path
        for v, old in zip(model.trainable_variables, before, strict=True)
        if np.array_equal(v.numpy(), old)
    ]
    assert not unchanged
    assert len(before) > 0


def test_batch_norm_convs_have_no_bias():
    # A bias right before batch norm has an exactly-zero gradient; the convs must not have one.
    model = build_model("resnet_sr", 2, variant="tiny")
    convs_before_bn = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
        and any(
            isinstance(node.operation, keras.layers.BatchNormalization)
            for node in layer._outbound_nodes
        )
    ]
    assert convs_before_bn and not any(layer.use_bias for layer in convs_before_bn)


# -- architecture details (known answers for the reading of the seed) --------------------------


def _count(model, kind) -> int:
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize(
    ("scale", "n_series", "transposed", "pools"),
    [
        # per series: block upsampler + 1x1 shortcut; per module: + global shortcut
        (2, 3, 3 * 2 + 1, 2),
        (3, 3, 3 * 2 + 1, 2),
        (4, 3, 2 * (3 * 2 + 1) + 1, 4),  # two x2 modules + the stride-4 carry of the features
        (2, 1, 1 * 2 + 1, 0),
    ],
)
def test_fd_srcnn_structure(scale, n_series, transposed, pools):
    model = build_model("fd_srcnn", scale, n_series=n_series)
    assert _count(model, keras.layers.Conv2DTranspose) == transposed
    assert _count(model, keras.layers.MaxPooling2D) == pools
    strides = {
        tuple(layer.strides)
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2DTranspose)
    }
    assert strides == ({(2, 2), (4, 4)} if scale == 4 else {(scale, scale)})
    # sigmoid reconstructors: one per series per module
    sigmoid = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.get_config()["activation"] == "sigmoid"
    ]
    assert len(sigmoid) == n_series * (2 if scale == 4 else 1)


def test_fd_srcnn_subpixel_variant_has_no_transposed_convolution():
    from amls2.models.phase_layers import PixelShuffle

    model = build_model("fd_srcnn", 4, variant="tiny", upsampler="subpixel")
    assert _count(model, keras.layers.Conv2DTranspose) == 0
    assert _count(model, PixelShuffle) == 2 * (2 * 2 + 1) + 1


def test_iud_srcnn_goes_up_down_up():
    model = build_model("iud_srcnn", 3)
    assert _count(model, keras.layers.Conv2DTranspose) == 2
    assert _count(model, keras.layers.MaxPooling2D) == 1


# -- custom layers -----------------------------------------------------------------------------


def test_pixel_shuffle_known_answer():
    from amls2.models.phase_layers import PixelShuffle

    x = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)  # 2 output channels, scale 2
    out = np.asarray(PixelShuffle(2)(x))
    assert out.shape == (1, 2, 2, 2)
    # depth_to_space (DCR): channel index = (row * 2 + col) * C_out + c
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 2], [4, 6]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[1, 3], [5, 7]])


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 32])
def test_pixel_shuffle_is_depth_to_space_in_a_graph_with_unknown_sizes(scale, channels):
    import tensorflow as tf

    from amls2.models.phase_layers import PixelShuffle

    layer = PixelShuffle(scale)
    spec = tf.TensorSpec([None, None, None, channels * scale * scale])
    call = tf.function(layer.__call__, input_signature=[spec])
    x = np.random.default_rng(scale).random((2, 5, 7, channels * scale * scale), np.float32)
    np.testing.assert_array_equal(np.asarray(call(x)), tf.nn.depth_to_space(x, scale).numpy())


@pytest.mark.parametrize(("channels", "sign"), [(3, -1), (3, 1), (1, -1)])
def test_mean_shift_known_answer(channels, sign):
    from amls2.models.layers import DIV2K_RGB_MEAN, MeanShift

    x = np.full((1, 2, 2, channels), 0.5, np.float32)
    out = np.asarray(MeanShift(sign=sign)(x))
    mean = np.array(DIV2K_RGB_MEAN) if channels == 3 else np.full(1, np.mean(DIV2K_RGB_MEAN))
    np.testing.assert_allclose(out[0, 0, 0], 0.5 + sign * mean, rtol=1e-6)


def test_resize_like_matches_the_reference_size():
    from amls2.models.layers import ResizeLike

    small = np.full((1, 2, 3, 4), 0.25, np.float32)
    ref = np.zeros((1, 7, 9, 1), np.float32)
    out = np.asarray(ResizeLike()([small, ref]))
    assert out.shape == (1, 7, 9, 4)
    np.testing.assert_allclose(out, 0.25, rtol=1e-6)  # bilinear keeps a constant


@pytest.mark.parametrize("strides", [2, 3, 4, (2, 3)])
@pytest.mark.parametrize(("hw", "act"), [((7, 9), None), ((1, 4), "relu")])
def test_pointwise_conv_transpose_matches_conv2d_transpose(strides, hw, act):
    """Same weights and outputs as Keras' 1x1 Conv2DTranspose ("same"); gradients as NumPy
    (Keras' own filter gradient is the oneDNN kernel the layer avoids)."""
    import tensorflow as tf

    from amls2.models.layers import PointwiseConv2DTranspose

    rng = np.random.default_rng(0)
    x = tf.constant(random_batch(2, hw, channels=3))
    ref = keras.layers.Conv2DTranspose(4, 1, strides=strides, padding="same", activation=act)
    layer = PointwiseConv2DTranspose(4, 1, strides=strides, padding="same", activation=act)
    ref.build(x.shape)
    layer.build(x.shape)
    assert [w.shape for w in layer.weights] == [w.shape for w in ref.weights]
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in ref.weights]
    ref.set_weights(weights)
    layer.set_weights(weights)
    y = layer(x)
    np.testing.assert_allclose(y, ref(x), atol=1e-5)
    assert tuple(y.shape) == tuple(ref.compute_output_shape(x.shape))

    dy = rng.normal(size=y.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * dy)
    dx, dk, db = tape.gradient(loss, [x, layer.kernel, layer.bias])
    s_h, s_w = (strides, strides) if isinstance(strides, int) else strides
    w, b = weights[0][0, 0], weights[1]  # (filters, in), (filters,)
    pre = np.einsum("nhwc,fc->nhwf", x.numpy(), w) + b  # the values at (i * s_h, j * s_w)
    dy_hit = dy[:, ::s_h, ::s_w] * (pre > 0 if act == "relu" else 1)
    np.testing.assert_allclose(dx, np.einsum("nhwf,fc->nhwc", dy_hit, w), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        dk[0, 0], np.einsum("nhwf,nhwc->fc", dy_hit, x), rtol=1e-4, atol=1e-4
    )
    expected_db = (dy * (y.numpy() > 0 if act == "relu" else 1)).sum((0, 1, 2))
    np.testing.assert_allclose(db, expected_db, rtol=1e-4, atol=1e-4)


def test_conv_transpose_uses_the_pointwise_layer_only_for_strided_1x1():
    from amls2.models.layers import PointwiseConv2DTranspose, conv_transpose

    assert type(conv_transpose(4, 1, strides=2)) is PointwiseConv2DTranspose
    assert type(conv_transpose(4, 5, strides=2)) is keras.layers.Conv2DTranspose
    assert type(conv_transpose(4, 1, strides=1)) is keras.layers.Conv2DTranspose
    model = build_model("fd_srcnn", 2, variant="tiny")
    pointwise = [layer for layer in model.layers if isinstance(layer, PointwiseConv2DTranspose)]
    assert len(pointwise) == 2  # the 1x1 shortcut of each block series
    assert all(tuple(layer.kernel_size) == (1, 1) for layer in pointwise)


_ONEDNN_CRASH_SCRIPT = """
import keras
import tensorflow as tf
from amls2.models import build_model
keras.utils.set_random_seed(0)
for scale in (2, 4):
    model = build_model("fd_srcnn", scale, variant="tiny")
    x = tf.random.uniform((2, 48, 48, 3))
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True))
        tape.gradient(loss, model.trainable_variables)
print("ok")
"""


def test_fd_srcnn_tiny_trains_without_the_onednn_heap_corruption():
    """Regression: 1x1 stride-s transposed convs with < 16 filters made oneDNN's strided 1x1
    backward-weights kernel write past its buffer (abort / segfault at 48x48, oneDNN on).
    Run in a subprocess so a crash fails this test instead of killing pytest."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "MALLOC_CHECK_": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", _ONEDNN_CRASH_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip().endswith("ok")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_bicubic_upsample_matches_matlab_away_from_the_border(scale):
    from amls2.imaging.resize import imresize
    from amls2.models.layers import BicubicUpsample

    lr = random_batch(1, (12, 13))
    up = np.asarray(BicubicUpsample(scale)(lr))[0]
    assert up.shape == (12 * scale, 13 * scale, 3)
    margin = 3 * scale
    inner = np.s_[margin:-margin, margin:-margin]
    assert np.abs(up - imresize(lr[0], scale))[inner].max() < 1e-3


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("hw", [(12, 13), (1, 5), (2, 2)])
def test_bicubic_phases_shuffled_equal_matlab_everywhere(scale, hw):
    """MATLAB's bicubic at LR size: after the shuffle, equal to imresize borders included
    (edges replicated as imresize clamps), even for 1- and 2-pixel images."""
    from amls2.imaging.resize import imresize
    from amls2.models.phase_layers import BicubicPhases, PixelShuffle

    lr = random_batch(1, hw)
    up = np.asarray(PixelShuffle(scale)(BicubicPhases(scale)(lr)))[0]
    np.testing.assert_allclose(up, imresize(lr[0].astype(np.float64), scale), atol=1e-6)


@pytest.mark.parametrize("scale", SCALES)
def test_bicubic_phase_weights_sum_to_one_per_phase(scale):
    from amls2.models.phase_layers import bicubic_phase_weights

    weights = bicubic_phase_weights(scale)
    assert weights.shape == (scale, 5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # Phases mirror each other about the pixel centre.
    np.testing.assert_allclose(weights, weights[::-1, ::-1], atol=1e-12)


@pytest.mark.parametrize("scale", SCALES)
def test_fast_espcn_starts_at_matlab_bicubic_and_has_no_hr_resize(scale):
    from amls2.imaging.resize import imresize
    from amls2.models.layers import BicubicUpsample

    model = build_model("espcn", scale, variant="fast")
    assert not any(isinstance(layer, BicubicUpsample) for layer in model.layers)
    lr = random_batch(1, (9, 10))
    expected = imresize(lr[0].astype(np.float64), scale)
    np.testing.assert_allclose(np.asarray(model(lr))[0], expected, atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
def test_learned_skip_starts_at_matlab_bicubic_round_trips_and_trains(scale, tmp_path):
    """``learned_skip``: the same start as the fixed skip, a kernel that one training step
    changes (every colour may feed every phase), identical outputs after a safe_mode load."""
    import tensorflow as tf

    from amls2.imaging.resize import imresize
    from amls2.models.io import load_model, save_model
    from amls2.models.phase_layers import LinearPhases

    model = build_model("espcn", scale, variant="fast", learned_skip=True)
    (skip,) = [layer for layer in model.layers if isinstance(layer, LinearPhases)]
    lr = random_batch(1, (9, 10))
    expected = imresize(lr[0].astype(np.float64), scale)
    np.testing.assert_allclose(np.asarray(model(lr))[0], expected, atol=1e-5)

    start = skip.get_weights()[0].copy()
    hr = random_batch(1, (9 * scale, 10 * scale))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(lr, training=True) - hr))
    grad = tape.gradient(loss, skip.kernel)
    skip.kernel.assign_sub(0.1 * grad)
    assert np.all(skip.get_weights()[0] != start)  # the zeros off the colour blocks too

    path = save_model(model, tmp_path / "m.keras")
    loaded, _ = load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(lr)), np.asarray(model(lr)))


def test_learned_skip_needs_the_bicubic_skip():
    with pytest.raises(ModelError, match="learned_skip"):
        build_model("espcn", 2, learned_skip=True)


@pytest.mark.parametrize("mid_layers", [1, 3])
def test_espcn_mid_layers_adds_convolutions(mid_layers):
    model = build_model("espcn", 2, mid_layers=mid_layers)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == mid_layers + 2
    with pytest.raises(ModelError, match="mid_layers"):
        build_model("espcn", 2, mid_layers=0)


@pytest.mark.parametrize("name", ["rfdn", "edsr", "post_srcnn", "iud_srcnn", "fd_srcnn"])
@pytest.mark.parametrize("scale", SCALES)
def test_image_skip_adds_the_bicubic_upscale(name, scale):
    """With the last convolution zeroed, only the image skip is left: the bicubic upscale."""
    from amls2.models.layers import BicubicUpsample

    model = build_model(name, scale, variant="tiny", image_skip="bicubic")
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    last_conv.set_weights([np.zeros_like(w) for w in last_conv.get_weights()])
    lr = random_batch(1, (9, 10))
    expected = np.asarray(BicubicUpsample(scale)(lr))
    np.testing.assert_allclose(np.asarray(model(lr)), expected, atol=1e-6)
    plain = build_model(name, scale, variant="tiny")
    assert len(model.layers) > len(plain.layers)


def test_unknown_image_skip_is_a_model_error():
    with pytest.raises(ModelError, match="image_skip"):
        build_model("rfdn", 2, image_skip="lanczos")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelError, match=r"'nope'.*unknown.*srcnn.*fd_srcnn.*rfdn"):
        build_model("nope", 2)


@pytest.mark.parametrize("bad_scale", [1, 5, 8, 2.0, "2", True])
@pytest.mark.parametrize("name", ["srcnn", "fd_srcnn", "edsr"])
def test_bad_scale_lists_valid_scales(name, bad_scale):
    with pytest.raises(ModelError, match=r"scale .* unsupported; valid: \[2, 3, 4\]"):
        build_model(name, bad_scale)


def test_unknown_hparam_lists_valid_hparams():
    with pytest.raises(ModelError, match=r"unknown hparam\(s\) \['widht'\]; valid: .*'width'"):
        build_model("fd_srcnn", 2, widht=32)


def test_unknown_variant_lists_valid_variants():
    with pytest.raises(ModelError, match=r"unknown variant 'huge'.*'baseline'.*'small'"):
        build_model("edsr", 2, variant="huge")


@pytest.mark.parametrize(
    ("name", "hparams"),
    [
        ("fd_srcnn", {"upsampler": "bilinear"}),
        ("srcnn", {"activation": "swish"}),
        ("srcnn", {"depth": 2}),
    ],
)
def test_invalid_hparam_value_is_a_model_error(name, hparams):
    with pytest.raises(ModelError, match=name):
        build_model(name, 2, **hparams)


def test_bad_channels():
    with pytest.raises(ModelError, match="channels"):
        build_model("srcnn", 2, channels=0)


# -- parameters and multiply-adds: known answers ------------------------------------------------

HD = (720, 1280)  # 1280x720 output (height, width)


@pytest.mark.parametrize(
    ("channels", "variant", "weights"),
    [
        # 9-1-5, 64/32: 9*9*C*64 + 1*1*64*32 + 5*5*32*C weights (Dong et al.: 8032 for C=1)
        (1, "915", 8032),
        (3, "915", 9 * 9 * 3 * 64 + 64 * 32 + 5 * 5 * 32 * 3),
        # 9-5-5: 57,184 weights for C=1 (Dong et al. 2016, Table 1)
        (1, "955", 57184),
    ],
)
def test_srcnn_params_and_macs_known_answers(channels, variant, weights):
    model = build_model("srcnn", 2, channels=channels, variant=variant)
    biases = 64 + 32 + channels
    assert count_params(model) == weights + biases
    # Bicubic-input model: it runs at the output size, every weight is used once per pixel.
    assert count_macs(model, HD) == weights * 720 * 1280


def test_srcnn_955_matches_the_published_52_7g():
    # CARN (Ahn et al. 2018) Table: SRCNN 57K params, 52.7G multi-adds for a 720p output.
    macs = count_macs(build_model("srcnn", 3, channels=1, variant="955"), HD)
    assert round(macs / 1e9, 1) == 52.7


def test_fsrcnn_known_answer():
    # Dong et al. 2016: FSRCNN(56,12,4) has 12,464 weights for one channel; the 9x9 deconvolution
    # counted at LR resolution gives the paper's complexity (25d + sd + 9ms^2 + ds + 81d) * S_LR.
    model = build_model("fsrcnn", 3, channels=1)
    weights = 25 * 56 + 12 * 56 + 9 * 4 * 12 * 12 + 12 * 56 + 81 * 56
    assert weights == 12464
    biases, prelu = 56 + 12 + 4 * 12 + 56 + 1, 56 + 12 + 4 * 12 + 56
    assert count_params(model) == weights + biases + prelu
    assert count_macs(model, HD) == weights * 240 * 427  # input 427x240 (rounded)


def test_edsr_baseline_known_answer():
    # EDSR baseline x2: 1.37M params, 316.2G multi-adds at 720p (as reported e.g. in IMDN, CARN).
    model = build_model("edsr", 2, variant="baseline")
    assert round(count_params(model) / 1e6, 2) == 1.37
    assert abs(count_macs(model, HD) / 1e9 - 316.2) < 0.1


def test_count_macs_layer_rules_on_a_hand_built_model():
    inp = keras.Input((None, None, 4))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)  # 10*12*9*4*8 = 34560
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2)(x)  # 10*12*9*8*8/2 = 34560
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 10*12*9*8*2=17280
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # 10*12*(9*16 + 16*6) = 28800
    x = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same")(x)  # 10*12*16*6*5 = 57600
    x = keras.layers.Dense(2)(x)  # 20*24*5*2 = 4800
    model = keras.Model(inp, x)
    assert input_hw_for_output(model, (20, 24)) == (10, 12)
    assert count_macs(model, (20, 24)) == 34560 + 34560 + 17280 + 28800 + 57600 + 4800


@pytest.mark.parametrize(("scale", "expected"), [(2, (360, 640)), (3, (240, 427)), (4, (180, 320))])
def test_input_size_for_a_720p_output(scale, expected):
    assert input_hw_for_output(build_model("espcn", scale, variant="tiny"), HD) == expected
    assert input_hw_for_output(build_model("srcnn", scale, variant="tiny"), HD) == HD


def test_transposed_conv_counted_at_input_resolution():
    model = build_model("pre_srcnn", 4, channels=1, variant="tiny")
    convs = (9 * 9 * 1 * 8 + 8 * 4 + 25 * 4 * 1) * 720 * 1280
    deconv = 180 * 320 * 9 * 9 * 1 * 1
    assert count_macs(model, HD) == convs + deconv


# -- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "input_size"), [("2", "640x360"), ("3", "427x240")])
def test_models_command_lists_every_model(capsys, scale, input_size):
    from amls2.cli import main

    assert main(["models", "--scale", scale]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert f"\n{name} " in out
    assert f"MACs x{scale}" in out
    assert input_size in out
    assert "Conv2DTranspose is counted at its input resolution" in out
    assert "20,099" in out  # srcnn 9-1-5 RGB
    assert "18.43G" in out  # srcnn: 20,000 weights x 1280 x 720


def test_models_command_rejects_a_bad_scale(capsys):
    from amls2.cli import main

    with pytest.raises(SystemExit):
        main(["models", "--scale", "5"])


def test_resnet_sr_without_batch_norm_has_biases_and_trains_every_weight():
    """resnet_sr's training default drops BN (EDSR's choice); the builder default keeps it."""
    model = build_model("resnet_sr", 2, variant="tiny", batch_norm=False, image_skip="bicubic")
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    assert all(la.use_bias for la in convs)
    seed = build_model("resnet_sr", 2, variant="tiny")
    assert any(isinstance(la, keras.layers.BatchNormalization) for la in seed.layers)
    keras.utils.set_random_seed(1)
    assert_one_step_changes_every_weight(model, "resnet_sr", 2, steps=2)


@pytest.mark.parametrize("scale", SCALES)
def test_learned_skip_counts_its_dense_kernel(scale):
    """The fixed skip counts bicubic's 4x4 taps per output value; the learned one its dense
    5x5 kernel over all 3 colours: 75 per output value."""
    from amls2.models.cost import count_macs

    fixed = count_macs(build_model("espcn", scale, variant="fast"), (12 * scale, 12 * scale))
    learned = count_macs(
        build_model("espcn", scale, variant="fast", learned_skip=True), (12 * scale, 12 * scale)
    )
    assert learned - fixed == (75 - 16) * 12 * 12 * 3 * scale * scale
