"""The tf.data training pipeline: aligned random crops of ``pipeline.TrainingImages``, gathered
inside TensorFlow (the only tf.data code in amls2; the NumPy side is ``amls2.data.pipeline``).

``make_train_dataset`` is a pure function of the *global sample index*: sample ``g`` draws its
image, degradation variant, crop position and augmentation from stateless random ops keyed on
``(seed, g)``. Step ``t`` of a run always sees samples ``t*B .. t*B+B-1`` (``B`` = GLOBAL batch),
so a run is deterministic for a seed, can restart at any step (resume after a crash sees exactly
the batches it would have seen), and the global batch is split between input pipelines (workers)
and replicas by slicing, never by re-sampling.

It is built in three parts: the argument checks (``_check_arguments``), the packing of each kind
of image into one tensor buffer (``_pack``), and the per-batch map (``_draw`` for the per-sample
random scalars, ``_gather_crops`` for the pixels). This module imports TensorFlow; the engine
imports it when a run starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from amls2.data.pipeline import OUTPUT_KEYS, PackedImages, TrainingImages
from amls2.errors import ConfigError

# Augmentations: 4 rotations x 2 mirror states, chosen with one draw per sample.
NUM_AUGMENTATIONS = 8

# The 8 orientations of a square crop (``choice``: ``choice % 4`` counter-clockwise quarter turns,
# as ``tf.image.rot90``/``np.rot90``, then a left-right mirror when ``choice >= 4``), as the source
# pixel (row, col) that output pixel (i, j) of an n x n crop reads, with m = n - 1:
# row = ri*i + rj*j + rm*m and col = ci*i + cj*j + cm*m. Columns: ri, rj, rm, ci, cj, cm.
ORIENTATIONS = np.array(
    [
        [1, 0, 0, 0, 1, 0],  # 0: identity
        [0, 1, 0, -1, 0, 1],  # 1: rot90 once: (j, m-i)
        [-1, 0, 1, 0, -1, 1],  # 2: twice: (m-i, m-j)
        [0, -1, 1, 1, 0, 0],  # 3: three times: (m-j, i)
        [1, 0, 0, 0, -1, 1],  # 4: mirrored: (i, m-j)
        [0, -1, 1, -1, 0, 1],  # 5: rot90 once, mirrored: (m-j, m-i)
        [-1, 0, 1, 0, 1, 0],  # 6: twice, mirrored: (m-i, j)
        [0, 1, 0, 1, 0, 0],  # 7: three times, mirrored: (j, i)
    ],
    dtype=np.int64,
)


@dataclasses.dataclass(frozen=True)
class Slicing:
    """How this input pipeline reads the global batch: ``chunk`` samples of every step (its
    slice ``pipeline_id``), batched ``per_replica`` at a time."""

    global_batch: int
    chunk: int
    per_replica: int
    pipeline_id: int

    def global_index(self, k):
        """Element ``k`` of this pipeline's stream -> its global sample index. Each step's global
        batch ``[t*B, (t+1)*B)`` is cut into contiguous chunks, one per pipeline, so the union
        over workers is the global batch."""
        return (
            (k // self.chunk) * self.global_batch + self.pipeline_id * self.chunk + k % self.chunk
        )


def _check_arguments(
    images: TrainingImages,
    patch_size: int,
    global_batch: int,
    outputs: Sequence[str],
    input_context,
) -> Slicing:
    """ConfigError naming the option for anything that cannot make a batch; else the slicing."""
    scale = images.scale
    unknown = sorted(set(outputs) - set(OUTPUT_KEYS))
    if unknown:
        raise ConfigError(f"outputs {unknown}: unknown; valid: {list(OUTPUT_KEYS)}")
    if "bicubic" in outputs and images.bicubic is None:
        raise ConfigError("outputs 'bicubic': the training images were loaded without bicubic")
    if patch_size < scale or patch_size % scale:
        raise ConfigError(f"--patch-size {patch_size}: must be a positive multiple of {scale}")
    min_side = min(min(hr.shape[:2]) for hr in images.hr)
    if patch_size > min_side:
        raise ConfigError(f"--patch-size {patch_size}: larger than the smallest image ({min_side})")
    if global_batch < 1:
        raise ConfigError(f"--batch-size {global_batch}: must be at least 1")
    num_pipelines, pipeline_id, per_replica = 1, 0, global_batch
    if input_context is not None:
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        per_replica = input_context.get_per_replica_batch_size(global_batch)
    if global_batch % num_pipelines:
        raise ConfigError(
            f"--batch-size {global_batch}: not divisible by the {num_pipelines} workers"
        )
    chunk = global_batch // num_pipelines
    if chunk % per_replica:
        raise ConfigError(f"--batch-size {global_batch}: not divisible by the replicas")
    return Slicing(global_batch, chunk, per_replica, pipeline_id)


def _pack(per_image: Sequence[Sequence[np.ndarray]], variants: int) -> dict:
    """One kind of image (every variant of every image) as tensors to gather crops from."""
    packed = PackedImages.pack([vs[v] for vs in per_image for v in range(variants)])
    tensors = {f.name: tf.constant(getattr(packed, f.name)) for f in dataclasses.fields(packed)}
    # Gathered by pixel (3 channels at once: ~2.5x faster than by element), with 32-bit
    # indices unless there are too many pixels.
    tensors["pixels"] = tf.reshape(tensors.pop("buffer"), [-1, 3])
    tensors["index_dtype"] = tf.int32 if packed.buffer.size // 3 < 2**31 else tf.int64
    tensors["orientations"] = tf.constant(ORIENTATIONS)
    return tensors


def _gather_crops(packed: dict, entry, y, x, size: int, choice):
    """The ``[B, size, size, 3]`` crops at ``(y, x)`` of packed entries ``entry`` (each ``[B]``),
    each in orientation ``choice`` (``[B]``, see ``ORIENTATIONS``), with ONE gather of pixels.

    Only the crops' pixels are read from the packed buffer (no copy of whole images), and the
    rotation/mirror is folded into the gather index, so no transpose or reverse is needed:
    pixel ``(b, i, j)`` is ``pixels[base[b] + i * step_i[b] + j * step_j[b]]``.
    """
    index_dtype = packed["index_dtype"]
    orientation = tf.gather(packed["orientations"], choice)  # [B, 6]
    ri, rj, rm, ci, cj, cm = (tf.cast(orientation[:, k], index_dtype) for k in range(6))
    width = tf.cast(tf.gather(packed["widths"], entry), index_dtype)
    first = tf.cast(tf.gather(packed["offsets"], entry) // 3, index_dtype)
    y, x = tf.cast(y, index_dtype), tf.cast(x, index_dtype)
    last = size - 1
    base = first + (y + rm * last) * width + x + cm * last
    step_i = ri * width + ci
    step_j = rj * width + cj
    steps = tf.range(size, dtype=index_dtype)
    pixel = (
        base[:, None, None]
        + steps[None, :, None] * step_i[:, None, None]
        + steps[None, None, :] * step_j[:, None, None]
    )
    return tf.gather(packed["pixels"], pixel)


def make_train_dataset(
    images: TrainingImages,
    *,
    patch_size: int,
    global_batch: int,
    seed: int,
    start_step: int = 0,
    num_steps: int,
    outputs: Sequence[str] = ("lr", "hr"),
    augment: bool = True,
    lr_grid: bool = False,
    input_context=None,
):
    """A tf.data pipeline of aligned random crops: dict batches of float32 [0,1] RGB.

    ``patch_size`` is in HR pixels (the LR crop is ``patch_size // scale``); ``global_batch`` is
    the batch over all replicas and workers. The dataset holds the steps ``start_step ..
    start_step + num_steps - 1`` of the run (each sample keyed on ``(seed, global index)``), so
    it is deterministic and restartable at any step. ``outputs`` selects ``"lr"`` (H/s crops),
    ``"bicubic"`` (the bicubic-upscaled LR cropped at HR coordinates) and ``"hr"``. Crops start on
    the LR grid (HR coordinates multiples of the scale) when there is an ``"lr"`` output or
    ``lr_grid``: a model whose filters depend on the pixel's phase (``PolyphaseLinear``) must see
    every crop's pixels at the phases they have in the whole image.
    ``input_context`` (a ``tf.distribute.InputContext``) yields this pipeline's slice of every
    global batch, batched per replica.
    """
    slicing = _check_arguments(images, patch_size, global_batch, outputs, input_context)
    scale, variants = images.scale, images.variants
    lr_patch = patch_size // scale
    # Crop on the LR grid whenever an LR crop is produced (so every output stays aligned) or the
    # model is phase-dependent; otherwise a bicubic-only pipeline may start at any HR pixel.
    lr_grid = lr_grid or "lr" in outputs
    packed = {
        "hr": _pack([(hr,) * variants for hr in images.hr], variants),
        "lr": _pack(images.lr, variants),
    }
    if "bicubic" in outputs:
        packed["bicubic"] = _pack(images.bicubic, variants)
    draw = _sample_drawer(images, packed, patch_size, seed, slicing, lr_grid, augment)

    def crop_batch(ks):
        """The crops of samples ``ks``, one gather per output, as float32 [0,1]."""
        draws = tf.map_fn(draw, ks, parallel_iterations=slicing.per_replica)
        entry, y_lr, x_lr, y_hr, x_hr, choice = tf.unstack(draws, axis=1)
        batch = {}
        for key in outputs:
            y, x, size = (y_lr, x_lr, lr_patch) if key == "lr" else (y_hr, x_hr, patch_size)
            crops = _gather_crops(packed[key], entry, y, x, size, choice)
            batch[key] = tf.cast(crops, tf.float32) / 255.0 if crops.dtype == tf.uint8 else crops
        return batch

    return _batched_dataset(crop_batch, slicing, start_step, num_steps)


def _sample_drawer(images: TrainingImages, packed, patch_size, seed, slicing, lr_grid, augment):
    """``draw(k)``: sample ``k``'s (entry, LR crop y/x, HR crop y/x, augmentation), keyed on
    ``(seed, global index)``; crops on the LR grid when ``lr_grid``."""
    scale, variants, n_images = images.scale, images.variants, len(images)
    lr_patch = patch_size // scale
    lr_heights = tf.constant([lr[0].shape[0] for lr in images.lr], tf.int64)
    lr_widths = tf.constant([lr[0].shape[1] for lr in images.lr], tf.int64)
    base_seed = tf.constant([int(seed) & 0x7FFFFFFF, 0x5EED], tf.int64)

    def uniform_int(key, high):
        return tf.random.stateless_uniform([], key, minval=0, maxval=high, dtype=tf.int64)

    def draw(k):
        """Sample ``k``'s image, variant, crop position and orientation: scalars only."""
        keys = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, slicing.global_index(k)), num=5
        )
        image = uniform_int(keys[0], n_images)
        entry = image * variants + uniform_int(keys[1], variants)
        if lr_grid:
            y_lr = uniform_int(keys[2], tf.gather(lr_heights, image) - lr_patch + 1)
            x_lr = uniform_int(keys[3], tf.gather(lr_widths, image) - lr_patch + 1)
            y_hr, x_hr = y_lr * scale, x_lr * scale
        else:
            y_lr = x_lr = tf.constant(0, tf.int64)
            y_hr = uniform_int(keys[2], tf.gather(packed["hr"]["heights"], entry) - patch_size + 1)
            x_hr = uniform_int(keys[3], tf.gather(packed["hr"]["widths"], entry) - patch_size + 1)
        choice = uniform_int(keys[4], NUM_AUGMENTATIONS) if augment else tf.constant(0, tf.int64)
        return tf.stack([entry, y_lr, x_lr, y_hr, x_hr, choice])

    return draw


def _batched_dataset(crop_batch, slicing, start_step: int, num_steps: int):
    """The samples of steps ``start_step ..`` as per-replica batches through ``crop_batch``."""
    options = tf.data.Options()
    options.deterministic = True
    # Sharding is explicit (each pipeline computes its own slice of the global batch).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # One function call per batch: the per-sample random draws (a few scalar ops each, in a
    # graph loop: cheaper than a tf.data map per sample), then one gather per output for the
    # whole batch, with the augmentation folded into the gather index.
    chunk = slicing.chunk
    dataset = (
        tf.data.Dataset.range(start_step * chunk, (start_step + num_steps) * chunk)
        .batch(slicing.per_replica, drop_remainder=True)
        .map(crop_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset.with_options(options)
