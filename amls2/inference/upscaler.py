"""Running a super-resolution model on an image: whole-image or tiled, optional x8 self-ensemble.

Images are float32 HxWx3 RGB in [0, 1]. ``super_resolve`` maps an LR image to an SR image ``scale``
times larger, clipped to [0, 1]. Models come in two input kinds (see ``amls2.models``):

* ``"lr"``: the network takes the LR image and upsamples it itself;
* ``"bicubic"``: the network takes the LR image upscaled by MATLAB-exact bicubic on floats
  (``resize.imresize``, no rounding) and returns an image of the same size.

Tiled inference (``tile=N`` LR pixels) bounds memory by the tile size: tiles of one size are run in
batches and only the central part of each tile's output is copied into one preallocated output
array. Each tile is widened by an overlap of at least the model's receptive field
(``amls2.inference.receptive_field``), which makes the tiled result equal to whole-image inference (up to
float round-off). For the ``"bicubic"`` input kind the whole LR image is upscaled first (cheap, and
exact at tile borders) and tiles are cut in the upscaled domain; tile and overlap are still given
in LR pixels and multiplied by the scale. Tile origins are multiples of the model's total stride
(max-pooling / strided convolutions), so that pooling grids of tiles coincide with the whole
image's. Resolving a model name to weights is :mod:`amls2.inference.weights`; the ``amls2 upscale`` file job
is :mod:`amls2.inference.upscale`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import weakref
from typing import Any

import numpy as np
from tqdm import tqdm

from amls2.config import check_input_kind
from amls2.errors import ConfigError, ImageError, ModelError
from amls2.imaging import images, resize
from amls2.inference.fast import onednn, switch
from amls2.inference.model_call import model_channels, output_channels, run_batch
from amls2.inference.receptive_field import input_domain_field, model_stride

log = logging.getLogger(__name__)


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

    For ``"bicubic"`` models the upscale is done on floats with no rounding (``resize.imresize``),
    matching how their training inputs were made. Returns float32 HxWx3.
    """
    check_input_kind(input_kind)
    lr = _check_image(lr)
    if input_kind == "lr":
        return lr
    return resize.bicubic_upscale_float(lr, scale)


def _to_model_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """RGB -> what the model expects: 3 channels as is, 1 channel as luma in [0, 1]."""
    if channels == 3:
        return x
    if channels == 1:
        # BT.601 luma (as rgb2ycbcr, rescaled to [0, 1]) for single-channel networks.
        y = (np.asarray(images.rgb_to_y(x), dtype=np.float32) - 16.0) / 219.0
        return y[..., None]
    raise ModelError(f"model expects {channels} input channels; only 1 or 3 are supported")


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
    fast: bool | str | None = None,
) -> np.ndarray:
    """Tiled inference of ``x`` (HxWxC model input) into the preallocated ``out`` (float32)."""
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
            result = run_batch(model, batch, fast=fast)
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
    fast: bool | str | None = None,
) -> np.ndarray:
    """Network output (unclipped float32, (H*factor)x(W*factor)xC') for one model input."""
    if not tile or (tile >= x.shape[0] and tile >= x.shape[1]):
        result = run_batch(model, x[None], fast=fast)[0]
        _check_output_shape(result, x, factor)
        return result
    out_channels = output_channels(model) or 3
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
        fast=fast,
    )


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
    fast: bool | str | None = None,
) -> np.ndarray:
    """Super-resolve ``lr`` (float32 HxWx3 RGB in [0, 1]) into (H*scale)x(W*scale)x3, clipped to [0, 1].

    ``tile`` and ``overlap`` are in LR pixels; ``tile=None`` runs the whole image at once. The
    default overlap is the model's measured receptive field, which makes tiled output equal to
    whole-image output. ``self_ensemble`` averages the 8 flips/rotations (each inverted back)
    before clipping. ``batch_size`` tiles run per model call; ``progress`` shows a tqdm bar.
    ``fast``: the model's CPU-tuned form or the saved graph (``model_call.run_batch``).
    Single-channel models see the BT.601 luma; their output replaces the luma of the bicubic
    upscale (the usual Y-channel SRCNN practice).
    """
    check_input_kind(input_kind)
    if overlap is not None and int(overlap) < 0:  # a negative overlap breaks the tile pasting
        raise ConfigError(f"--tile-overlap {overlap}: must be 0 or more")
    if tile is not None and int(tile) <= 0:
        tile = None
    x = model_input(lr, scale=scale, input_kind=input_kind)
    factor = scale if input_kind == "lr" else 1
    channels = model_channels(model)
    x_model = np.ascontiguousarray(_to_model_channels(x, channels))
    tile_in, overlap_in = _tile_in_model_pixels(model, tile, overlap, scale, input_kind)
    tile_in, overlap_in = _fit_conv_budget(model, x_model.shape[:2], tile_in, overlap_in, fast)
    run = dict(factor=factor, tile=tile_in, overlap=overlap_in, batch_size=batch_size, fast=fast)
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
    # The model's output may be a read-only view (run_batch): clip into a new array then.
    return np.clip(out, 0.0, 1.0, out=out if out.flags.writeable else None)


def _tile_in_model_pixels(
    model, tile: int | None, overlap: int | None, scale: int, input_kind: str
) -> tuple[int, int]:
    """(tile, overlap) in model-input pixels for LR-pixel ``tile``/``overlap``; (0, 0): no tiles.
    The default overlap is the model's receptive field."""
    tile_in = overlap_in = 0
    if tile:
        # Tiles are cut in the model-input domain: LR pixels, or upscaled pixels for "bicubic".
        tile_in = int(tile) * (scale if input_kind == "bicubic" else 1)
        if overlap is None:
            overlap_in = input_domain_field(model)
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
    return tile_in, overlap_in


def _fit_conv_budget(
    model, shape: tuple[int, int], tile_in: int, overlap_in: int, fast: bool | str | None = None
) -> tuple[int, int]:
    """(tile, overlap) in model-input pixels such that no convolution of one call has a larger
    input than ``onednn.conv_input_budget_bytes`` allows (only under oneDNN below AVX-512, where it would
    otherwise fall back to its scalar reference convolution; not with a GPU visible). Tiles
    overlap by the receptive field, so the output is the whole-image output."""
    budget = onednn.conv_input_budget_bytes() if switch.on_cpu_only() else None
    if budget is None:
        return tile_in, overlap_in
    fast_form = switch.use_fast_form(fast)
    max_side = int(math.sqrt(budget / (4 * _largest_convolved_input(model, fast_form))))
    call_rows, call_cols = (min(tile_in, n) if tile_in else n for n in shape)
    if call_rows * call_cols <= max_side**2:
        return tile_in, overlap_in
    overlap = overlap_in if tile_in else input_domain_field(model)
    span = max_side - 2 * overlap
    if span < model_stride(model):
        log.warning("no tile of %d px fits this CPU's convolution budget; not tiling", max_side)
        return tile_in, overlap_in
    # As few tiles per axis as fit, equally sized: the least recomputed overlap.
    tile = max(math.ceil(n / math.ceil(n / span)) for n in shape if n > max_side) + 2 * overlap
    log.info(
        "tiles of %d px (%d px overlap) keep convolutions on oneDNN's fast path", tile, overlap
    )
    return tile, overlap


_LARGEST_CONVOLVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _largest_convolved_input(model, fast_form: bool) -> float:
    """``reparam.largest_convolved_input`` of the form that runs, computed once per model."""
    sizes = _LARGEST_CONVOLVED.setdefault(model, {})
    if fast_form not in sizes:
        from amls2.inference.fast.reparam import largest_convolved_input  # imports Keras: deferred

        probe = 48 * model_stride(model)
        sizes[fast_form] = largest_convolved_input(model, probe=probe, fast=fast_form)
    return sizes[fast_form]


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
    from skimage.color import rgb2ycbcr, ycbcr2rgb  # loads SciPy: for one-channel models only

    ycc = rgb2ycbcr(np.clip(rgb, 0, 1))
    ycc[..., 0] = y01 * 219.0 + 16.0
    return ycbcr2rgb(ycc).astype(np.float32)


# ----------------------------------------------------------------------------- upscaler


@dataclasses.dataclass(frozen=True)
class Upscaler:
    """A ready-to-run upscaler: the bicubic baseline or a trained Keras model.

    ``name`` is what tables show (registry name, or the weights file stem); ``model`` is None for
    the bicubic baseline; ``sidecar`` is the metadata saved with the weights. ``fast``: the
    model's CPU-tuned form (True), as saved (False), or as ``AMLS2_FAST_INFERENCE`` says (None).
    """

    name: str
    scale: int
    track: str
    input_kind: str = "lr"
    model: Any = None
    sidecar: dict = dataclasses.field(default_factory=dict)
    source: str = ""
    fast: bool | str | None = None

    @property
    def is_bicubic(self) -> bool:
        """The bicubic baseline (no model)."""
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
        (``resize.bicubic_upscale``, the benchmark protocol) unless ``through_uint8=False``
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
            fast=self.fast,
        )


def bicubic_baseline(lr: np.ndarray, scale: int, *, through_uint8: bool = True) -> np.ndarray:
    """MATLAB-exact bicubic upscale of ``lr`` (float32 RGB [0, 1]), clipped to [0, 1]."""
    lr = _check_image(lr)
    up = resize.bicubic_upscale(lr, scale) if through_uint8 else resize.imresize(lr, scale)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)
