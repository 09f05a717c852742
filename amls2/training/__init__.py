"""Training: the job config, losses and the distributed training engine.

``train(TrainConfig(...))`` or ``amls2 train ...``; see :mod:`amls2.training.engine` for the
distribution, checkpoint/resume, determinism and learning-rate conventions.

May import: every layer below it (imaging, data, models, inference, evaluation), not reporting.
"""

from amls2.training.config import (
    LOSSES,
    SCHEDULES,
    DataConfig,
    DistillConfig,
    OptimConfig,
    TrainConfig,
    load_recipe,
    recipe_names,
    validate,
)
from amls2.training.engine import train
from amls2.training.result import DivergedError, TrainResult

__all__ = [
    "LOSSES",
    "SCHEDULES",
    "DataConfig",
    "DistillConfig",
    "DivergedError",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "load_recipe",
    "recipe_names",
    "train",
    "validate",
]
