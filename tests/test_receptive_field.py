"""Tests of amls2.inference.receptive_field: known answers, and paths that random inputs cannot see."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from amls2.inference.receptive_field import receptive_field  # noqa: E402


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
def test_receptive_field_known_answers(kernels, upsample, input_kind, scale, expected, conv_stack):
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
