"""Running a super-resolution model on an image: whole-image or tiled, optional x8 self-ensemble.

Images are float32 HxWx3 RGB in [0, 1]. ``super_resolve`` maps an LR image to an SR image ``scale``
times larger, clipped to [0, 1]. Models come in two input kinds (see ``amls2.models``):

* ``"lr"``: the network takes the LR image and upsamples it itself;
* ``"bicubic"``: the network takes the LR image upscaled by MATLAB-exact bicubic on floats
  (``images.imresize``, no rounding) and returns an image of the same size.

Tiled inference (``tile=N`` LR pixels) bounds memory by the tile size: tiles of one size are run in
batches and only the central part of each tile's output is copied into one preallocated output
array. Because interior tile borders see zero "same" padding where the whole image would see real
pixels, each tile is widened by an overlap of at least the model's receptive field, which makes the
tiled result equal to whole-image inference (up to float round-off). For the ``"bicubic"`` input
kind the whole LR image is upscaled first (cheap, and exact at tile borders) and tiles are cut in
the upscaled domain; tile and overlap are still given in LR pixels and multiplied by the scale.
Tile origins are multiples of the model's total stride (max-pooling / strided convolutions), so
that pooling grids of tiles coincide with the whole image's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from amls2 import config as amls2_config
from amls2.errors import ConfigError, ImageError, MissingWeightsError, ModelError

log = logging.getLogger(__name__)

INPUT_KINDS: tuple[str, ...] = ("lr", "bicubic")
BICUBIC = "bicubic"
# Weight files load_upscaler accepts as a path.
WEIGHT_SUFFIXES: tuple[str, ...] = (".keras", ".h5")
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
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ALIGNMENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- model plumbing


def _check_input_kind(input_kind: str) -> str:
    if input_kind not in INPUT_KINDS:
        raise ConfigError(f"input_kind {input_kind!r}: unknown; valid: {list(INPUT_KINDS)}")
    return input_kind


def model_channels(model) -> int:
    """Number of input channels the model expects (last axis of its input shape)."""
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else model.input_shape
    channels = shape[-1]
    return int(channels) if channels is not None else 3


def _compiled_call(model) -> Callable:
    """``model(x, training=False)`` as a tf.function with a [None, None, None, C] signature.

    One signature for every batch and tile size means one trace per model instead of one per
    shape (``model.predict`` would also rebuild its data pipeline for every tile).
    """
    fn = _COMPILED.get(model)
    if fn is None:
        import tensorflow as tf

        channels = model_channels(model)

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
            reduce_retracing=True,
        )
        def call(x):
            return model(x, training=False)

        fn = call
        _COMPILED[model] = fn
    return fn


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


def _run_batch(model, batch: np.ndarray) -> np.ndarray:
    """Run the compiled model on a float32 NHWC batch and return a numpy array."""
    import tensorflow as tf

    out = _compiled_call(model)(tf.constant(batch, dtype=tf.float32))
    # .numpy() gives a writable array (np.asarray of an EagerTensor is a read-only view).
    return out.numpy().astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- input preparation


def _check_image(lr: np.ndarray) -> np.ndarray:
    lr = np.asarray(lr)
    if lr.ndim != 3 or lr.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {lr.shape}")
    if lr.shape[0] < 1 or lr.shape[1] < 1:
        raise ImageError(f"empty image of shape {lr.shape}")
    return lr.astype(np.float32, copy=False)


def model_input(lr: np.ndarray, *, scale: int, input_kind: str = "lr") -> np.ndarray:
    """The array fed to the network: the LR image itself, or its MATLAB-exact bicubic upscale.

    For ``"bicubic"`` models the upscale is done on floats with no rounding (``images.imresize``),
    matching how their training inputs were made. Returns float32 HxWx3.
    """
    _check_input_kind(input_kind)
    lr = _check_image(lr)
    if input_kind == "lr":
        return lr
    from amls2 import images

    return images.bicubic_upscale_float(lr, scale)


def _to_model_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """RGB -> what the model expects: 3 channels as is, 1 channel as luma in [0, 1]."""
    if channels == 3:
        return x
    if channels == 1:
        # BT.601 luma (as rgb2ycbcr, rescaled to [0, 1]) for single-channel networks.
        from amls2 import images

        y = (np.asarray(images.rgb_to_y(x), dtype=np.float32) - 16.0) / 219.0
        return y[..., None]
    raise ModelError(f"model expects {channels} input channels; only 1 or 3 are supported")


# ----------------------------------------------------------------------------- receptive field


def _input_domain_field(model) -> int:
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
            diff = np.abs(_run_batch(probe, x)[0]).max(axis=-1)
        else:
            x = rng.random((2, size, size, channels), dtype=np.float32)
            x[1] = x[0]
            x[1, block, block] = rng.random((align, align, channels), dtype=np.float32)
            y = _run_batch(probe, x)
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
    _check_input_kind(input_kind)
    radius = _input_domain_field(model)
    if input_kind == "lr":
        return radius
    return int(math.ceil(radius / scale)) + BICUBIC_RADIUS_LR


# ----------------------------------------------------------------------------- tiling


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile along one axis, in model-input pixels: read ``[start, start + size)``, keep
    ``[keep_start, keep_stop)`` of it (absolute coordinates)."""

    start: int
    size: int
    keep_start: int
    keep_stop: int


def tile_axis(length: int, tile: int, overlap: int, align: int = 1) -> list[Tile]:
    """Cut one axis of ``length`` pixels into tiles of ``tile`` pixels overlapping by ``overlap``.

    Tiles have one size (so they batch); origins advance by ``tile - 2*overlap`` rounded down to a
    multiple of ``align``, and the last tile is placed flush with the border instead of being
    padded (padding would differ from the zero "same" padding the whole image sees). The kept
    parts partition ``[0, length)`` and each one is at least ``overlap`` pixels from the borders of
    its tile, except at the image borders.
    """
    if tile >= length:
        return [Tile(0, length, 0, length)]
    step = (tile - 2 * overlap) // align * align
    if step <= 0:
        raise ConfigError(
            f"--tile {tile}: too small for an overlap of {overlap} px on each side "
            f"(needs more than {2 * overlap + align - 1} px)"
        )
    starts = [0]
    while starts[-1] + tile < length:
        nxt = starts[-1] + step
        starts.append(nxt if nxt + tile <= length else length - tile)
    keep = [0] + [s + overlap for s in starts[1:]] + [length]
    return [Tile(s, tile, keep[i], keep[i + 1]) for i, s in enumerate(starts)]


def _run_tiled(
    model,
    x: np.ndarray,
    *,
    factor: int,
    tile: int,
    overlap: int,
    batch_size: int,
    progress: bool,
    out: np.ndarray,
) -> np.ndarray:
    """Tiled inference of ``x`` (HxWxC model input) into the preallocated ``out`` (float32)."""
    from tqdm import tqdm

    align = model_stride(model)
    tile = int(math.ceil(tile / align) * align)
    rows = tile_axis(x.shape[0], tile, overlap, align)
    cols = tile_axis(x.shape[1], tile, overlap, align)
    jobs = [(r, c) for r in rows for c in cols]
    bar = tqdm(total=len(jobs), desc="tiles", unit="tile", disable=not progress, leave=False)
    try:
        for first in range(0, len(jobs), max(1, batch_size)):
            chunk = jobs[first : first + max(1, batch_size)]
            batch = np.stack(
                [x[r.start : r.start + r.size, c.start : c.start + c.size] for r, c in chunk]
            )
            result = _run_batch(model, batch)
            for (r, c), tile_out in zip(chunk, result, strict=True):
                _paste(out, tile_out, r, c, factor)
            bar.update(len(chunk))
    finally:
        bar.close()
    return out


def _paste(out: np.ndarray, tile_out: np.ndarray, r: Tile, c: Tile, factor: int) -> None:
    """Copy the kept (central) part of one tile's output into ``out``."""
    src_r = slice((r.keep_start - r.start) * factor, (r.keep_stop - r.start) * factor)
    src_c = slice((c.keep_start - c.start) * factor, (c.keep_stop - c.start) * factor)
    dst_r = slice(r.keep_start * factor, r.keep_stop * factor)
    dst_c = slice(c.keep_start * factor, c.keep_stop * factor)
    out[dst_r, dst_c] = tile_out[src_r, src_c]


def _run_network(
    model,
    x: np.ndarray,
    *,
    factor: int,
    tile: int | None,
    overlap: int,
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """Network output (unclipped float32, (H*factor)x(W*factor)xC') for one model input."""
    if not tile or (tile >= x.shape[0] and tile >= x.shape[1]):
        result = _run_batch(model, x[None])[0]
        _check_output_shape(result, x, factor)
        return result
    out_channels = _output_channels(model) or 3
    out = np.empty((x.shape[0] * factor, x.shape[1] * factor, out_channels), dtype=np.float32)
    return _run_tiled(
        model,
        x,
        factor=factor,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        progress=progress,
        out=out,
    )


def _output_channels(model) -> int | None:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return int(shape[-1]) if shape is not None and shape[-1] is not None else None


def _check_output_shape(result: np.ndarray, x: np.ndarray, factor: int) -> None:
    expected = (x.shape[0] * factor, x.shape[1] * factor)
    if result.shape[:2] != expected:
        raise ModelError(
            f"model output is {result.shape[0]}x{result.shape[1]} for a {x.shape[0]}x{x.shape[1]} "
            f"input, expected {expected[0]}x{expected[1]} (wrong scale or input kind?)"
        )


# ----------------------------------------------------------------------------- self-ensemble

# The 8 symmetries of the square: k quarter-turns, then an optional left-right flip.
ENSEMBLE_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple(
    (k, flip) for flip in (False, True) for k in range(4)
)


def _forward(img: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(img, k, axes=(0, 1))
    return out[:, ::-1] if flip else out


def _inverse(img: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = img[:, ::-1] if flip else img
    return np.rot90(out, -k, axes=(0, 1))


# ----------------------------------------------------------------------------- public entry point


def super_resolve(
    model,
    lr: np.ndarray,
    *,
    scale: int,
    input_kind: str = "lr",
    tile: int | None = None,
    overlap: int | None = None,
    self_ensemble: bool = False,
    batch_size: int = 4,
    progress: bool = False,
) -> np.ndarray:
    """Super-resolve ``lr`` (float32 HxWx3 RGB in [0, 1]) into (H*scale)x(W*scale)x3, clipped to [0, 1].

    ``tile`` and ``overlap`` are in LR pixels; ``tile=None`` runs the whole image at once. The
    default overlap is the model's measured receptive field, which makes tiled output equal to
    whole-image output. ``self_ensemble`` averages the 8 flips/rotations (each inverted back)
    before clipping. ``batch_size`` tiles run per model call; ``progress`` shows a tqdm bar.
    Single-channel models see the BT.601 luma; their output replaces the luma of the bicubic
    upscale (the usual Y-channel SRCNN practice).
    """
    _check_input_kind(input_kind)
    if overlap is not None and int(overlap) < 0:  # a negative overlap breaks the tile pasting
        raise ConfigError(f"--tile-overlap {overlap}: must be 0 or more")
    if tile is not None and int(tile) <= 0:
        tile = None
    x = model_input(lr, scale=scale, input_kind=input_kind)
    factor = scale if input_kind == "lr" else 1
    channels = model_channels(model)
    x_model = np.ascontiguousarray(_to_model_channels(x, channels))
    tile_in = overlap_in = 0
    if tile:
        # Tiles are cut in the model-input domain: LR pixels, or upscaled pixels for "bicubic".
        tile_in = int(tile) * (scale if input_kind == "bicubic" else 1)
        if overlap is None:
            overlap_in = _input_domain_field(model)
            if tile_in <= 2 * overlap_in:
                # The default overlap is the receptive field: grow the tile rather than fail.
                grown = 2 * overlap_in + tile_in
                log.warning(
                    "tile %d px is not larger than twice the receptive field (%d px); using %d px",
                    tile_in,
                    overlap_in,
                    grown,
                )
                tile_in = grown
        else:
            overlap_in = int(overlap) * (scale if input_kind == "bicubic" else 1)
    run = dict(factor=factor, tile=tile_in, overlap=overlap_in, batch_size=batch_size)
    if not self_ensemble:
        out = _run_network(model, x_model, progress=progress, **run)
    else:
        out = None
        for k, flip in ENSEMBLE_TRANSFORMS:
            y = _run_network(
                model, np.ascontiguousarray(_forward(x_model, k, flip)), progress=progress, **run
            )
            y = _inverse(y, k, flip)
            out = y.copy() if out is None else np.add(out, y, out=out)
        out /= len(ENSEMBLE_TRANSFORMS)
    out = _from_model_channels(out, lr, scale=scale, input_kind=input_kind, bicubic=x)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _from_model_channels(
    out: np.ndarray, lr: np.ndarray, *, scale: int, input_kind: str, bicubic: np.ndarray
) -> np.ndarray:
    """Network output -> float32 RGB. A 1-channel output is a luma replacing the bicubic luma."""
    if out.shape[-1] == 3:
        return np.asarray(out, dtype=np.float32)
    if out.shape[-1] != 1:
        raise ModelError(f"model returns {out.shape[-1]} channels; expected 1 or 3")
    up = bicubic if input_kind == "bicubic" else model_input(lr, scale=scale, input_kind="bicubic")
    return _replace_luma(up, out[..., 0])


def _replace_luma(rgb: np.ndarray, y01: np.ndarray) -> np.ndarray:
    """Replace the BT.601 luma of ``rgb`` by ``y01`` (luma rescaled to [0, 1]), keep chroma."""
    from skimage.color import rgb2ycbcr, ycbcr2rgb

    ycc = rgb2ycbcr(np.clip(rgb, 0, 1))
    ycc[..., 0] = y01 * 219.0 + 16.0
    return ycbcr2rgb(ycc).astype(np.float32)


# ----------------------------------------------------------------------------- resolving models


@dataclasses.dataclass(frozen=True)
class Upscaler:
    """A ready-to-run upscaler: the bicubic baseline or a trained Keras model.

    ``name`` is what tables show (registry name, or the weights file stem); ``model`` is None for
    the bicubic baseline; ``sidecar`` is the metadata saved with the weights.
    """

    name: str
    scale: int
    track: str
    input_kind: str = "lr"
    model: Any = None
    sidecar: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def is_bicubic(self) -> bool:
        return self.model is None

    def upscale(
        self,
        lr: np.ndarray,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        self_ensemble: bool = False,
        batch_size: int = 4,
        progress: bool = False,
        through_uint8: bool = True,
    ) -> np.ndarray:
        """SR image float32 (H*scale)x(W*scale)x3 in [0, 1].

        The bicubic baseline goes through uint8 exactly like MATLAB's imresize on uint8 images
        (``images.bicubic_upscale``, the benchmark protocol) unless ``through_uint8=False``
        (float resize, for 16-bit images). It is symmetric, so self-ensemble does not change it.
        """
        if self.is_bicubic:
            return bicubic_baseline(lr, self.scale, through_uint8=through_uint8)
        return super_resolve(
            self.model,
            lr,
            scale=self.scale,
            input_kind=self.input_kind,
            tile=tile,
            overlap=overlap,
            self_ensemble=self_ensemble,
            batch_size=batch_size,
            progress=progress,
        )


def bicubic_baseline(lr: np.ndarray, scale: int, *, through_uint8: bool = True) -> np.ndarray:
    """MATLAB-exact bicubic upscale of ``lr`` (float32 RGB [0, 1]), clipped to [0, 1]."""
    from amls2 import images

    lr = _check_image(lr)
    up = images.bicubic_upscale(lr, scale) if through_uint8 else images.imresize(lr, scale)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def shipped_weights_path(name: str, *, scale: int, weights_set: str) -> Path:
    """Where the shipped weights of registry model ``name`` live:
    ``Selected_models/<weights set>/<name>_x<scale>.keras`` (``config.WEIGHT_SETS``)."""
    return amls2_config.SELECTED_MODELS_DIR / weights_set / f"{name}_x{scale}.keras"


def recipe_name(name: str, *, scale: int, weights_set: str) -> str:
    """The shipped recipe of a weight set's model: ``<name>_x<s>`` for bicubic, else
    ``<name>_x<s>_<weights set>`` (``edsr_x2_unknown``, ``edsr_x2_track2sim``)."""
    return f"{name}_x{scale}" + ("" if weights_set == "bicubic" else f"_{weights_set}")


def train_hint(name: str, *, scale: int, weights_set: str) -> str:
    """The command that trains the missing weights: the shipped recipe when there is one, else
    explicit options."""
    recipe = recipe_name(name, scale=scale, weights_set=weights_set)
    recipe_file = Path(__file__).resolve().parent / "recipes" / f"{recipe}.json"
    if recipe_file.is_file():
        return f"amls2 train --recipe {recipe}"
    track = amls2_config.WEIGHT_SETS[weights_set]
    return f"amls2 train --model {name} --scale {scale} --track {track}"


def _looks_like_path(name_or_path: str) -> bool:
    return (
        Path(name_or_path).suffix.lower() in WEIGHT_SUFFIXES
        or os.sep in name_or_path
        or (os.altsep is not None and os.altsep in name_or_path)
    )


def load_upscaler(
    name_or_path: str | os.PathLike, *, scale: int, track: str = "bicubic"
) -> Upscaler:
    """Resolve NAME_OR_PATH into an ``Upscaler``.

    * ``"bicubic"``: the MATLAB-exact interpolation baseline;
    * a registry name: its shipped weights ``Selected_models/<track>/<name>_x<scale>.keras``
      (ModelError naming the missing file and the ``amls2 train`` command that makes it);
    * ``"<name or path>@<weights set>"``, e.g. ``"srcnn@bicubic"``: weights of another set
      (``config.WEIGHT_SETS``: bicubic, unknown = blind, track2sim = learned from the Track2sim
      pairs), run on ``track`` data (to measure what training for the data gains);
    * a ``.keras`` / ``.h5`` path: loaded with ``amls2.models.io.load_model``, which raises if the
      sidecar's scale or track differ from the requested ones.
    """
    scale = amls2_config.check_scale(scale)
    track = amls2_config.check_track(track)
    text = str(name_or_path)
    if text == BICUBIC:
        return Upscaler(name=BICUBIC, scale=scale, track=track, input_kind="lr", source=BICUBIC)
    from amls2 import models

    base, weights_track = _split_weights_track(text, track)
    if not _looks_like_path(base) and base in models.model_names():
        path = shipped_weights_path(base, scale=scale, weights_set=weights_track)
        if not path.is_file():
            hint = train_hint(base, scale=scale, weights_set=weights_track)
            raise MissingWeightsError(
                f"{path}: shipped weights for {base!r} x{scale} ({weights_track}) are missing; "
                f"train them with `{hint}`"
            )
        return _load_weights(path, scale=scale, weights_track=weights_track, track=track, name=text)
    path = Path(base).expanduser()
    if path.suffix.lower() in WEIGHT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"{path}: weights file not found")
        name = text if base != text else None
        return _load_weights(path, scale=scale, weights_track=weights_track, track=track, name=name)
    valid = [BICUBIC, *models.model_names()]
    raise ModelError(
        f"--model {text!r}: not a model name or a .keras/.h5 file; valid names: {valid}"
    )


def _split_weights_track(text: str, track: str) -> tuple[str, str]:
    """``"srcnn@bicubic"`` -> ("srcnn", "bicubic"); without a suffix -> (text, track): the weight
    set named like the data's track (for ``unknown``, the blind models)."""
    from amls2 import models

    base, at, suffix = text.rpartition("@")
    if not at or not (base in models.model_names() or _looks_like_path(base)):
        return text, track
    if suffix not in amls2_config.WEIGHT_SETS:
        raise ModelError(
            f"--model {text!r}: unknown weights set {suffix!r} after '@'; "
            f"valid: {list(amls2_config.WEIGHT_SETS)}"
        )
    return base, suffix


def _load_weights(
    path: Path, *, scale: int, weights_track: str, track: str, name: str | None
) -> Upscaler:
    """The weights at ``path`` (their sidecar must say the track of weight set
    ``weights_track``), to run on ``track`` data."""
    from amls2.models import get_spec
    from amls2.models.io import load_model

    model, sidecar = load_model(path, scale=scale, track=amls2_config.WEIGHT_SETS[weights_track])
    sidecar = dict(sidecar or {})
    if sidecar.get("scale") is None:
        _check_model_scale(model, path, scale)
    model_name = sidecar.get("model") or sidecar.get("name") or name
    input_kind = sidecar.get("input_kind")
    if input_kind is None and model_name:
        try:
            input_kind = get_spec(model_name).input_kind
        except ModelError:  # an unknown name in an old sidecar is not fatal
            input_kind = None
    if input_kind is None:
        input_kind = _guess_input_kind(model, scale)
    return Upscaler(
        name=name or path.stem,
        scale=scale,
        track=track,
        input_kind=_check_input_kind(input_kind),
        model=model,
        sidecar=sidecar,
        source=str(path),
    )


def _check_model_scale(model, path: Path, scale: int) -> None:
    """With no sidecar to say it, measure the factor the model upsamples by: a model of another
    scale would otherwise fail later with a shape message that does not say why."""
    probe = np.zeros((1, 8 * scale, 8 * scale, model_channels(model)), dtype=np.float32)
    factor = _run_batch(model, probe).shape[1] / probe.shape[1]
    if factor not in (1, scale):  # 1: a "bicubic"-input model, whose scale cannot be seen
        raise ModelError(
            f"{path}: the model upsamples by x{factor:g}, not x{scale} as asked (--scale "
            f"{scale}); it has no sidecar {path.with_suffix('.json').name} giving its scale"
        )


def _guess_input_kind(model, scale: int) -> str:
    """Input kind from the model itself: output `scale` times larger -> "lr", same size -> "bicubic"."""
    probe = np.zeros((1, 8 * scale, 8 * scale, model_channels(model)), dtype=np.float32)
    out = _run_batch(model, probe)
    return "lr" if out.shape[1] == probe.shape[1] * scale else "bicubic"


# ----------------------------------------------------------------------------- upscaling files


@dataclasses.dataclass(frozen=True)
class UpscaleConfig:
    """An ``amls2 upscale`` job. ``tile``/``tile_overlap`` in LR pixels (tile 0: whole image,
    None: automatic, whole image up to ``AUTO_TILE`` px per side, else tiles keeping
    ``AUTO_TILE`` px each). One tile per model call by default: tiles are already large."""

    inputs: tuple[Path, ...]
    model: str
    scale: int
    track: str = "bicubic"
    out_dir: Path | None = None
    suffix: str | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    self_ensemble: bool = False
    save_intermediate: bool = False
    force: bool = False
    skip_bad: bool = False
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 0:
            raise ConfigError(f"--tile {self.tile}: must be positive (0 or omitted: whole image)")
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ConfigError(f"--tile-overlap {self.tile_overlap}: must be 0 or more")
        if self.suffix is not None:
            check_suffix(self.suffix)


AUTO_TILE = 320
OUTPUT_SUFFIX = ".png"
# Characters that would make a suffix a path: it could then write outside --out.
_PATH_CHARACTERS = ("/", "\\", "\0")


@dataclasses.dataclass(frozen=True)
class UpscaleResult:
    """What happened to one input: ``status`` is "written", "skipped-existing" or "skipped-bad"."""

    input: Path
    output: Path | None
    status: str
    message: str = ""


def default_suffix(model_name: str, scale: int) -> str:
    """``_x<scale>_<model>``, the default output-name suffix."""
    return f"_x{scale}_{model_name}"


def check_suffix(suffix: str) -> str:
    """``suffix`` if it is a plain file-name fragment, else ConfigError naming it."""
    if any(char in suffix for char in _PATH_CHARACTERS):
        raise ConfigError(
            f"--suffix {suffix!r}: must be a plain file-name fragment (no path separators)"
        )
    return suffix


def output_path_for(src: Path, *, out_dir: Path | None, suffix: str) -> Path:
    """Output file for input ``src``: ``<out_dir or src folder>/<stem><suffix>.png``.

    Always PNG (lossless; keeps 16-bit and alpha; JPEG in -> PNG out). An output equal to the
    input is refused so that a user's file is never overwritten.
    """
    folder = out_dir if out_dir is not None else src.parent
    out = folder / f"{src.stem}{suffix}{OUTPUT_SUFFIX}"
    if out.resolve() == src.resolve():
        raise ConfigError(
            f"{src}: output path equals the input; use a different --out or a non-empty --suffix"
        )
    return out


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given and the images inside given folders (sorted), in order, without repeats."""
    from amls2 import images

    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found.extend(images.list_images(path))
        elif path.exists():
            found.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    unique: dict[str, Path] = {}
    for path in found:  # one entry per file, however it was spelled
        unique.setdefault(_path_key(path), path)
    return list(unique.values())


def _path_key(path: Path) -> str:
    """What two spellings of one file have in common."""
    return os.path.normcase(os.path.realpath(path))


def _tile_for(config: UpscaleConfig, shape: tuple[int, ...], upscaler: Upscaler) -> int | None:
    """Tile size in LR px: as configured (0: whole image), or automatic for large images.

    Automatic tiles keep ``AUTO_TILE`` px of output per tile after the overlap on both sides
    (twice the receptive field) is cut off, so the overlap costs at most about 2x compute.
    """
    if config.tile is not None:
        return config.tile or None
    if upscaler.is_bicubic or max(shape[0], shape[1]) <= AUTO_TILE:
        return None
    overlap = (
        config.tile_overlap
        if config.tile_overlap is not None
        else receptive_field(upscaler.model, scale=upscaler.scale, input_kind=upscaler.input_kind)
    )
    return AUTO_TILE + 2 * overlap


def upscale_image(
    upscaler: Upscaler, loaded, config: UpscaleConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """Upscale one ``images.LoadedImage`` keeping its format.

    Returns (image to write, bicubic intermediate or None unless ``config.save_intermediate``
    with a model), float32 [0, 1] HxW (grayscale input),
    HxWx3 or HxWx4 (alpha upscaled with float bicubic and re-attached). Grayscale inputs run
    through the model as RGB (gray expanded) and come back as the mean of the output channels.
    """
    rgb = loaded.rgb
    tile = _tile_for(config, rgb.shape, upscaler)
    through_uint8 = loaded.bit_depth == 8
    sr = upscaler.upscale(
        rgb,
        tile=tile,
        overlap=config.tile_overlap,
        self_ensemble=config.self_ensemble,
        batch_size=config.batch_size,
        progress=True,
        through_uint8=through_uint8,
    )
    sr = _restore_format(sr, loaded, config.scale)
    if not config.save_intermediate or upscaler.is_bicubic:
        return sr, None  # a full-size bicubic copy costs memory: only made on request
    bic = bicubic_baseline(rgb, config.scale, through_uint8=through_uint8)
    return sr, _restore_format(bic, loaded, config.scale)


def _restore_format(rgb: np.ndarray, loaded, scale: int) -> np.ndarray:
    out = rgb.mean(axis=-1, dtype=np.float32) if loaded.grayscale else rgb
    if loaded.alpha is not None:
        from amls2 import images

        alpha = np.clip(np.asarray(images.imresize(loaded.alpha, scale), dtype=np.float32), 0, 1)
        base = out[..., None] if out.ndim == 2 else out
        if loaded.grayscale:
            base = np.repeat(base, 3, axis=-1)
        out = np.concatenate([base, alpha[..., None]], axis=-1)
    return out


@dataclasses.dataclass(frozen=True)
class UpscaleJob:
    """One input and where it goes: ``output``, and ``intermediate`` (the bicubic upscale, with
    ``--save-intermediate`` and a model) or None."""

    input: Path
    output: Path
    intermediate: Path | None = None


def own_outputs(sources: Sequence[Path], suffix: str) -> list[Path]:
    """The files of ``sources`` named like this command's outputs (``*<suffix>.png`` and the
    intermediates ``*<suffix>_bicubic.png``): what an earlier run wrote beside its inputs.
    Upscaling them again would make ``a_x2_edsr_x2_edsr.png``. None for an empty suffix."""
    if not suffix:
        return []
    endings = (f"{suffix}{OUTPUT_SUFFIX}", f"{suffix}_bicubic{OUTPUT_SUFFIX}")
    return [path for path in sources if path.name.endswith(endings)]


def plan_upscale(
    sources: Sequence[Path], *, out_dir: Path | None, suffix: str, intermediate: bool
) -> list[UpscaleJob]:
    """Every output path of the run, checked before anything is written.

    ConfigError naming the files if an output is an input of the run (``--suffix ""`` maps
    ``photo.jpg`` onto ``photo.png``) or if two inputs map to one output (``photo.jpg`` and
    ``photo.png`` both give ``photo_x2_edsr.png``): either would overwrite a file of the run.
    """
    inputs = {_path_key(src): src for src in sources}
    claimed: dict[str, Path] = {}
    jobs = []
    for src in sources:
        out = output_path_for(src, out_dir=out_dir, suffix=suffix)
        inter = (
            output_path_for(src, out_dir=out_dir, suffix=f"{suffix}_bicubic")
            if intermediate
            else None
        )
        for target in (out, inter):
            if target is None:
                continue
            key = _path_key(target)
            if key in inputs:
                raise ConfigError(
                    f"{src}: its output {target} is an input of this run ({inputs[key]}); "
                    "use another --out or --suffix"
                )
            if key in claimed:
                raise ConfigError(
                    f"{claimed[key]} and {src} would both be written to {target}; "
                    "rename one, or upscale them separately or into another --out"
                )
            claimed[key] = src
        jobs.append(UpscaleJob(src, out, inter))
    return jobs


def _check_inputs(
    jobs: Sequence[UpscaleJob], config: UpscaleConfig
) -> tuple[list[UpscaleJob], list[UpscaleResult]]:
    """Split ``jobs`` before the first write: (to run, results of those not run). An existing
    output is kept unless ``force``; an input that is not a regular file, not an image, or over
    the pixel budget (read from its header) raises, or with ``skip_bad`` is skipped."""
    from amls2 import images

    run: list[UpscaleJob] = []
    done: list[UpscaleResult] = []
    for job in jobs:
        if job.output.exists() and not config.force:
            log.warning("%s: exists, kept (use --force to overwrite)", job.output)
            done.append(UpscaleResult(job.input, job.output, "skipped-existing", "output exists"))
            continue
        try:
            images.image_size(job.input)
        except ImageError as exc:
            if not config.skip_bad:
                raise
            done.append(_skipped_bad(job.input, exc))
            continue
        run.append(job)
    return run, done


def _skipped_bad(src: Path, exc: ImageError) -> UpscaleResult:
    log.warning("skipping bad input %s: %s", src, exc)
    return UpscaleResult(src, None, "skipped-bad", str(exc))


def _check_produced(results: Sequence[UpscaleResult]) -> None:
    """A run that skipped every input as bad did not do its job: ImageError naming the first."""
    bad = [r for r in results if r.status == "skipped-bad"]
    if bad and len(bad) == len(results):
        raise ImageError(
            f"no output written: all {len(bad)} input(s) were bad and skipped; first: "
            f"{bad[0].message}"
        )


def upscale_files(
    config: UpscaleConfig, *, upscaler: Upscaler | None = None
) -> list[UpscaleResult]:
    """Run an ``amls2 upscale`` job: every input file/folder image to ``<stem><suffix>.png``.

    Every output path is planned and every input's header read before the first write
    (:func:`plan_upscale`); files named like this command's outputs are skipped (said once).
    Existing outputs are kept (skipped with a warning) unless ``config.force``. A bad input
    raises ImageError naming it, or with ``skip_bad`` is logged and skipped; if every input was
    bad, ImageError says so (nothing was produced).
    """
    from amls2 import images
    from amls2.fileio import check_writable_folder

    if config.out_dir is not None:
        check_writable_folder(config.out_dir, "--out")
    if upscaler is None:
        upscaler = load_upscaler(config.model, scale=config.scale, track=config.track)
    suffix = (
        config.suffix if config.suffix is not None else default_suffix(upscaler.name, config.scale)
    )
    sources = collect_inputs(config.inputs)
    skipped = own_outputs(sources, suffix)
    if skipped:
        names = ", ".join(p.name for p in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        log.warning(
            "skipping %d file(s) named like this command's outputs (*%s.png): %s",
            len(skipped),
            suffix,
            names,
        )
        sources = [src for src in sources if src not in skipped]
        if not sources:
            raise ImageError(
                f"{skipped[0]}: nothing to upscale: every input is named like an output of this "
                f"command (*{suffix}.png); rename them or choose another --suffix"
            )
    jobs = plan_upscale(
        sources,
        out_dir=config.out_dir,
        suffix=suffix,
        intermediate=config.save_intermediate and not upscaler.is_bicubic,
    )
    jobs, results = _check_inputs(jobs, config)
    for job in jobs:
        try:
            loaded = images.load_image(job.input)
        except ImageError as exc:  # the pixels themselves (a corrupt scan) can still be bad
            if not config.skip_bad:
                raise
            results.append(_skipped_bad(job.input, exc))
            continue
        sr, bic = upscale_image(upscaler, loaded, config)
        images.write_image(job.output, sr, bit_depth=loaded.bit_depth)
        if bic is not None:
            if job.intermediate.exists() and not config.force:
                log.warning("%s: exists, kept (use --force to overwrite)", job.intermediate)
            else:
                images.write_image(job.intermediate, bic, bit_depth=loaded.bit_depth)
        log.info("%s -> %s", job.input, job.output)
        results.append(UpscaleResult(job.input, job.output, "written"))
    _check_produced(results)
    return results
