"""The compiled training step: forward, loss over the GLOBAL batch, gradients, update, for
several steps per ``tf.function`` call (a graph loop over the iterator). Imports TensorFlow; the
engine imports it when a run starts."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


def use_xla(jit_compile: bool | None) -> bool:
    """``jit_compile`` if set, else XLA only when a GPU is visible (slower on CPUs)."""
    if jit_compile is not None:
        return bool(jit_compile)
    return bool(tf.config.list_logical_devices("GPU"))


def try_xla(loss_and_grads, *, batch: int, probe_shapes: tuple[int, int], model_name: str):
    """``loss_and_grads`` XLA-compiled if XLA can compile it, else unchanged (logged).

    Probed once on a zero batch of the training shape (``probe_shapes``: input and target side;
    computing gradients only, nothing is applied): some gradients (e.g. MaxPool's) have no
    deterministic XLA kernel, and a failure inside the training loop would be too late to fall
    back.
    """
    side, target_side = probe_shapes
    x = tf.zeros([batch, side, side, 3], tf.float32)
    y = tf.zeros([batch, target_side, target_side, 3], tf.float32)
    compiled = tf.function(loss_and_grads, jit_compile=True)
    try:
        compiled(x, y)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        reason = str(exc).strip().splitlines()[0]
        log.warning(
            "jit_compile: XLA cannot compile %s (%s); running without XLA", model_name, reason
        )
        return loss_and_grads
    return compiled


def make_step_function(
    model,
    optimizer,
    strategy,
    loss_fn,
    *,
    input_key: str,
    global_batch: int,
    teacher=None,
    teacher_key: str | None = None,
    alpha: float = 0.0,
    jit_compile: bool | None = None,
    probe_shapes: tuple[int, int],
    model_name: str,
):
    """``run_steps(iterator, n) -> mean loss`` running ``n`` distributed steps in-graph.

    The loss is averaged over the GLOBAL batch (replicas' gradients are summed by the
    optimiser); with a teacher the target is ``alpha * teacher + (1 - alpha) * HR``; with a
    ``LossScaleOptimizer`` (float16 compute) the scaled loss is differentiated and the
    optimiser unscales.
    """
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def loss_and_grads(x, target):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_example = loss_fn(target, tf.cast(pred, tf.float32))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            objective = optimizer.scale_loss(loss) if scaled else loss
        return loss, tape.gradient(objective, model.trainable_variables)

    if use_xla(jit_compile):
        batch = global_batch // strategy.num_replicas_in_sync
        loss_and_grads = try_xla(
            loss_and_grads, batch=batch, probe_shapes=probe_shapes, model_name=model_name
        )

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
