"""How the blind (``unknown`` weight set) models hold up across fixed degradations.

The blind models were trained on random draws of the stand-in degradation
(:class:`amls2.data.degradations.DegradationSpec`: Gaussian blur with sigma from 0.2 up to the scale
in HR pixels, noise of 1-8 grey levels, JPEG quality 70-95, no sub-pixel shift). This
sweep degrades the test images with ONE fixed degradation per case (blur sigma grid, anisotropic
kernels, noise levels, JPEG qualities, sub-pixel shifts), runs every model and bicubic on the
same LR images, and reports the mean gain over bicubic (``y`` protocol) with a flag saying
whether the case lies inside the range the models were trained for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from amls2.data.degradations import DEFAULT_SPEC, DegradationSpec, apply_params, kernel_shift
from amls2.evaluation.scoring import evaluate_upscalers

# Blur sigmas of the sweep, as fractions of the largest training sigma at the scale.
SIGMA_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
NOISE_LEVELS: tuple[float, ...] = (2.0, 5.0, 8.0, 15.0, 25.0)
JPEG_QUALITIES: tuple[int, ...] = (95, 80, 70, 50, 30)
SHIFTS_HR_PX: tuple[float, ...] = (0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class SweepCase:
    """One fixed degradation: ``family`` (blur, anisotropic, noise, jpeg, shift), the swept
    ``value``, the full ``params`` for :func:`degradations.apply_params`, and whether it lies
    inside the range the blind models were trained on."""

    family: str
    value: float
    params: dict[str, Any]
    in_training_range: bool

    @property
    def label(self) -> str:
        """The case as tables show it: degradation family and value."""
        return f"{self.family} {self.value:g}"


def _params(scale: int, spec: DegradationSpec, sigma: float, **changes: Any) -> dict[str, Any]:
    """A fixed isotropic-blur degradation with ``changes`` applied (no noise, no JPEG)."""
    params = {
        "kernel_type": "isotropic",
        "sigma_x": sigma,
        "sigma_y": sigma,
        "angle_deg": 0.0,
        "kernel_size": spec.kernel_size(scale),
        "kernel_shift": kernel_shift(scale),
        "noise_sigma": 0.0,
        "noise_seed": 0,
        "jpeg_quality": None,
    }
    return {**params, **changes}


def sweep_cases(scale: int, spec: DegradationSpec = DEFAULT_SPEC) -> list[SweepCase]:
    """The cases at ``scale``: the blur grid, then at a mid-range blur (half the largest training
    sigma) two anisotropic kernels, the noise levels, the JPEG qualities and sub-pixel shifts."""
    lo, hi = spec.sigma_range(scale)
    mid = hi / 2
    cases = []
    for fraction in SIGMA_FRACTIONS:
        sigma = round(hi * fraction, 3)
        inside = lo <= sigma <= hi
        cases.append(SweepCase("blur", sigma, _params(scale, spec, sigma), inside))
    for angle in (0.0, 45.0):
        params = _params(scale, spec, hi, sigma_y=hi / 4, angle_deg=angle)
        params["kernel_type"] = "anisotropic"
        cases.append(SweepCase("anisotropic", angle, params, True))
    noise_lo, noise_hi = spec.noise_sigma_range
    for level in NOISE_LEVELS:
        params = _params(scale, spec, mid, noise_sigma=level, noise_seed=int(level))
        cases.append(SweepCase("noise", level, params, noise_lo <= level <= noise_hi))
    q_lo, q_hi = spec.jpeg_quality_range
    for quality in JPEG_QUALITIES:
        params = _params(scale, spec, mid, jpeg_quality=quality)
        cases.append(SweepCase("jpeg", quality, params, q_lo <= quality <= q_hi))
    for shift in SHIFTS_HR_PX:
        params = _params(scale, spec, mid, kernel_shift=kernel_shift(scale) + shift)
        # The kernel must hold the shifted Gaussian: widen it by the shift on each side.
        params["kernel_size"] = spec.kernel_size(scale) + 2 * int(np.ceil(shift))
        cases.append(SweepCase("shift", shift, params, False))
    return cases


def degraded_pairs(pairs: Sequence[Any], scale: int, case: SweepCase) -> list[Any]:
    """``pairs`` with their LR replaced by ``case``'s degradation of the HR image."""
    return [
        dataclasses.replace(pair, lr=apply_params(pair.hr, scale, case.params), params=case.params)
        for pair in pairs
    ]


def run_sweep(
    upscalers: Sequence[Any], pairs: Sequence[Any], *, scale: int, cases: Sequence[SweepCase]
) -> list[dict[str, Any]]:
    """One row per case: ``family``, ``value``, ``in_training_range``, ``bicubic_psnr`` and per
    upscaler name its mean PSNR gain over bicubic (dB) on ``pairs`` degraded by the case."""
    rows = []
    for case in cases:
        records, _ = evaluate_upscalers(
            upscalers,
            degraded_pairs(pairs, scale, case),
            dataset=case.label,
            scale=scale,
            track="unknown",
        )
        row: dict[str, Any] = {
            "family": case.family,
            "value": case.value,
            "in_training_range": case.in_training_range,
        }
        for record in records:
            if record["model"] == "bicubic":
                row["bicubic_psnr"] = record["psnr"]
            else:
                row[record["model"]] = record["psnr"] - record["bicubic_psnr"]
        rows.append(row)
    return rows


def below_bicubic_in_range(rows: Sequence[dict[str, Any]], models: Sequence[str]) -> list[str]:
    """``"<model> at <case>"`` for every in-range case where a model loses to bicubic."""
    return [
        f"{model} at {row['family']} {row['value']:g}"
        for row in rows
        if row["in_training_range"]
        for model in models
        if row[model] <= 0
    ]


def sweep_markdown(rows: Sequence[dict[str, Any]], models: Sequence[str]) -> str:
    """The sweep as a Markdown table (gain over bicubic, dB; ``*`` marks trained-range cases)."""
    lines = [
        "| degradation | value | trained range | bicubic PSNR | " + " | ".join(models) + " |",
        "|---|---|---|---|" + "---|" * len(models),
    ]
    for row in rows:
        gains = " | ".join(f"{row[m]:+.2f}" for m in models)
        inside = "yes" if row["in_training_range"] else "no"
        lines.append(
            f"| {row['family']} | {row['value']:g} | {inside} | {row['bicubic_psnr']:.2f} | {gains} |"
        )
    return "\n".join(lines)
