"""Model cost: parameter counts and multiply-accumulates (MACs) counted analytically.

MACs are counted from layer configs and the concrete shapes of a copy of the model built on a
fixed input size (batch dimension ignored):

* Conv2D: ``H_out * W_out * k_h * k_w * C_in * C_out / groups``
* DepthwiseConv2D: ``H_out * W_out * k_h * k_w * C_in * depth_multiplier``
* SeparableConv2D: depthwise part + ``H_out * W_out * C_in * depth_multiplier * C_out``
* Conv2DTranspose: counted at its INPUT resolution, ``H_in * W_in * k_h * k_w * C_in * C_out``
  (every input pixel scatters one k x k x C_out kernel; the multiplications by inserted zeros
  of the zero-insertion formulation are not counted) - the cost of the equivalent sub-pixel
  convolution.
* Dense: ``prod(leading non-batch dims) * units_in * units_out``
* custom amls2 layers: their ``count_macs`` method (0 for pixel shuffle / mean shift).
* Not counted: biases, activations, batch normalisation (foldable into the conv), pooling and
  element-wise add/multiply/average.
"""

from __future__ import annotations

import math

import keras

from amls2.errors import ModelError


def count_params(model: keras.Model, *, trainable_only: bool = False) -> int:
    """Number of parameters (weights + biases; with ``trainable_only`` the trainable ones only,
    which excludes batch-norm moving statistics)."""
    if trainable_only:
        return int(sum(math.prod(v.shape) for v in model.trainable_weights))
    return int(model.count_params())


def spatial_ratio(model: keras.Model) -> int:
    """How many times larger the output is than the input (1 for ``input_kind="bicubic"``)."""
    channels = int(model.inputs[0].shape[-1])
    probe = 12
    out = model.compute_output_shape((1, probe, probe, channels))
    ratio, rem = divmod(int(out[1]), probe)
    if rem:
        raise ModelError(f"{model.name}: output size {out[1]} is not a multiple of input {probe}")
    return ratio


def input_hw_for_output(model: keras.Model, output_hw: tuple[int, int]) -> tuple[int, int]:
    """The input (height, width) giving ``output_hw`` (rounded to the nearest integer when the
    output is not a multiple of the scale, e.g. 720x1280 at x3 -> 240x427)."""
    ratio = spatial_ratio(model)
    return tuple(int(round(v / ratio)) for v in output_hw)


def fixed_input_clone(model: keras.Model, height: int, width: int) -> keras.Model:
    """A copy of ``model`` built on a ``height`` x ``width`` input: every shape concrete."""
    channels = int(model.inputs[0].shape[-1])
    return keras.models.clone_model(
        model, input_tensors=keras.Input(shape=(height, width, channels))
    )


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def _layer_macs(layer, input_shapes: list[tuple[int, ...]], output_shape: tuple[int, ...]) -> int:
    """MACs of one call of ``layer``, given its (non-batch) input and output shapes."""
    if hasattr(layer, "count_macs"):
        return int(layer.count_macs(input_shapes, output_shape))
    kernel_hw = math.prod(getattr(layer, "kernel_size", (1,)))
    if isinstance(layer, keras.layers.Conv2DTranspose):
        h_in, w_in, c_in = input_shapes[0]
        return h_in * w_in * kernel_hw * c_in * layer.filters
    if isinstance(layer, keras.layers.SeparableConv2D):
        h_out, w_out, c_out = output_shape
        c_in = input_shapes[0][-1]
        mult = layer.depth_multiplier
        return h_out * w_out * (kernel_hw * c_in * mult + c_in * mult * c_out)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        h_out, w_out, _ = output_shape
        return h_out * w_out * kernel_hw * input_shapes[0][-1] * layer.depth_multiplier
    if isinstance(layer, keras.layers.Conv2D):
        h_out, w_out, c_out = output_shape
        c_in = input_shapes[0][-1]
        return h_out * w_out * kernel_hw * c_in * c_out // max(1, layer.groups)
    if isinstance(layer, keras.layers.Dense):
        return math.prod(output_shape[:-1]) * input_shapes[0][-1] * layer.units
    if isinstance(layer, keras.Model):
        raise ModelError(f"{layer.name}: nested models are not supported by count_macs")
    return 0


def count_macs(model: keras.Model, output_hw: tuple[int, int]) -> int:
    """Multiply-accumulates to produce one ``output_hw`` = (height, width) output image.

    The input size is ``output_hw / scale`` rounded (see :func:`input_hw_for_output`; for
    ``input_kind="bicubic"`` models it is ``output_hw``). Counting rules: module docstring.
    """
    fixed = fixed_input_clone(model, *input_hw_for_output(model, output_hw))
    total = 0
    for layer in fixed.layers:
        for node in layer._inbound_nodes:  # one per call; several for a shared layer
            inputs = [_shape(t) for t in node.input_tensors]
            outputs = [_shape(t) for t in node.output_tensors]
            if not inputs:
                continue  # the InputLayer
            total += _layer_macs(layer, inputs, outputs[0])
    return int(total)


# The output size every reported cost refers to (one 720p frame, as in `amls2 models`).
REPORT_OUTPUT_HW: tuple[int, int] = (720, 1280)


def report_cost(model: keras.Model) -> dict[str, int]:
    """``{"params", "macs_720p"}``: parameters and multiply-adds for one 1280x720 output, the cost
    that evaluation records, shipped sidecars and the demo's figures report."""
    return {"params": count_params(model), "macs_720p": count_macs(model, REPORT_OUTPUT_HW)}
