"""The edge-oriented convolution block (amls2.models.ecb): five branches, one 3x3 convolution."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from amls2.models import build_model
from amls2.models.cost import count_macs
from amls2.models.ecb import EDGE_FILTERS, EdgeOrientedConv2D, has_edge_blocks, merge_into_plain
from tests.test_models import assert_one_step_changes_every_weight


def _randomised(layer: EdgeOrientedConv2D, seed: int) -> EdgeOrientedConv2D:
    """Every variable random and away from its initial value (the edge scales start at 1e-3,
    the biases at zero, which would hide a missing term)."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    return layer


def _branches_side_by_side(layer: EdgeOrientedConv2D, x: np.ndarray) -> np.ndarray:
    """ECBSR's training-time form: each branch run on its own, the expanded maps padded with
    their bias (not zeros) before the 3x3 conv, the edge filters as depthwise convolutions."""
    import tensorflow as tf

    out = tf.nn.conv2d(x, layer.k3, 1, "SAME")
    expanded = tf.einsum("nhwc,cm->nhwm", x, layer.expand)
    padded = tf.pad(expanded, [[0, 0], [1, 1], [1, 1], [0, 0]]) + layer.expand_bias
    out += tf.nn.conv2d(padded, layer.squeeze, 1, "VALID")
    for name, mask in EDGE_FILTERS.items():
        maps = tf.einsum("nhwc,co->nhwo", x, layer.edge_1x1[name])
        depthwise = mask[:, :, None, None] * layer.edge_scale[name].numpy()[None, None, :, None]
        out += tf.nn.depthwise_conv2d(maps, depthwise.astype("float32"), [1, 1, 1, 1], "SAME")
    return np.asarray(out + layer.bias)


@pytest.mark.parametrize(("c_in", "c_out", "depth_multiplier"), [(3, 4, 2), (5, 5, 1), (2, 7, 3)])
def test_one_convolution_equals_the_five_branches_borders_included(c_in, c_out, depth_multiplier):
    x = np.random.default_rng(0).normal(size=(2, 7, 9, c_in)).astype("float32")
    layer = EdgeOrientedConv2D(c_out, depth_multiplier=depth_multiplier)
    layer.build(x.shape)
    _randomised(layer, seed=c_in)
    np.testing.assert_allclose(np.asarray(layer(x)), _branches_side_by_side(layer, x), atol=2e-5)
    # ... and equals a plain Conv2D given the merged kernel and bias.
    plain = keras.layers.Conv2D(c_out, 3, padding="same")
    plain.build(x.shape)
    kernel, bias = layer.merged_kernel_and_bias()
    plain.set_weights([np.asarray(kernel), np.asarray(bias)])
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(plain(x)), atol=1e-5)


def test_edge_filters_are_the_published_ones():
    """Sobel x/y and the 4-neighbour Laplacian: each sums to zero (no DC response)."""
    assert EDGE_FILTERS["sobel_x"][1].tolist() == [2, 0, -2]
    np.testing.assert_array_equal(EDGE_FILTERS["sobel_y"], EDGE_FILTERS["sobel_x"].T)
    assert EDGE_FILTERS["laplacian"][1, 1] == -4
    assert all(mask.sum() == 0 for mask in EDGE_FILTERS.values())


@pytest.mark.parametrize("kwargs", [{"strides": 2}, {"padding": "valid"}, {"depth_multiplier": 0}])
def test_only_the_stride_1_same_case_is_accepted(kwargs):
    with pytest.raises(ValueError):
        EdgeOrientedConv2D(4, **kwargs)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ecb_espcn_costs_what_the_plain_one_costs_and_saves_exactly(scale, tmp_path):
    ecb = build_model("espcn", scale, variant="fast", conv_block="ecb")
    plain = build_model("espcn", scale, variant="fast")
    assert count_macs(ecb, (72, 96)) == count_macs(plain, (72, 96))
    assert ecb.count_params() > plain.count_params()  # the branches train, one conv runs
    for layer in ecb.layers:
        if isinstance(layer, EdgeOrientedConv2D):
            _randomised(layer, seed=scale)
    x = np.random.default_rng(1).random((1, 12, 10, 3), dtype=np.float32)
    path = tmp_path / "ecb.keras"
    ecb.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)  # the layer is registered
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(ecb(x)))


def test_every_branch_weight_trains():
    keras.utils.set_random_seed(1)
    model = build_model("espcn", 2, variant="fast", conv_block="ecb", mid_layers=1)
    # The zero-started head passes gradient on once it has moved (second step).
    assert_one_step_changes_every_weight(model, "espcn", 2, steps=2)


def test_bfloat16_compute_merges_in_float32():
    """Under mixed_bfloat16 the branch variables stay float32 (never autocast) and the output
    is the float32 one to bfloat16 precision."""
    x = np.random.default_rng(2).random((1, 9, 9, 3), dtype=np.float32)
    reference = EdgeOrientedConv2D(4)
    reference.build(x.shape)
    _randomised(reference, seed=5)
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        layer = EdgeOrientedConv2D(4)
        layer.build(x.shape)
    finally:
        keras.config.set_dtype_policy(policy)
    layer.set_weights(reference.get_weights())
    assert {v.dtype for v in layer.weights} == {"float32"}
    y = np.asarray(layer(x)).astype("float32")
    np.testing.assert_allclose(y, np.asarray(reference(x)), rtol=0.02, atol=0.05)


@pytest.mark.parametrize(
    ("hparams", "match"),
    [({"conv_block": "rep"}, "valid"), ({"conv_block": "ecb", "kernels": (5, 3, 3)}, "3x3")],
)
def test_espcn_conv_block_errors_name_the_option(hparams, match):
    with pytest.raises(Exception, match=match):
        build_model("espcn", 2, **hparams)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_merged_into_plain_convs_the_model_computes_the_same(scale, tmp_path):
    model = build_model("espcn", scale, variant="fast", conv_block="ecb")
    for layer in model.layers:
        if isinstance(layer, EdgeOrientedConv2D):
            _randomised(layer, seed=scale)
    plain = merge_into_plain(model)
    assert has_edge_blocks(model) and not has_edge_blocks(plain)
    assert plain.count_params() == build_model("espcn", scale, variant="fast").count_params()
    x = np.random.default_rng(3).random((1, 11, 13, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(plain(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-4)
    path = tmp_path / "plain.keras"
    plain.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(plain(x)))
