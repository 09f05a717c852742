"""A fixed degradation operator estimated from (HR, LR) pairs: ``LR ~ (HR (x) k)|s + b``.

The model is the one of :func:`amls2.data.degradations.blur_and_decimate`: the HR image (float RGB in
[0, 1], mod-cropped to the scale) is correlated with one odd ``size x size`` kernel ``k`` (the
same for every colour channel), sampled every ``s`` HR pixels from ``decimation_start`` (LR pixel
``i`` reads the kernel centred on HR pixel ``i*s + start``), a constant ``bias`` is added, and the
result is quantised to uint8. Outside the image the HR is extended by ``border`` (a NumPy
``np.pad`` mode): ``"symmetric"`` mirrors about the edge and repeats the edge pixel (MATLAB
``imfilter(..., 'symmetric')``, OpenCV ``BORDER_REFLECT``), ``"reflect"`` mirrors about the edge
pixel (OpenCV ``BORDER_REFLECT_101``, as :func:`amls2.data.degradations.blur_and_decimate`),
``"edge"`` repeats it.

Estimation is ordinary least squares, streamed over images: every LR pixel whose kernel footprint
lies inside its HR image gives one equation per channel, and only the normal equations
(``X^T X``, ``X^T y``, ``y^T y``) are accumulated, so memory does not grow with the number of
images. They are accumulated once for the largest candidate kernel; a smaller centred kernel is a
sub-block of the same system, so the kernel size is chosen by the residual on held-out pairs
without another pass over the images. The border rule does not enter the fit (only interior
pixels do); it is chosen by re-making the held-out LR images whole.

Offset convention. MATLAB ``imresize`` centres LR pixel ``i`` at HR coordinate
``(i + 0.5) * s - 0.5`` (0-based pixel centres). :attr:`Operator.offset` is the kernel's centroid
(its first moment divided by its sum) minus that centre, in HR pixels, as ``(dy, dx)`` (down,
right). A bicubic-like operator has offset ``(0, 0)``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from amls2.errors import ConfigError
from amls2.fileio import atomic_write_text, json_safe
from amls2.imaging.images import mod_crop, to_float, to_uint8

FORMAT = "amls2-operator"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "operators"  # amls2/operators
# Keys written for the reader's benefit only: recomputed from the kernel, ignored when loading.
_DERIVED_KEYS = ("offset", "kernel_sum", "kernel_width", "kernel_size")
BORDERS = ("symmetric", "reflect", "edge")
# The variance of uint8 rounding error, in squared 8-bit levels (uniform on [-0.5, 0.5]).
QUANTISATION_VARIANCE = 1.0 / 12.0


def default_kernel_size(scale: int) -> int:
    """The default odd kernel width, ``4*s + 3``: a bicubic kernel spans ``4*s`` HR pixels."""
    return 4 * int(scale) + 3


def default_decimation_start(scale: int) -> int:
    """The HR pixel nearest MATLAB's first LR centre ``(s - 1) / 2`` (rounded down)."""
    return (int(scale) - 1) // 2


@dataclass(frozen=True)
class Operator:
    """A blur-decimate-bias degradation (see the module doc).

    ``kernel``: rows (y, down) of columns (x, right), odd square, applied by correlation.
    ``decimation_start``: HR pixel of LR pixel 0's kernel centre. ``bias``: added after the blur,
    in [0, 1] units. ``border``: how the HR is extended past its edges (see the module doc).
    ``source``: where the operator comes from. ``check``: measurements of how
    well it re-makes held-out pairs (JSON-ready; informative, not used to apply it).
    """

    scale: int
    kernel: tuple[tuple[float, ...], ...]
    decimation_start: int
    bias: float = 0.0
    border: str = "symmetric"
    source: str = ""
    check: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or self.scale < 1:
            raise ConfigError(f"operator scale {self.scale!r}: must be a positive integer")
        k = self.kernel_array
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
            raise ConfigError(f"operator kernel of shape {k.shape}: must be square with odd size")
        if not np.all(np.isfinite(k)) or not math.isfinite(self.bias):
            raise ConfigError("operator kernel and bias must be finite numbers")
        if not math.isclose(float(k.sum()), 1.0, abs_tol=0.5):
            raise ConfigError(f"operator kernel sums to {k.sum():.4g}: expected about 1")
        if self.border not in BORDERS:
            raise ConfigError(f"operator border {self.border!r}: must be one of {list(BORDERS)}")
        if not 0 <= self.decimation_start < self.scale:
            raise ConfigError(
                f"operator decimation_start {self.decimation_start}: must be in [0, {self.scale})"
            )

    @property
    def kernel_array(self) -> np.ndarray:
        return np.asarray(self.kernel, dtype=np.float64)

    @property
    def kernel_size(self) -> int:
        return len(self.kernel)

    @property
    def kernel_sum(self) -> float:
        return float(self.kernel_array.sum())

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        k = self.kernel_array
        taps = np.arange(k.shape[0], dtype=np.float64) - k.shape[0] // 2
        weights = (k.sum(axis=1), k.sum(axis=0))  # marginals along y and along x
        mean = np.array([w @ taps / w.sum() for w in weights])
        var = np.array([w @ (taps - m) ** 2 / w.sum() for w, m in zip(weights, mean, strict=True)])
        return mean, var

    @property
    def offset(self) -> tuple[float, float]:
        """Kernel centroid minus MATLAB's LR pixel centre, ``(dy, dx)`` in HR pixels."""
        mean, _ = self._moments()
        matlab_centre = (self.scale - 1) / 2
        return tuple(float(self.decimation_start + m - matlab_centre) for m in mean)

    @property
    def kernel_width(self) -> tuple[float, float]:
        """The kernel's standard deviation ``(sigma_y, sigma_x)`` in HR pixels (second moment of
        its marginals about the centroid)."""
        _, var = self._moments()
        return tuple(float(math.sqrt(max(v, 0.0))) for v in var)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "scale": self.scale,
            "decimation_start": self.decimation_start,
            "bias": self.bias,
            "border": self.border,
            "source": self.source,
            "offset": list(self.offset),
            "kernel_sum": self.kernel_sum,
            "kernel_width": list(self.kernel_width),
            "kernel_size": self.kernel_size,
            "check": self.check,
            "kernel": [list(row) for row in self.kernel],
        }


def operator_from_kernel(
    kernel: np.ndarray,
    scale: int,
    *,
    decimation_start: int | None = None,
    bias: float = 0.0,
    border: str = "symmetric",
    source: str = "",
    check: dict[str, Any] | None = None,
) -> Operator:
    """An :class:`Operator` from a NumPy kernel (rounded to 10 significant digits for the file)."""
    start = default_decimation_start(scale) if decimation_start is None else decimation_start
    rows = tuple(tuple(float(f"{v:.10g}") for v in row) for row in np.asarray(kernel))
    return Operator(int(scale), rows, int(start), float(bias), border, source, dict(check or {}))


# --------------------------------------------------------------------------------------------
# Applying an operator
# --------------------------------------------------------------------------------------------


def _padded(hr: np.ndarray, radius: int, scale: int, border: str) -> np.ndarray:
    """``hr`` (HxWxC) extended by ``radius + scale`` pixels on every side (NumPy repeats the
    mirroring for images smaller than that)."""
    pad = radius + scale
    return np.pad(hr, ((pad, pad), (pad, pad), (0, 0)), mode=border)


def blur_decimate(
    hr: np.ndarray, kernel: np.ndarray, scale: int, start: int, border: str = "symmetric"
) -> np.ndarray:
    """Correlate ``hr`` (HxWxC, H and W multiples of ``scale``) with ``kernel`` at the decimated
    positions only: LR pixel ``(i, j)`` = sum over taps of ``k[u, v] * hr[i*s+start+u-r,
    j*s+start+v-r]``, the HR extended past its edges by ``border``. Float64 (H/s)x(W/s)xC."""
    hr = np.asarray(hr, dtype=np.float64)
    size = kernel.shape[0]
    radius = size // 2
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    padded = _padded(hr, radius, scale, border)
    base = radius + scale + start - radius  # padded index of the first tap of LR pixel 0
    out = np.zeros((h, w, hr.shape[2]))
    for u in range(size):
        rows = padded[base + u : base + u + h * scale : scale]
        for v in range(size):
            out += kernel[u, v] * rows[:, base + v : base + v + w * scale : scale]
    return out


def apply_operator(hr: np.ndarray, operator: Operator, *, quantise: bool = True) -> np.ndarray:
    """The LR image ``operator`` makes from ``hr`` (float HxWxC in [0, 1], mod-cropped to the
    scale first): float32 (H/s)x(W/s)xC, clipped to [0, 1] and, with ``quantise``, rounded to
    uint8 levels (what a PNG of it holds)."""
    hr = mod_crop(np.asarray(hr), operator.scale)
    if hr.ndim == 2:
        hr = hr[..., None]
    lr = blur_decimate(
        hr, operator.kernel_array, operator.scale, operator.decimation_start, operator.border
    )
    lr = np.clip(lr + operator.bias, 0.0, 1.0)
    return to_float(to_uint8(lr)) if quantise else lr.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Estimating an operator
# --------------------------------------------------------------------------------------------


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
        n = size * size + 1
        return cls(size, np.zeros((n, n)), np.zeros(n))

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
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


# --------------------------------------------------------------------------------------------
# Checking an operator by re-degrading HR images
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def operator_text(operator: Operator) -> str:
    """The JSON text of ``operator``: indented, with one kernel row per line for review."""
    data = json_safe(operator.to_dict())
    kernel = data.pop("kernel")
    head = json.dumps(data, indent=2, allow_nan=False)[:-2]
    rows = ",\n    ".join(json.dumps(row) for row in kernel)
    return f'{head},\n  "kernel": [\n    {rows}\n  ]\n}}\n'


def save_operator(operator: Operator, path: str | os.PathLike) -> Path:
    """Write ``operator`` as reviewable JSON (kernel as nested lists), atomically."""
    return atomic_write_text(path, operator_text(operator))


def operator_from_dict(data: Any, label: str = "operator") -> Operator:
    """An :class:`Operator` from :meth:`Operator.to_dict` output; ConfigError naming ``label``."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f'{label}: not an amls2 operator file (no "format": "{FORMAT}")')
    if data.get("version") != FORMAT_VERSION:
        raise ConfigError(f"{label}: operator file version {data.get('version')!r} not supported")
    missing = [k for k in ("scale", "kernel", "decimation_start") if k not in data]
    if missing:
        raise ConfigError(f"{label}: operator file lacks {missing}")
    kernel = data["kernel"]
    if not isinstance(kernel, list) or not all(isinstance(r, list) for r in kernel):
        raise ConfigError(f'{label}: "kernel" must be a list of rows (lists of numbers)')
    if len({len(r) for r in kernel}) != 1 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for r in kernel for v in r
    ):
        raise ConfigError(f'{label}: "kernel" rows must be equally long lists of numbers')
    scale, start, bias = data["scale"], data["decimation_start"], data.get("bias", 0.0)
    if not isinstance(scale, int) or not isinstance(start, int):
        raise ConfigError(f'{label}: "scale" and "decimation_start" must be integers')
    if not isinstance(bias, int | float) or isinstance(bias, bool):
        raise ConfigError(f'{label}: "bias" must be a number')
    try:
        return Operator(
            scale,
            tuple(tuple(float(v) for v in row) for row in kernel),
            start,
            float(bias),
            str(data.get("border", "symmetric")),
            str(data.get("source", "")),
            dict(data.get("check") or {}),
        )
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def load_operator(path: str | os.PathLike) -> Operator:
    """Read an operator file; a missing, unreadable or malformed file is one ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--operator {path}: cannot read ({reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--operator {path}: not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    return operator_from_dict(data, f"--operator {path}")


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
    from amls2.data.datasets import load_pair, resolve_pairs

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


def shipped_operator_path(name: str, scale: int) -> Path:
    """The operator shipped in the package for dataset ``name`` (e.g. ``track2sim``) at ``scale``."""
    return SHIPPED_DIR / f"{name.lower()}_x{int(scale)}.json"
