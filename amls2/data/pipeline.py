"""Training and validation data, the NumPy side (the tf.data side is ``amls2.data.train_dataset``).

The flow is:

1. ``load_training_images`` reads every HR image of the training sets once, mod-crops it, and
   makes its LR version(s) in NumPy: read from the paired LR folder when the dataset has one,
   otherwise synthesised by the track's degradation. For the ``unknown`` track a fixed set of
   ``variants`` degraded versions per image is made up front with different seeds (a new random
   degradation per image per epoch would be better but costs a full-image degradation per patch;
   K fixed versions keep the cost bounded and the run reproducible). Everything is kept in memory
   as uint8 (HR, LR) or float32 (the bicubic-upscaled LR for ``input_kind="bicubic"`` models,
   upscaled once per whole image with the MATLAB-exact ``resize.imresize`` on float, no rounding).
2. ``PackedImages`` concatenates the images of one kind into a single flat buffer with offsets,
   so that crops of differently sized images can be gathered inside tf.data without padding.
3. ``amls2.data.train_dataset.make_train_dataset`` gathers the random aligned crops from those
   buffers in tf.data, as a pure function of the global sample index (deterministic, restartable
   at any step, split between workers and replicas by slicing).

Crops are aligned: an LR crop at ``(y, x)`` of size ``patch/scale`` pairs with the HR crop at
``(y*scale, x*scale)`` of size ``patch``; the bicubic input is cropped at the HR coordinates. Flips
and 90-degree rotations use one random draw for all outputs of a sample. Validation uses whole
images (``load_validation_images``), split by image, never by patch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from amls2.config import check_scale, check_track
from amls2.errors import ConfigError, DatasetError
from amls2.imaging import images, resize

log = logging.getLogger(__name__)

#: The outputs a training batch can hold: model inputs ("lr", "bicubic") and the target ("hr").
OUTPUT_KEYS: tuple[str, ...] = ("lr", "bicubic", "hr")


@dataclasses.dataclass(frozen=True)
class TrainingImages:
    """Whole training images in memory, NumPy only.

    ``hr[i]`` is uint8 HxWx3 (mod-cropped RGB); ``lr[i]`` is a list of uint8 (H/s)x(W/s)x3
    degraded versions of ``hr[i]``; ``bicubic[i]`` (or None) the matching float32 HxWx3 [0,1]
    MATLAB-bicubic upscalings of ``lr[i]`` (no rounding).
    """

    names: tuple[str, ...]
    scale: int
    hr: tuple[np.ndarray, ...]
    lr: tuple[tuple[np.ndarray, ...], ...]
    bicubic: tuple[tuple[np.ndarray, ...], ...] | None = None

    def __len__(self) -> int:
        return len(self.hr)

    @property
    def variants(self) -> int:
        """The number of LR versions per image (the smallest over all images)."""
        return min(len(v) for v in self.lr)


@dataclasses.dataclass(frozen=True)
class ValidationImage:
    """One whole validation image: LR and mod-cropped HR, float32 [0,1] RGB. ``grayscale``: the
    HR file has one channel (scored on its grey values by the benchmark protocol)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    grayscale: bool = False


def _variant_seed(seed: int, variant: int) -> int:
    # Variant 0 uses the run seed itself; later variants are spread apart so that they never
    # coincide with another run's variant 0 for small seeds.
    return int(seed) + 1_000_003 * int(variant)


def _training_sources(sets, *, scale, track, data_dir, split, limit, holdout):
    """(set name, source) of every training image: at most ``limit`` per set, the holdout left
    out of the last set."""
    from amls2.data import pairing

    for i, set_name in enumerate(sets):
        sources = pairing.resolve_pairs(
            set_name, scale=scale, track=track, data_dir=data_dir, split=split
        )
        if i == len(sets) - 1:
            sources, _ = split_holdout(sources, holdout, set_name)
        yield from ((set_name, source) for source in sources[:limit])


def _load_pair(source, *, scale: int, track: str, seed: int):
    """``pairing.load_pair`` (imported on first use, with the data registry)."""
    from amls2.data import pairing

    return pairing.load_pair(source, scale=scale, track=track, seed=seed)


def _lr_versions(pair, source, *, scale: int, track: str, seed: int, n: int) -> list:
    """The LR versions of one training image: its dataset's LR file or the deterministic
    ``bicubic`` one, else ``n`` synthesised with seeds derived from ``seed``."""
    count = 1 if (source.lr_path is not None or track == "bicubic") else n
    more = [_load_pair(source, scale=scale, track=track, seed=_variant_seed(seed, v)).lr
            for v in range(1, count)]  # fmt: skip
    return [pair.lr, *more]


def load_training_images(
    sets: Sequence[str],
    *,
    scale: int,
    track: str,
    data_dir=None,
    split: str | None = None,
    seed: int = 0,
    variants: int = 1,
    with_bicubic: bool = False,
    limit: int | None = None,
    min_size: int = 0,
    holdout: int = 0,
) -> TrainingImages:
    """Read the HR images of ``sets`` and make their LR versions, all in memory.

    ``sets``: dataset names or folders (``pairing.resolve_pairs``). LR images come from the
    dataset's LR folder when it has one (a single version), otherwise ``variants`` versions are
    synthesised with seeds derived from ``seed`` (the ``bicubic`` track is deterministic, so it
    always has one). ``with_bicubic`` also stores the float32 bicubic upscaling of every LR image.
    Images whose HR side is below ``min_size`` pixels are skipped with a warning naming them.
    ``limit`` caps the number of images per set. ``holdout``: the last that many images of the
    last set are left out; they are the validation images (:func:`load_validation_images`).
    """
    scale = check_scale(scale)
    track = check_track(track)
    if variants < 1:
        raise ConfigError(f"--variants {variants}: must be at least 1")
    if not sets:
        raise ConfigError("--train-set: no training set given")
    names, hrs, lrs, bics = [], [], [], []
    for set_name, source in _training_sources(
        sets, scale=scale, track=track, data_dir=data_dir, split=split, limit=limit, holdout=holdout
    ):
        pair = _load_pair(source, scale=scale, track=track, seed=seed)
        height, width = pair.hr.shape[:2]
        if min(height, width) < min_size:
            message = "%s: %dx%d is smaller than the %d px patch; skipped"
            log.warning(message, source.hr_path, width, height, min_size)
            continue
        versions = _lr_versions(pair, source, scale=scale, track=track, seed=seed, n=variants)
        names.append(f"{set_name}/{pair.name}")
        hrs.append(images.to_uint8(pair.hr))
        lrs.append(tuple(images.to_uint8(lr) for lr in versions))
        if with_bicubic:
            bics.append(tuple(resize.bicubic_upscale_float(lr, scale) for lr in lrs[-1]))
    if not hrs:
        raise DatasetError(
            f"--train-set {'+'.join(map(str, sets))}: no image of at least {min_size} px"
        )
    log.info("loaded %d training images (%d LR version(s) each)", len(hrs), lrs and len(lrs[0]))
    return TrainingImages(
        names=tuple(names),
        scale=scale,
        hr=tuple(hrs),
        lr=tuple(lrs),
        bicubic=tuple(bics) if with_bicubic else None,
    )


@dataclasses.dataclass(frozen=True)
class PackedImages:
    """Images of one kind concatenated into one flat buffer (NumPy), for gathering crops.

    Entry ``i`` occupies ``buffer[offsets[i] : offsets[i] + heights[i]*widths[i]*3]`` in HWC
    order.
    """

    buffer: np.ndarray
    offsets: np.ndarray
    heights: np.ndarray
    widths: np.ndarray

    @classmethod
    def pack(cls, images: Sequence[np.ndarray]) -> PackedImages:
        """``images`` in one flat buffer, with their offsets and shapes."""
        images = [np.ascontiguousarray(img) for img in images]
        sizes = [img.size for img in images]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(
            buffer=np.concatenate([img.reshape(-1) for img in images]),
            offsets=offsets,
            heights=np.array([img.shape[0] for img in images], dtype=np.int64),
            widths=np.array([img.shape[1] for img in images], dtype=np.int64),
        )


def numpy_crop_batches(
    images: TrainingImages, *, patch_size: int, batch_size: int, seed: int, input_kind: str = "lr"
):
    """A plain Python generator of random aligned NumPy crops (no tf.data), endless.

    The baseline of ``benchmarks/train_throughput.py``; yields ``(model_input, hr)`` float32.
    """
    rng = np.random.default_rng(seed)
    scale = images.scale
    lr_patch = patch_size // scale
    while True:
        inputs, targets = [], []
        for _ in range(batch_size):
            i = int(rng.integers(len(images)))
            v = int(rng.integers(images.variants))
            lr = images.lr[i][v]
            y = int(rng.integers(lr.shape[0] - lr_patch + 1))
            x = int(rng.integers(lr.shape[1] - lr_patch + 1))
            hr = images.hr[i][
                y * scale : y * scale + patch_size, x * scale : x * scale + patch_size
            ]
            if input_kind == "bicubic":
                source = images.bicubic[i][v]
                inputs.append(
                    source[y * scale : y * scale + patch_size, x * scale : x * scale + patch_size]
                )
            else:
                inputs.append(lr[y : y + lr_patch, x : x + lr_patch].astype(np.float32) / 255.0)
            targets.append(hr.astype(np.float32) / 255.0)
        yield np.stack(inputs), np.stack(targets)


def split_holdout(sources: list, holdout: int, set_name) -> tuple[list, list]:
    """(kept, held out): the last ``holdout`` sources (sorted by file name) are held out.

    Held-out training images choose the checkpoint, so that no reported test set (Set5,
    Set14) ever does. DatasetError if the set is too small to keep any training image.
    """
    if holdout <= 0:
        return sources, []
    if holdout >= len(sources):
        raise DatasetError(
            f"--holdout {holdout}: the last training set {set_name} has only {len(sources)} "
            "image(s); hold out fewer (--holdout 0: none)"
        )
    return sources[:-holdout], sources[-holdout:]


def _check_scorable(path, hr: np.ndarray, scale: int) -> None:
    """DatasetError naming a validation image too small to score: the SSIM window must fit in
    it once ``scale`` px are shaved off each border (protocol ``y``)."""
    from amls2.imaging.metrics import SSIM_WINDOW

    need = SSIM_WINDOW + 2 * scale
    if min(hr.shape[:2]) < need:
        raise DatasetError(
            f"{path}: {hr.shape[1]}x{hr.shape[0]} is too small to validate at x{scale} "
            f"(needs {need} px per side); remove it from the validation set"
        )


def load_validation_images(
    sets: Sequence[str],
    *,
    scale: int,
    track: str,
    data_dir=None,
    split: str | None = None,
    limit: int | None = None,
    holdout_set: str | None = None,
    holdout: int = 0,
    holdout_split: str | None = None,
) -> list[ValidationImage]:
    """Whole validation images (split by image, never by patch).

    The LR images are the dataset's own, or synthesised with ``degradations.VALIDATION_SEED``
    (the benchmark protocol); HR is mod-cropped. Both float32 [0,1] RGB. ``limit`` caps the
    images per set. ``holdout`` > 0 adds the last ``holdout`` images of the training set
    ``holdout_set`` (``holdout_split``), which :func:`load_training_images` leaves out. The model
    input (LR or its bicubic upscaling) is made by ``inference.super_resolve`` at validation time.
    """
    from amls2.data import pairing

    groups = []
    for set_name in sets:
        sources = pairing.resolve_pairs(
            set_name, scale=scale, track=track, data_dir=data_dir, split=split
        )
        groups.append((Path(str(set_name)).name, sources[:limit]))
    if holdout > 0 and holdout_set is not None:
        sources = pairing.resolve_pairs(
            holdout_set, scale=scale, track=track, data_dir=data_dir, split=holdout_split
        )
        _, held = split_holdout(sources, holdout, holdout_set)
        groups.append((f"{Path(str(holdout_set)).name}-holdout", held))
    result = []
    for group, sources in groups:
        for source in sources:
            pair = pairing.load_pair(source, scale=scale, track=track)
            _check_scorable(source.hr_path, pair.hr, scale)
            result.append(
                ValidationImage(
                    name=f"{group}/{pair.name}",
                    lr=np.asarray(pair.lr, dtype=np.float32),
                    hr=np.asarray(pair.hr, dtype=np.float32),
                    grayscale=pair.grayscale,
                )
            )
    return result
