"""The SRCNN family: SRCNN (Dong et al. 2014) and the variants of the seed project.

* ``srcnn``      - patch extraction / non-linear mapping / reconstruction on a bicubic-upscaled
                   input (9-1-5 or 9-5-5 with 64/32 filters), optionally deeper, with batch
                   normalisation, LeakyReLU/PReLU and a global residual connection.
* ``pre_srcnn``  - a 9x9 stride-``scale`` transposed convolution first, then SRCNN at HR size.
* ``post_srcnn`` - a conv stack at LR size, then a 5x5 stride-``scale`` transposed convolution and
                   a 3x3 sigmoid reconstructor.
* ``iud_srcnn``  - iterative up-and-down: (post-SRCNN, reconstruct, max-pool by ``scale``) x
                   (iterations - 1), then post-SRCNN and reconstruct.
* ``esrcnn``     - SRCNN with an expanded middle layer: parallel 1x1/3x3/5x5 convs averaged.
* ``dsrcnn``     - denoising auto-encoder SRCNN: conv encoder, transposed-conv decoder, averaged
                   bridge connections.

All convolutions use "same" padding so any input size works; images are float32 NHWC in [0,1].
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from amls2.models.layers import (
    add_image_skip,
    conv,
    conv_act,
    conv_transpose,
    conv_transpose_act,
    residual_head,
    tail_initializer,
)
from amls2.models.phase_layers import PolyphaseLinear


def _input(channels: int):
    return keras.Input(shape=(None, None, channels), name="lr")


def build_srcnn(
    scale: int,
    channels: int = 3,
    *,
    filters: Sequence[int] = (64, 32),
    kernels: Sequence[int] = (9, 1, 5),
    depth: int = 3,
    residual: bool = False,
    batch_norm: bool = False,
    activation: str = "relu",
    linear_residual: bool = False,
) -> keras.Model:
    """SRCNN on the bicubic-upscaled image (same size in and out, ``scale`` only names the model).

    Layers: ``kernels[0]`` x ``filters[0]``, then ``depth - 2`` mapping layers of ``kernels[1]`` x
    ``filters[1]``, then ``kernels[2]`` x ``channels`` (linear). ``residual`` adds the input to the
    output (the network learns the bicubic residual; the last layer then starts at zero, so the
    untrained network is exactly its input). ``linear_residual`` (with ``residual``; not in the
    paper): the residual path is a phase-dependent 5x5 (LR-grid) filter of the input solved in
    closed form from the training pairs (``PolyphaseLinear``): on the bicubic image it can
    express the ``linear`` model's upscale, so where the degradation's sampling grid is not
    bicubic's, the network learns the residual over the best linear estimate.
    """
    if len(filters) != 2 or len(kernels) != 3 or depth < 3:
        raise ValueError("srcnn needs filters=(f1, f2), kernels=(k1, k2, k3) and depth >= 3")
    if linear_residual and not residual:
        raise ValueError("srcnn: linear_residual needs residual=True")
    inp = _input(channels)
    x = conv_act(inp, filters[0], kernels[0], activation, batch_norm=batch_norm)
    for _ in range(depth - 2):
        x = conv_act(x, filters[1], kernels[1], activation, batch_norm=batch_norm)
    x = conv(channels, kernels[2], kernel_initializer=tail_initializer(residual))(x)
    if residual:
        skip = PolyphaseLinear(scale, 5, closed_form=True)(inp) if linear_residual else inp
        x = keras.layers.Add()([skip, x])
    return keras.Model(inp, x, name=f"srcnn_x{scale}")


def build_pre_srcnn(
    scale: int,
    channels: int = 3,
    *,
    up_filters: int | None = None,
    up_kernel: int = 9,
    filters: Sequence[int] = (64, 32),
    kernels: Sequence[int] = (9, 1, 5),
    image_skip: str = "none",
) -> keras.Model:
    """Upsample first, then SRCNN 9-1-5 at HR size.

    The upsampler is a linear ``up_kernel`` transposed conv with stride ``scale`` to
    ``up_filters`` maps (default: ``channels``, i.e. a learned replacement of bicubic upscaling).
    ``image_skip="bicubic"``: the last conv starts at zero and its output is added to the bicubic
    upscaling of the input.
    """
    inp = _input(channels)
    x = conv_transpose(up_filters or channels, up_kernel, strides=scale)(inp)
    x = conv(filters[0], kernels[0], act="relu")(x)
    x = conv(filters[1], kernels[1], act="relu")(x)
    x = conv(channels, kernels[2], kernel_initializer=tail_initializer(image_skip != "none"))(x)
    x = add_image_skip(inp, x, scale, image_skip)
    return keras.Model(inp, x, name=f"pre_srcnn_x{scale}")


def _post_srcnn_body(
    x, scale: int, filters, kernels, up_filters: int, up_kernel: int, activation: str
):
    """LR conv stack then a stride-``scale`` transposed conv to HR features (all activated)."""
    for f, k in zip(filters, kernels, strict=True):
        x = conv_act(x, f, k, activation)
    return conv_transpose_act(x, up_filters, up_kernel, scale, activation)


def _reconstructor(x, channels: int, image_skip: str = "none"):
    """3x3 conv to ``channels``: sigmoid (the seed), or linear when an image skip will add the
    upscaled input (the conv then predicts a residual, which can be negative)."""
    if image_skip == "none":
        return conv(channels, 3, act="sigmoid")(x)
    return residual_head(channels)(x)


def build_post_srcnn(
    scale: int,
    channels: int = 3,
    *,
    filters: Sequence[int] = (32, 64, 128, 64),
    kernels: Sequence[int] = (9, 5, 3, 1),
    up_filters: int = 64,
    up_kernel: int = 5,
    image_skip: str = "none",
    activation: str = "relu",
) -> keras.Model:
    """Post-upsampling SRCNN: conv stack at LR size, transposed conv by ``scale``, 3x3 sigmoid;
    ``image_skip="bicubic"`` makes the 3x3 linear and adds the bicubic upscaling of the input.
    ``activation`` (ReLU in the seed; "prelu" cannot die in residual training)."""
    inp = _input(channels)
    x = _post_srcnn_body(inp, scale, filters, kernels, up_filters, up_kernel, activation)
    x = add_image_skip(inp, _reconstructor(x, channels, image_skip), scale, image_skip)
    return keras.Model(inp, x, name=f"post_srcnn_x{scale}")


def build_iud_srcnn(
    scale: int,
    channels: int = 3,
    *,
    iterations: int = 2,
    filters: Sequence[int] = (32, 64, 128, 64),
    kernels: Sequence[int] = (9, 5, 3, 1),
    up_filters: int = 64,
    up_kernel: int = 5,
    image_skip: str = "none",
    activation: str = "relu",
) -> keras.Model:
    """Iterative up-and-down SRCNN: each iteration is post-SRCNN + sigmoid reconstructor; between
    iterations the reconstruction is max-pooled by ``scale`` back to LR size (exact for any size
    because the previous step upsampled by exactly ``scale``). ``image_skip="bicubic"`` makes
    every reconstructor linear (zero-initialised) and adds the bicubic upscaling of that
    iteration's input (of the LR input for the last one, so the untrained model is bicubic), so
    from the first step each iteration sees an image: with only the final
    reconstruction skipped, the untrained sigmoid one in between fed the next iteration noise and
    training sat at the bicubic PSNR (Set5 x2, 500 steps). ``activation`` as in post-SRCNN."""
    if iterations < 1:
        raise ValueError("iud_srcnn needs iterations >= 1")
    inp = _input(channels)
    x = inp
    for i in range(iterations):
        h = _post_srcnn_body(x, scale, filters, kernels, up_filters, up_kernel, activation)
        last = i == iterations - 1
        source = inp if last else x
        # A linear skip is solved from the model input: only skips of the input get it.
        kind = image_skip if (source is inp or image_skip != "linear") else "bicubic"
        x = add_image_skip(source, _reconstructor(h, channels, image_skip), scale, kind)
        if not last:
            x = keras.layers.MaxPooling2D(pool_size=scale, strides=scale, padding="same")(x)
    return keras.Model(inp, x, name=f"iud_srcnn_x{scale}")


def build_esrcnn(
    scale: int,
    channels: int = 3,
    *,
    filters: Sequence[int] = (64, 32),
    branch_kernels: Sequence[int] = (1, 3, 5),
    kernels: Sequence[int] = (9, 5),
    residual: bool = False,
) -> keras.Model:
    """Expanded SRCNN on the bicubic-upscaled image: ``kernels[0]`` x ``filters[0]``, parallel
    ``branch_kernels`` x ``filters[1]`` convs averaged, ``kernels[1]`` x ``channels`` (linear).
    ``residual`` adds the input to the output (the last conv then starts at zero)."""
    inp = _input(channels)
    x = conv(filters[0], kernels[0], act="relu")(inp)
    branches = [conv(filters[1], k, act="relu")(x) for k in branch_kernels]
    x = keras.layers.Average()(branches) if len(branches) > 1 else branches[0]
    x = conv(channels, kernels[1], kernel_initializer=tail_initializer(residual))(x)
    if residual:
        x = keras.layers.Add()([inp, x])
    return keras.Model(inp, x, name=f"esrcnn_x{scale}")


def build_dsrcnn(
    scale: int,
    channels: int = 3,
    *,
    filters: int = 64,
    kernel: int = 3,
    out_kernel: int = 5,
    residual: bool = False,
) -> keras.Model:
    """Denoising auto-encoder SRCNN on the bicubic-upscaled image::

    e1 = conv(x)        e2 = conv(e1)
    d2 = deconv(e2);    m2 = average(e2, d2)      # bridge
    d1 = deconv(m2);    m1 = average(e1, d1)      # bridge
    out = conv5x5(m1) -> channels (linear)     [+ x with ``residual``; the conv starts at 0]
    """
    inp = _input(channels)
    e1 = conv(filters, kernel, act="relu")(inp)
    e2 = conv(filters, kernel, act="relu")(e1)
    d2 = keras.layers.Conv2DTranspose(filters, kernel, padding="same", activation="relu")(e2)
    m2 = keras.layers.Average()([e2, d2])
    d1 = keras.layers.Conv2DTranspose(filters, kernel, padding="same", activation="relu")(m2)
    m1 = keras.layers.Average()([e1, d1])
    out = conv(channels, out_kernel, kernel_initializer=tail_initializer(residual))(m1)
    if residual:
        out = keras.layers.Add()([inp, out])
    return keras.Model(inp, out, name=f"dsrcnn_x{scale}")
