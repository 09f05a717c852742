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

Estimating one from pairs is :mod:`amls2.data.operator_fit`; this module holds the operator, its
JSON file and applying it.

Offset convention. MATLAB ``imresize`` centres LR pixel ``i`` at HR coordinate
``(i + 0.5) * s - 0.5`` (0-based pixel centres). :attr:`Operator.offset` is the kernel's centroid
(its first moment divided by its sum) minus that centre, in HR pixels, as ``(dy, dx)`` (down,
right). A bicubic-like operator has offset ``(0, 0)``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
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
        """The kernel as a float64 ``size x size`` array."""
        return np.asarray(self.kernel, dtype=np.float64)

    @property
    def kernel_size(self) -> int:
        """The kernel's side in HR pixels (odd)."""
        return len(self.kernel)

    @property
    def kernel_sum(self) -> float:
        """The sum of the kernel's taps (1 for a blur that keeps the mean level)."""
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
        """The JSON form (``FORMAT`` version ``FORMAT_VERSION``): the fields, the derived
        ``offset``, ``kernel_sum``, ``kernel_width`` and ``kernel_size`` (informative; not read
        back), then the kernel rows."""
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
# Checking an operator by re-degrading HR images


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


def shipped_operator_path(name: str, scale: int) -> Path:
    """The operator shipped in the package for dataset ``name`` (e.g. ``track2sim``) at ``scale``."""
    return SHIPPED_DIR / f"{name.lower()}_x{int(scale)}.json"
