"""Degradations that turn an HR image into its LR partner, for the two NTIRE 2017 tracks.

``bicubic`` (Track 1) is the MATLAB-exact bicubic downscale of :func:`amls2.imaging.images.bicubic_downscale`.

``unknown`` (Track 2): the real NTIRE 2017 Track-2 LR images are used when they are on disk (that is
:mod:`amls2.data.datasets`' job, via the ``LR_unknown`` folders). Without them this module synthesises a
documented *stand-in* family, after the blind-SR literature (e.g. IKC, Gu et al. CVPR 2019):

1. blur with a random Gaussian kernel, isotropic or anisotropic with a random angle; the sigma range
   depends on the scale (``DegradationSpec.sigma_ranges``);
2. decimate by the scale;
3. optionally add white Gaussian noise (sigma in 8-bit grey levels, i.e. out of 255);
4. quantise to uint8 (as a PNG on disk would be) and optionally re-compress as JPEG (OpenCV).

Alignment convention (same as MATLAB ``imresize`` and so as the bicubic track): LR pixel ``i`` covers
HR pixels ``[i*s, (i+1)*s)``, i.e. its centre sits at HR coordinate ``i*s + (s-1)/2``. For an even
scale that centre falls between two HR pixels, so the kernel is sampled shifted by half a pixel
(``kernel_shift``) and the blurred image is decimated starting at pixel ``(s-1)//2``.

Every synthesised LR image is reproducible from ``(seed, image name)``: the random generator is
seeded with ``numpy.random.SeedSequence([seed, crc32(name)])`` (stable across processes and
platforms, unlike Python's ``hash()``), and the parameters drawn are returned as a JSON-ready dict.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from amls2.config import check_scale, check_track
from amls2.errors import ConfigError, ImageError
from amls2.imaging.images import mod_crop, to_float, to_uint8
from amls2.imaging.resize import bicubic_downscale

# The seed of every synthesised validation/test LR image, so that all runs evaluate on the same data.
VALIDATION_SEED = 2017


@dataclass(frozen=True)
class DegradationSpec:
    """Parameter ranges of the ``unknown``-track stand-in degradation.

    ``sigma_ranges`` holds ``(scale, min, max)`` Gaussian blur sigmas in HR pixels (IKC's ranges);
    each anisotropic kernel draws its two sigmas independently from that range and an angle uniformly
    in [0, 180) degrees. ``noise_sigma_range`` is in 8-bit grey levels (out of 255), applied with
    probability ``noise_prob``; ``jpeg_quality_range`` is OpenCV's JPEG quality (1-100), applied with
    probability ``jpeg_prob``. The kernel is ``2*ceil(3*max_sigma)+1`` pixels wide for each scale.
    """

    sigma_ranges: tuple[tuple[int, float, float], ...] = (
        (2, 0.2, 2.0),
        (3, 0.2, 3.0),
        (4, 0.2, 4.0),
    )
    anisotropic_prob: float = 0.5
    noise_prob: float = 0.5
    noise_sigma_range: tuple[float, float] = (1.0, 8.0)
    jpeg_prob: float = 0.3
    jpeg_quality_range: tuple[int, int] = (70, 95)

    def __post_init__(self) -> None:
        for scale, lo, hi in self.sigma_ranges:
            if not 0 < lo <= hi:
                raise ConfigError(f"DegradationSpec.sigma_ranges x{scale}: need 0 < min <= max")
        for field in ("anisotropic_prob", "noise_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ConfigError(f"DegradationSpec.{field}: must be in [0, 1]")
        lo, hi = self.noise_sigma_range
        if not 0 <= lo <= hi:
            raise ConfigError("DegradationSpec.noise_sigma_range: need 0 <= min <= max")
        lo, hi = self.jpeg_quality_range
        if not 1 <= lo <= hi <= 100:
            raise ConfigError("DegradationSpec.jpeg_quality_range: need 1 <= min <= max <= 100")

    def sigma_range(self, scale: int) -> tuple[float, float]:
        """The ``(min, max)`` blur sigma in HR pixels for ``scale``."""
        for s, lo, hi in self.sigma_ranges:
            if s == scale:
                return float(lo), float(hi)
        known = [s for s, _, _ in self.sigma_ranges]
        raise ConfigError(
            f"--scale {scale}: no blur sigma range in the DegradationSpec (has {known})"
        )

    def kernel_size(self, scale: int) -> int:
        """The odd kernel width for ``scale``: wide enough for +-3 sigma of the largest sigma."""
        return 2 * math.ceil(3 * self.sigma_range(scale)[1]) + 1


DEFAULT_SPEC = DegradationSpec()


def decimation_start(scale: int) -> int:
    """The first HR pixel kept when decimating: LR pixel 0 is centred at HR ``(scale-1)/2``."""
    return (scale - 1) // 2


def kernel_shift(scale: int) -> float:
    """Sub-pixel offset (0 or 0.5 HR px) of the kernel centre so that it sits at ``i*s + (s-1)/2``."""
    return (scale - 1) / 2 - decimation_start(scale)


def make_kernel(
    sigma_x: float,
    sigma_y: float | None = None,
    angle_deg: float = 0.0,
    *,
    size: int | None = None,
    shift: float = 0.0,
) -> np.ndarray:
    """A normalised 2-D Gaussian blur kernel (float64, ``size x size``, sums to 1).

    ``sigma_x`` / ``sigma_y`` are the standard deviations in pixels along the kernel's own axes,
    rotated anticlockwise by ``angle_deg`` degrees (``sigma_y=None`` -> isotropic). ``shift`` moves the
    centre by that many pixels right and down (0.5 for even scales, see module doc). ``size`` is odd,
    by default ``2*ceil(3*max_sigma)+1``. Row index is y (down), column index is x (right).
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sigma_y <= 0:
        raise ConfigError(f"kernel sigma must be > 0, got ({sigma_x}, {sigma_y})")
    if size is None:
        size = 2 * math.ceil(3 * max(sigma_x, sigma_y)) + 1
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"kernel size must be a positive odd integer, got {size}")
    radius = size // 2
    offsets = np.arange(-radius, radius + 1, dtype=np.float64) - shift
    dx, dy = np.meshgrid(offsets, offsets)  # dx varies along columns, dy along rows
    theta = math.radians(angle_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    inv = np.linalg.inv(covariance)
    quad = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
    kernel = np.exp(-0.5 * quad)
    return kernel / kernel.sum()


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``name`` (crc32 of the UTF-8 name)."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"--seed {seed!r}: must be a non-negative integer")
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


def sample_params(spec: DegradationSpec, scale: int, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one stand-in degradation for ``scale``: a JSON-ready dict that fully determines it.

    Keys: ``kernel_type`` ("isotropic"|"anisotropic"), ``sigma_x``, ``sigma_y`` (HR px),
    ``angle_deg``, ``kernel_size``, ``kernel_shift`` (HR px), ``noise_sigma`` (8-bit levels, 0 = no
    noise), ``noise_seed``, ``jpeg_quality`` (None = no JPEG).
    """
    lo, hi = spec.sigma_range(scale)
    if rng.random() < spec.anisotropic_prob:
        kernel_type = "anisotropic"
        sigma_x, sigma_y = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
        angle = float(rng.uniform(0.0, 180.0))
    else:
        kernel_type = "isotropic"
        sigma_x = sigma_y = float(rng.uniform(lo, hi))
        angle = 0.0
    # Always draw every value so that changing one probability does not reshuffle the others.
    add_noise = rng.random() < spec.noise_prob
    noise_sigma = float(rng.uniform(*spec.noise_sigma_range))
    noise_seed = int(rng.integers(0, 2**31 - 1))
    add_jpeg = rng.random() < spec.jpeg_prob
    quality = int(rng.integers(spec.jpeg_quality_range[0], spec.jpeg_quality_range[1] + 1))
    return {
        "kernel_type": kernel_type,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "angle_deg": angle,
        "kernel_size": spec.kernel_size(scale),
        "kernel_shift": kernel_shift(scale),
        "noise_sigma": noise_sigma if add_noise else 0.0,
        "noise_seed": noise_seed,
        "jpeg_quality": quality if add_jpeg else None,
    }


def blur_and_decimate(hr: np.ndarray, scale: int, kernel: np.ndarray) -> np.ndarray:
    """Correlate ``hr`` (float HxWxC, H and W multiples of ``scale``) with ``kernel`` (mirror
    borders) and keep every ``scale``-th pixel from ``decimation_start(scale)``: (H/s)x(W/s)xC."""
    blurred = cv2.filter2D(
        np.ascontiguousarray(hr, dtype=np.float32),
        -1,
        kernel.astype(np.float32),
        borderType=cv2.BORDER_REFLECT_101,
    )
    if blurred.ndim == 2:  # OpenCV drops a singleton channel axis
        blurred = blurred[..., None]
    start = decimation_start(scale)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return blurred[start::scale, start::scale][:h, :w]


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB float [0,1] image as JPEG at ``quality`` with OpenCV and decode it again."""
    bgr = np.ascontiguousarray(to_uint8(img)[..., ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError(f"JPEG encoding failed at quality {quality}")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return to_float(np.ascontiguousarray(decoded[..., ::-1]))


def apply_params(hr: np.ndarray, scale: int, params: dict[str, Any]) -> np.ndarray:
    """Apply the stand-in degradation described by ``params`` (from :func:`sample_params`).

    ``hr``: float [0,1] HxWx3 RGB with H, W multiples of ``scale``. Returns float32 (H/s)x(W/s)x3 in
    [0,1], quantised to 8-bit levels (what a PNG of it holds).
    """
    kernel = make_kernel(
        params["sigma_x"],
        params["sigma_y"],
        params["angle_deg"],
        size=params["kernel_size"],
        shift=params["kernel_shift"],
    )
    lr = blur_and_decimate(hr, scale, kernel)
    if params["noise_sigma"] > 0:
        noise_rng = np.random.default_rng(params["noise_seed"])
        lr = lr + noise_rng.normal(0.0, params["noise_sigma"] / 255.0, lr.shape)
    lr = to_float(to_uint8(np.clip(lr, 0.0, 1.0)))
    if params["jpeg_quality"] is not None:
        lr = jpeg_roundtrip(lr, params["jpeg_quality"])
    return lr.astype(np.float32)


def degrade(
    hr: np.ndarray,
    scale: int,
    track: str,
    *,
    seed: int = VALIDATION_SEED,
    name: str = "",
    spec: DegradationSpec | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Make the LR partner of ``hr`` for ``track`` at ``scale``.

    ``hr``: float [0,1] HxWx3 RGB; it is mod-cropped to a multiple of ``scale`` first, so the LR is
    exactly (H//s)x(W//s)x3 float32 in [0,1]. ``bicubic``: MATLAB-exact bicubic through uint8
    (``seed``/``name``/``spec`` unused). ``unknown``: the stand-in family drawn from ``spec`` with a
    generator seeded by ``(seed, name)``. Returns ``(lr, params)``; ``params`` is JSON-ready and
    records the track, scale and, for ``unknown``, the seed, name and every value drawn.
    """
    scale = check_scale(scale)
    track = check_track(track)
    label = name or "image"
    if hr.ndim != 3 or hr.shape[0] < scale or hr.shape[1] < scale:
        raise ImageError(f"{label}: image of shape {hr.shape} is too small for x{scale}")
    hr = mod_crop(hr, scale)
    if track == "bicubic":
        lr = bicubic_downscale(hr, scale)
        return lr.astype(np.float32), {"track": track, "scale": scale, "method": "matlab_bicubic"}
    spec = spec or DEFAULT_SPEC
    params = sample_params(spec, scale, rng_for(seed, name))
    lr = apply_params(hr, scale, params)
    return lr, {"track": track, "scale": scale, "seed": int(seed), "name": name, **params}
