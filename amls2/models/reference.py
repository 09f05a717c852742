"""A pure NumPy forward pass for sequential all-convolutional models (SRCNN and friends).

Like the seed, which rebuilt SRCNN's convolution and ReLU in NumPy, this reads a model's weights
(a ``keras.Model`` or a ``.keras``/``.h5`` path) and runs it without TensorFlow: a check of the
Keras graph and a readable statement of what SRCNN computes. Supported: a chain of stride-1,
dilation-1 ``Conv2D`` layers with "same" (or "valid") padding and relu / linear / sigmoid / tanh
activations, plus standalone ``ReLU`` / ``Activation`` layers. Anything else raises ModelError
naming the layer. Computation is in float64; images are NHWC or HWC floats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amls2.errors import ModelError

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class ConvStep:
    """One convolution: kernel (k_h, k_w, C_in, C_out), bias (C_out,), padding, activation."""

    kernel: np.ndarray
    bias: np.ndarray | None
    padding: str
    activation: str


@dataclass(frozen=True)
class ActivationStep:
    activation: str


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding="same"):
    """2-D cross-correlation of NHWC ``x`` with an HWIO ``kernel`` (stride 1) via im2col.

    "same" pads like TensorFlow: ``(k - 1) // 2`` before and the rest after, with zeros.
    """
    k_h, k_w = kernel.shape[:2]
    if padding == "same":
        pad_h, pad_w = k_h - 1, k_w - 1
        x = np.pad(
            x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
        )
    # (N, H_out, W_out, C_in, k_h, k_w): every k x k window as a view, no copy.
    windows = sliding_window_view(x, (k_h, k_w), axis=(1, 2))
    out = np.tensordot(windows, kernel, axes=([4, 5, 3], [0, 1, 2]))
    return out if bias is None else out + bias


def _activation_name(layer) -> str:
    import keras

    name = keras.activations.serialize(layer.activation)
    name = name if isinstance(name, str) else getattr(layer.activation, "__name__", str(name))
    if name not in _ACTIVATIONS:
        raise ModelError(f"layer {layer.name!r}: activation {name!r} unsupported by the reference")
    return name


def extract_steps(model) -> list[ConvStep | ActivationStep]:
    """The model as a list of NumPy steps; ModelError naming the first unsupported layer."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{model.name}: the reference needs one input and one output")
    steps: list[ConvStep | ActivationStep] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        kind = type(layer).__name__
        if kind == "Conv2D":
            if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
                raise ModelError(
                    f"layer {layer.name!r}: only stride 1, dilation 1 Conv2D supported"
                )
            if layer.groups != 1 or layer.data_format != "channels_last":
                raise ModelError(
                    f"layer {layer.name!r}: grouped / channels_first Conv2D unsupported"
                )
            weights = [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]
            bias = weights[1] if layer.use_bias else None
            steps.append(ConvStep(weights[0], bias, layer.padding, _activation_name(layer)))
        elif kind == "ReLU" and layer.negative_slope == 0 and layer.max_value is None:
            steps.append(ActivationStep("relu"))
        elif kind == "Activation":
            steps.append(ActivationStep(_activation_name(layer)))
        else:
            raise ModelError(f"layer {layer.name!r} ({kind}): unsupported by the NumPy reference")
    return steps


def load_steps(model_or_path) -> list[ConvStep | ActivationStep]:
    """Steps from a ``keras.Model`` or a saved model path (via amls2.models.io.load_model)."""
    if isinstance(model_or_path, str | os.PathLike):
        from amls2.models.io import load_model

        model_or_path, _ = load_model(model_or_path)
    return extract_steps(model_or_path)


def reference_forward(model_or_path, images: np.ndarray) -> np.ndarray:
    """Run the model in NumPy on ``images`` (HWC or NHWC floats); returns float64 of the same
    rank (no clipping, like the Keras model)."""
    steps = load_steps(model_or_path) if not isinstance(model_or_path, list) else model_or_path
    x = np.asarray(images, dtype=np.float64)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise ModelError(f"reference_forward: expected HWC or NHWC images, got shape {x.shape}")
    for step in steps:
        if isinstance(step, ConvStep):
            x = conv2d(x, step.kernel, step.bias, step.padding)
        x = _ACTIVATIONS[step.activation](x)
    return x[0] if single else x
