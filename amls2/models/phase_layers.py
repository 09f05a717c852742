"""The phase layers: an upscale computed as ``s*s`` LR-size convolution outputs (one per sub-pixel
phase) then a depth-to-space, and its inverse as the input of a linear map.

``BicubicPhases`` is MATLAB's bicubic interpolation in that form, ``LinearPhases`` the same with
trainable filters (the "linear" image skip), ``PolyphaseLinear`` a linear map of the
space-to-depth phases of an HR-size input, ``PixelShuffle`` the depth-to-space they and the
sub-pixel models end with. Registered as ``amls2>ClassName`` (the shipped
``.keras`` files name them so); :data:`amls2.models.layers.CUSTOM_OBJECTS` lists them."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def element_count(shape) -> int:
    """The number of values in a tensor of ``shape`` (a sequence of known ints)."""
    return int(math.prod(int(v) for v in shape))


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
        return 16 * element_count(
            output_shape
        )  # 4x4 weighted taps per output value, as BicubicUpsample


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
        return self.kernel_size**2 * int(input_shapes[0][-1]) * element_count(output_shape)


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
        # Any height and width: replicate the last rows/columns up to a multiple of the scale
        # (a bicubic upscale is one already), filter, and crop back.
        s = self.scale
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        pad_h, pad_w = (-h) % s, (-w) % s
        x = ops.concatenate([x, ops.repeat(x[:, -1:], pad_h, axis=1)], axis=1)
        x = ops.concatenate([x, ops.repeat(x[:, :, -1:], pad_w, axis=2)], axis=2)
        phases = _phase_conv(space_to_depth(x, s), self.kernel)
        return PixelShuffle(s).call(phases)[:, :h, :w]

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
        positions = element_count(output_shape[1:3]) // self.scale**2
        return self.kernel_size**2 * channels * channels * positions


def is_phase_dependent(model) -> bool:
    """Whether ``model`` (on an HR-size input) filters each pixel by its phase on the LR grid: it
    holds a ``PolyphaseLinear``, so shifting its input by less than ``scale`` pixels changes the
    function, and training crops must start on the LR grid."""
    return any(
        isinstance(layer, PolyphaseLinear)
        or (isinstance(layer, keras.Model) and is_phase_dependent(layer))
        for layer in model.layers
    )
