"""What a run trains: the model in its dtype policy, the optimiser and schedule, weights copied
from another model (``--init-from``) and the distillation teacher. Keras and the registry are
imported inside the functions, so that ``import amls2.training`` stays light."""

from __future__ import annotations

import logging
from typing import Any

from amls2.errors import ModelError
from amls2.training.config import TrainConfig

log = logging.getLogger(__name__)


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
    """The layers with weights, the closed-form ones (solved from the data, never copied by
    position) last, so that adding a linear skip does not shift the pairing of the others."""
    from amls2.training.closed_form import closed_form_layers

    solved = {id(layer) for layer in closed_form_layers(model)}
    weighted = [layer for layer in model.layers if layer.weights]
    return [x for x in weighted if id(x) not in solved] + [x for x in weighted if id(x) in solved]


def _activation(layer) -> str | None:
    """The activation a layer applies after its weights (None for layers without one)."""
    return layer.get_config().get("activation")


def load_matching_weights(model, path: str) -> tuple[list[str], list[str]]:
    """Copy weights from the saved model at ``path`` layer by layer where the shapes match.

    Layers are paired by position among the layers that have weights (auto-generated layer
    names differ between processes); the typical use is fine-tuning x3/x4 from x2, where only the
    upsampling layers differ. Returns (loaded, skipped) layer names, both logged; a warning names
    the loaded layers whose activation differs from the source's. ModelError if no layer
    matches.
    """
    from amls2.models.io import load_model

    source, _ = load_model(path)
    loaded, skipped, changed = [], [], []
    src_layers = _weighted_layers(source)
    for i, layer in enumerate(_weighted_layers(model)):
        src = src_layers[i] if i < len(src_layers) else None
        shapes = [tuple(w.shape) for w in layer.weights]
        if src is not None and [tuple(w.shape) for w in src.weights] == shapes:
            layer.set_weights(src.get_weights())
            loaded.append(layer.name)
            if _activation(src) != _activation(layer):
                changed.append(f"{layer.name} ({_activation(src)} -> {_activation(layer)})")
        else:
            skipped.append(layer.name)
    if not loaded:
        raise ModelError(f"--init-from {path}: no layer of it fits model {model.name}")
    if changed:
        # Same shapes, other meaning: e.g. a residual head copied into a sigmoid reconstructor
        # when the source was built with other hparams (measured: such a start never recovered).
        log.warning(
            "--init-from %s: copied into layers with another activation: %s; was the source "
            "built with the same hparams?",
            path,
            ", ".join(changed),
        )
    log.info(
        "--init-from %s: loaded %d layer(s); skipped (shape mismatch): %s",
        path,
        len(loaded),
        ", ".join(skipped) or "none",
    )
    return loaded, skipped


def model_input_kind(model_name: str) -> str:
    """What the registered model eats: "lr" or "bicubic"."""
    from amls2.models import get_spec

    return get_spec(model_name).input_kind


def load_teacher(config: TrainConfig):
    """The distillation teacher and its input kind ("lr" or "bicubic")."""
    from amls2.models.io import load_model

    teacher, sidecar = load_model(config.distill.teacher, scale=config.scale, track=config.track)
    kind = sidecar.get("input_kind")
    if kind is None and sidecar.get("name"):
        kind = model_input_kind(sidecar["name"])
    if kind not in ("lr", "bicubic"):
        raise ModelError(f"--teacher {config.distill.teacher}: sidecar has no usable input_kind")
    teacher.trainable = False
    return teacher, kind


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
