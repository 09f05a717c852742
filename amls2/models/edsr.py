"""Residual post-upsampling networks: EDSR (Lim et al. 2017) with an optional RCAN-style channel
attention (Zhang et al. 2018), and SRResNet (Ledig et al. 2017, the generator of SRGAN).

Both take the LR image (``input_kind="lr"``) and upsample with sub-pixel convolutions (x4 as two
x2 stages, x3 as one stage). Images are float32 NHWC in [0,1]; "same" padding everywhere.
"""

from __future__ import annotations

import keras

from amls2.models.layers import (
    MeanShift,
    add_image_skip,
    conv,
    make_activation,
    subpixel_upsample,
    tail_initializer,
)


def channel_attention(x, filters: int, reduction: int):
    """RCAN channel attention: global average pool -> 1x1 (filters/reduction, ReLU) -> 1x1
    (filters, sigmoid) -> rescale the input channels."""
    w = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    w = conv(max(1, filters // reduction), 1, act="relu")(w)
    w = conv(filters, 1, act="sigmoid")(w)
    return keras.layers.Multiply()([x, w])


def _edsr_block(x, filters: int, res_scale: float, attention: bool, reduction: int):
    """conv-ReLU-conv [-channel attention], scaled by ``res_scale`` and added (no BN)."""
    h = conv(filters, 3, act="relu")(x)
    h = conv(filters, 3)(h)
    if attention:
        h = channel_attention(h, filters, reduction)
    if res_scale != 1:
        # Residual scaling stabilises training of wide EDSR (0.1 in the paper for 256 filters).
        h = keras.layers.Rescaling(res_scale)(h)
    return keras.layers.Add()([x, h])


def build_edsr(
    scale: int,
    channels: int = 3,
    *,
    n_blocks: int = 16,
    filters: int = 64,
    res_scale: float = 1.0,
    attention: bool = False,
    reduction: int = 16,
    image_skip: str = "none",
) -> keras.Model:
    """EDSR: mean shift, 3x3 head, ``n_blocks`` residual blocks (optionally with channel
    attention), 3x3 conv + global skip, sub-pixel upsampler, 3x3 tail, mean shift back;
    ``image_skip="bicubic"`` adds the bicubic upscaling of the input to the output."""
    inp = keras.Input(shape=(None, None, channels), name="lr")
    x = MeanShift(sign=-1)(inp)
    head = conv(filters, 3)(x)
    x = head
    for _ in range(n_blocks):
        x = _edsr_block(x, filters, res_scale, attention, reduction)
    x = conv(filters, 3)(x)
    x = keras.layers.Add()([head, x])
    x = subpixel_upsample(x, scale, filters)
    x = conv(channels, 3, kernel_initializer=tail_initializer(image_skip != "none"))(x)
    # With an image skip the tail predicts a residual: the mean comes with the bicubic image.
    out = (
        MeanShift(sign=1)(x) if image_skip == "none" else add_image_skip(inp, x, scale, image_skip)
    )
    return keras.Model(inp, out, name=f"edsr_x{scale}")


def _conv_bn(x, filters: int, batch_norm: bool):
    """3x3 conv then BN (the conv without bias: BN's beta replaces it), or the conv alone."""
    if not batch_norm:
        return conv(filters, 3)(x)
    return keras.layers.BatchNormalization()(conv(filters, 3, use_bias=False)(x))


def _srresnet_block(x, filters: int, batch_norm: bool):
    """conv-BN-PReLU-conv-BN + identity (without BN with ``batch_norm=False``)."""
    h = make_activation("prelu")(_conv_bn(x, filters, batch_norm))
    h = _conv_bn(h, filters, batch_norm)
    return keras.layers.Add()([x, h])


def build_resnet_sr(
    scale: int,
    channels: int = 3,
    *,
    n_blocks: int = 16,
    filters: int = 64,
    image_skip: str = "none",
    batch_norm: bool = True,
) -> keras.Model:
    """SRResNet: 9x9 PReLU head, ``n_blocks`` BN residual blocks, conv-BN + global skip, sub-pixel
    upsampling with PReLU, 9x9 tail (linear). ``variant="distilled"`` is the small student.
    ``image_skip="bicubic"``: the tail starts at zero and its output is added to the bicubic
    upscaling of the input. ``batch_norm=False`` drops every BN, as EDSR does (Lim et al. found
    BN hurts SR; and in a short run its moving statistics lag the weights)."""
    inp = keras.Input(shape=(None, None, channels), name="lr")
    head = make_activation("prelu")(conv(filters, 9)(inp))
    x = head
    for _ in range(n_blocks):
        x = _srresnet_block(x, filters, batch_norm)
    x = _conv_bn(x, filters, batch_norm)
    x = keras.layers.Add()([head, x])
    x = subpixel_upsample(x, scale, filters, act="prelu")
    out = conv(channels, 9, kernel_initializer=tail_initializer(image_skip != "none"))(x)
    out = add_image_skip(inp, out, scale, image_skip)
    return keras.Model(inp, out, name=f"resnet_sr_x{scale}")
