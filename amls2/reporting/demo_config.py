"""The demo's job config and result (``DemoConfig``, ``DemoResult``): what ``main.py`` and the
notebooks ask of :mod:`amls2.reporting.demo`, checked where it enters."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.errors import ConfigError
from amls2.inference import weights

# The project's core models (SRCNN family, the seed's IUD/FD-SRCNN, one light model).
DEFAULT_MODELS: tuple[str, ...] = ("srcnn", "post_srcnn", "iud_srcnn", "fd_srcnn", "edsr")
MODES: tuple[str, ...] = ("shipped", "train", "render")
DEFAULT_OUT_DIR = Path("outputs/demo")
DEMO_DIR = amls2_config.PROJECT_ROOT / "demo"
CONFIG_FILE = "demo_config.json"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """One demo job.

    ``mode``: "shipped", "train" or "render" (see the module doc). ``models``: registry names
    (None: ``DEFAULT_MODELS`` plus any other model found in ``weights_dir``); ``train_model`` is
    the one trained by the "train" mode. ``datasets``: validation sets (names or folders).
    ``crop``: HR centre-crop side in pixels (None: whole images); ``limit``: first images only.
    ``weights_dir``: the shipped weights (None: the repository's ``Selected_models``).
    ``quick``: the "train" mode uses the tiny variant, small patches and ``steps`` (default 20)
    steps. ``tile``: LR tile size for inference (None: whole image).
    """

    mode: str = "shipped"
    out_dir: Path = DEFAULT_OUT_DIR
    tracks: tuple[str, ...] = amls2_config.TRACKS
    scales: tuple[int, ...] = amls2_config.SCALES
    models: tuple[str, ...] | None = None
    datasets: tuple[str, ...] = ("samples",)
    data_dir: Path | None = None
    weights_dir: Path | None = None
    crop: int | None = 256
    limit: int | None = None
    tile: int | None = None
    quick: bool = False
    train_model: str = "fd_srcnn"
    steps: int | None = None
    seed: int = 0
    dpi: int = 100

    def __post_init__(self) -> None:
        # None: the repository's Selected_models; strings (notebook parameters) become Paths.
        weights = amls2_config.SELECTED_MODELS_DIR if self.weights_dir is None else self.weights_dir
        object.__setattr__(self, "weights_dir", Path(weights))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r}: unknown; valid: {list(MODES)}")
        if not self.tracks:
            raise ConfigError("--track: give at least one track")
        for track in self.tracks:
            amls2_config.check_track(track)
        if not self.scales:
            raise ConfigError("--scale: give at least one scale")
        for scale in self.scales:
            amls2_config.check_scale(scale)
        if not self.datasets:
            raise ConfigError("--dataset: give at least one dataset")
        for option, value in (("--crop", self.crop), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{option} {value}: must be at least 1")
        if self.crop is not None and self.crop < 12:
            raise ConfigError(f"--crop {self.crop}: too small (at least 12 px)")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps {self.steps}: must be at least 1")
        from amls2 import models  # the registry imports TensorFlow

        for name in (*(self.models or ()), self.train_model):
            models.get_spec(name)  # ModelError listing the valid names


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What a demo flow produced: the result records, every file written, what it skipped."""

    out_dir: Path
    records: tuple[dict[str, Any], ...]
    written: tuple[Path, ...]
    missing: tuple[weights.Missing, ...] = ()
    notes: tuple[str, ...] = ()
