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

import math

import keras
import numpy as np
from keras import ops

from amls2.models.ecb import EdgeOrientedConv2D

# DIV2K training-set RGB mean in [0,1] (EDSR's rgb_mean 0.4488, 0.4371, 0.4040).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def _prod(values) -> int:
    return int(math.prod(int(v) for v in values))


@keras.saving.register_keras_serializable(package="amls2")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement (Shi et al. 2016): (H, W, C*s*s) -> (H*s, W*s, C).

    The channel order is ``tf.nn.depth_to_space``'s (NHWC, DCR): input channel
    ``(rh * s + rw) * C + c`` lands on output pixel ``(i * s + rh, j * s + rw)``, channel ``c``.
    Computed as reshape, transpose, reshape: the transpose moves blocks of ``s * C`` values and
    runs on every core, where TensorFlow's CPU ``DepthToSpace`` copies value by value on one
    (512x512 LR input: 8.3 against 15.2 ms at x4, 2.9 against 6.5 ms at x3).
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        s = self.scale
        n, h, w = ops.shape(inputs)[:3]
        channels = inputs.shape[-1] // (s * s)
        x = ops.reshape(inputs, (n, h, w, s, s * channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4))  # (n, h, rh, w, rw * C + c)
        return ops.reshape(x, (n, h * s, w * s, channels))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.scale
        return (
            n,
            None if h is None else h * s,
            None if w is None else w * s,
            None if c is None else c // (s * s),
        )

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}

    def count_macs(self, input_shapes, output_shape) -> int:
        return 0  # pure data movement


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
        return 4 * _prod(output_shape[1:])  # four weighted taps per output value


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
        return 16 * _prod(output_shape[1:])  # 4x4 weighted taps per output value


def bicubic_phase_weights(scale: int) -> np.ndarray:
    """MATLAB's bicubic upscale by ``scale`` as one 1-D filter per output phase: ``(scale, 5)``
    weights over LR offsets -2..2 (output pixel ``q * scale + r`` is row ``r`` applied around
    input ``q``; Keys a = -0.5, half-pixel centres, normalised as imresize does)."""
    weights = np.zeros((scale, 5))
    for r in range(scale):
        frac = (r + 0.5) / scale - 0.5
        first = math.floor(frac) - 1
        taps = np.arange(first, first + 4)
        x = np.abs(frac - taps)
        w = np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2)
        weights[r, taps + 2] = w / w.sum()
    return weights


def phase_kernel_from_filters(filters: np.ndarray, channels: int) -> np.ndarray:
    """The (k, k, C, C*s*s) phase kernel that applies the same ``(s*s, k, k)`` filters to every
    colour: colour ``c`` of phase ``p = rh * s + rw`` is output channel ``p * C + c``, computed
    from colour ``c`` alone with ``filters[p]`` (the order ``PixelShuffle`` reads)."""
    phases, k, _ = filters.shape
    kernel = np.zeros((k, k, channels, phases * channels), np.float32)
    for p in range(phases):
        for c in range(channels):
            kernel[:, :, c, p * channels + c] = filters[p]
    return kernel


def bicubic_phase_filters(scale: int, kernel_size: int = 5) -> np.ndarray:
    """MATLAB's bicubic upscale by ``scale`` as ``(s*s, k, k)`` filters over the LR window
    centred on the output pixel's LR pixel (the 5x5 taps embedded in a k x k window, k >= 5)."""
    if kernel_size < 5 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size {kernel_size}: must be odd and at least 5")
    w1 = bicubic_phase_weights(scale)
    pad = (kernel_size - 5) // 2
    filters = np.zeros((scale * scale, kernel_size, kernel_size), np.float32)
    for rh in range(scale):
        for rw in range(scale):
            filters[rh * scale + rw, pad : pad + 5, pad : pad + 5] = np.outer(w1[rh], w1[rw])
    return filters


def bicubic_phase_kernel(scale: int, channels: int, kernel_size: int = 5) -> np.ndarray:
    """The (k, k, C, C*s*s) kernel of :class:`BicubicPhases`: colour ``c`` of phase ``(rh, rw)``
    is output channel ``(rh * s + rw) * C + c``, computed from colour ``c`` alone."""
    return phase_kernel_from_filters(bicubic_phase_filters(scale, kernel_size), channels)


def _phase_conv(x, kernel):
    # Replicate k // 2 edge pixels on every side (as imresize), then a "valid" k x k convolution.
    half = int(kernel.shape[0]) // 2
    x = ops.concatenate([x[:, :1]] * half + [x] + [x[:, -1:]] * half, axis=1)
    x = ops.concatenate([x[:, :, :1]] * half + [x] + [x[:, :, -1:]] * half, axis=2)
    return ops.conv(x, ops.cast(kernel, x.dtype), padding="valid")


@keras.saving.register_keras_serializable(package="amls2")
class BicubicPhases(keras.layers.Layer):
    """MATLAB's bicubic upscale by ``scale``, computed at LR size: (H, W, C) -> (H, W, C*s*s),
    channel block ``rh * s + rw`` holding output phase ``(rh, rw)`` (the order ``PixelShuffle``
    reads). Adding it to a sub-pixel head before the shuffle gives a bicubic image skip without
    an HR-size resize and add. Edges are replicated, as imresize does, so the shuffled output
    equals ``images.imresize`` to float precision everywhere, borders included."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def build(self, input_shape):
        self.kernel = ops.convert_to_tensor(bicubic_phase_kernel(self.scale, int(input_shape[-1])))

    def call(self, x):
        return _phase_conv(x, self.kernel)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h, w, None if c is None else c * self.scale**2)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}

    def count_macs(self, input_shapes, output_shape) -> int:
        return 16 * _prod(output_shape)  # 4x4 weighted taps per output value, as BicubicUpsample


@keras.saving.register_keras_serializable(package="amls2")
class LinearPhases(BicubicPhases):
    """A learned linear upscale by ``scale`` at LR size, shaped as :class:`BicubicPhases` (edges
    replicated, a ``kernel_size`` square kernel to the s x s phases) and initialised to it, but
    trainable and dense: every phase of every colour may use all colours of the window.

    With the default 5x5 window its inference cost is ``BicubicPhases``' (which runs the same
    dense 5x5 convolution, mostly zeros), so a sub-pixel model gets a learned linear path from
    its input to its output for free. A wider window (9x9) holds the closed-form ``linear``
    model's filters (:mod:`amls2.training.linear_fit`): followed by ``PixelShuffle`` it is that
    model, and as an image skip it lets a network learn the residual over it."""

    def __init__(self, scale: int, kernel_size: int = 5, closed_form: bool = False, **kwargs):
        super().__init__(scale, **kwargs)
        self.kernel_size = int(kernel_size)
        # closed_form: the filters are solved by least squares before training (and then not
        # trained): the ``linear`` model and the "linear" image skip.
        self.closed_form = bool(closed_form)
        if self.closed_form:
            self.trainable = False

    def build(self, input_shape):
        start = bicubic_phase_kernel(self.scale, int(input_shape[-1]), self.kernel_size)
        self.kernel = self.add_weight(
            name="kernel", shape=start.shape, initializer=keras.initializers.Constant(start)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "closed_form": self.closed_form,
        }

    def count_macs(self, input_shapes, output_shape) -> int:
        # the dense k x k kernel, every colour to every output channel
        return self.kernel_size**2 * int(input_shapes[0][-1]) * _prod(output_shape)


def space_to_depth(x, scale: int):
    """(N, H, W, C) -> (N, H/s, W/s, C*s*s), the inverse of :class:`PixelShuffle`: channel
    ``(rh * s + rw) * C + c`` holds pixel ``(i * s + rh, j * s + rw)``, colour ``c``."""
    n, h, w = ops.shape(x)[:3]
    channels = x.shape[-1]
    x = ops.reshape(x, (n, h // scale, scale, w // scale, scale * channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4))  # (n, h/s, w/s, rh, rw * C + c)
    return ops.reshape(x, (n, h // scale, w // scale, scale * scale * channels))


def polyphase_kernel_from_filters(filters: np.ndarray, channels: int) -> np.ndarray:
    """The (k, k, C*P, C*P) kernel that maps the ``P = s*s`` input phases of every colour to its
    output phases with ``filters[p, q]`` (output phase ``p`` from input phase ``q``), the same
    for every colour: ``(P, P, k, k)`` filters."""
    phases, inputs, k, _ = filters.shape
    kernel = np.zeros((k, k, inputs * channels, phases * channels), np.float32)
    for p in range(phases):
        for q in range(inputs):
            for c in range(channels):
                kernel[:, :, q * channels + c, p * channels + c] = filters[p, q]
    return kernel


@keras.saving.register_keras_serializable(package="amls2")
class PolyphaseLinear(keras.layers.Layer):
    """A linear filter of an HR-size image whose weights depend on the output pixel's phase:
    the image is split into its ``scale * scale`` phases at LR size (the inverse pixel shuffle),
    a ``kernel_size`` square convolution maps every input phase to every output phase (per
    colour, edges replicated), and the phases are shuffled back. On the bicubic upscale of an LR
    image it can express any linear upscale of that LR image that a window of about
    ``kernel_size + 4`` LR pixels allows (bicubic's own support is 4), which a shift-invariant
    filter cannot: the closed-form skip of the models that eat the bicubic image (SRCNN).
    Height and width must be multiples of ``scale`` (a bicubic upscale by ``scale`` is).
    Starts as the identity; ``closed_form`` as :class:`LinearPhases`."""

    def __init__(self, scale: int, kernel_size: int = 5, closed_form: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.kernel_size = int(kernel_size)
        self.closed_form = bool(closed_form)
        if self.closed_form:
            self.trainable = False

    def build(self, input_shape):
        phases = self.scale * self.scale
        identity = np.zeros((phases, phases, self.kernel_size, self.kernel_size), np.float32)
        for p in range(phases):
            identity[p, p, self.kernel_size // 2, self.kernel_size // 2] = 1.0
        start = polyphase_kernel_from_filters(identity, int(input_shape[-1]))
        self.kernel = self.add_weight(
            name="kernel", shape=start.shape, initializer=keras.initializers.Constant(start)
        )

    def call(self, x):
        phases = _phase_conv(space_to_depth(x, self.scale), self.kernel)
        return PixelShuffle(self.scale).call(phases)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "kernel_size": self.kernel_size,
            "closed_form": self.closed_form,
        }

    def count_macs(self, input_shapes, output_shape) -> int:
        # per LR-grid position: k*k taps x (C*s*s inputs) x (C*s*s outputs)
        channels = int(input_shapes[0][-1]) * self.scale**2
        positions = _prod(output_shape[1:3]) // self.scale**2
        return self.kernel_size**2 * channels * channels * positions


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
