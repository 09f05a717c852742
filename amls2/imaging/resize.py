"""MATLAB-exact ``imresize`` (bicubic, antialiased when downscaling) in NumPy, and the bicubic
down- and upscaling of the NTIRE Track 1 protocol built on it. Images are float32 HxWxC in [0, 1].

The published SISR numbers come from MATLAB, which this reproduces:

* ``imresize`` is ``imresize(img, scale, 'bicubic')``: cubic kernel a = -0.5, the kernel widened
  by 1/scale when downscaling (antialiasing), pixel-centre mapping
  ``u = x / scale + 0.5 * (1 - 1 / scale)``, edge pixels replicated at the borders (MATLAB
  clamps out-of-range taps; this matches the MATLAB-made LR files of Set5/Set14 in every pixel,
  where symmetric mirroring misses ~1% of them), output size ``ceil(in * scale)``,
  one axis at a time in order of increasing scale (rows first on ties), and for uint8 input a
  rounding to uint8 after EACH axis pass (a float-only resize differs in ~15% of the pixels);
* ``bicubic_downscale`` / ``bicubic_upscale`` take float images through uint8 exactly as MATLAB
  does with uint8 images, which is how the benchmark LR images and the bicubic baseline were made.
"""

from __future__ import annotations

import math

import numpy as np

from amls2.imaging.images import to_float, to_uint8


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's cubic convolution kernel (Keys, a = -0.5), support [-2, 2]."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return near + far


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB imresize ``contributions``: (weights, 0-based input indices), both out x P.

    Follows MATLAB line by line (1-based x, antialiasing kernel widening when downscaling,
    border taps clamped to the edge pixel, dropping all-zero columns) so ties round the same way.
    """
    kernel_width = 4.0
    if scale < 1:
        kernel_width = kernel_width / scale

        def kernel(x):
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Clamp out-of-range taps, i.e. replicate the end pixels, as MATLAB's imresize.m does
    # ("Clamp out-of-range indices; has the effect of replicating end-points"). Symmetric
    # mirroring (used by some Python ports) differs from the MATLAB-made LR files in ~1.4% of
    # the Set5 x4 pixels (the outer row/column); clamping matches them all.
    indices = np.clip(indices.astype(np.int64) - 1, 0, in_length - 1)
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_matrix(in_length: int, out_length: int, scale: float):
    """The out x in sparse matrix of one axis pass (clamped taps landing on one pixel add up)."""
    from scipy import sparse  # SciPy is slow to import: only when resizing

    weights, indices = _contributions(in_length, out_length, scale)
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    return sparse.csr_matrix(
        (weights.ravel(), (rows, indices.ravel())), shape=(out_length, in_length)
    )


def _resize_axis(img: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    """One float64 resize pass along ``axis`` (0 = rows/vertical, 1 = columns/horizontal)."""
    matrix = _resize_matrix(img.shape[axis], out_length, scale)
    moved = np.moveaxis(img, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = np.asarray(matrix @ flat).reshape((out_length,) + moved.shape[1:])
    return np.moveaxis(out, 0, axis)


def _output_size(
    shape: tuple[int, int], scale, output_shape
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-axis scale factors and output size, as MATLAB imresize derives them."""
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale or output_shape")
    if output_shape is not None:
        out_h, out_w = (int(n) for n in output_shape)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize: output_shape must be positive, got {output_shape}")
        return (out_h / shape[0], out_w / shape[1]), (out_h, out_w)
    scale = float(scale)
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"imresize: scale must be a positive number, got {scale}")
    size = (math.ceil(scale * shape[0]), math.ceil(scale * shape[1]))
    return (scale, scale), size


def imresize(img: np.ndarray, scale: float | None = None, *, output_shape=None) -> np.ndarray:
    """MATLAB-exact ``imresize(img, scale, 'bicubic')`` (or ``imresize(img, [h w], 'bicubic')``).

    ``img`` is HxW or HxWxC. Output size is ``ceil(in * scale)``, or ``output_shape`` (h, w) with
    per-axis scale out/in. Axes are resized one at a time in order of increasing scale (rows first
    on ties). uint8 in -> uint8 out, rounded (half up, clipped) after EACH pass as MATLAB does;
    float in -> float of the same dtype out, not rounded or clipped (computed in float64).
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"imresize: need an HxW or HxWxC image, got shape {img.shape}")
    scales, size = _output_size(img.shape[:2], scale, output_shape)
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"imresize: need uint8 or float pixels, got {img.dtype}")
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    out = img.astype(np.float64)
    for axis in order:
        if scales[axis] == 1 and size[axis] == img.shape[axis]:
            continue  # MATLAB's scale-1 kernel is the identity; skip the work
        out = _resize_axis(out, axis, size[axis], scales[axis])
        if is_uint8:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out.astype(np.uint8) if is_uint8 else out.astype(img.dtype)


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR image: MATLAB ``imresize(im2uint8(hr), 1/scale, 'bicubic')`` as float32.

    ``hr`` is float [0, 1] (mod-crop it first for exact ``H/scale`` sizes); the result is float32
    in [0, 1] holding uint8 levels, as the MATLAB-made LR files.
    """
    return to_float(imresize(to_uint8(hr), 1.0 / int(scale)))


def bicubic_upscale_float(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-bicubic upscale of a float [0, 1] (or uint8) image on floats, not rounded: the
    input of ``input_kind="bicubic"`` models, the same in training and inference. float32 out;
    values may overshoot [0, 1] slightly, as with MATLAB on double images."""
    lr = to_float(lr) if np.asarray(lr).dtype == np.uint8 else np.asarray(lr, np.float32)
    return np.asarray(imresize(lr, int(scale)), dtype=np.float32)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: MATLAB ``imresize(im2uint8(lr), scale, 'bicubic')`` as float32 [0, 1]."""
    return to_float(imresize(to_uint8(lr), int(scale)))
