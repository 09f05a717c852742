"""Inference re-parameterisation (amls2.inference.fast.reparam): the same function, faster layers."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from amls2.inference.fast.fused_layers import (
    BiaslessConv2DTranspose,
    FusedPReLU,
    SubpixelTransposedConv,
    TapSplitConv2D,
    TransposedFormConv2D,
    subpixel_kernel,
    subpixel_taps,
)
from amls2.inference.fast.reparam import (
    count_replaceable,
    fast_inference_model,
    largest_convolved_input,
)
from amls2.inference.model_call import run_batch
from amls2.models import build_model
from amls2.models.io import load_model


@pytest.fixture(autouse=True)
def _direct_convolutions_by_default(monkeypatch):
    """The structural tests here count replaced layers: they see an AVX-512 machine, where
    ``conv_form="auto"`` leaves convolutions as they are, whatever CPU runs them. The forms'
    outputs are compared explicitly below."""
    from amls2.inference.fast import onednn

    monkeypatch.setattr(onednn, "conv_path", lambda: "onednn-avx512")


SHIPPED = sorted(Path(__file__).resolve().parents[1].glob("Selected_models/*/*.keras"))


def _transposed(kernel: int, stride: int, rng, *, use_bias=True, activation=None):
    inp = keras.Input((None, None, 5))
    layer = keras.layers.Conv2DTranspose(
        4, kernel, strides=stride, padding="same", use_bias=use_bias, activation=activation
    )
    model = keras.Model(inp, layer(inp))
    layer.set_weights([rng.normal(0, 0.3, w.shape) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("kernel, stride", [(1, 2), (3, 2), (5, 2), (5, 3), (5, 4), (9, 3), (4, 2)])
def test_subpixel_form_equals_transposed_conv(kernel, stride, rng):
    model = _transposed(kernel, stride, rng, activation="relu")
    fast = fast_inference_model(model, subpixel="all")
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in fast.layers)
    x = rng.random((2, 11, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(fast(x), model(x), atol=1e-5)


def test_subpixel_kernel_places_every_tap_once(rng):
    kernel = rng.normal(size=(5, 5, 4, 3)).astype(np.float32)
    sub = np.asarray(subpixel_kernel(kernel, subpixel_taps(5, 5, 2)))
    assert sub.shape == (3, 3, 3, 16)
    # Each transposed tap lands in exactly one (offset, phase) slot: nothing lost, nothing doubled.
    assert np.isclose(np.abs(sub).sum(), np.abs(kernel).sum(), rtol=1e-6)


def test_select_prelu_is_bit_identical_for_any_alpha(rng):
    inp = keras.Input((None, None, 6))
    prelu = keras.layers.PReLU(shared_axes=[1, 2])
    model = keras.Model(inp, prelu(inp))
    prelu.set_weights([np.array([[[-0.7, -0.1, 0.0, 0.3, 1.0, 2.5]]], np.float32)])
    fast = fast_inference_model(model)
    assert isinstance(fast.layers[1], FusedPReLU)
    x = rng.normal(size=(1, 9, 9, 6)).astype(np.float32)
    x[0, 0, 0] = 0.0
    np.testing.assert_array_equal(np.asarray(fast(x)), np.asarray(model(x)))


def _transposed_prelu(rng, *, second_consumer: bool):
    inp = keras.Input((None, None, 5))
    transposed = keras.layers.Conv2DTranspose(16, 5, strides=2, padding="same")
    prelu = keras.layers.PReLU(shared_axes=[1, 2])
    y = transposed(inp)
    out = prelu(y)
    if second_consumer:  # the bias-free output must not leak to another layer
        out = keras.layers.Concatenate()([out, y])
    model = keras.Model(inp, out)
    transposed.set_weights(
        [w + rng.normal(size=w.shape).astype(np.float32) for w in transposed.get_weights()]
    )
    prelu.set_weights([rng.uniform(-1, 2, (1, 1, 16)).astype(np.float32)])
    return model


@pytest.mark.parametrize("second_consumer", [False, True])
def test_transposed_conv_bias_moves_into_the_prelu_loop_only_when_it_is_the_only_consumer(
    rng, second_consumer
):
    model = _transposed_prelu(rng, second_consumer=second_consumer)
    fast = fast_inference_model(model)
    fused = [layer for layer in fast.layers if isinstance(layer, FusedPReLU)]
    assert len(fused) == 1
    assert (fused[0].bias_of is None) is second_consumer
    assert any(isinstance(la, BiaslessConv2DTranspose) for la in fast.layers) is not second_consumer
    x = rng.normal(size=(2, 7, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(model(x)), rtol=0, atol=1e-6)
    # Built twice (model_call rebuilds after training): the graph, not the layers' history, decides.
    again = fast_inference_model(model)
    assert (
        any(isinstance(la, BiaslessConv2DTranspose) for la in again.layers) is not second_consumer
    )


@pytest.mark.parametrize("filters, replaced", [(3, True), (64, False)])
def test_auto_replaces_only_the_transposed_convs_that_output_the_image(filters, replaced):
    inp = keras.Input((None, None, 8))
    model = keras.Model(
        inp, keras.layers.Conv2DTranspose(filters, 9, strides=2, padding="same")(inp)
    )
    fast = fast_inference_model(model)
    assert any(isinstance(layer, SubpixelTransposedConv) for layer in fast.layers) is replaced


def test_the_fast_layers_count_the_multiply_adds_of_the_layers_they_replace():
    """benchmarks/layer_profile.py counts each layer of the fast form: the same totals."""
    from amls2.models.cost import _layer_macs

    inp = keras.Input((None, None, 8))
    transposed = keras.layers.Conv2DTranspose(3, 9, strides=3, padding="same")
    prelu = keras.layers.PReLU(shared_axes=[1, 2])
    keras.Model(inp, transposed(prelu(inp)))
    shapes, out = [(10, 12, 8)], (30, 36, 3)
    assert SubpixelTransposedConv(transposed).count_macs(shapes, out) == _layer_macs(
        transposed, shapes, out
    )
    assert FusedPReLU(prelu).count_macs(shapes, shapes[0]) == 0


def test_unknown_subpixel_choice_lists_the_valid_ones():
    with pytest.raises(ValueError, match="auto"):
        fast_inference_model(build_model("fsrcnn", 2), subpixel="some")


@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (9, 9), (4, 2), (1, 3)])
@pytest.mark.parametrize(
    ("use_bias", "activation"), [(True, None), (False, None), (True, "sigmoid")]
)
def test_a_conv_to_the_image_split_into_taps_is_the_same_conv(
    rng, kernel, use_bias, activation, monkeypatch
):
    """Odd, even and non-square kernels: TensorFlow's "same" padding puts the extra row and
    column of an even kernel at the bottom and right; the shifted sum must match. An activation
    (FD-SRCNN's sigmoid stage outputs) follows the sum."""
    inp = keras.Input((None, None, 16))
    conv = keras.layers.Conv2D(3, kernel, padding="same", use_bias=use_bias, activation=activation)
    model = keras.Model(inp, conv(inp))
    from amls2.inference.fast import fused_layers

    monkeypatch.setattr(fused_layers, "FUSE_MIN_ELEMENTS", 0)  # the XLA loop, not the plain conv
    fan_in = kernel[0] * kernel[1] * 16  # outputs of order 1, as an image
    weights = [rng.normal(size=w.shape) / np.sqrt(fan_in) for w in conv.get_weights()]
    conv.set_weights([w.astype(np.float32) for w in weights])
    fast = fast_inference_model(model)
    assert isinstance(fast.layers[1], TapSplitConv2D)
    x = rng.normal(size=(2, 11, 8, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "conv_kwargs", [{"filters": 8}, {"strides": 2}, {"kernel_size": 1}, {"dilation_rate": 2}]
)
def test_only_stride_1_convs_to_a_few_maps_are_split(conv_kwargs):
    inp = keras.Input((None, None, 16))
    kwargs = {"filters": 3, "kernel_size": 3, "padding": "same", **conv_kwargs}
    model = keras.Model(inp, keras.layers.Conv2D(**kwargs)(inp))
    assert count_replaceable(model) == 0


def test_model_without_replaceable_layers_is_returned_as_is():
    model = build_model("espcn", 2, variant="fast")
    assert count_replaceable(model, conv_form="direct") == 0
    assert fast_inference_model(model, conv_form="direct") is model


@pytest.fixture
def conv_path(monkeypatch):
    """``conv_path(path)``: make TensorFlow's convolutions look as if they took ``path``."""
    from amls2.inference.fast import onednn

    return lambda path: monkeypatch.setattr(onednn, "conv_path", lambda: path)


@pytest.mark.parametrize(("path", "form", "replaced"), [
    ("onednn-avx512", "auto", 0), ("onednn-below-avx512", "auto", 6), ("eigen", "auto", 0),
    ("onednn-avx512", "transposed", 6), ("eigen", "transposed", 6),
    ("onednn-below-avx512", "direct", 0),
])  # fmt: skip
def test_convolutions_take_the_transposed_form_only_under_onednn_below_avx512(
    conv_path, path, form, replaced
):
    conv_path(path)
    model = build_model("espcn", 2, variant="fast")  # six 3x3 convolutions, nothing else
    assert count_replaceable(model, conv_form=form) == replaced


@pytest.mark.parametrize(
    "conv_kwargs",
    [
        {"kernel_size": 3, "activation": "relu"},
        {"kernel_size": 5, "use_bias": False},
        {"kernel_size": (3, 5), "filters": 7},
    ],
)
def test_the_transposed_form_of_a_convolution_is_the_same_convolution(rng, conv_kwargs):
    inp = keras.Input((None, None, 6))
    kwargs = {"filters": 16, "padding": "same", **conv_kwargs}
    conv = keras.layers.Conv2D(**kwargs)
    model = keras.Model(inp, conv(inp))
    conv.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in conv.get_weights()])
    fast = fast_inference_model(model, conv_form="transposed")
    assert isinstance(fast.layers[1], TransposedFormConv2D)
    x = rng.normal(size=(2, 13, 9, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "conv_kwargs",
    [{"kernel_size": 1}, {"kernel_size": 4}, {"strides": 2}, {"dilation_rate": 2}, {"groups": 2}],
)
def test_only_odd_stride_1_convolutions_take_the_transposed_form(conv_kwargs):
    inp = keras.Input((None, None, 8))
    kwargs = {"filters": 8, "kernel_size": 3, "padding": "same", **conv_kwargs}
    model = keras.Model(inp, keras.layers.Conv2D(**kwargs)(inp))
    assert count_replaceable(model, conv_form="transposed") == 0


def test_an_unknown_conv_form_lists_the_valid_ones():
    with pytest.raises(ValueError, match="direct"):
        fast_inference_model(build_model("espcn", 2, variant="fast"), conv_form="im2col")


def test_fast_model_shares_weights_and_follows_training(rng):
    """The fast form reads the model's own variables: a model that keeps training (validation
    runs through inference) is never evaluated with stale weights."""
    model = build_model("fsrcnn", 2)
    fast = fast_inference_model(model)
    assert fast is not model and fast.name == model.name
    assert {id(v) for v in fast.weights} == {id(v) for v in model.weights}
    x = rng.random((1, 8, 8, 3)).astype(np.float32)
    run_batch(model, x)  # caches the compiled fast form
    for v in model.weights:
        v.assign(rng.normal(0, 0.1, v.shape).astype(np.float32))
    np.testing.assert_allclose(run_batch(model, x), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_model_gives_the_same_outputs(path, rng):
    """What inference runs equals the saved model, within 1e-5, on both paths of the switch
    (the fast form and the saved graph), in both forms of the transposed convolutions and with
    the convolutions in transposed form."""
    model = load_model(path)[0]
    x = rng.random((1, 20, 23, int(model.inputs[0].shape[-1]))).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(run_batch(model, x, fast=True), expected, atol=1e-5)
    np.testing.assert_allclose(run_batch(model, x, fast=False), expected, atol=1e-5)
    sub = fast_inference_model(model, subpixel="all")
    np.testing.assert_allclose(np.asarray(sub(x, training=False)), expected, atol=1e-5)
    transposed = fast_inference_model(model, conv_form="transposed")
    np.testing.assert_allclose(np.asarray(transposed(x, training=False)), expected, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["srcnn_x2", "post_srcnn_x4", "iud_srcnn_x3", "fd_srcnn_x3", "fd_srcnn_x4", "edsr_x2"]
)
def test_the_xla_loops_compute_what_the_saved_layers_do(name, monkeypatch):
    """Small maps take the TensorFlow-ops path (no compile per image size); with the threshold
    at zero every fused layer runs its XLA loop: the same outputs."""
    from amls2.inference.fast import fused_layers

    path = next(p for p in SHIPPED if p.parent.name == "bicubic" and p.stem == name)
    model = load_model(path)[0]
    x = np.random.default_rng(0).random((1, 23, 19, 3), dtype=np.float32)
    if name.startswith("srcnn"):
        x = np.random.default_rng(0).random((1, 46, 38, 3), dtype=np.float32)
    monkeypatch.setattr(fused_layers, "FUSE_MIN_ELEMENTS", 0)
    fast = fast_inference_model(model)
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(model(x)), rtol=0, atol=1e-5)


def _maps_then_upsample(first_filters: int, last_filters: int, last_kernel: int):
    """3 -> ``first_filters`` maps (3x3), nearest x2, then a ``last_kernel`` conv to
    ``last_filters`` maps at twice the input size."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(first_filters, 3, padding="same")(inp)
    x = keras.layers.UpSampling2D(2)(x)
    return keras.Model(inp, keras.layers.Conv2D(last_filters, last_kernel, padding="same")(x))


@pytest.mark.parametrize(
    ("first", "last", "kernel", "expected"),
    [
        (16, 16, 3, 16 * 4),  # 16 maps at twice the size, convolved 3x3
        (16, 16, 1, 16 * 4 / 2),  # a 1x1 conv counts half
        (16, 3, 3, 3),  # 16 maps -> the image: a matrix product to its taps, not counted
        (8, 3, 3, 8 * 4),  # fewer than 16 maps are not split
        (1, 1, 1, 3),  # the first conv's 3-map input is the largest
    ],
)
def test_largest_convolved_input_counts_maps_per_input_pixel(first, last, kernel, expected):
    model = _maps_then_upsample(first, last, kernel)
    assert largest_convolved_input(model) == expected


@pytest.mark.parametrize(
    ("first", "last", "kernel", "expected"),
    [
        (16, 16, 3, 3),  # both convolutions in the transposed form: none counts (3 input maps)
        (16, 16, 1, 16 * 4 / 2),  # the 1x1 one still runs as GEMM
        (16, 3, 3, 3),  # a convolution to the image is a matrix product: nothing counts
    ],
)
def test_convolutions_in_transposed_form_need_no_gemm_scratch(first, last, kernel, expected):
    model = _maps_then_upsample(first, last, kernel)
    assert largest_convolved_input(model, conv_form="transposed") == expected


def test_the_plan_of_a_merge_claims_its_four_layers_once():
    """FD-SRCNN's up-projection merges: one walk of the graph plans each Add as the fused loop,
    its PReLU as passed through, its two convolutions without biases; no layer twice."""
    from amls2.inference.fast.reparam import plan

    path = next(p for p in SHIPPED if p.parent.name == "bicubic" and p.stem == "fd_srcnn_x2")
    steps = plan(load_model(path)[0])
    merges = [step for step in steps if step.action == "up_add_prelu"]
    assert merges and len({id(step.layer) for step in steps}) == len(steps)
    actions = {id(step.layer): step.action for step in steps}
    for merge in merges:
        prelu, transposed, pointwise = merge.partners
        assert (actions[id(prelu)], actions[id(transposed)], actions[id(pointwise)]) == (
            "pass", "biasless", "lr_product",
        )  # fmt: skip
