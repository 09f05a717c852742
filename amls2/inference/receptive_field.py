"""Receptive field and stride of a model, measured on probes: what tiled inference needs.

Tiled inference (``amls2.inference.upscaler``) widens each tile by an overlap of at least the model's
receptive field, because interior tile borders see zero "same" padding where the whole image
would see real pixels; with that overlap the tiled result equals whole-image inference (up to
float round-off). Tile origins are multiples of the model's total stride (max-pooling, strided
convolutions), so that the pooling grids of tiles coincide with the whole image's. Both are
measured once per model and cached (dropped with the model). Keras is imported by the probes
only, not with this module.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from amls2.config import check_input_kind
from amls2.inference.model_call import model_channels, run_batch

log = logging.getLogger(__name__)

# MATLAB's bicubic kernel has support 4, i.e. it reads 2 LR pixels on each side of a sample.
BICUBIC_RADIUS_LR = 2
# Receptive-field probe: start size (input-domain pixels) and the largest size tried before the
# field is declared unbounded (global pooling / attention).
_RF_PROBE_START = 48
_RF_PROBE_MAX = 384
# An output change larger than this (in [0, 1] units) counts as a dependency; smaller ones are
# float round-off of the convolution algorithms.
_RF_TOLERANCE = 1e-6

# Per-model caches, dropped with the model.
_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ALIGNMENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- stride


def _downsampling_stride(layer) -> int:
    """Spatial stride of a layer that shrinks its input (conv/pooling), else 1."""
    name = type(layer).__name__
    if "Transpose" in name or "UpSampling" in name:
        return 1
    strides = getattr(layer, "strides", None)
    if strides is None:
        return 1
    values = (strides,) if isinstance(strides, int) else tuple(strides)
    return max((int(v) for v in values[:2]), default=1)


def model_stride(model) -> int:
    """Alignment (in model-input pixels) that tile origins and sizes need for pooling grids to match.

    For every downsampling layer (max-pooling, strided convolution) its input resolution relative
    to the model input is measured on a probe; a stride ``s`` applied at relative resolution ``r``
    needs origins that are multiples of ``s / r`` (e.g. IUD-SRCNN pools by ``scale`` after
    upsampling by ``scale``: alignment 1). Falls back to the product of all strides (always a valid,
    if coarser, alignment) when the layer inputs cannot be probed. Cached per model.
    """
    cached = _ALIGNMENTS.get(model)
    if cached is not None:
        return cached
    strided = [(layer, s) for layer in model.layers if (s := _downsampling_stride(layer)) > 1]
    nested = any(_downsampling_stride(layer) > 1 for layer in _all_layers(model)) and not strided
    if not strided and not nested:
        align = 1
    else:
        product = math.prod(_downsampling_stride(layer) for layer in _all_layers(model)) or 1
        try:
            align = _probe_alignment(model, strided) if not nested else product
        except Exception as exc:  # noqa: BLE001 - any probing failure falls back to the safe bound
            log.debug("alignment probe failed (%s); using the stride product %d", exc, product)
            align = product
    _ALIGNMENTS[model] = max(int(align), 1)
    return _ALIGNMENTS[model]


def _probe_alignment(model, strided: list[tuple[Any, int]]) -> int:
    import keras

    # Divisible by every stride (and a few nested poolings of each) without growing with depth:
    # the product of all strides can be huge (RFDN: 6 per block).
    strides = [s for _, s in strided]
    probe_size = 16 * math.lcm(*strides)
    while probe_size < 64:
        probe_size *= 2
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [layer.input for layer, _ in strided])
    x = np.zeros((1, probe_size, probe_size, model_channels(model)), dtype=np.float32)
    outputs = probe(x, training=False)
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    align = 1
    for (_, stride), tensor in zip(strided, outputs, strict=True):
        relative = tensor.shape[1] / probe_size
        align = math.lcm(align, max(1, round(stride / relative)))
    return align


def _all_layers(model) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


# ----------------------------------------------------------------------------- receptive field


def input_domain_field(model) -> int:
    """Receptive-field radius of ``model`` in its own input pixels, measured empirically (cached).

    Measured on a *structural probe*: a clone of the model with every kernel positive (so no ReLU
    is dead and no path cancels; trained weights can hide a dependency for one input but not for
    another), biases zero and batch norm the identity. An all-zero input and a copy whose centre
    block of ``align`` x ``align`` pixels (all pooling phases) is 1 run as one batch; output
    pixels that differ depend on the block, and their largest distance from it, in input cells, is
    the radius (+ ``align - 1``: cells of one block may reach further than the block edge shows).
    If the change reaches the probe border the probe grows (x1.5); still reaching it at
    ``_RF_PROBE_MAX`` means unbounded (global pooling / attention): half the probe is
    returned with a warning (tiles then only approximate whole-image inference). Models that
    cannot be cloned are probed as they are, with random inputs.
    """
    cached = _FIELDS.get(model)
    if cached is not None:
        return cached
    align = model_stride(model)
    try:
        probe, structural = _structural_clone(model), True
    except Exception as exc:  # noqa: BLE001 - subclassed/unusual models: probe the model itself
        log.debug("structural probe unavailable (%s); probing the model with random inputs", exc)
        probe, structural = model, False
    size = _RF_PROBE_START
    while True:
        size = int(math.ceil(size / (2 * align)) * 2 * align)
        radius, status = _probe_radius(probe, size, align, structural)
        if status == "inside":
            break
        # A field still reaching the border of the largest probe is taken as unbounded. (A
        # probe changed everywhere is no proof of a global operation: a large field does it.)
        if size >= _RF_PROBE_MAX:
            log.warning(
                "receptive field of %s is unbounded or exceeds %d px (global operations?): tiled "
                "inference only approximates whole-image inference",
                getattr(model, "name", "model"),
                size // 2,
            )
            radius = size // 2
            break
        size = int(size * 1.5)
    radius += align - 1
    _FIELDS[model] = radius
    return radius


# Layers replaced in the structural probe: products can hide a dependency behind a zero factor
# (Add keeps the union of supports); constant offsets would make the zero baseline non-zero.
_PROBE_AS_ADD = ("Multiply", "Subtract")
_PROBE_AS_IDENTITY = ("MeanShift", "Rescaling")
# Activations that are not zero at zero: made linear (positive signals need no other change:
# ReLU, LeakyReLU, PReLU are the identity on them, tanh keeps zero at zero).
_PROBE_LINEARISED = ("sigmoid", "hard_sigmoid", "softplus", "exponential")


def _probe_layer(layer):
    import keras

    kind = type(layer).__name__
    if kind in _PROBE_AS_ADD:
        return keras.layers.Add(name=layer.name)
    if kind in _PROBE_AS_IDENTITY:
        return keras.layers.Identity(name=layer.name)
    config = layer.get_config()
    if config.get("activation") in _PROBE_LINEARISED:
        config["activation"] = "linear"
    return layer.__class__.from_config(config)


def _structural_clone(model):
    """A zero-preserving, all-positive copy of ``model`` whose output support is its dependence.

    Kernels are positive (``1 / (2 fan_in)``: about x1/2 per layer along the outermost path, so
    nothing underflows over tens of layers), biases zero, batch norm the identity, offsets and
    sigmoids removed, products turned into sums. A zero input then gives exactly zero, and a
    non-zero pixel changes exactly the outputs that depend on it for some weights and inputs.
    """
    import keras

    clone = keras.models.clone_model(model, clone_function=_probe_layer)
    for layer in clone.layers:
        transpose = "Transpose" in type(layer).__name__
        values = []
        for weight in layer.weights:
            shape = tuple(int(d) for d in weight.shape)
            name = weight.name.split("/")[-1].split(":")[0]
            if name in ("moving_variance", "gamma"):
                value = np.ones(shape, np.float32)
            elif name in ("bias", "beta", "moving_mean") or len(shape) < 2:
                value = np.full(shape, 0.25 if name == "alpha" else 0.0, np.float32)
            else:
                fan_in = shape[-1] if transpose else shape[-2]
                value = np.full(shape, 1.0 / (2.0 * max(fan_in, 1)), np.float32)
            values.append(value)
        if values:
            layer.set_weights(values)
    return clone


def _probe_radius(probe, size: int, align: int, structural: bool) -> tuple[int, str]:
    """Radius seen on one probe size; status "inside", "border" (grow) or "everywhere"."""
    channels = model_channels(probe)
    centre = (size // (2 * align)) * align
    block = slice(centre, centre + align)
    rng = np.random.default_rng(0)
    trials = 1 if structural else 3
    radius, status = 0, "inside"
    for _ in range(trials):
        if structural:
            # The clone maps zero to exactly zero: the response to the block alone is the change.
            x = np.zeros((1, size, size, channels), np.float32)
            x[0, block, block] = 1.0
            diff = np.abs(run_batch(probe, x, fast=False)[0]).max(axis=-1)
        else:
            x = rng.random((2, size, size, channels), dtype=np.float32)
            x[1] = x[0]
            x[1, block, block] = rng.random((align, align, channels), dtype=np.float32)
            y = run_batch(probe, x, fast=False)
            diff = np.abs(y[0] - y[1]).max(axis=-1)
        factor = max(1, diff.shape[0] // size)
        changed = ~(diff <= (0.0 if structural else _RF_TOLERANCE))  # NaN counts as changed
        if changed.all():
            return size // 2, "everywhere"
        rows, cols = np.nonzero(changed)
        if rows.size == 0:
            continue
        for cells in (rows // factor, cols // factor):
            radius = max(radius, int(centre - cells.min()), int(cells.max() - (centre + align - 1)))
            if cells.min() == 0 or cells.max() == size - 1:
                status = "border"
    return radius, status


def receptive_field(model, *, scale: int, input_kind: str = "lr") -> int:
    """Receptive-field radius of ``model`` in LR pixels (measured once per model, then cached).

    An SR pixel depends on LR pixels at most this many pixels away from the LR pixel it lies in.
    For ``"bicubic"`` models the network radius (in upscaled pixels) is converted to LR pixels and
    the bicubic kernel's own 2-pixel reach is added.
    """
    check_input_kind(input_kind)
    radius = input_domain_field(model)
    if input_kind == "lr":
        return radius
    return int(math.ceil(radius / scale)) + BICUBIC_RADIUS_LR
