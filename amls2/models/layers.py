"""Custom Keras layers used by the model zoo, registered so that ``.keras`` files load with
``safe_mode=True`` (no ``Lambda`` layers anywhere).

All layers but one are weightless shape/arithmetic helpers; the learned parts of every model are
standard Keras layers (Conv2D, Conv2DTranspose, PReLU, ...), which keeps MAC counting and the NumPy
reference simple. The exception, :class:`PointwiseConv2DTranspose`, is a ``Conv2DTranspose``
subclass (same weights, same maths, counted by the Conv2DTranspose rule) that works around a
oneDNN memory-corruption bug; build transposed convolutions with :func:`conv_transpose`.
Each weightless layer has ``count_macs(input_shapes, output_shape) -> int`` used by
:func:`amls2.models.cost.count_macs` (multiply-adds per image, batch dimension ignored).
Tensors are NHWC float32.
"""

from __future__ import annotations

import keras
from keras import ops

from amls2.models.ecb import EdgeOrientedConv2D
from amls2.models.phase_layers import (
    BicubicPhases,
    LinearPhases,
    PixelShuffle,
    PolyphaseLinear,
    element_count,
)

# DIV2K training-set RGB mean in [0,1] (EDSR's rgb_mean 0.4488, 0.4371, 0.4040).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


@keras.saving.register_keras_serializable(package="amls2")
class MeanShift(keras.layers.Layer):
    """Subtract (``sign=-1``) or add back (``sign=+1``) a fixed per-channel mean (EDSR).

    ``mean`` is in [0,1] units; for a channel count other than its length, the average of
    ``mean`` is used for every channel.
    """

    def __init__(self, mean=DIV2K_RGB_MEAN, sign: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        if sign not in (-1, 1):
            raise ValueError(f"MeanShift sign must be -1 or +1, got {sign!r}")
        self.sign = int(sign)

    def call(self, inputs):
        channels = int(inputs.shape[-1])
        values = self.mean
        if len(values) != channels:
            values = (sum(values) / len(values),) * channels
        # A constant, not a weight: the mean is a fixed property of the training data.
        shift = ops.convert_to_tensor([self.sign * v for v in values], dtype=inputs.dtype)
        return inputs + shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "sign": self.sign}

    def count_macs(self, input_shapes, output_shape) -> int:
        return 0  # one add per value, not a multiply-add


@keras.saving.register_keras_serializable(package="amls2")
class ResizeLike(keras.layers.Layer):
    """Bilinearly resize the first input to the spatial size of the second: [x, ref] -> x'.

    Needed by ESA (RFDN), whose attention map is computed at a reduced, input-dependent size.
    """

    def call(self, inputs):
        import tensorflow as tf  # the package targets the TensorFlow backend

        x, ref = inputs
        size = tf.shape(ref)[1:3]
        return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def count_macs(self, input_shapes, output_shape) -> int:
        return 4 * element_count(output_shape[1:])  # four weighted taps per output value


@keras.saving.register_keras_serializable(package="amls2")
class BicubicUpsample(keras.layers.Layer):
    """Upscale by an integer ``scale`` with bicubic interpolation (Keys a=-0.5, half-pixel
    centres, no antialiasing): within 1e-3 of MATLAB's bicubic upscale away from the image
    border (TensorFlow tabulates the kernel), exact to float precision at x2 and x4.

    Unlike ``keras.layers.UpSampling2D`` it works on inputs of unknown height and width inside a
    ``tf.function`` (the output size is computed from the dynamic shape).
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        import tensorflow as tf  # the package targets the TensorFlow backend

        size = tf.shape(x)[1:3] * self.scale
        return tf.cast(tf.image.resize(x, size, method="bicubic"), x.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}

    def count_macs(self, input_shapes, output_shape) -> int:
        return 16 * element_count(output_shape[1:])  # 4x4 weighted taps per output value


@keras.saving.register_keras_serializable(package="amls2")
class PointwiseConv2DTranspose(keras.layers.Conv2DTranspose):
    """A ``Conv2DTranspose`` whose 1x1, stride > 1, "same" case avoids oneDNN's convolution.

    Why: on x86 CPUs with oneDNN enabled (TensorFlow's default), the filter gradient of a 1x1
    stride-s transposed convolution is a 1x1 strided ``Conv2DBackpropFilter`` on NHWC data,
    which oneDNN runs with its ``jit_1x1`` backward-weights kernel and a "reduce to unit stride"
    workspace. When that convolution's input-channel count (the transposed conv's ``filters``)
    is below the kernel's channel block (16 with AVX-512, 8 with AVX2) the kernel writes past
    the workspace: heap corruption, then ``malloc(): corrupted top size`` / ``free(): invalid
    pointer`` / a segfault, or silently wrong gradients (oneDNN issue #6035).

    The same maths without a convolution: with kernel 1 and "same" padding, input pixel
    ``(i, j)`` lands on output pixel ``(i * s_h, j * s_w)`` (no padding, no overlap) and every
    other output pixel is zero before the bias. So ``y = zero_interleave(x @ W) + b``: a matmul
    (its gradients are matmuls too) and a pad/reshape. The kernel keeps Keras' shape
    ``(1, 1, filters, in_channels)``, so weights are interchangeable with ``Conv2DTranspose``,
    and MACs are counted by the Conv2DTranspose rule. Any other configuration (kernel > 1,
    stride 1, "valid", ``output_padding``, channels_first) runs ``Conv2DTranspose.call``.
    """

    def _pointwise_path(self) -> bool:
        return (
            tuple(self.kernel_size) == (1, 1)
            and tuple(self.strides) != (1, 1)
            and self.padding == "same"
            and self.output_padding is None
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
        )

    def call(self, inputs):
        if not self._pointwise_path():
            return super().call(inputs)
        import tensorflow as tf  # the package targets the TensorFlow backend

        s_h, s_w = (int(v) for v in self.strides)
        kernel = ops.convert_to_tensor(self.kernel)[0, 0]  # (filters, in_channels)
        z = tf.einsum("nhwc,fc->nhwf", inputs, kernel)
        shape = tf.shape(z)
        # (N, H, 1, W, 1, F), zeros after each value on the new axes, -> (N, H*s_h, W*s_w, F)
        pads = [[0, 0], [0, 0], [0, s_h - 1], [0, 0], [0, s_w - 1], [0, 0]]
        z = tf.pad(z[:, :, None, :, None, :], pads)
        outputs = tf.reshape(z, [shape[0], shape[1] * s_h, shape[2] * s_w, self.filters])
        if self.use_bias:
            outputs = outputs + ops.convert_to_tensor(self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


CUSTOM_OBJECTS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        PixelShuffle,
        MeanShift,
        ResizeLike,
        BicubicUpsample,
        BicubicPhases,
        LinearPhases,
        PolyphaseLinear,
        PointwiseConv2DTranspose,
        EdgeOrientedConv2D,
    )
}


# ----------------------------------------------------------------------------------------------
# Small building blocks shared by the model families (functional-API helpers, not layers).

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "prelu", "tanh", "linear")


def make_activation(name: str, *, negative_slope: float = 0.2):
    """A fresh activation layer by name; PReLU shares its slope over H and W (one per channel)
    so the model stays fully convolutional (any input size)."""
    if name == "relu":
        return keras.layers.ReLU()
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=negative_slope)
    if name == "prelu":
        return keras.layers.PReLU(shared_axes=[1, 2])
    if name in ("tanh", "linear", "sigmoid"):
        return keras.layers.Activation(name)
    raise ValueError(f"unknown activation {name!r}; valid: {list(ACTIVATIONS)}")


def conv(filters: int, kernel: int, *, act: str | None = None, use_bias: bool = True, **kwargs):
    """A stride-1 "same"-padded Conv2D (any input size, output the same size)."""
    return keras.layers.Conv2D(
        int(filters), int(kernel), padding="same", activation=act, use_bias=use_bias, **kwargs
    )


def residual_head(channels: int):
    """The last 3x3 conv of a network whose output is added to an upscaled image: linear and
    zero-initialised, so the untrained network is exactly the upscaled image. With a random
    initialisation FD-SRCNN's output started as noise of std 0.1 on top of bicubic, and the
    fastest way down the loss was to silence every ReLU: training stalled at the bicubic PSNR."""
    return conv(channels, 3, kernel_initializer="zeros")


def conv_act(x, filters: int, kernel: int, activation: str = "relu", *, batch_norm: bool = False):
    """Conv -> [BN] -> activation. With BN the conv has no bias (BN's beta replaces it; a bias
    there would get an exactly-zero gradient)."""
    if batch_norm:
        x = conv(filters, kernel, use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
    else:
        x = conv(filters, kernel)(x)
    return make_activation(activation)(x)


def conv_transpose_act(x, filters: int, kernel: int, strides: int, activation: str = "relu"):
    """``conv_transpose`` then ``activation``."""
    return make_activation(activation)(conv_transpose(filters, kernel, strides=strides)(x))


def conv_transpose(
    filters: int, kernel: int, *, strides: int = 1, act: str | None = None, **kwargs
):
    """A "same"-padded transposed conv (output = input size x ``strides``).

    1x1 kernels with a stride > 1 get :class:`PointwiseConv2DTranspose` (same weights and
    outputs as ``Conv2DTranspose``; avoids a oneDNN heap-corruption bug in the filter gradient),
    every other shape the plain Keras layer.
    """
    cls = keras.layers.Conv2DTranspose
    if int(kernel) == 1 and int(strides) != 1:
        cls = PointwiseConv2DTranspose
    return cls(
        int(filters), int(kernel), strides=int(strides), padding="same", activation=act, **kwargs
    )


def subpixel_upsample(x, scale: int, filters: int, *, kernel: int = 3, act: str | None = None):
    """EDSR-style sub-pixel upsampler: x4 as two x2 stages, x2/x3 as one stage.

    Each stage is a ``kernel`` conv to ``filters * r * r`` maps followed by ``PixelShuffle(r)``
    (and the optional activation ``act``, e.g. "prelu" for SRResNet).
    """
    stages = [2, 2] if scale == 4 else [scale]
    for r in stages:
        x = conv(filters * r * r, kernel)(x)
        x = PixelShuffle(r)(x)
        if act:
            x = make_activation(act)(x)
    return x


IMAGE_SKIPS: tuple[str, ...] = ("none", "bicubic", "linear")

# The window of the "linear" image skip and of the ``linear`` model: 9x9 LR pixels.
LINEAR_KERNEL_SIZE = 9


def tail_initializer(residual: bool) -> str:
    """The kernel initialiser of a network's last layer: zeros when its output is added to an
    upscaled image (the untrained network is then exactly that image; see ``residual_head``),
    Keras' default otherwise."""
    return "zeros" if residual else "glorot_uniform"


def add_image_skip(lr, sr, scale: int, kind: str):
    """``sr`` plus the ``kind`` upscaling of the input image (a global residual connection).

    With "bicubic" the network only learns the residual over bicubic interpolation (Keys
    a=-0.5, half-pixel centres: MATLAB's bicubic away from the image border), which speeds up
    early training a lot. With "linear" the skip is a 9x9 :class:`LinearPhases` filter bank and a
    pixel shuffle: it starts as MATLAB's bicubic and is set to the closed-form ``linear`` fit
    before training (``amls2 train --skip-from``), so on data whose LR is not on bicubic's
    sampling grid the network need not first learn to undo a misaligned skip. "none" returns
    ``sr`` unchanged.
    """
    if kind == "none":
        return sr
    if kind not in IMAGE_SKIPS:
        raise ValueError(f"unknown image_skip {kind!r}; valid: {list(IMAGE_SKIPS)}")
    if kind == "linear":
        upscaled = PixelShuffle(scale)(
            LinearPhases(scale, LINEAR_KERNEL_SIZE, closed_form=True)(lr)
        )
    else:
        upscaled = BicubicUpsample(scale)(lr)
    return keras.layers.Add()([sr, upscaled])
