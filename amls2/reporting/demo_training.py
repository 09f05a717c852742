"""The ``python main.py --train`` flow's training: the ``TrainConfig`` the demo and the notebooks
train with (``training_config``), a brief training run on cut patches and its model as an Upscaler."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amls2.data import datasets
from amls2.data.patches import PrepareConfig, prepare_patches
from amls2.inference.upscaler import Upscaler
from amls2.reporting.demo_config import DemoConfig
from amls2.training import DataConfig, TrainConfig, train
from amls2.training.config import default_config

log = logging.getLogger(__name__)


def training_config(
    model: str,
    *,
    scale: int,
    track: str,
    quick: bool,
    out_dir: str | os.PathLike,
    train_sets: Sequence[str] | None = None,
    val_sets: Sequence[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
):
    """A ``TrainConfig`` for the demo and notebooks, training into ``out_dir``.

    Quick: the model's "tiny" variant on ``train_sets`` (default the embedded samples), 48 px
    patches, batch 8, ``steps`` (default 20) steps in 2 epochs, 2 validation images. Full: the
    model's training defaults (``amls2 train --model NAME``: T91 with its last 10 images held
    out to choose the checkpoint) for ``steps`` (default 600) steps; ``train_sets`` and
    ``val_sets`` replace the defaults' sets.
    """
    data_dir = None if data_dir is None else str(data_dir)
    if quick:
        return _quick_training_config(
            model, scale=scale, track=track, out_dir=out_dir, train_sets=train_sets,
            val_sets=val_sets, data_dir=data_dir, steps=steps or 20, seed=seed,
        )  # fmt: skip
    data: dict[str, Any] = {"data_dir": data_dir}
    if train_sets:
        data["train_sets"] = list(train_sets)
    if val_sets:
        data["val_sets"] = list(val_sets)
    return default_config(
        model,
        scale=scale,
        track=track,
        steps=steps or 600,
        out_dir=str(out_dir),
        seed=seed,
        data=data,
    )


def _quick_training_config(
    model, *, scale, track, out_dir, train_sets, val_sets, data_dir, steps, seed
) -> TrainConfig:
    """``training_config``'s quick mode: seconds on a CPU."""
    return TrainConfig(
        model=model,
        variant="tiny",
        scale=scale,
        track=track,
        data=DataConfig(
            train_sets=tuple(train_sets or (datasets.SAMPLES,)),
            val_sets=tuple(val_sets or (datasets.SAMPLES,)),
            data_dir=data_dir,
            patch_size=48,
            batch_size=8,
            variants=2,
            val_limit=2,
        ),
        epochs=2,
        steps_per_epoch=max(1, steps // 2),
        steps=steps,
        seed=seed,
        out_dir=str(out_dir),
        steps_per_execution=10,
        checkpoint_every=1000,
    )


def upscaler_from_training(result, config) -> Any:
    """An ``inference.Upscaler`` around a training result's model (named like the model)."""
    from amls2.models import get_spec  # the registry imports TensorFlow

    return Upscaler(
        name=config.model,
        scale=config.scale,
        track=config.track,
        input_kind=get_spec(config.model).input_kind,
        model=result.model,
        source=str(result.model_path or ""),
    )


def train_on_patches(
    config: DemoConfig, track: str, scale: int, written: list[Path], progress: bool
) -> tuple[Upscaler, Path]:
    """Cut patches from the first dataset and train ``config.train_model`` on them: the trained
    upscaler and its run folder (the model file is added to ``written``)."""
    out = config.out_dir
    patch = 48 if config.quick else 96
    run = f"{config.train_model}_x{scale}_{track}"
    lcm = 12  # HR patch and stride: multiples of every scale
    prepare = PrepareConfig(
        dataset=config.datasets[0],
        scale=scale,
        track=track,
        out_dir=out / "patches" / f"{track}_x{scale}",
        patch=patch,
        stride=(2 * patch if config.quick else patch) // lcm * lcm,
        data_dir=config.data_dir,
        seed=config.seed,
    )
    manifest = prepare_patches(prepare, progress=progress)
    log.info("%s: %d patches in %s", run, manifest["n_patches"], prepare.out_dir)
    train_config = training_config(
        config.train_model,
        scale=scale,
        track=track,
        quick=config.quick,
        out_dir=out / "runs" / run,
        # The HR patches; their LR partners are re-made on the fly (identical for
        # bicubic, fresh random degradations for unknown).
        train_sets=[str(prepare.out_dir / "HR")],
        # Full runs choose the checkpoint on held-out patches, never on the datasets
        # reported below; quick runs only smoke-test the flow.
        val_sets=list(config.datasets) if config.quick else None,
        data_dir=config.data_dir,
        steps=config.steps or (20 if config.quick else 400),
        seed=config.seed,
    )
    result = train(train_config, force=True, progress=progress)
    if result.model_path is not None:
        written.append(result.model_path)
    return upscaler_from_training(result, train_config), result.out_dir
