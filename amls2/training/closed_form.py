"""The closed-form parts of a run: least-squares filter banks solved from the training pairs.

Every :class:`~amls2.models.layers.LinearPhases` layer built with ``closed_form=True`` (the
``linear`` model, and the "linear" image skip of the other models) is solved from the run's
training images before the first step (:mod:`amls2.training.linear_fit`) and is not trained. A
model made of nothing else (``linear``) is solved, not trained: the ridge weight is chosen on the
validation images (the held-out training images), never on a reported test set. For a network
with a linear skip, the layer that feeds the skip's ``Add`` is zeroed as well, so the run starts
exactly at the linear fit whatever ``--init-from`` copied, and the network learns the residual
over the best linear estimate rather than over a misaligned bicubic one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from amls2.training.linear_fit import DEFAULT_RIDGE, NormalEquations, accumulate

log = logging.getLogger(__name__)

# Ridge weights tried when a closed-form model is solved (relative to the Gram matrix's mean
# diagonal); the held-out images pick one.
RIDGE_CANDIDATES: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3)


def closed_form_layers(model) -> list:
    """The model's ``LinearPhases`` / ``PolyphaseLinear`` layers whose filters are solved, not
    trained."""
    from amls2.models.phase_layers import LinearPhases, PolyphaseLinear

    return [
        layer
        for layer in model.layers
        if isinstance(layer, LinearPhases | PolyphaseLinear)
        and getattr(layer, "closed_form", False)
    ]


def _split(layer) -> int:
    """How a layer's source is split before its filters: a ``PolyphaseLinear`` reads the
    ``scale * scale`` phases of its HR-size input at LR size."""
    from amls2.models.phase_layers import PolyphaseLinear

    return layer.scale if isinstance(layer, PolyphaseLinear) else 1


def is_closed_form(model) -> bool:
    """True if every weight of ``model`` belongs to a closed-form layer (nothing to train)."""
    solved = {id(w) for layer in closed_form_layers(model) for w in layer.weights}
    return bool(solved) and all(id(w) in solved for w in model.weights)


def _source_target_pairs(train_images, input_kind: str) -> Iterator[tuple[Any, Any]]:
    """(model input, HR) for every LR version of every training image."""
    for i, hr in enumerate(train_images.hr):
        sources = train_images.bicubic[i] if input_kind == "bicubic" else train_images.lr[i]
        for source in sources:
            yield source, hr


def normal_equations(layer, train_images, input_kind: str) -> NormalEquations:
    """The least-squares system of ``layer``'s filter bank over the training images."""
    if input_kind == "bicubic" and train_images.bicubic is None:
        raise ValueError("a bicubic-input model needs the training images' bicubic upscales")
    return accumulate(
        _source_target_pairs(train_images, input_kind),
        factor=layer.scale,
        kernel_size=layer.kernel_size,
        split=_split(layer),
    )


def set_filters(layer, filters: np.ndarray) -> None:
    """Load solved filters into ``layer``, the same for every colour: ``(s*s, k, k)`` for a
    ``LinearPhases``, ``(s*s, s*s, k, k)`` for a ``PolyphaseLinear``."""
    from amls2.models.phase_layers import phase_kernel_from_filters, polyphase_kernel_from_filters

    if filters.ndim == 4:
        channels = int(layer.kernel.shape[2]) // filters.shape[1]
        layer.kernel.assign(polyphase_kernel_from_filters(filters, channels))
    else:
        layer.kernel.assign(phase_kernel_from_filters(filters, int(layer.kernel.shape[2])))


def fit_closed_form_layers(
    model, train_images, input_kind: str, *, ridge: float = DEFAULT_RIDGE
) -> dict[str, NormalEquations]:
    """Solve every closed-form layer of ``model`` from the training images (in place); returns
    the normal equations by layer name (to re-solve with another ridge weight)."""
    systems = {}
    for layer in closed_form_layers(model):
        systems[layer.name] = normal_equations(layer, train_images, input_kind)
        set_filters(layer, systems[layer.name].solve(ridge))
        log.info(
            "%s: %d x %d filters x %d phases solved from %d pixels",
            layer.name,
            layer.kernel_size,
            layer.kernel_size,
            layer.scale**2,
            systems[layer.name].rows,
        )
    return systems


def _producers(model) -> dict[int, Any]:
    """The layer that makes each symbolic tensor of ``model``'s graph, by the tensor's id (every
    layer here is called once, so ``layer.output`` is its one output)."""
    return {id(layer.output): layer for layer in model.layers}


def _is_skip_path(tensor, skips: set[int], producers: dict[int, Any]) -> bool:
    """True if ``tensor`` is a closed-form layer's output (possibly pixel-shuffled)."""
    from amls2.models.phase_layers import PixelShuffle

    layer = producers[id(tensor)]
    if isinstance(layer, PixelShuffle):
        layer = producers[id(layer.input)]
    return id(layer) in skips


def _weighted_producer(tensor, producers: dict[int, Any]):
    """The nearest layer with weights upstream of ``tensor`` along single-input layers."""
    layer = producers[id(tensor)]
    while not layer.weights and not isinstance(layer.input, list | tuple):
        if id(layer.input) not in producers:  # the model's input
            return None
        layer = producers[id(layer.input)]
    return layer if layer.weights else None


def zero_residual_heads(model) -> list[str]:
    """Zero the layer feeding each closed-form skip's ``Add`` (its residual head), so the
    model's output is exactly the skip's. Returns the zeroed layers' names."""
    import keras

    skips = {id(layer) for layer in closed_form_layers(model)}
    producers = _producers(model)
    zeroed = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Add):
            continue
        inputs = list(layer.input)
        if not any(_is_skip_path(t, skips, producers) for t in inputs):
            continue
        for tensor in inputs:
            on_skip = _is_skip_path(tensor, skips, producers)
            head = None if on_skip else _weighted_producer(tensor, producers)
            if head is not None:
                for weight in head.weights:
                    weight.assign(np.zeros(weight.shape, weight.dtype))
                zeroed.append(head.name)
    return zeroed


def choose_ridge(
    model,
    systems: dict[str, NormalEquations],
    val_images: Sequence[Any],
    *,
    scale: int,
    input_kind: str,
) -> tuple[float, dict[str, float], tuple[float | None, float | None]]:
    """Re-solve with each of :data:`RIDGE_CANDIDATES` and keep the best validation PSNR (the
    ``y`` protocol, whole images). Returns (ridge, PSNR by ridge, (PSNR, SSIM) of the chosen
    one). Without validation images: :data:`DEFAULT_RIDGE`, unscored."""
    from amls2.evaluation.scoring import validation_scores

    layers = {layer.name: layer for layer in closed_form_layers(model)}
    if not val_images:
        return DEFAULT_RIDGE, {}, (None, None)
    scores = {}
    for ridge in RIDGE_CANDIDATES:
        for name, system in systems.items():
            set_filters(layers[name], system.solve(ridge))
        scores[ridge] = validation_scores(model, val_images, scale=scale, input_kind=input_kind)
    best = max(scores, key=lambda ridge: scores[ridge][0])
    for name, system in systems.items():
        set_filters(layers[name], system.solve(best))
    by_ridge = {f"{ridge:g}": round(psnr, 4) for ridge, (psnr, _) in scores.items()}
    return best, by_ridge, scores[best]


def start_at_linear_fit(model, train_images, input_kind: str) -> dict[str, NormalEquations]:
    """Solve the model's closed-form filter banks (a linear skip) from the training images and
    zero the heads that feed them, so the model's output is the linear fit's. Returns the normal
    equations by layer name (none for a model without closed-form layers)."""
    if not closed_form_layers(model):
        return {}
    systems = fit_closed_form_layers(model, train_images, input_kind)
    zeroed = zero_residual_heads(model)
    log.info("linear skip solved; residual head(s) zeroed: %s", ", ".join(zeroed) or "none")
    return systems


def solve_run(trainer, train_images, val_images):
    """A model with nothing to train (``linear``), run by the engine's ``trainer``: solve it,
    choose the ridge weight on the validation images, save it as a one-row run; the
    ``TrainResult`` says ``closed_form``."""
    import dataclasses
    import time

    from amls2.training.run_folder import HISTORY_NAME, write_history

    scale, kind = trainer.config.scale, trainer.input_kind
    counts = (len(train_images), len(val_images))
    start = time.perf_counter()
    systems = start_at_linear_fit(trainer.model, train_images, kind)
    model = trainer.synced_float32_model()
    ridge, by_ridge, (psnr, ssim) = choose_ridge(
        model, systems, val_images, scale=scale, input_kind=kind
    )
    trainer.model.set_weights(model.get_weights())
    elapsed = time.perf_counter() - start
    row = {"epoch": 1, "step": 0, "loss": None, "learning_rate": None, "val_psnr": psnr}
    row |= {"val_ssim": ssim, "seconds": round(elapsed, 3), "patches_per_second": None}
    trainer.state.update(
        best_psnr=psnr, best_ssim=ssim, best_epoch=1, wall_time_s=elapsed, step=0, history=[row]
    )
    trainer.closed_form_facts = {
        "solver": "ridge least squares (normal equations streamed over the images)",
        "ridge": ridge,
        "val_psnr_by_ridge": by_ridge,
        "pixels": {name: system.rows for name, system in systems.items()},
    }
    trainer.best_weights = [np.array(w) for w in trainer.model.get_weights()]
    trainer.save_best_model(*counts)
    if trainer.chief:
        write_history(trainer.out_dir / HISTORY_NAME, trainer.state["history"])
    return dataclasses.replace(trainer.finish(*counts, 0), closed_form=True)
