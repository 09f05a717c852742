"""The NumPy reference forward pass against hand-computed answers and against Keras/TensorFlow."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from amls2.errors import ModelError
from amls2.models import build_model
from amls2.models.io import save_model
from amls2.models.reference import conv2d, extract_steps, reference_forward


def test_conv2d_known_answer_box_filter():
    # A 3x3 box sum of a 3x3 image of ones with zero "same" padding: corner 4, edge 6, centre 9.
    x = np.ones((1, 3, 3, 1))
    kernel = np.ones((3, 3, 1, 1))
    out = conv2d(x, kernel, None)[0, :, :, 0]
    np.testing.assert_array_equal(out, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_conv2d_is_cross_correlation_not_convolution():
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 1.0  # an impulse in the centre
    kernel = np.arange(9, dtype=float).reshape(3, 3, 1, 1)
    out = conv2d(x, kernel, np.array([0.5]))[0, :, :, 0]
    # Cross-correlation of an impulse gives the kernel flipped in both axes (+ bias).
    np.testing.assert_array_equal(out, kernel[::-1, ::-1, 0, 0] + 0.5)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(("k_h", "k_w"), [(1, 1), (3, 3), (5, 5), (9, 9), (4, 2), (2, 3)])
def test_conv2d_matches_tensorflow(rng, k_h, k_w, padding):
    import tensorflow as tf

    x = rng.standard_normal((2, 11, 10, 3))
    kernel = rng.standard_normal((k_h, k_w, 3, 4))
    bias = rng.standard_normal(4)
    expected = tf.nn.conv2d(x, kernel, strides=1, padding=padding.upper()).numpy() + bias
    np.testing.assert_allclose(conv2d(x, kernel, bias, padding), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("variant", "hparams"),
    [("915", {}), ("955", {}), ("deep8", {"residual": False}), (None, {"activation": "relu"})],
)
def test_srcnn_reference_matches_keras(rng, variant, hparams):
    keras.utils.set_random_seed(5)
    model = build_model("srcnn", 3, variant=variant, **hparams)
    x = rng.random((2, 13, 11, 3), dtype=np.float32)
    expected = np.asarray(model(x))
    got = reference_forward(model, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_reference_reads_a_saved_keras_file_and_single_images(tmp_path, rng):
    keras.utils.set_random_seed(6)
    model = build_model("srcnn", 2)
    path = save_model(model, tmp_path / "srcnn.keras", {"track": "bicubic"})
    image = rng.random((9, 7, 3), dtype=np.float32)
    got = reference_forward(path, image)
    assert got.shape == (9, 7, 3)
    np.testing.assert_allclose(got, np.asarray(model(image[None]))[0], rtol=0, atol=1e-5)


def test_sigmoid_and_standalone_activation_layers(rng):
    inp = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(3, 1, activation="sigmoid")(x)
    x = keras.layers.Activation("tanh")(x)
    model = keras.Model(inp, x)
    image = rng.random((1, 6, 5, 2), dtype=np.float32)
    np.testing.assert_allclose(reference_forward(model, image), np.asarray(model(image)), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "hparams", "layer_kind"),
    [
        ("srcnn", {"residual": True}, "Add"),
        ("srcnn", {"batch_norm": True}, "BatchNormalization"),
        ("srcnn", {"activation": "prelu"}, "PReLU"),
        ("pre_srcnn", {}, "Conv2DTranspose"),
        ("espcn", {}, "PixelShuffle"),  # its tanh activations are supported, the shuffle is not
    ],
)
def test_unsupported_layer_names_it(name, hparams, layer_kind):
    model = build_model(name, 2, variant="tiny", **hparams)
    with pytest.raises(ModelError, match=rf"layer '[^']+' \({layer_kind}\): unsupported"):
        extract_steps(model)


def test_strided_conv_is_refused():
    inp = keras.Input((None, None, 1))
    model = keras.Model(inp, keras.layers.Conv2D(1, 3, strides=2, name="down")(inp))
    with pytest.raises(ModelError, match=r"layer 'down': only stride 1"):
        extract_steps(model)
