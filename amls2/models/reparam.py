"""Inference re-parameterisation: the same function, computed with faster operations.

Measured on the SRCNN family (``benchmarks/layer_profile.py``; AMD EPYC, also with oneDNN held
to AVX2): the strided transposed convolutions run at 43-90% of dense-matmul speed, while the
element-wise layers at HR size are bound by memory bandwidth. One pass over a 512x512x64 float32
map costs about as much as the 5x5/4 transposed convolution that made it. So:

* **PReLU** (``relu(x) - alpha * relu(-x)`` in Keras: five passes) becomes
  ``x * where(x > 0, 1, alpha)`` (three), bit-identical for every alpha. About 25% less time
  per PReLU; the HR-size ones are a large share of post-, IUD- and FD-SRCNN at x3 and x4.
* **A strided transposed convolution** is a convolution at LR size to ``s*s`` times the
  filters followed by depth-to-space (the sub-pixel form of ESPCN): output pixel ``o = q*s + r``
  only receives taps ``k = r + P - d*s`` from input ``q + d``, where ``P = max(k - s, 0) // 2``
  is TensorFlow's "same" padding. That form wins where the transposed conv outputs the image
  (3 maps: FSRCNN's 9x9 deconvolution ran 2.4x faster), and loses where it outputs 64 feature
  maps (1.4x slower at 5x5/2, 2.5x at 5x5/4: the dense LR kernel holds zero taps, and
  depth-to-space is one more memory pass), so only the first kind is replaced by default.

:func:`fast_inference_model` rebuilds a functional model with these layers replaced; all other
layers are shared, and the new layers read the original ones' variables (no copies). Outputs
agree with the original to float round-off (tested within 1e-5). Training and saving keep the
original layers, and MAC counts (``models.cost``) stay those of the published architecture.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from amls2.models.cost import _layer_macs


def _replaceable(layer) -> bool:
    """A 2-D transposed conv with stride > 1, "same" padding, NHWC, no dilation or output
    padding: exactly the case the sub-pixel form reproduces."""
    return (
        isinstance(layer, keras.layers.Conv2DTranspose)
        and tuple(layer.strides) != (1, 1)
        and layer.strides[0] == layer.strides[1]
        and layer.padding == "same"
        and layer.output_padding is None
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
    )


def _phase_taps(kernel: int, stride: int) -> list[list[tuple[int, int]]]:
    """For each output phase r: the (LR offset d, transposed-kernel tap k) pairs that reach it."""
    pad_before = max(kernel - stride, 0) // 2
    taps = []
    for r in range(stride):
        pairs = []
        for k in range(kernel):
            if (r + pad_before - k) % stride == 0:
                pairs.append(((r + pad_before - k) // stride, k))
        taps.append(pairs)
    return taps


def subpixel_taps(kh: int, kw: int, stride: int) -> np.ndarray:
    """Where each tap of a ``(kh, kw)`` transposed kernel goes in the sub-pixel form: an index
    array ``(K, K, stride**2)`` of flat taps ``th * kw + tw`` (``kh * kw`` where no tap lands)
    for LR offset ``(dh, dw)`` (centred) and output phase ``rh * stride + rw``."""
    taps_h, taps_w = _phase_taps(kh, stride), _phase_taps(kw, stride)
    reach = max(abs(d) for taps in (taps_h, taps_w) for pairs in taps for d, _ in pairs)
    size = 2 * reach + 1
    index = np.full((size, size, stride * stride), kh * kw, np.int32)
    for rh in range(stride):
        for rw in range(stride):
            for dh, th in taps_h[rh]:
                for dw, tw in taps_w[rw]:
                    index[dh + reach, dw + reach, rh * stride + rw] = th * kw + tw
    return index


def subpixel_kernel(kernel, taps: np.ndarray):
    """A Conv2DTranspose kernel ``(kh, kw, out, in)`` as the centred "same" Conv2D kernel
    ``(K, K, in, stride**2 * out)`` of the sub-pixel form (DCR channel order: phase
    ``rh * s + rw`` is channel block ``phase * out``, as ``depth_to_space`` reads it). Built
    with backend ops, so it follows a kernel that is still training."""
    kh, kw, out_ch, in_ch = kernel.shape
    flat = ops.reshape(ops.transpose(kernel, (0, 1, 3, 2)), (kh * kw, in_ch, out_ch))
    flat = ops.concatenate([flat, ops.zeros((1, in_ch, out_ch), flat.dtype)], axis=0)
    gathered = ops.take(flat, taps, axis=0)  # (K, K, s*s, in, out)
    size, phases = taps.shape[0], taps.shape[2]
    return ops.reshape(
        ops.transpose(gathered, (0, 1, 3, 2, 4)), (size, size, in_ch, phases * out_ch)
    )


class SubpixelTransposedConv(keras.layers.Layer):
    """A strided "same" ``Conv2DTranspose`` computed as a convolution at input size to
    ``stride**2`` times the filters, then depth-to-space. The bias is tiled over the phases and
    the activation acts before the shuffle (both act per value; the shuffle only moves values).
    Reads the wrapped layer's live weights; inference only, never saved."""

    def __init__(self, transposed: keras.layers.Conv2DTranspose, **kwargs):
        super().__init__(
            name=f"{transposed.name}_subpixel", dtype=transposed.dtype_policy, **kwargs
        )
        self.transposed = transposed
        self.stride = int(transposed.strides[0])
        kh, kw = (int(v) for v in transposed.kernel_size)
        self.taps = subpixel_taps(kh, kw, self.stride)

    def call(self, inputs):
        layer = self.transposed
        kernel = ops.cast(subpixel_kernel(layer.kernel, self.taps), inputs.dtype)
        y = ops.conv(inputs, kernel, padding="same")
        if layer.use_bias:
            y = y + ops.cast(ops.tile(layer.bias, (self.stride * self.stride,)), inputs.dtype)
        if layer.activation is not None:
            y = layer.activation(y)
        return ops.nn.depth_to_space(y, self.stride, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return self.transposed.compute_output_shape(input_shape)

    def count_macs(self, input_shapes, output_shape) -> int:
        """The transposed conv's multiply-adds (``models.cost``): the same function, so the
        same count, whatever the zero taps of the sub-pixel kernel cost."""
        return _layer_macs(self.transposed, input_shapes, output_shape)


def outputs_an_image(layer) -> bool:
    """A transposed conv whose output is the image itself (at most 4 maps): the case where the
    sub-pixel form measured faster (FSRCNN's 9x9 deconvolution: 2.4x)."""
    return _replaceable(layer) and layer.filters <= 4


class SelectPReLU(keras.layers.Layer):
    """A ``keras.layers.PReLU`` computed as ``x * where(x > 0, 1, alpha)``: the same values (for
    ``x > 0`` both give ``x``, otherwise both give ``alpha * x``) in fewer memory passes.

    It reads the wrapped layer's own ``alpha`` variable, so a model that keeps training (the
    trainer validates through inference) is never seen with stale weights. Inference only:
    never saved, so not registered for deserialisation."""

    def __init__(self, prelu: keras.layers.PReLU, **kwargs):
        super().__init__(name=f"{prelu.name}_select", dtype=prelu.dtype_policy, **kwargs)
        self.prelu = prelu

    def call(self, inputs):
        alpha = ops.cast(self.prelu.alpha, inputs.dtype)
        return inputs * ops.where(inputs > 0, ops.ones_like(alpha), alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def count_macs(self, input_shapes, output_shape) -> int:
        return 0  # activations are not counted (models.cost)


def _is_plain_prelu(layer) -> bool:
    return type(layer) is keras.layers.PReLU


SUBPIXEL_CHOICES: tuple[str, ...] = ("auto", "all", "none")


def _as_subpixel(layer, subpixel: str) -> bool:
    if subpixel == "all":
        return _replaceable(layer)
    return subpixel == "auto" and outputs_an_image(layer)


def count_replaceable(model, *, subpixel: str = "auto") -> int:
    """How many layers :func:`fast_inference_model` would replace."""
    return sum(_is_plain_prelu(layer) or _as_subpixel(layer, subpixel) for layer in model.layers)


def fast_inference_model(model, *, subpixel: str = "auto"):
    """``model`` with every PReLU in its faster exact form and strided "same" Conv2DTranspose
    layers in the sub-pixel form: those that output the image (``subpixel="auto"``), every
    one (``"all"``, for measurements) or none. See the module doc for why.

    Returns ``model`` itself when there is nothing to replace or it is not a functional model.
    The new model's layers read ``model``'s variables (no copies): for inference only.
    """
    if subpixel not in SUBPIXEL_CHOICES:
        raise ValueError(f"subpixel {subpixel!r}: valid: {list(SUBPIXEL_CHOICES)}")
    functional = isinstance(model, keras.Model) and type(model).__name__ == "Functional"
    if not functional or count_replaceable(model, subpixel=subpixel) == 0:
        return model

    def call(layer, *args, **kwargs):
        if len(args) == 1 and not kwargs:
            if _is_plain_prelu(layer):
                return SelectPReLU(layer)(args[0])
            if _as_subpixel(layer, subpixel):
                return SubpixelTransposedConv(layer)(args[0])
        return layer(*args, **kwargs)

    fast = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    fast.name = model.name
    return fast
