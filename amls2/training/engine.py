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
  atomically every ``checkpoint_every`` steps and at each epoch end, as one ``.npz`` file; the one
  before it is kept as ``checkpoints/prev.npz`` and resumed from, with a warning, if the last one
  cannot be read. Running the same command again (``--out-dir`` spelled any way) resumes from it; as the data pipeline is a pure function of the step,
  the resumed run sees exactly the batches the uninterrupted run would have seen. A non-finite
  loss stops the run with :class:`DivergedError` (the best model saved so far is kept).
  Early stopping on validation PSNR restores the best weights.
* Outputs (chief only; other workers write nothing): ``config.json``, ``history.csv``,
  ``tensorboard/``, ``checkpoints/last.npz`` and the best model ``<run_name>.keras`` with its JSON
  sidecar. In a multi-worker run every worker reads the chief's checkpoint on restart, so the
  output folder must be on a shared file system.
* Determinism: with ``deterministic=True`` (default) the engine calls
  ``keras.utils.set_random_seed(seed)`` and ``tf.config.experimental.enable_op_determinism()``.
  Both are process-wide and are NOT undone after training (op determinism cannot be switched off
  again); the same seed and data then give the same weights on the same machine.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from amls2 import evaluation, pipeline
from amls2.config import to_dict
from amls2.errors import Amls2Error, ModelError
from amls2.training.config import TrainConfig, validate
from amls2.training.distribution import is_chief, make_strategy
from amls2.training.losses import make_loss
from amls2.training.precision import resolve_precision
from amls2.training.run_folder import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    TENSORBOARD_DIR,
    finite_or_none,
    machine_info,
    prepare_out_dir,
    restore_checkpoint,
    save_checkpoint,
    write_history,
    write_scalar,
)

log = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------- model set-up


def make_optimizer(config: TrainConfig, *, loss_scaling: bool = False):
    """Adam with the config's learning-rate schedule (keyed on the optimiser's step counter).

    ``loss_scaling`` (float16 compute) wraps it in Keras' dynamic ``LossScaleOptimizer``: the
    step multiplies the loss by its scale, and the optimiser unscales the gradients and skips a
    step whose gradients overflowed, so small float16 gradients do not flush to zero.
    """
    import keras

    optim = config.optim
    learning_rate: Any = optim.learning_rate
    if optim.schedule == "step":
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            optim.learning_rate,
            decay_steps=optim.decay_epochs * config.steps_per_epoch,
            decay_rate=optim.decay_factor,
            staircase=True,
        )
    elif optim.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            optim.learning_rate,
            decay_steps=config.total_steps,
            alpha=optim.min_learning_rate / optim.learning_rate,
        )
    adam = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=optim.clipnorm)
    return keras.optimizers.LossScaleOptimizer(adam) if loss_scaling else adam


def _weighted_layers(model) -> list:
    return [layer for layer in model.layers if layer.weights]


def load_matching_weights(model, path: str) -> tuple[list[str], list[str]]:
    """Copy weights from the saved model at ``path`` layer by layer where the shapes match.

    Layers are paired by position among the layers that have weights (auto-generated layer
    names differ between processes); the typical use is fine-tuning x3/x4 from x2, where only the
    upsampling layers differ. Returns (loaded, skipped) layer names, both logged. ModelError if
    no layer matches.
    """
    from amls2.models.io import load_model

    source, _ = load_model(path)
    loaded, skipped = [], []
    src_layers = _weighted_layers(source)
    for i, layer in enumerate(_weighted_layers(model)):
        src = src_layers[i] if i < len(src_layers) else None
        shapes = [tuple(w.shape) for w in layer.weights]
        if src is not None and [tuple(w.shape) for w in src.weights] == shapes:
            layer.set_weights(src.get_weights())
            loaded.append(layer.name)
        else:
            skipped.append(layer.name)
    if not loaded:
        raise ModelError(f"--init-from {path}: no layer of it fits model {model.name}")
    log.info(
        "--init-from %s: loaded %d layer(s); skipped (shape mismatch): %s",
        path,
        len(loaded),
        ", ".join(skipped) or "none",
    )
    return loaded, skipped


def _model_input_kind(model_name: str) -> str:
    from amls2.models import get_spec

    return get_spec(model_name).input_kind


def load_teacher(config: TrainConfig):
    """The distillation teacher and its input kind ("lr" or "bicubic")."""
    from amls2.models.io import load_model

    teacher, sidecar = load_model(config.distill.teacher, scale=config.scale, track=config.track)
    kind = sidecar.get("input_kind")
    if kind is None and sidecar.get("name"):
        kind = _model_input_kind(sidecar["name"])
    if kind not in ("lr", "bicubic"):
        raise ModelError(f"--teacher {config.distill.teacher}: sidecar has no usable input_kind")
    teacher.trainable = False
    return teacher, kind


# ----------------------------------------------------------------------------- the loop


def build_with_policy(config: TrainConfig, policy: str):
    """``build_model`` for ``config`` with Keras' dtype ``policy`` (restored afterwards)."""
    import keras

    from amls2.models import build_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return build_model(config.model, config.scale, variant=config.variant, **config.hparams)
    finally:
        keras.config.set_dtype_policy(previous)


class _Trainer:
    """Holds the model, optimiser, compiled step function and loop state of one run."""

    def __init__(self, config: TrainConfig, strategy, *, progress: bool):
        import tensorflow as tf

        self.config = config
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.progress = progress and self.chief
        self.out_dir = config.output_dir
        self.input_kind = _model_input_kind(config.model)
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
        self.loss_fn = make_loss(
            tf,
            config.optim.loss,
            charbonnier_epsilon=config.optim.charbonnier_epsilon,
            vgg_weights=config.optim.vgg_weights,
            perceptual_weight=config.optim.perceptual_weight,
        )
        self.best_weights: list | None = None
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

    # -- outputs ---------------------------------------------------------------------------

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

    # -- compiled steps --------------------------------------------------------------------

    def use_xla(self) -> bool:
        """``jit_compile`` if set, else XLA only when a GPU is visible (slower on CPUs)."""
        import tensorflow as tf

        if self.config.jit_compile is not None:
            return bool(self.config.jit_compile)
        return bool(tf.config.list_logical_devices("GPU"))

    def try_xla(self, loss_and_grads):
        """``loss_and_grads`` XLA-compiled if XLA can compile it, else unchanged (logged).

        Probed once on a zero batch of the training shape (computing gradients only, nothing is
        applied): some gradients (e.g. MaxPool's) have no deterministic XLA kernel, and a failure
        inside the training loop would be too late to fall back.
        """
        import tensorflow as tf

        config = self.config
        batch = config.data.batch_size // self.strategy.num_replicas_in_sync
        side = config.data.patch_size // (config.scale if self.input_kind == "lr" else 1)
        x = tf.zeros([batch, side, side, 3], tf.float32)
        y = tf.zeros([batch, config.data.patch_size, config.data.patch_size, 3], tf.float32)
        compiled = tf.function(loss_and_grads, jit_compile=True)
        try:
            compiled(x, y)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
            reason = str(exc).strip().splitlines()[0]
            log.warning(
                "jit_compile: XLA cannot compile %s (%s); running without XLA", config.model, reason
            )
            return loss_and_grads
        return compiled

    def make_step_function(self):
        """``run_steps(iterator, n) -> mean loss`` running ``n`` distributed steps in-graph."""
        import keras
        import tensorflow as tf

        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        global_batch = self.config.data.batch_size
        input_key, loss_fn = self.input_kind, self.loss_fn
        teacher, teacher_key = self.teacher, self.teacher_kind
        alpha = self.config.distill.alpha if self.config.distill else 0.0
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def loss_and_grads(x, target):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                per_example = loss_fn(target, tf.cast(pred, tf.float32))
                # Average over the GLOBAL batch: replicas' gradients are summed by the optimiser.
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                # float16: differentiate the scaled loss; apply_gradients unscales.
                objective = optimizer.scale_loss(loss) if scaled else loss
            return loss, tape.gradient(objective, model.trainable_variables)

        if self.use_xla():
            loss_and_grads = self.try_xla(loss_and_grads)

        def replica_step(batch):
            target = batch["hr"]
            if teacher is not None:
                soft = tf.cast(teacher(batch[teacher_key], training=False), tf.float32)
                target = alpha * soft + (1.0 - alpha) * target
            loss, grads = loss_and_grads(batch[input_key], target)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        @tf.function(reduce_retracing=True)
        def run_steps(iterator, n):
            total = tf.constant(0.0, tf.float32)
            for _ in tf.range(n):
                per_replica = strategy.run(replica_step, args=(next(iterator),))
                total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return total / tf.cast(n, tf.float32)

        return run_steps

    # -- main loop -------------------------------------------------------------------------

    def current_learning_rate(self) -> float:
        return float(np.asarray(self.optimizer.learning_rate))

    def run(self, train_images, val_images, *, resume: bool) -> TrainResult:
        import tensorflow as tf
        from tqdm import tqdm

        config = self.config
        checkpoint_path = self.out_dir / CHECKPOINT_NAME
        if resume:
            self.best_weights, saved = restore_checkpoint(
                checkpoint_path, self.model, self.optimizer
            )
            self.state.update(saved)
            log.info("resuming %s from step %d", self.out_dir, self.state["step"])
        elif config.init_from:
            load_matching_weights(self.model, config.init_from)
        start_step = self.state["step"]
        total = config.total_steps
        spe = config.steps_per_epoch
        global_batch = config.data.batch_size
        n_train, n_val = len(train_images), len(val_images)
        outputs = sorted({self.input_kind, self.teacher_kind or self.input_kind, "hr"})

        writer = None
        if self.chief:
            writer = tf.summary.create_file_writer(str(self.out_dir / TENSORBOARD_DIR))
        run_steps = self.make_step_function()
        iterator = None
        if start_step < total and not self.state["stopped_early"]:
            dataset = self.strategy.distribute_datasets_from_function(
                lambda ctx: pipeline.make_train_dataset(
                    train_images,
                    patch_size=config.data.patch_size,
                    global_batch=global_batch,
                    seed=config.seed,
                    start_step=start_step,
                    num_steps=total - start_step,
                    outputs=outputs,
                    augment=config.data.augment,
                    input_context=ctx,
                )
            )
            iterator = iter(dataset)

        wall_start = time.perf_counter()
        wall_before = self.state["wall_time_s"]
        bar = tqdm(
            total=total,
            initial=start_step,
            disable=not self.progress,
            unit="step",
            desc=config.run_name,
            dynamic_ncols=True,
        )
        step = start_step
        next_checkpoint = (step // config.checkpoint_every + 1) * config.checkpoint_every
        epoch_start = time.perf_counter()
        epoch_first_step = step
        try:
            while iterator is not None and step < total:
                epoch_end = min((step // spe + 1) * spe, total)
                n = min(config.steps_per_execution, epoch_end - step)
                call_start = time.perf_counter()
                loss = float(run_steps(iterator, tf.constant(n, tf.int32)))
                seconds = time.perf_counter() - call_start
                if not math.isfinite(loss):
                    self.state["wall_time_s"] = wall_before + time.perf_counter() - wall_start
                    self.on_divergence(loss, step + n)
                step += n
                self.state["step"] = step
                self.state["epoch_loss_sum"] += loss * n
                self.state["epoch_loss_steps"] += n
                bar.update(n)
                bar.set_postfix(loss=f"{loss:.4g}", patches_s=f"{n * global_batch / seconds:.0f}")
                if writer is not None:
                    with writer.as_default():
                        write_scalar("train/loss", loss, step=step)
                        write_scalar("train/learning_rate", self.current_learning_rate(), step=step)
                self.state["wall_time_s"] = wall_before + time.perf_counter() - wall_start
                if step == epoch_end:
                    elapsed = time.perf_counter() - epoch_start
                    patches = (step - epoch_first_step) * global_batch
                    self.end_epoch(step, elapsed, patches, val_images, writer, n_train, n_val)
                    next_checkpoint = (
                        step // config.checkpoint_every + 1
                    ) * config.checkpoint_every
                    self.checkpoint()
                    # The next epoch's time (patches_per_second) counts its training only: this
                    # epoch's validation, model save and checkpoint are left out.
                    epoch_start, epoch_first_step = time.perf_counter(), step
                    if self.state["stopped_early"]:
                        break
                elif step >= next_checkpoint:
                    next_checkpoint = (
                        step // config.checkpoint_every + 1
                    ) * config.checkpoint_every
                    self.checkpoint()
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return self.finish(n_train, n_val, start_step)

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
            psnr, ssim = evaluation.validation_scores(
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
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = prepare_out_dir(config, out_dir, force=force, chief=chief)
    trainer = _Trainer(config, strategy, progress=progress)
    outputs = {trainer.input_kind, trainer.teacher_kind or trainer.input_kind}
    data = config.data
    train_images = pipeline.load_training_images(
        data.train_sets,
        scale=config.scale,
        track=config.track,
        data_dir=data.data_dir,
        split=data.train_split,
        seed=config.seed,
        variants=data.variants,
        with_bicubic="bicubic" in outputs,
        limit=data.train_limit,
        min_size=data.patch_size,
        holdout=data.holdout,
    )
    val_images = pipeline.load_validation_images(
        data.val_sets,
        scale=config.scale,
        track=config.track,
        data_dir=data.data_dir,
        split=data.val_split,
        limit=data.val_limit,
        holdout_set=data.train_sets[-1],
        holdout=data.holdout,
        holdout_split=data.train_split,
    )
    return trainer.run(train_images, val_images, resume=resume)
