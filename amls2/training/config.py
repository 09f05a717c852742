"""The training job config: one frozen dataclass (with nested data/optimiser/distillation parts),
saved as ``config.json`` in the run folder, and the shipped recipes (``amls2/recipes/*.json``).

Learning-rate convention: ``optim.learning_rate`` is used as given whatever the number of
replicas or workers; it is NOT scaled with the global batch. ``data.batch_size`` is the GLOBAL
batch, split evenly between replicas (so changing the number of GPUs/workers with the same batch
size keeps the same optimisation, up to floating-point summation order).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.config import RECIPES_DIR, check_scale, check_track, from_dict
from amls2.errors import ConfigError
from amls2.training.precision import PRECISIONS

SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")
LOSSES: tuple[str, ...] = ("l1", "l2", "l2_luma", "charbonnier", "perceptual")
DEFAULT_RUNS_DIR = Path("runs")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the model sees. ``patch_size`` is in HR pixels; ``batch_size`` is the GLOBAL batch.

    ``train_sets``/``val_sets``: dataset names (``amls2 datasets``) or folders. ``holdout``: the
    last that many images (by file name) of the LAST training set are held out of training and
    validated on, with ``val_sets``; the best validation PSNR chooses the checkpoint, so keep
    reported test sets (Set5, Set14) out of ``val_sets``. ``variants``:
    degraded LR versions made per training image for the ``unknown`` track (see
    ``amls2.data.pipeline``). ``*_limit``: at most that many images per set (None = all).
    """

    train_sets: tuple[str, ...] = ("T91",)
    val_sets: tuple[str, ...] = ()
    data_dir: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    patch_size: int = 96
    batch_size: int = 16
    variants: int = 4
    augment: bool = True
    train_limit: int | None = None
    val_limit: int | None = None
    holdout: int = 0


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam with a learning-rate schedule and a pixel (or pixel + VGG) loss.

    ``schedule``: "constant"; "step" multiplies the rate by ``decay_factor`` every
    ``decay_epochs`` epochs (the seed code's halving); "cosine" decays to
    ``min_learning_rate`` over the run. ``loss``: "l1", "l2", "l2_luma" (the L2 of the
    BT.601 luma, plus a tenth of the RGB L2), "charbonnier" (epsilon ``charbonnier_epsilon``)
    or "perceptual" = L1 + ``perceptual_weight`` x MSE of VGG19 block5_conv4 features, with
    ImageNet VGG19 weights read from ``vgg_weights`` (no download).
    """

    learning_rate: float = 1e-4
    schedule: str = "constant"
    decay_epochs: int = 0
    decay_factor: float = 0.5
    min_learning_rate: float = 0.0
    loss: str = "l1"
    charbonnier_epsilon: float = 1e-3
    perceptual_weight: float = 0.01
    vgg_weights: str | None = None
    clipnorm: float | None = None


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation: the target is ``alpha * teacher(input) + (1 - alpha) * hr``, the
    teacher (a saved ``.keras`` model of the same scale and track) running in the train step."""

    teacher: str
    alpha: float = 0.5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training job. ``steps`` (if set) overrides ``epochs * steps_per_epoch``.

    ``out_dir`` defaults to ``runs/<model>[-<variant>]_x<scale>_<track>``. ``init_from``: a saved
    model whose weights are copied layer by layer where the shapes match (fine-tuning x3/x4 from
    x2). ``early_stopping_patience``: epochs without a better validation PSNR before stopping
    (None = never). ``steps_per_execution``: train steps per compiled call (no Python work in
    between). ``checkpoint_every``: steps between checkpoints (rounded up to a whole call).
    ``jit_compile``: XLA for the forward/backward pass; None (default) = only with a GPU (on a
    CPU, XLA convolutions measured ~3x slower than TensorFlow's oneDNN kernels).
    ``deterministic``: seed everything and enable TensorFlow op determinism for the process.
    ``precision``: "auto" (default: :func:`amls2.training.precision.auto_precision` picks
    mixed_bfloat16 on a CPU with native bfloat16, mixed_float16 on a GPU, float32 otherwise),
    "float32", "mixed_bfloat16" (bfloat16 compute, float32 weights; ~2x faster on CPUs with
    AVX512-BF16/AMX, many times slower where it is emulated) or "mixed_float16" (float16 compute
    with dynamic loss scaling, for GPUs). Validation and the saved model always use a float32
    copy of the weights, so the shipped models are plain float32.
    """

    model: str = "fd_srcnn"
    variant: str | None = None
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    scale: int = 2
    track: str = "bicubic"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    epochs: int = 10
    steps_per_epoch: int = 200
    steps: int | None = None
    seed: int = 0
    out_dir: str | None = None
    init_from: str | None = None
    early_stopping_patience: int | None = None
    distill: DistillConfig | None = None
    jit_compile: bool | None = None
    steps_per_execution: int = 20
    checkpoint_every: int = 200
    deterministic: bool = True
    precision: str = "auto"

    @property
    def total_steps(self) -> int:
        """``steps`` when given, else ``epochs * steps_per_epoch``."""
        return int(self.steps) if self.steps else self.epochs * self.steps_per_epoch

    @property
    def run_name(self) -> str:
        """``<model>[-<variant>]_x<scale>_<track>``: the default run folder's name."""
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.model}{variant}_x{self.scale}_{self.track}"

    @property
    def output_dir(self) -> Path:
        """``out_dir``, else ``runs/<run_name>``."""
        return Path(self.out_dir) if self.out_dir else DEFAULT_RUNS_DIR / self.run_name


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name} {value!r}: must be a positive number")


# Options named as on the command line where that differs from the config key.
_OPTION_NAMES = {
    "learning_rate": "--lr",
    "alpha": "--distill-alpha",
    "early_stopping_patience": "--early-stopping",
}


def _check_finite(value: Any, key: str) -> None:
    """Raise ConfigError naming the option of the first NaN or infinite number in ``value`` (a
    config, nested dataclasses and dicts): every comparison with NaN is False, so NaN passes
    range checks and only fails steps later as a NaN loss."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            _check_finite(getattr(value, field.name), field.name)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key} {name}")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item, key)
    elif isinstance(value, float) and not math.isfinite(value):
        option = _OPTION_NAMES.get(key) or "--" + key.replace("_", "-")
        raise ConfigError(f"{option} {value}: must be a finite number")


def validate(config: TrainConfig) -> TrainConfig:
    """Check every option; raise ConfigError naming the first bad one. Returns ``config``."""
    _check_finite(config, "config")
    check_scale(config.scale)
    check_track(config.track)
    for name, value in [
        ("--epochs", config.epochs),
        ("--steps-per-epoch", config.steps_per_epoch),
        ("--patch-size", config.data.patch_size),
        ("--batch-size", config.data.batch_size),
        ("--variants", config.data.variants),
        ("--lr", config.optim.learning_rate),
        ("--steps-per-execution", config.steps_per_execution),
        ("--checkpoint-every", config.checkpoint_every),
    ]:
        _positive(name, value)
    if not isinstance(config.data.holdout, int) or config.data.holdout < 0:
        raise ConfigError(f"--holdout {config.data.holdout!r}: must be a whole number >= 0")
    _positive("--steps", config.steps, allow_none=True)
    _positive("--early-stopping", config.early_stopping_patience, allow_none=True)
    if config.data.patch_size % config.scale:
        raise ConfigError(
            f"--patch-size {config.data.patch_size}: not a multiple of --scale {config.scale}"
        )
    if not config.data.train_sets:
        raise ConfigError("--train-set: at least one training set is needed")
    optim = config.optim
    if optim.schedule not in SCHEDULES:
        raise ConfigError(f"--schedule {optim.schedule!r}: unknown; valid: {list(SCHEDULES)}")
    if optim.schedule == "step" and optim.decay_epochs <= 0:
        raise ConfigError("--decay-epochs: must be positive with --schedule step")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision {config.precision!r}: unknown; valid: {list(PRECISIONS)}")
    if optim.loss not in LOSSES:
        raise ConfigError(f"--loss {optim.loss!r}: unknown; valid: {list(LOSSES)}")
    if optim.loss == "perceptual":
        if not optim.vgg_weights:
            raise ConfigError(
                "--vgg-weights: the perceptual loss needs ImageNet VGG19 weights "
                "(a vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 file); none given"
            )
        if not Path(optim.vgg_weights).is_file():
            raise ConfigError(f"--vgg-weights {optim.vgg_weights}: no such file")
    if config.distill is not None:
        if not 0.0 <= config.distill.alpha <= 1.0:
            raise ConfigError(f"--distill-alpha {config.distill.alpha}: must be in [0, 1]")
        if not Path(config.distill.teacher).exists():
            raise ConfigError(f"--teacher {config.distill.teacher}: no such file")
    if config.init_from and not Path(config.init_from).exists():
        raise ConfigError(f"--init-from {config.init_from}: no such file")
    return config


def default_config_dict(model: str) -> dict[str, Any]:
    """The config dict ``amls2 train --model MODEL`` starts from when no recipe is given: the
    model's measured defaults (``amls2.models.training_defaults``)."""
    from amls2.models.training_defaults import training_defaults  # the registry imports TF

    return training_defaults(model)


def default_config(model: str, **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` of ``model``'s training defaults with nested ``overrides`` (for example
    ``default_config("edsr", scale=3, steps=600, data={"train_sets": ["T91", "BSD200"]})``)."""
    return config_from_dict(merge_dicts(default_config_dict(model), overrides))


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from a (possibly partial, nested) dict; unknown keys are an error."""
    return from_dict(TrainConfig, data)


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``override``, merging nested dicts key by key (not hparams)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "hparams":
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def recipe_names() -> list[str]:
    """The names of the shipped recipes (``amls2/recipes/<name>.json``)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


SHIPPED_PREFIX = "Selected_models/"


def load_recipe_dict(name_or_path: str) -> dict[str, Any]:
    """The JSON dict of a recipe name or a JSON config file, ConfigError naming it if bad."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = RECIPES_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ConfigError(f"--recipe {name_or_path!r}: unknown; valid: {recipe_names()}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    data.pop("description", None)
    init_from = data.get("init_from")
    if isinstance(init_from, str) and init_from.startswith(SHIPPED_PREFIX):
        # Shipped recipes fine-tune from shipped weights: resolve them from any working folder.
        data["init_from"] = str(amls2_config.SELECTED_MODELS_DIR / init_from[len(SHIPPED_PREFIX) :])
    return data


def load_recipe(name_or_path: str, **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` from a shipped recipe name or a JSON file, with nested ``overrides``."""
    data = merge_dicts(load_recipe_dict(name_or_path), overrides)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"recipe {name_or_path}: {exc}") from None
