"""PSNR and SSIM per image under two named evaluation protocols (NumPy/OpenCV, no TensorFlow).

Protocols (inputs: float HxWx3 RGB in [0, 1] of equal shape; both are first quantised to uint8
levels as MATLAB ``im2uint8``):

``"y"`` -- the SISR benchmark protocol (SRCNN, VDSR, ... tables on Set5/Set14/B100/Urban100):
    luma Y of ITU-R BT.601 as MATLAB ``rgb2ycbcr`` (Y in [16, 235]), ``scale`` pixels shaved from
    every border, data range 255.
``"rgb"`` -- the DIV2K / NTIRE 2017 protocol: the three RGB channels in [0, 255], ``scale + 2``
    pixels shaved from every border, data range 255 (SSIM averaged over the channels).

SSIM is Wang et al.'s ``ssim_index``: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
'valid' filtering, mean of the SSIM map. PSNR is ``10 log10(255^2 / MSE)``; identical images give
PSNR ``inf`` and SSIM 1. Dataset scores are means of the per-image values (as the published
tables), which the caller computes.

Grey files. The benchmark code scores a single-channel file (Set14 ``bridge``) on its grey
levels directly, not through ``rgb2ycbcr`` (which would squeeze them into [16, 235] and add
~1.3 dB to that image). Pass ``grayscale=True`` (``images.load_image(...).grayscale`` of the HR
file) to score such an image on full-range BT.601 luma ``(Y - 16) * 255 / 219``, which equals the
grey level for grey pixels. Three-channel files whose channels happen to be equal (Set14 ``man``)
are scored through ``rgb2ycbcr`` like any colour file, as in the published tables.

Y convention. MATLAB's ``rgb2ycbcr`` on uint8 images returns uint8, i.e. Y rounded to integers;
on double images it does not round. This module does not round Y (``Y_ROUNDED = False``): it is
the convention that reproduces the published bicubic baselines. Measured with the MATLAB-exact
``images.bicubic_downscale`` then ``images.bicubic_upscale`` (both through uint8), mean of the
per-image PSNR (dB), Set14 ``bridge`` scored as grey:

==============  ========================  ========================  =====================
protocol "y"    Y not rounded (used)      Y rounded                 published
==============  ========================  ========================  =====================
Set5  x2/x3/x4  33.674 / 30.405 / 28.430  33.640 / 30.386 / 28.418  33.66 / 30.39 / 28.42
Set14 x2/x3/x4  30.232 / 27.539 / 25.997  30.220 / 27.533 / 25.993  30.24 / 27.55 / 26.00
==============  ========================  ========================  =====================

SSIM (Y not rounded): Set5 0.9303 / 0.8689 / 0.8111, Set14 0.8691 / 0.7745 / 0.7029 against the
published 0.9299 / 0.8682 / 0.8104 and 0.8688 / 0.7742 / 0.7027.
Without the grey rule Set14 scores 30.326 / 27.634 / 26.091 (+0.09 dB).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from amls2.errors import ImageError
from amls2.imaging.images import rgb_to_y, to_uint8

PROTOCOLS: tuple[str, ...] = ("y", "rgb")
# Whether the Y channel is rounded to integers before scoring (see the module docstring).
Y_ROUNDED = False
DATA_RANGE = 255.0
# Wang et al. (2004) SSIM constants and window.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def shave_for(protocol: str, scale: int) -> int:
    """Pixels shaved from every border: ``scale`` for "y", ``scale + 2`` for "rgb"."""
    _check_protocol(protocol)
    scale = int(scale)
    return scale if protocol == "y" else scale + 2


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown metric protocol {protocol!r}; valid: {list(PROTOCOLS)}")


def prepare(
    img: np.ndarray, *, scale: int, protocol: str = "y", grayscale: bool = False
) -> np.ndarray:
    """The float64 HxWxC values a protocol scores: quantised, Y or RGB in [0, 255], shaved.

    ``"y"`` gives HxWx1 Y in [16, 235] (rounded if ``Y_ROUNDED``), or with ``grayscale`` the
    full-range luma in [0, 255]; ``"rgb"`` gives HxWx3 (``grayscale`` changes nothing).
    """
    _check_protocol(protocol)
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"metrics: need HxWx3 RGB images, got shape {img.shape}")
    levels = to_uint8(img)
    if protocol == "y":
        values = rgb_to_y(levels)
        if grayscale:
            values = (values - 16.0) * (255.0 / 219.0)
        if Y_ROUNDED:
            values = np.floor(values + 0.5)
        values = values[:, :, None]
    else:
        values = levels.astype(np.float64)
    shave = shave_for(protocol, scale)
    if values.shape[0] <= 2 * shave or values.shape[1] <= 2 * shave:
        raise ImageError(f"metrics: image {img.shape[:2]} too small to shave {shave} px per border")
    return values[shave:-shave, shave:-shave] if shave else values


def _prepare_pair(sr, hr, scale, protocol, grayscale) -> tuple[np.ndarray, np.ndarray]:
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ImageError(f"metrics: SR shape {sr.shape} differs from HR shape {hr.shape}")
    options = {"scale": scale, "protocol": protocol, "grayscale": grayscale}
    return prepare(sr, **options), prepare(hr, **options)


def psnr_from_mse(mse: float, data_range: float = 1.0) -> float:
    """``10 log10(data_range^2 / mse)`` in dB; ``inf`` for a zero MSE."""
    if mse < 0:
        raise ValueError(f"psnr_from_mse: negative MSE {mse}")
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def psnr(
    sr: np.ndarray, hr: np.ndarray, *, scale: int, protocol: str = "y", grayscale: bool = False
) -> float:
    """PSNR in dB of ``sr`` against ``hr`` (float HxWx3 RGB in [0, 1]) under ``protocol``.

    ``grayscale``: the HR file had one channel (see the module docstring; "y" protocol only).
    """
    a, b = _prepare_pair(sr, hr, scale, protocol, grayscale)
    return psnr_from_mse(float(np.mean((a - b) ** 2)), DATA_RANGE)


def _gaussian_filter_valid(img: np.ndarray) -> np.ndarray:
    """2-D Gaussian (11x11, sigma 1.5, sums to 1) filtering of a float64 HxW map, 'valid' part."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)
    full = cv2.sepFilter2D(img, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    pad = SSIM_WINDOW // 2
    return full[pad:-pad, pad:-pad]


def ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM of two float64 HxW maps (Wang et al. ``ssim_index``, 'valid' window)."""
    if min(a.shape) < SSIM_WINDOW:
        raise ImageError(f"metrics: image {a.shape} smaller than the {SSIM_WINDOW}px SSIM window")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_a = _gaussian_filter_valid(a)
    mu_b = _gaussian_filter_valid(b)
    var_a = _gaussian_filter_valid(a * a) - mu_a * mu_a
    var_b = _gaussian_filter_valid(b * b) - mu_b * mu_b
    cov = _gaussian_filter_valid(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(numerator / denominator))


def ssim(
    sr: np.ndarray, hr: np.ndarray, *, scale: int, protocol: str = "y", grayscale: bool = False
) -> float:
    """SSIM of ``sr`` against ``hr`` (float HxWx3 RGB in [0, 1]) under ``protocol``, in [-1, 1].

    For "rgb" the SSIM of each channel is averaged. ``grayscale`` as in ``psnr``.
    """
    a, b = _prepare_pair(sr, hr, scale, protocol, grayscale)
    if np.array_equal(a, b):
        return 1.0
    return float(np.mean([ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


def evaluate_pair(
    sr: np.ndarray, hr: np.ndarray, *, scale: int, protocol: str = "y", grayscale: bool = False
) -> dict[str, float]:
    """``{"psnr": dB, "ssim": value}`` of ``sr`` against ``hr`` under ``protocol``."""
    options = {"scale": scale, "protocol": protocol, "grayscale": grayscale}
    return {"psnr": psnr(sr, hr, **options), "ssim": ssim(sr, hr, **options)}
