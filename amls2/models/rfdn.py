"""RFDN: residual feature distillation network (Liu et al. 2020, winner of the AIM 2020 efficient
SR challenge), a light model aimed at the best PSNR per multiply-add on a CPU.

Structure (``nf`` = ``filters``, ``dc`` = ``nf // 2`` distilled channels, LeakyReLU 0.05)::

    LR ─conv3x3 nf─► fea ─RFDB─► b1 ─RFDB─► b2 ─ ... ─► bN
    concat(b1..bN) ─conv1x1 nf, LReLU─conv3x3 nf─ (+ fea) ─conv3x3 C*s*s─pixel shuffle─► SR

    RFDB(x):  d1 = conv1x1 dc(x)          r1 = LReLU(conv3x3 nf(x)  + x)
              d2 = conv1x1 dc(r1)         r2 = LReLU(conv3x3 nf(r1) + r1)
              d3 = conv1x1 dc(r2)         r3 = LReLU(conv3x3 nf(r2) + r2)
              r4 = conv3x3 dc(r3)
              ESA(conv1x1 nf(concat(d1, d2, d3, r4)))       (d*, r4 with LReLU)

    ESA(x):   c1 = conv1x1 f(x);  c = conv3x3 stride 2 (c1);  maxpool 7 stride 3;
              conv3x3 ReLU; conv3x3 ReLU; conv3x3; bilinear resize to x's size;
              x * sigmoid(conv1x1 nf(resized + conv1x1 f(c1)))          (f = nf // 4)

Deviation from the paper: the strided convolution and the pooling use "same" padding (the paper
uses "valid") so that tiny and odd-sized inputs work. Few large ops, no per-pixel Python work:
CPU-friendly. Images are float32 NHWC in [0,1].
"""

from __future__ import annotations

import keras

from amls2.models.layers import ResizeLike, add_image_skip, conv, tail_initializer
from amls2.models.phase_layers import PixelShuffle

NEGATIVE_SLOPE = 0.05


def _lrelu(x):
    return keras.layers.LeakyReLU(negative_slope=NEGATIVE_SLOPE)(x)


def enhanced_spatial_attention(x, filters: int):
    """ESA block (RFDN): a spatial attention mask computed at ~1/6 resolution."""
    f = max(1, filters // 4)
    c1_ = conv(f, 1)(x)
    c1 = keras.layers.Conv2D(f, 3, strides=2, padding="same")(c1_)
    v = keras.layers.MaxPooling2D(pool_size=7, strides=3, padding="same")(c1)
    v = conv(f, 3, act="relu")(v)
    c3 = conv(f, 3, act="relu")(v)
    c3 = conv(f, 3)(c3)
    c3 = ResizeLike()([c3, x])
    cf = conv(f, 1)(c1_)
    mask = conv(filters, 1, act="sigmoid")(keras.layers.Add()([c3, cf]))
    return keras.layers.Multiply()([x, mask])


def residual_feature_distillation_block(x, filters: int):
    """RFDB: three distill/refine steps, a final 3x3, concat, 1x1 fusion and ESA."""
    dc = max(1, filters // 2)
    distilled = []
    r = x
    for _ in range(3):
        distilled.append(_lrelu(conv(dc, 1)(r)))
        r = _lrelu(keras.layers.Add()([conv(filters, 3)(r), r]))
    distilled.append(_lrelu(conv(dc, 3)(r)))
    out = conv(filters, 1)(keras.layers.Concatenate()(distilled))
    return enhanced_spatial_attention(out, filters)


def build_rfdn(
    scale: int,
    channels: int = 3,
    *,
    filters: int = 48,
    n_blocks: int = 4,
    image_skip: str = "none",
) -> keras.Model:
    """RFDN with ``n_blocks`` RFDBs of ``filters`` channels and a one-step pixel-shuffle tail;
    ``image_skip="bicubic"`` adds the bicubic upscaling of the input to the output."""
    inp = keras.Input(shape=(None, None, channels), name="lr")
    fea = conv(filters, 3)(inp)
    x = fea
    blocks = []
    for _ in range(n_blocks):
        x = residual_feature_distillation_block(x, filters)
        blocks.append(x)
    x = keras.layers.Concatenate()(blocks) if len(blocks) > 1 else blocks[0]
    x = _lrelu(conv(filters, 1)(x))
    x = keras.layers.Add()([conv(filters, 3)(x), fea])
    init = tail_initializer(image_skip != "none")
    x = conv(channels * scale * scale, 3, kernel_initializer=init)(x)
    out = add_image_skip(inp, PixelShuffle(scale)(x), scale, image_skip)
    return keras.Model(inp, out, name=f"rfdn_x{scale}")
