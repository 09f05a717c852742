"""The training engine: a custom tf.distribute loop (the only tf.distribute code in amls2).

* Strategy: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster of several
  tasks (``amls2 train --cluster ... --task-index I`` sets it: :mod:`amls2.training.cluster`);
  ``MirroredStrategy`` over the local GPUs when there are several; otherwise the default
  strategy (one GPU or the CPU). The global batch (``data.batch_size``) is split evenly between
  replicas by the pipeline (each worker computes only its own slice); gradients are averaged over
  the GLOBAL batch. The learning rate is used as given: no automatic scaling with the number of
  replicas.
* Speed: ``steps_per_execution`` steps run inside one ``tf.function`` call (a graph loop over the
  iterator, no Python work between steps); the forward/backward pass is XLA-compiled when
  ``jit_compile`` is set (default: only with a GPU; on this project's CPU, XLA convolutions ran
  ~3x slower than the oneDNN kernels); the data pipeline caches decoded images in memory and prefetches.
* Robustness: a checkpoint (weights, optimiser state, best weights, step, history) is written
  atomically every ``checkpoint_every`` steps and at each epoch end, as one ``.npz`` file, the one
  before it kept as ``checkpoints/prev.npz`` (the fallback). The same command again resumes, and
  sees exactly the batches the uninterrupted run would have (the pipeline is a pure function of
  the step). A non-finite loss stops with :class:`DivergedError` (the best model is kept); early
  stopping on validation PSNR restores the best weights.
* Outputs (chief only): ``config.json``, ``history.csv``, ``tensorboard/``,
  ``checkpoints/last.npz`` and the best model ``<run_name>.keras`` with its JSON sidecar (on a
  shared file system for several workers: all read the chief's checkpoint on restart).
* One writer: the chief holds an exclusive OS lock on the run folder for the whole run
  (:mod:`amls2.training.run_lock`); every option and the data are checked before it is written.
* Closed form: a linear skip is solved from the pairs before the first step, and a model with
  nothing else to train (``linear``) is solved instead of trained (``closed_form``).
* Determinism: ``deterministic=True`` (default) calls ``keras.utils.set_random_seed(seed)`` and
  ``tf.config.experimental.enable_op_determinism()``, process-wide and not undone.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from amls2.config import to_dict
from amls2.data import pipeline
from amls2.evaluation import scoring
from amls2.machine import machine_info
from amls2.training import closed_form
from amls2.training.config import TrainConfig, validate
from amls2.training.distribution import is_chief, make_strategy
from amls2.training.model_setup import (
    build_with_policy,
    load_matching_weights,
    load_teacher,
    make_optimizer,
    model_input_kind,
)
from amls2.training.precision import resolve_precision
from amls2.training.result import DivergedError, TrainResult
from amls2.training.run_folder import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    TENSORBOARD_DIR,
    finite_or_none,
    prepare_out_dir,
    restore_checkpoint,
    save_checkpoint,
    write_history,
    write_scalar,
)
from amls2.training.run_lock import check_not_locked, hold_run_folder

log = logging.getLogger(__name__)


def _next_checkpoint(step: int, every: int) -> int:
    """The first step after ``step`` at which a checkpoint is due (every ``every`` steps)."""
    return (step // every + 1) * every


class _Trainer:
    """Holds the model, optimiser, compiled step function and loop state of one run."""

    def __init__(self, config: TrainConfig, strategy, *, progress: bool):
        self.config = config
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.progress = progress and self.chief
        self.out_dir = config.output_dir
        self.input_kind = model_input_kind(config.model)
        self.precision = resolve_precision(config.precision)
        with strategy.scope():
            self.model = build_with_policy(config, self.precision)
            # Validation and saving run on a float32 twin: 16-bit inference would cost PSNR.
            self.float32_model = (
                self.model if self.precision == "float32" else build_with_policy(config, "float32")
            )
            self.optimizer = make_optimizer(config, loss_scaling=self.precision == "mixed_float16")
            self.optimizer.build(self.model.trainable_variables)
            self.teacher, self.teacher_kind = (
                load_teacher(config) if config.distill else (None, None)
            )
        from amls2.training.losses import make_loss  # imports TensorFlow: only when training

        self.loss_fn = make_loss(
            config.optim.loss,
            charbonnier_epsilon=config.optim.charbonnier_epsilon,
            vgg_weights=config.optim.vgg_weights,
            perceptual_weight=config.optim.perceptual_weight,
        )
        self.best_weights: list | None = None
        self.closed_form_facts: dict[str, Any] | None = None
        self.state: dict[str, Any] = {
            "step": 0,
            "epoch_loss_sum": 0.0,
            "epoch_loss_steps": 0,
            "history": [],
            "best_psnr": None,
            "best_ssim": None,
            "best_epoch": None,
            "bad_epochs": 0,
            "stopped_early": False,
            "wall_time_s": 0.0,
        }

    @property
    def model_path(self) -> Path:
        return self.out_dir / f"{self.config.run_name}.keras"

    def sidecar(self, n_train: int, n_val: int) -> dict[str, Any]:
        """Training facts for the model's JSON sidecar (models.io adds name, hparams, scale,
        input_kind and library versions)."""
        config = self.config
        state = self.state
        return {
            "name": config.model,
            "variant": config.variant,
            "scale": config.scale,
            "track": config.track,
            "input_kind": self.input_kind,
            "config": to_dict(config),
            "data": {
                "train_sets": list(config.data.train_sets),
                "val_sets": list(config.data.val_sets),
                "holdout": config.data.holdout,
                "train_images": n_train,
                "val_images": n_val,
                "patch_size": config.data.patch_size,
                "batch_size": config.data.batch_size,
            },
            "epochs": len(state["history"]),
            "best_epoch": state["best_epoch"],
            "steps": state["step"],
            "wall_time_s": round(state["wall_time_s"], 3),
            "stopped_early": state["stopped_early"],
            "machine": machine_info(),
            "precision": self.precision,
            "metrics": {
                "protocol": "y",
                "val_sets": self.validation_names(),
                "psnr": finite_or_none(state["best_psnr"]),
                "ssim": finite_or_none(state["best_ssim"]),
            },
            **({"closed_form": self.closed_form_facts} if self.closed_form_facts else {}),
        }

    def validation_names(self) -> list[str]:
        """What the checkpoint was chosen on: the val sets and the held-out training images."""
        data = self.config.data
        held = [f"last {data.holdout} of {data.train_sets[-1]} (held out)"] if data.holdout else []
        return [*data.val_sets, *held]

    def save_best_model(self, n_train: int, n_val: int) -> None:
        from amls2.models.io import save_model

        if self.chief:
            save_model(self.synced_float32_model(), self.model_path, self.sidecar(n_train, n_val))

    def synced_float32_model(self):
        """The float32 model holding the current weights (the model itself in float32 runs)."""
        if self.float32_model is not self.model:
            self.float32_model.set_weights(self.model.get_weights())
        return self.float32_model

    def checkpoint(self) -> None:
        if self.chief:
            save_checkpoint(
                self.out_dir / CHECKPOINT_NAME,
                self.model,
                self.optimizer,
                self.best_weights,
                self.state,
            )

    def make_step_function(self):
        """``run_steps(iterator, n) -> mean loss`` running ``n`` distributed steps in-graph."""
        from amls2.training.step import make_step_function  # imports TensorFlow: only here

        config = self.config
        side = config.data.patch_size // (config.scale if self.input_kind == "lr" else 1)
        return make_step_function(
            self.model,
            self.optimizer,
            self.strategy,
            self.loss_fn,
            input_key=self.input_kind,
            global_batch=config.data.batch_size,
            teacher=self.teacher,
            teacher_key=self.teacher_kind,
            alpha=config.distill.alpha if config.distill else 0.0,
            jit_compile=config.jit_compile,
            probe_shapes=(side, config.data.patch_size),
            model_name=config.model,
        )

    def current_learning_rate(self) -> float:
        return float(np.asarray(self.optimizer.learning_rate))

    def restore(self, resume: bool) -> None:
        """The state of a resumed run from its checkpoint, or the ``--init-from`` weights."""
        if resume:
            self.best_weights, saved = restore_checkpoint(
                self.out_dir / CHECKPOINT_NAME, self.model, self.optimizer
            )
            self.state.update(saved)
            log.info("resuming %s from step %d", self.out_dir, self.state["step"])
        elif self.config.init_from:
            load_matching_weights(self.model, self.config.init_from)

    def train_iterator(self, train_images, start_step: int):
        """The distributed patch iterator from ``start_step`` on; None when nothing is left."""
        config = self.config
        if start_step >= config.total_steps or self.state["stopped_early"]:
            return None
        from amls2.data.train_dataset import make_train_dataset  # imports TensorFlow: only here
        from amls2.models.phase_layers import is_phase_dependent

        outputs = sorted({self.input_kind, self.teacher_kind or self.input_kind, "hr"})
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: make_train_dataset(
                train_images,
                patch_size=config.data.patch_size,
                global_batch=config.data.batch_size,
                seed=config.seed,
                start_step=start_step,
                num_steps=config.total_steps - start_step,
                outputs=outputs,
                augment=config.data.augment,
                lr_grid=is_phase_dependent(self.model),
                input_context=ctx,
            )
        )
        return iter(dataset)

    def run(self, train_images, val_images, *, resume: bool) -> TrainResult:
        """Train from the start or the last checkpoint to the end (or an early stop)."""
        import tensorflow as tf
        from tqdm import tqdm

        config = self.config
        self.restore(resume)
        if not resume:  # a linear skip: solved from the pairs, the run starts at its output
            closed_form.start_at_linear_fit(self.model, train_images, self.input_kind)
        start_step = self.state["step"]
        n_train, n_val = len(train_images), len(val_images)
        writer = None
        if self.chief:
            writer = tf.summary.create_file_writer(str(self.out_dir / TENSORBOARD_DIR))
        run_steps = self.make_step_function()
        iterator = self.train_iterator(train_images, start_step)
        bar = tqdm(
            total=config.total_steps,
            initial=start_step,
            disable=not self.progress,
            unit="step",
            desc=config.run_name,
            dynamic_ncols=True,
        )
        try:
            if iterator is not None:
                self.loop(run_steps, iterator, bar, writer, val_images, (n_train, n_val))
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return self.finish(n_train, n_val, start_step)

    def loop(self, run_steps, iterator, bar, writer, val_images, counts) -> None:
        """The steps from ``state["step"]`` to the end: ``steps_per_execution`` per call (never
        across an epoch's end), validation and a checkpoint at each epoch's end, a checkpoint
        every ``checkpoint_every`` steps."""
        import tensorflow as tf

        config = self.config
        spe, total, every = config.steps_per_epoch, config.total_steps, config.checkpoint_every
        wall_start, wall_before = time.perf_counter(), self.state["wall_time_s"]
        step = self.state["step"]
        next_checkpoint = _next_checkpoint(step, every)
        epoch_start, epoch_first_step = time.perf_counter(), step
        while step < total:
            epoch_end = min((step // spe + 1) * spe, total)
            n = min(config.steps_per_execution, epoch_end - step)
            call_start = time.perf_counter()
            loss = float(run_steps(iterator, tf.constant(n, tf.int32)))
            seconds = time.perf_counter() - call_start
            if not math.isfinite(loss):
                self.state["wall_time_s"] = wall_before + time.perf_counter() - wall_start
                self.on_divergence(loss, step + n)
            step += n
            self.record_steps(loss, n, seconds, bar, writer)
            self.state["wall_time_s"] = wall_before + time.perf_counter() - wall_start
            if step == epoch_end:
                patches = (step - epoch_first_step) * config.data.batch_size
                elapsed = time.perf_counter() - epoch_start
                self.end_epoch(step, elapsed, patches, val_images, writer, *counts)
                next_checkpoint = _next_checkpoint(step, every)
                self.checkpoint()
                # The next epoch's time (patches_per_second) counts its training only: this
                # epoch's validation, model save and checkpoint are left out.
                epoch_start, epoch_first_step = time.perf_counter(), step
                if self.state["stopped_early"]:
                    break
            elif step >= next_checkpoint:
                next_checkpoint = _next_checkpoint(step, every)
                self.checkpoint()

    def record_steps(self, loss: float, n: int, seconds: float, bar, writer) -> None:
        """Count ``n`` steps of mean ``loss`` that took ``seconds``: the loop state, the progress
        bar and TensorBoard."""
        step = self.state["step"] + n
        self.state["step"] = step
        self.state["epoch_loss_sum"] += loss * n
        self.state["epoch_loss_steps"] += n
        bar.update(n)
        patches_s = n * self.config.data.batch_size / seconds
        bar.set_postfix(loss=f"{loss:.4g}", patches_s=f"{patches_s:.0f}")
        if writer is not None:
            with writer.as_default():
                write_scalar("train/loss", loss, step=step)
                write_scalar("train/learning_rate", self.current_learning_rate(), step=step)

    def end_epoch(self, step, elapsed, patches, val_images, writer, n_train, n_val) -> None:

        state = self.state
        epoch = math.ceil(step / self.config.steps_per_epoch)
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "loss": state["epoch_loss_sum"] / max(state["epoch_loss_steps"], 1),
            "learning_rate": self.current_learning_rate(),
            "val_psnr": None,
            "val_ssim": None,
            "seconds": round(elapsed, 3),
            "patches_per_second": round(patches / elapsed, 1) if elapsed > 0 else None,
        }
        improved = True
        if val_images:
            psnr, ssim = scoring.validation_scores(
                self.synced_float32_model(),
                val_images,
                scale=self.config.scale,
                input_kind=self.input_kind,
            )
            row["val_psnr"], row["val_ssim"] = psnr, ssim
            improved = state["best_psnr"] is None or psnr > state["best_psnr"]
            if improved:
                state["best_psnr"], state["best_ssim"] = psnr, ssim
        state["epoch_loss_sum"], state["epoch_loss_steps"] = 0.0, 0
        state["history"].append(row)
        if improved:
            state["best_epoch"], state["bad_epochs"] = epoch, 0
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
            self.save_best_model(n_train, n_val)
        else:
            state["bad_epochs"] += 1
        patience = self.config.early_stopping_patience
        if patience and state["bad_epochs"] >= patience:
            state["stopped_early"] = True
            log.info(
                "early stopping at epoch %d: no better val PSNR for %d epoch(s)", epoch, patience
            )
        log.info(
            "epoch %d step %d: loss %.5f val PSNR %s",
            epoch,
            step,
            row["loss"],
            "n/a" if row["val_psnr"] is None else f"{row['val_psnr']:.3f} dB",
        )
        if self.chief:
            write_history(self.out_dir / HISTORY_NAME, state["history"])
            with writer.as_default():
                if row["val_psnr"] is not None:
                    write_scalar("val/psnr_y", row["val_psnr"], step=step)
                    write_scalar("val/ssim_y", row["val_ssim"], step=step)
                write_scalar("epoch/loss", row["loss"], step=step)
            writer.flush()

    def on_divergence(self, loss: float, step: int) -> None:
        """Restore the best weights (kept on disk already) and stop with a clear error."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        kept = (
            f"the best model so far is kept in {self.model_path}"
            if self.best_weights is not None and self.chief
            else "no model was saved yet"
        )
        raise DivergedError(
            f"--lr {self.config.optim.learning_rate:g}: training diverged "
            f"(loss {loss}) by step {step}; {kept}; try a lower learning rate"
        )

    def finish(self, n_train: int, n_val: int, start_step: int) -> TrainResult:
        state = self.state
        if self.best_weights is not None:
            # Early stopping or a later worse epoch: the returned and saved model is the best.
            self.model.set_weights(self.best_weights)
            self.save_best_model(n_train, n_val)
        return TrainResult(
            out_dir=self.out_dir,
            model_path=self.model_path if self.best_weights is not None else None,
            best_epoch=state["best_epoch"],
            best_psnr=state["best_psnr"],
            best_ssim=state["best_ssim"],
            epochs_run=len(state["history"]),
            steps=state["step"],
            stopped_early=state["stopped_early"],
            resumed_from_step=start_step,
            wall_time_s=state["wall_time_s"],
            history=tuple(dict(row) for row in state["history"]),
            model=self.synced_float32_model(),
        )


def train(config: TrainConfig, *, force: bool = False, progress: bool = True):
    """Train ``config.model`` and return a :class:`TrainResult` (the model is in ``.model``).

    Re-running the same config in the same ``out_dir`` resumes from its last checkpoint;
    ``force`` starts over instead. Raises ConfigError/DatasetError/ModelError for bad options or
    data, DivergedError for a NaN/infinite loss.
    """
    validate(config)
    strategy = make_strategy()  # first TensorFlow work: required by MultiWorkerMirroredStrategy
    if config.deterministic:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    chief = is_chief(strategy)
    out_dir = config.output_dir
    if chief:
        check_not_locked(out_dir)  # fail fast; the lock itself is taken once all is checked
    # Everything that can refuse the options (model, teacher, data, holdout) runs before the
    # first write: a refused command leaves no run folder or config.json behind.
    trainer = _Trainer(config, strategy, progress=progress)
    outputs = {trainer.input_kind, trainer.teacher_kind or trainer.input_kind}
    data = config.data
    # What both loaders share: the pairs they read and the holdout split between them.
    common = dict(
        scale=config.scale, track=config.track, data_dir=data.data_dir, holdout=data.holdout
    )
    train_images = pipeline.load_training_images(
        data.train_sets,
        **common,
        split=data.train_split,
        seed=config.seed,
        variants=data.variants,
        with_bicubic="bicubic" in outputs,
        limit=data.train_limit,
        min_size=data.patch_size,
    )
    val_images = pipeline.load_validation_images(
        data.val_sets,
        **common,
        split=data.val_split,
        limit=data.val_limit,
        holdout_set=data.train_sets[-1],
        holdout_split=data.train_split,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with hold_run_folder(out_dir, chief=chief):
        resume = prepare_out_dir(config, out_dir, force=force, chief=chief)
        if closed_form.is_closed_form(trainer.model):
            return closed_form.solve_run(trainer, train_images, val_images)
        return trainer.run(train_images, val_images, resume=resume)
