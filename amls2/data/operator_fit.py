"""Estimating a degradation operator (:mod:`amls2.data.operator`) from (HR, LR) pairs.

Ordinary least squares, streamed over images: every LR pixel whose kernel footprint lies inside its
HR image gives one equation per channel, and only the normal equations (``X^T X``, ``X^T y``,
``y^T y``) are accumulated, so memory does not grow with the number of images. They are
accumulated once for the largest candidate kernel; a smaller centred kernel is a sub-block of the
same system, so the kernel size is chosen by the residual on held-out pairs without another pass
over the images. The border rule does not enter the fit (only interior pixels do); it is chosen by
re-making the held-out LR images whole."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from amls2.data.operator import (
    BORDERS,
    Operator,
    apply_operator,
    default_decimation_start,
    default_kernel_size,
    operator_from_kernel,
)
from amls2.errors import ConfigError
from amls2.imaging.images import mod_crop, to_uint8

# The variance of uint8 rounding error, in squared 8-bit levels (uniform on [-0.5, 0.5]).
QUANTISATION_VARIANCE = 1.0 / 12.0


def _interior(n_lr: int, n_hr: int, scale: int, start: int, radius: int) -> slice:
    """The LR indices whose kernel footprint ``[i*s+start-r, i*s+start+r]`` is inside the image."""
    first = max(0, -(-(radius - start) // scale))
    last = (n_hr - 1 - radius - start) // scale  # inclusive
    return slice(first, max(first, min(n_lr - 1, last) + 1))


def design_matrix(
    hr: np.ndarray,
    lr: np.ndarray,
    scale: int,
    size: int,
    start: int,
    *,
    max_pixels: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares rows of one pair: ``X`` (n x size^2, HR taps in kernel order) and ``y``
    (n, LR values), one row per interior LR pixel and channel. ``hr`` is mod-cropped here. With
    ``max_pixels``, a random subset of that many interior LR pixels (drawn from ``rng``) is used:
    a few thousand equations per image already pin a few hundred unknowns down."""
    hr = np.asarray(mod_crop(hr, scale), dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    if hr.ndim == 2:
        hr, lr = hr[..., None], lr[..., None]
    radius = size // 2
    rows = np.arange(lr.shape[0])[_interior(lr.shape[0], hr.shape[0], scale, start, radius)]
    cols = np.arange(lr.shape[1])[_interior(lr.shape[1], hr.shape[1], scale, start, radius)]
    ri, ci = (a.reshape(-1) for a in np.meshgrid(rows, cols, indexing="ij"))
    if max_pixels is not None and ri.size > max_pixels:
        pick = (rng or np.random.default_rng(0)).choice(ri.size, max_pixels, replace=False)
        ri, ci = ri[pick], ci[pick]
    taps = np.arange(size) + start - radius
    hr_rows = (ri * scale)[:, None] + taps  # n x size
    hr_cols = (ci * scale)[:, None] + taps
    X = hr[hr_rows[:, :, None], hr_cols[:, None, :]]  # n x size x size x C
    X = np.moveaxis(X, 3, 1).reshape(-1, size * size)  # rows: pixel-major, then channel
    y = lr[ri, ci].reshape(-1)
    return X, y


@dataclass
class NormalEquations:
    """Streamed least-squares statistics for a ``size x size`` kernel plus a bias column."""

    size: int
    xtx: np.ndarray
    xty: np.ndarray
    yty: float = 0.0
    count: int = 0

    @classmethod
    def empty(cls, size: int) -> NormalEquations:
        """No equations yet for a ``size x size`` kernel and the bias."""
        n = size * size + 1
        return cls(size, np.zeros((n, n)), np.zeros(n))

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add the rows ``X`` (kernel taps; a bias column of ones is appended) with targets ``y``."""
        ones = np.ones((X.shape[0], 1))
        A = np.hstack([X, ones])
        self.xtx += A.T @ A
        self.xty += A.T @ y
        self.yty += float(y @ y)
        self.count += y.size

    def indices(self, size: int) -> np.ndarray:
        """The unknowns of the centred ``size x size`` sub-kernel, then the bias."""
        trim = (self.size - size) // 2
        grid = np.arange(self.size * self.size).reshape(self.size, self.size)
        inner = grid[trim : trim + size, trim : trim + size].reshape(-1)
        return np.append(inner, self.size * self.size)

    def solve(self, size: int, *, bias: bool = True, ridge: float = 1e-9) -> np.ndarray:
        """Least-squares unknowns (kernel taps, then the bias, 0 if ``bias`` is False) of the
        centred ``size x size`` kernel; ``ridge`` (relative to the mean diagonal) only guards
        against a singular system (e.g. flat images)."""
        idx = self.indices(size)
        if not bias:
            idx = idx[:-1]
        a = self.xtx[np.ix_(idx, idx)]
        a = a + ridge * np.trace(a) / len(idx) * np.eye(len(idx))
        w = np.linalg.solve(a, self.xty[idx])
        return w if bias else np.append(w, 0.0)

    def sse(self, size: int, w: np.ndarray) -> float:
        """The sum of squared residuals of unknowns ``w`` (from :meth:`solve`) on these rows."""
        idx = self.indices(size)
        return float(self.yty - 2 * w @ self.xty[idx] + w @ self.xtx[np.ix_(idx, idx)] @ w)


def accumulate(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    scale: int,
    size: int,
    start: int,
    *,
    max_pixels: int | None = None,
    seed: int = 0,
) -> NormalEquations:
    """The normal equations of ``(hr, lr)`` pairs (float arrays in [0, 1]) for one kernel size
    (``max_pixels`` LR pixels per image at most, drawn with ``seed``)."""
    eq = NormalEquations.empty(size)
    rng = np.random.default_rng(seed)
    for hr, lr in pairs:
        eq.add(*design_matrix(hr, lr, scale, size, start, max_pixels=max_pixels, rng=rng))
    if eq.count == 0:
        raise ConfigError(f"no usable pixels to estimate a {size}x{size} x{scale} operator")
    return eq


def rms_levels(sse: float, count: int) -> float:
    """Root-mean-square residual in 8-bit levels."""
    return 255.0 * math.sqrt(max(sse, 0.0) / max(count, 1))


# LR pixels per image that enter the fit (all if an image has fewer).
DEFAULT_MAX_PIXELS = 4000


def estimate_operator(
    fit_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    scale: int,
    *,
    sizes: Sequence[int] | None = None,
    heldout_pairs: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    bias: bool = True,
    borders: Sequence[str] = BORDERS,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    source: str = "",
) -> Operator:
    """Least-squares operator from ``fit_pairs`` (``(hr, lr)`` float arrays in [0, 1]).

    ``sizes``: odd candidate kernel widths (default ``4*s + 3`` only); the one of least interior
    residual on ``heldout_pairs`` wins (on ``fit_pairs`` if none are held out, which favours the
    largest). ``borders``: candidate border rules, the one that re-makes the held-out (else fit)
    LR images best wins. ``check`` of the result records both searches and the
    :func:`remake_report` of the chosen operator on the held-out pairs.
    """
    sizes = sorted(set(sizes or [default_kernel_size(scale)]))
    if any(s < 1 or s % 2 == 0 for s in sizes):
        raise ConfigError(f"kernel sizes {sizes}: must be positive odd integers")
    start = default_decimation_start(scale)
    largest = sizes[-1]
    fit = accumulate(fit_pairs, scale, largest, start, max_pixels=max_pixels)
    judge_pairs = heldout_pairs or fit_pairs
    judge = (
        accumulate(heldout_pairs, scale, largest, start, max_pixels=max_pixels, seed=1)
        if heldout_pairs
        else fit
    )
    solutions = {size: fit.solve(size, bias=bias) for size in sizes}
    residuals = {size: rms_levels(judge.sse(size, w), judge.count) for size, w in solutions.items()}
    best = min(sizes, key=lambda size: residuals[size])
    w = solutions[best]
    candidates = {
        border: operator_from_kernel(
            w[:-1].reshape(best, best), scale, decimation_start=start, bias=w[-1], border=border
        )
        for border in borders
    }
    reports = {border: remake_report(judge_pairs, op) for border, op in candidates.items()}
    border = max(borders, key=lambda b: (reports[b]["exact_fraction"], reports[b]["psnr_db"]))
    on = "heldout" if heldout_pairs else "fit"
    check = {
        "fit_pairs": len(fit_pairs),
        "heldout_pairs": len(heldout_pairs),
        "max_pixels_per_image": max_pixels,
        f"interior_rms_levels_by_kernel_size_{on}": {
            str(size): round(r, 4) for size, r in residuals.items()
        },
        f"remade_psnr_db_by_border_{on}": {b: r["psnr_db"] for b, r in reports.items()},
        f"remade_{on}": reports[border],
    }
    return replace(candidates[border], source=source, check=check)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, data range 255) of two float [0, 1] images compared as uint8 levels, whole
    image, every channel (no border shave). Identical images give ``inf``."""
    diff = to_uint8(a).astype(np.float64) - to_uint8(b).astype(np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def remake_report(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], operator: Operator
) -> dict[str, Any]:
    """How well ``operator`` re-makes the LR of ``(hr, lr)`` pairs, whole images, RGB uint8.

    ``psnr_db``: mean of the per-image PSNR of the re-made (quantised) LR against the given LR;
    ``psnr_min_db``: the worst image. ``residual_rms_levels``: RMS of the given LR minus the
    unquantised re-made LR, in 8-bit levels; ``noise_sigma_levels``: what is left of it after
    taking away uint8 rounding (``sqrt(max(rms^2 - 1/12, 0))``), an estimate of additive noise
    (or of any other misfit such as JPEG). ``exact_fraction``: share of re-made LR values equal
    to the given ones.
    """
    psnrs, sq, exact, count = [], 0.0, 0, 0
    for hr, lr in pairs:
        remade = apply_operator(hr, operator, quantise=False).astype(np.float64)
        lr = np.asarray(lr, dtype=np.float64).reshape(remade.shape)
        psnrs.append(psnr_uint8(remade, lr))
        sq += float(np.sum((255.0 * (lr - remade)) ** 2))
        exact += int(np.sum(to_uint8(remade) == to_uint8(lr)))
        count += lr.size
    if not psnrs:
        raise ConfigError("no pairs to check the operator on")
    finite = [p for p in psnrs if math.isfinite(p)]
    rms = math.sqrt(sq / count)
    return {
        "images": len(psnrs),
        "psnr_db": round(float(np.mean(finite)), 3) if finite else math.inf,
        "psnr_min_db": round(min(psnrs), 3),
        "identical_images": len(psnrs) - len(finite),
        "residual_rms_levels": round(rms, 4),
        "noise_sigma_levels": round(math.sqrt(max(rms**2 - QUANTISATION_VARIANCE, 0.0)), 4),
        "exact_fraction": round(exact / count, 5),
    }


def split_heldout(items: Sequence, every: int) -> tuple[list, list]:
    """``(fit, heldout)``: every ``every``-th item (the 10th, 20th, ... for 10) is held out."""
    if every < 2:
        raise ConfigError(f"--holdout-every {every}: must be at least 2")
    fit = [x for i, x in enumerate(items) if (i + 1) % every]
    heldout = [x for i, x in enumerate(items) if (i + 1) % every == 0]
    return fit, heldout


def estimate_from_dataset(
    dataset: str | os.PathLike,
    scale: int,
    *,
    track: str = "unknown",
    data_dir: str | os.PathLike | None = None,
    holdout_every: int = 10,
    sizes: Sequence[int] | None = None,
) -> Operator:
    """Estimate the ``track`` operator at ``scale`` from the *train* split of a paired dataset
    (its valid split is never read), holding out every ``holdout_every``-th pair to choose the
    kernel size and border rule and to measure the re-made LR (recorded in ``check``)."""
    from amls2.data.pairing import load_pair, resolve_pairs

    sources = resolve_pairs(dataset, scale=scale, track=track, data_dir=data_dir, split="train")
    if any(s.lr_path is None for s in sources):
        raise ConfigError(f"{dataset}: no {track} x{scale} LR images on disk to estimate from")
    fit_src, heldout_src = split_heldout(sources, holdout_every)

    def pairs(srcs):
        return [(p.hr, p.lr) for p in (load_pair(s, scale=scale, track=track) for s in srcs)]

    heldout = pairs(heldout_src)
    op = estimate_operator(pairs(fit_src), scale, sizes=sizes, heldout_pairs=heldout)
    source = (
        f"least squares on the {track} x{scale} train pairs of {Path(str(dataset)).name}, "
        f"every {holdout_every}th pair held out: {[s.name for s in heldout_src]}"
    )
    return replace(op, source=source)
