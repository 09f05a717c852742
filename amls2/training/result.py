"""What a training run gives back: ``TrainResult`` (the kept model, its scores, the history) and
``DivergedError`` (the loss became NaN or infinite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from amls2.errors import Amls2Error


class DivergedError(Amls2Error):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced. PSNR/SSIM: mean over the validation images (``y``
    protocol, whole images, ``scale`` px shaved); None without validation sets."""

    out_dir: Path
    model_path: Path | None
    best_epoch: int | None
    best_psnr: float | None
    best_ssim: float | None
    epochs_run: int
    steps: int
    stopped_early: bool
    resumed_from_step: int
    wall_time_s: float
    history: tuple[dict[str, Any], ...]
    model: Any = dataclasses.field(default=None, repr=False, compare=False)
    closed_form: bool = False  # solved by least squares (no steps)
