"""The inference-only layers of :mod:`amls2.inference.fast.reparam`: each computes the same function as
the layers it replaces (float round-off only), reading their live variables; never saved.
The element-wise work of each is one XLA-compiled loop (``tf.function(jit_compile=True)``);
convolutions stay oneDNN's. Why each exists, with measurements: :mod:`amls2.inference.fast.reparam`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf  # the package targets the TensorFlow backend (XLA below)
from keras import ops

from amls2.models.cost import _layer_macs

# XLA compiles each fused loop once per input shape: about 0.1 s for SRCNN's three and 0.3 s
# for FD-SRCNN x4's 32 on every new image size (measured), more than the loops save on a small
# map. So they run only on maps of at least this many values (a 512x512x64 map), where a model
# call takes 0.3 s or more; smaller maps get the same function as TensorFlow ops.
FUSE_MIN_ELEMENTS = 1 << 24


def fused_or_plain(tensor, fused, plain):
    """``fused()`` (the XLA loop) when ``tensor`` has at least ``FUSE_MIN_ELEMENTS`` values,
    else ``plain()`` (the same function as TensorFlow ops, nothing compiled)."""
    big = tf.size(tensor, out_type=tf.int64) >= FUSE_MIN_ELEMENTS
    return tf.cond(big, fused, plain)


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


def _prelu(x, alpha):
    return x * tf.where(x > 0, tf.ones_like(alpha), alpha)


def _bias_prelu(x, bias, alpha):
    return _prelu(x + bias, alpha)


_prelu_xla = tf.function(_prelu, jit_compile=True)
_bias_prelu_xla = tf.function(_bias_prelu, jit_compile=True)


class FusedPReLU(keras.layers.Layer):
    """A ``keras.layers.PReLU`` computed as ``x * where(x > 0, 1, alpha)`` in one XLA-compiled
    loop: the same values (for ``x > 0`` both give ``x``, otherwise both give ``alpha * x``)
    in one read and one write of the map. Given ``bias_of`` (a transposed convolution run
    without its bias, :class:`BiaslessConv2DTranspose`), that bias is added in the same loop.

    Only this element-wise part is compiled: XLA's own convolutions were slower than oneDNN's
    (module doc). It reads the wrapped layers' own variables, so a model that keeps training (the
    trainer validates through inference) is never seen with stale weights. Inference only:
    never saved, so not registered for deserialisation."""

    def __init__(self, prelu: keras.layers.PReLU, bias_of=None, **kwargs):
        super().__init__(name=f"{prelu.name}_fused", dtype=prelu.dtype_policy, **kwargs)
        self.prelu = prelu
        self.bias_of = bias_of

    def call(self, inputs):
        alpha = ops.cast(self.prelu.alpha, inputs.dtype)
        if self.bias_of is None:
            args, xla, plain = (inputs, alpha), _prelu_xla, _prelu
        else:
            bias = ops.cast(self.bias_of.bias, inputs.dtype)
            args, xla, plain = (inputs, bias, alpha), _bias_prelu_xla, _bias_prelu
        return fused_or_plain(inputs, lambda: xla(*args), lambda: plain(*args))

    def compute_output_shape(self, input_shape):
        return input_shape

    def count_macs(self, input_shapes, output_shape) -> int:
        return 0  # activations are not counted (models.cost)


class BiaslessConv2DTranspose(keras.layers.Layer):
    """A linear ``Conv2DTranspose`` without its bias add, which the :class:`FusedPReLU` after
    it does in its own loop (one pass over the HR-size map fewer). Inference only."""

    def __init__(self, transposed: keras.layers.Conv2DTranspose, **kwargs):
        super().__init__(name=f"{transposed.name}_nobias", dtype=transposed.dtype_policy, **kwargs)
        self.transposed = transposed

    def call(self, inputs):
        layer = self.transposed
        return ops.conv_transpose(
            inputs,
            ops.cast(layer.kernel, inputs.dtype),
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )

    def compute_output_shape(self, input_shape):
        return self.transposed.compute_output_shape(input_shape)

    def count_macs(self, input_shapes, output_shape) -> int:
        return _layer_macs(self.transposed, input_shapes, output_shape)


class TransposedFormConv2D(keras.layers.Layer):
    """A stride-1 "same" ``Conv2D`` with an odd kernel computed as the stride-1 transposed
    convolution of its flipped kernel (input and output maps swapped): the same sums. Below
    AVX-512 oneDNN runs a forward convolution as im2col + GEMM but this one with its direct
    brgemm kernels: under ``ONEDNN_MAX_CPU_ISA=AVX2``, 3x3 from 16 maps to 16 at 512x512 took
    5.5 ms against 11.0 (83 % of matmul against 42 %), from 64 to 64 77 ms against 108; with
    AVX-512 both took the same time. Bias and activation follow as TensorFlow ops. Reads the
    wrapped layer's live weights; inference only, never saved."""

    def __init__(self, conv: keras.layers.Conv2D, **kwargs):
        super().__init__(name=f"{conv.name}_transposed", dtype=conv.dtype_policy, **kwargs)
        self.conv = conv

    def call(self, inputs):
        layer = self.conv
        kernel = ops.cast(layer.kernel, inputs.dtype)  # (kh, kw, c_in, filters)
        flipped = ops.flip(ops.flip(ops.transpose(kernel, (0, 1, 3, 2)), axis=0), axis=1)
        out_shape = tf.concat([tf.shape(inputs)[:3], [layer.filters]], axis=0)
        out = tf.nn.conv2d_transpose(inputs, flipped, out_shape, 1, "SAME")
        if layer.use_bias:
            out = out + ops.cast(layer.bias, inputs.dtype)
        return layer.activation(out)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def count_macs(self, input_shapes, output_shape) -> int:
        return _layer_macs(self.conv, input_shapes, output_shape)  # the convolution's count


@tf.function(jit_compile=True)
def _shifted_tap_sum_xla(taps, bias, kh: int, kw: int, filters: int):
    """``out[y, x, c] = bias[c] + sum over (i, j) of taps[y + i - top, x + j - left, (i*kw + j)
    * filters + c]`` with TensorFlow's "same" zero padding: one XLA loop over the output."""
    height, width = tf.shape(taps)[1], tf.shape(taps)[2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = tf.pad(taps, [[0, 0], [top, kh - 1 - top], [left, kw - 1 - left], [0, 0]])
    out = bias
    for i in range(kh):
        for j in range(kw):
            first = (i * kw + j) * filters
            out = out + padded[:, i : i + height, j : j + width, first : first + filters]
    return out


class TapSplitConv2D(keras.layers.Layer):
    """A stride-1 "same" ``Conv2D`` to a few maps (the image) computed as a matrix product to
    ``kh * kw * filters`` maps, one per (tap, output map), then a shifted sum of the taps in one
    XLA loop, then the layer's activation. oneDNN runs a 3x3 convolution from 64 maps to 3 at a
    fifth of its matmul speed (as slow as to 16 maps). Same function, summed in another order
    (float round-off only). Reads the wrapped layer's live weights; inference only, never
    saved."""

    def __init__(self, conv: keras.layers.Conv2D, **kwargs):
        super().__init__(name=f"{conv.name}_tapsplit", dtype=conv.dtype_policy, **kwargs)
        self.conv = conv

    def call(self, inputs):
        layer = self.conv
        kh, kw = (int(v) for v in layer.kernel_size)
        c_in, filters = int(layer.kernel.shape[2]), int(layer.filters)
        kernel = ops.cast(layer.kernel, inputs.dtype)  # (kh, kw, c_in, filters)
        if layer.use_bias:
            bias = ops.cast(layer.bias, inputs.dtype)
        else:
            bias = ops.zeros((filters,), dtype=inputs.dtype)

        def split():
            # The 1x1 convolution as a matrix product of the pixels: 32 against 46 ms over a
            # 1024x1024x64 input (AVX-512), and no im2col scratch below AVX-512, where oneDNN's
            # 1x1 convolution over 2048x2048x64 fell back to its reference path.
            pointwise = ops.reshape(ops.transpose(kernel, (2, 0, 1, 3)), (c_in, -1))
            shape = tf.shape(inputs)
            pixels = tf.reshape(inputs, [-1, c_in])
            taps = tf.reshape(tf.matmul(pixels, pointwise), [shape[0], shape[1], shape[2], -1])
            return _shifted_tap_sum_xla(taps, bias, kh, kw, filters)

        out = fused_or_plain(inputs, split, lambda: ops.conv(inputs, kernel, padding="same") + bias)
        return layer.activation(out)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def count_macs(self, input_shapes, output_shape) -> int:
        return _layer_macs(self.conv, input_shapes, output_shape)  # the convolution's count


def _up_add_prelu(y, y_bias, z, z_bias, alpha, s_h: int, s_w: int):
    """``prelu((y + y_bias) + (interleave(z) + z_bias))`` in one XLA loop, where
    ``interleave`` places LR value ``(i, j)`` at HR pixel ``(i*s_h, j*s_w)`` and zeros elsewhere
    (a 1x1 stride-s transposed convolution, ``PointwiseConv2DTranspose``). Sums in the order of
    the layers it replaces."""
    n, h, w, f = tf.shape(z)[0], tf.shape(z)[1], tf.shape(z)[2], tf.shape(z)[3]
    pads = [[0, 0], [0, 0], [0, s_h - 1], [0, 0], [0, s_w - 1], [0, 0]]
    spread = tf.reshape(tf.pad(z[:, :, None, :, None, :], pads), [n, h * s_h, w * s_w, f])
    return _prelu((y + y_bias) + (spread + z_bias), alpha)


_up_add_prelu_xla = tf.function(_up_add_prelu, jit_compile=True)


class PointwiseProduct(keras.layers.Layer):
    """The LR-size product of a ``PointwiseConv2DTranspose`` (its zero interleave and bias left
    to :class:`FusedUpAddPReLU`). Inference only."""

    def __init__(self, pointwise, **kwargs):
        super().__init__(name=f"{pointwise.name}_lr", dtype=pointwise.dtype_policy, **kwargs)
        self.pointwise = pointwise

    def call(self, inputs):
        kernel = ops.cast(ops.convert_to_tensor(self.pointwise.kernel)[0, 0], inputs.dtype)
        return tf.einsum("nhwc,fc->nhwf", inputs, kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.pointwise.filters)

    def count_macs(self, input_shapes, output_shape) -> int:
        return math.prod(input_shapes[0]) * self.pointwise.filters


class FusedUpAddPReLU(keras.layers.Layer):
    """``PReLU(Add([Conv2DTranspose(a), PointwiseConv2DTranspose(b)]))``, the merge of FD- and
    IUD-SRCNN's up-projection, with the convolution run without its bias
    (:class:`BiaslessConv2DTranspose`), the pointwise one at LR size (:class:`PointwiseProduct`)
    and the rest, both biases, the zero interleave, the add and the PReLU, in one XLA loop
    (:func:`_up_add_prelu_xla`): five HR-size passes fewer. Inference only."""

    def __init__(self, prelu, transposed, pointwise, **kwargs):
        super().__init__(name=f"{prelu.name}_upadd", dtype=prelu.dtype_policy, **kwargs)
        self.prelu, self.transposed, self.pointwise = prelu, transposed, pointwise

    def call(self, y, z):
        s_h, s_w = (int(v) for v in self.pointwise.strides)
        y_bias, z_bias, alpha = (
            ops.cast(v, y.dtype)
            for v in (self.transposed.bias, self.pointwise.bias, self.prelu.alpha)
        )
        args = (y, y_bias, z, z_bias, alpha, s_h, s_w)
        return fused_or_plain(y, lambda: _up_add_prelu_xla(*args), lambda: _up_add_prelu(*args))

    def compute_output_shape(self, y_shape, z_shape):
        return y_shape

    def count_macs(self, input_shapes, output_shape) -> int:
        return 0  # the add and the activation are not counted (models.cost)
