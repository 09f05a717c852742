"""FD-SRCNN: the feedback / up-and-down SRCNN of the seed project, as read from its description.

Reading of the architecture (one builder for every scale; ``s`` is the per-module stride)::

    LR ──conv9x9x32 ReLU──► F (input features)
                            │
      ┌──── upscaling module (stride s) ─────────────────────────────────────────────────┐
      │ in = F                                                                          │
      │ block series 1..n:                                                              │
      │   in ─conv5x5x64─conv3x3x128─conv1x1x64 (ReLU)─up5x5/s─┐                        │
      │   in ─────────────────────────────────────── up1x1/s ──┴─ add ─ ReLU ─► h       │
      │   not last:  h ─conv3x3xC sigmoid─► rec ─maxpool s─► in (LR size again)         │
      │   last:      h + up5x5/s(F) [global shortcut] ─conv3x3xC sigmoid─► SR           │
      └─────────────────────────────────────────────────────────────────────────────────┘

* x2 and x3: one module with s = 2 or 3.
* x4: two x2 modules in a row ("progressive"). The second module takes the first module's
  reconstructed x2 image as its ``in`` and has its own global shortcut (up5x5/2 of that image);
  the LR input features F are also carried by a stride-4 shortcut (up5x5/4(F)) added before the
  final reconstructor.
* "up k/s" is a k x k transposed convolution with stride s (``upsampler="transposed"``, the
  seed) or, for comparison, a sub-pixel convolution (conv 3x3 for the 5x5 ones / 1x1 for the
  1x1 ones, to ``width * s * s`` maps, then pixel shuffle; ``upsampler="subpixel"``).

Width (64), the middle width (128), the input feature width (32) and the number of block series
per module (3) are hyperparameters, so a faster variant (e.g. ``variant="fast"``) can be trained
and compared. Max-pooling by s after an s-times upsampling is exact for any input size.
"""

from __future__ import annotations

import keras

from amls2.models.layers import (
    add_image_skip,
    conv,
    conv_act,
    conv_transpose,
    make_activation,
    residual_head,
)
from amls2.models.phase_layers import PixelShuffle

UPSAMPLERS: tuple[str, ...] = ("transposed", "subpixel")


def _up(x, scale: int, filters: int, kernel: int, upsampler: str):
    """A linear learned upsampling by ``scale`` to ``filters`` maps."""
    if upsampler == "transposed":
        # conv_transpose: the 1x1 shortcuts become PointwiseConv2DTranspose (oneDNN bug)
        return conv_transpose(filters, kernel, strides=scale)(x)
    sub_kernel = 1 if kernel == 1 else 3
    x = conv(filters * scale * scale, sub_kernel)(x)
    return PixelShuffle(scale)(x)


def _upscaling_module(
    x_in,
    scale: int,
    channels: int,
    width: int,
    mid_width: int,
    n_series: int,
    upsampler: str,
    extra_shortcuts=(),
    linear_output: bool = False,
    activation: str = "relu",
    skip_image=None,
):
    """``n_series`` up-and-down block series; returns the reconstruction at ``scale`` x (sigmoid,
    or linear for the last one when ``linear_output``: an image skip adds the rest).

    ``skip_image`` (the module's input image): every other reconstruction becomes a
    zero-initialised linear conv added to the bicubic upscaling of that image, instead of a
    sigmoid (the untrained module then passes bicubic on, rather than a grey sigmoid image)."""
    series_in = x_in
    for i in range(n_series):
        h = conv_act(series_in, width, 5, activation)
        h = conv_act(h, mid_width, 3, activation)
        h = conv_act(h, width, 1, activation)
        h = _up(h, scale, width, 5, upsampler)
        shortcut = _up(series_in, scale, width, 1, upsampler)
        h = make_activation(activation)(keras.layers.Add()([h, shortcut]))
        last = i == n_series - 1
        if last:
            global_shortcut = _up(x_in, scale, width, 5, upsampler)
            h = keras.layers.Add()([h, global_shortcut, *extra_shortcuts])
        if last and linear_output:
            rec = residual_head(channels)(h)
        elif skip_image is not None:
            rec = add_image_skip(skip_image, residual_head(channels)(h), scale, "bicubic")
        else:
            rec = conv(channels, 3, act="sigmoid")(h)
        if not last:
            series_in = keras.layers.MaxPooling2D(pool_size=scale, strides=scale, padding="same")(
                rec
            )
    return rec


def build_fd_srcnn(
    scale: int,
    channels: int = 3,
    *,
    features: int = 32,
    width: int = 64,
    mid_width: int = 128,
    n_series: int = 3,
    upsampler: str = "transposed",
    image_skip: str = "none",
    activation: str = "relu",
    intermediate_skip: bool = False,
) -> keras.Model:
    """FD-SRCNN for x2/x3 (one module) or x4 (two progressive x2 modules); see the module doc.

    ``image_skip="bicubic"`` (not in the seed) makes the final reconstructor linear and adds the
    bicubic upscaling of the input, so the network learns the residual over bicubic.
    ``intermediate_skip`` (with the image skip; not in the seed) does the same for every other
    reconstruction: the intermediate ones between block series, and at x4 the first module's x2
    image. IUD-SRCNN learned much faster once its intermediate reconstructions had the skip.
    ``activation``: ReLU (the seed) or e.g. "prelu", which cannot die: with the image skip and a
    learning rate of 5e-4 the ReLU input features all died within 500 steps (measured)."""
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler {upsampler!r}: valid: {list(UPSAMPLERS)}")
    if n_series < 1:
        raise ValueError("fd_srcnn needs n_series >= 1")
    if intermediate_skip and image_skip == "none":
        raise ValueError("fd_srcnn: intermediate_skip needs image_skip='bicubic'")
    inp = keras.Input(shape=(None, None, channels), name="lr")
    feats = conv_act(inp, features, 9, activation)
    args = dict(
        channels=channels,
        width=width,
        mid_width=mid_width,
        n_series=n_series,
        upsampler=upsampler,
        activation=activation,
    )
    linear = image_skip != "none"
    if scale == 4:
        x2 = _upscaling_module(feats, 2, skip_image=inp if intermediate_skip else None, **args)
        carried = _up(feats, 4, width, 5, upsampler)
        out = _upscaling_module(
            x2,
            2,
            extra_shortcuts=(carried,),
            linear_output=linear,
            skip_image=x2 if intermediate_skip else None,
            **args,
        )
    else:
        skip_image = inp if intermediate_skip else None
        out = _upscaling_module(feats, scale, linear_output=linear, skip_image=skip_image, **args)
    out = add_image_skip(inp, out, scale, image_skip)
    return keras.Model(inp, out, name=f"fd_srcnn_x{scale}")
