"""Fast post-upsampling networks: FSRCNN (Dong et al. 2016) and ESPCN (Shi et al. 2016).

Both work on the LR image (``input_kind="lr"``) and upsample once at the end, so almost all of
the computation happens at LR resolution. Images are float32 NHWC in [0,1]; "same" padding.
"""

from __future__ import annotations

import keras

from amls2.models.ecb import EdgeOrientedConv2D
from amls2.models.layers import (
    IMAGE_SKIPS,
    LINEAR_KERNEL_SIZE,
    add_image_skip,
    conv,
    conv_transpose,
    make_activation,
    tail_initializer,
)
from amls2.models.phase_layers import BicubicPhases, LinearPhases, PixelShuffle


def build_fsrcnn(
    scale: int,
    channels: int = 3,
    *,
    d: int = 56,
    s: int = 12,
    m: int = 4,
    deconv_kernel: int = 9,
    image_skip: str = "none",
) -> keras.Model:
    """FSRCNN(d, s, m): 5x5 feature extraction (d), 1x1 shrinking (s), m 3x3 mapping layers (s),
    1x1 expanding (d), all PReLU, then a ``deconv_kernel`` transposed conv with stride ``scale``
    to ``channels`` (linear). ``image_skip="bicubic"`` (not in the paper): the deconvolution
    starts at zero and its output is added to the bicubic upscaling of the input."""
    inp = keras.Input(shape=(None, None, channels), name="lr")
    x = make_activation("prelu")(conv(d, 5)(inp))
    x = make_activation("prelu")(conv(s, 1)(x))
    for _ in range(m):
        x = make_activation("prelu")(conv(s, 3)(x))
    x = make_activation("prelu")(conv(d, 1)(x))
    init = tail_initializer(image_skip != "none")
    out = conv_transpose(channels, deconv_kernel, strides=scale, kernel_initializer=init)(x)
    out = add_image_skip(inp, out, scale, image_skip)
    return keras.Model(inp, out, name=f"fsrcnn_x{scale}")


CONV_BLOCKS: tuple[str, ...] = ("plain", "ecb")


def _body_conv(conv_block: str, filters: int, kernel: int, ecb_expansion: int):
    if conv_block == "ecb":  # always 3x3: build_espcn checks the kernels
        return EdgeOrientedConv2D(filters, depth_multiplier=ecb_expansion)
    return conv(filters, kernel)


def build_espcn(
    scale: int,
    channels: int = 3,
    *,
    filters: tuple[int, int] = (64, 32),
    kernels: tuple[int, int, int] = (5, 3, 3),
    mid_layers: int = 1,
    activation: str = "tanh",
    image_skip: str = "none",
    conv_block: str = "plain",
    ecb_expansion: int = 2,
    learned_skip: bool = False,
) -> keras.Model:
    """ESPCN: conv ``kernels[0]`` x ``filters[0]``, ``mid_layers`` convs ``kernels[1]`` x
    ``filters[1]`` (tanh or relu), then a ``kernels[2]`` conv to ``channels * scale**2`` and a
    pixel shuffle (linear). ``image_skip="bicubic"`` (not in the paper): the last conv starts at
    zero and MATLAB's bicubic upscale of the input is added before the shuffle, computed at LR
    size (``BicubicPhases``), so the skip costs no HR-size pass but the shuffle itself.
    A ReLU is fused into its convolution by TensorFlow; tanh and PReLU are separate passes.
    ``conv_block="ecb"`` (not in the paper; needs 3x3 kernels): every conv but the last is an
    edge-oriented convolution block (``models.ecb``), trained through five branches and run as
    one 3x3 conv, so the inference cost is unchanged; ``ecb_expansion`` is its 1x1-then-3x3
    branch's ``depth_multiplier`` (ECBSR: 2), a training-only width. ``learned_skip=True`` (with
    ``image_skip="bicubic"``): the skip's 5x5 phase kernel starts at bicubic and is trained, all
    colours to all colours (``LinearPhases``): a learned linear path at the skip's cost. Use it
    in a fine-tuning stage: trained from scratch at a learning rate of 1e-3, the x3 fast model
    was 0.55 dB behind on held-out images after 10000 steps, the kernel having left bicubic."""
    if conv_block not in CONV_BLOCKS:
        raise ValueError(f"unknown conv_block {conv_block!r}; valid: {list(CONV_BLOCKS)}")
    if conv_block == "ecb" and tuple(kernels[:2]) != (3, 3):
        raise ValueError(f"conv_block='ecb' needs 3x3 kernels, got {kernels[:2]}")
    if image_skip not in IMAGE_SKIPS:
        raise ValueError(f"unknown image_skip {image_skip!r}; valid: {list(IMAGE_SKIPS)}")
    if mid_layers < 1:
        raise ValueError("espcn needs mid_layers >= 1")
    inp = keras.Input(shape=(None, None, channels), name="lr")
    x = make_activation(activation)(
        _body_conv(conv_block, filters[0], kernels[0], ecb_expansion)(inp)
    )
    for _ in range(mid_layers):
        x = make_activation(activation)(
            _body_conv(conv_block, filters[1], kernels[1], ecb_expansion)(x)
        )
    init = tail_initializer(image_skip != "none")
    x = conv(channels * scale * scale, kernels[2], kernel_initializer=init)(x)
    if learned_skip and image_skip != "bicubic":
        raise ValueError("learned_skip=True needs image_skip='bicubic'")
    if image_skip == "bicubic":
        skip = LinearPhases(scale) if learned_skip else BicubicPhases(scale)
        x = keras.layers.Add()([x, skip(inp)])
    elif image_skip == "linear":  # the closed-form linear fit's 9x9 filters, before the shuffle
        x = keras.layers.Add()([x, LinearPhases(scale, LINEAR_KERNEL_SIZE, closed_form=True)(inp)])
    return keras.Model(inp, PixelShuffle(scale)(x), name=f"espcn_x{scale}")
