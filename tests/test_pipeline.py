"""Tests of amls2.data.pipeline: aligned crops, shared augmentation, determinism, shapes, sharding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from amls2.data import pipeline, train_dataset
from amls2.errors import ConfigError
from amls2.imaging import images, resize


def training_images_from_arrays(
    hr_images: Sequence[np.ndarray],
    lr_images: Sequence[np.ndarray | Sequence[np.ndarray]],
    *,
    scale: int,
    with_bicubic: bool = False,
    names: Sequence[str] | None = None,
) -> pipeline.TrainingImages:
    """Test data: ``TrainingImages`` from in-memory float [0,1] (or uint8) HR and LR images.

    ``lr_images[i]`` is one LR image or a list of versions; every LR must be exactly
    ``hr.shape / scale`` (mod-crop the HR first).
    """
    hrs, lrs = [], []
    for i, (hr, lr) in enumerate(zip(hr_images, lr_images, strict=True)):
        versions = [lr] if isinstance(lr, np.ndarray) else list(lr)
        hr8 = hr if hr.dtype == np.uint8 else images.to_uint8(hr)
        lr8 = [v if v.dtype == np.uint8 else images.to_uint8(v) for v in versions]
        assert all(v.shape[:2] == (hr8.shape[0] // scale, hr8.shape[1] // scale) for v in lr8), i
        hrs.append(hr8)
        lrs.append(tuple(lr8))
    bics = None
    if with_bicubic:
        bics = tuple(tuple(resize.bicubic_upscale_float(v, scale) for v in vs) for vs in lrs)
    return pipeline.TrainingImages(
        names=tuple(names or (f"image{i}" for i in range(len(hrs)))),
        scale=scale,
        hr=tuple(hrs),
        lr=tuple(lrs),
        bicubic=bics,
    )


def block_images(rng, scale, sizes=((12, 10), (9, 14)), variants=1):
    """LR images of distinct random uint8 values and HR = each LR pixel repeated scale x scale.

    A crop of such an HR image decimated by ``scale`` equals the LR crop exactly iff the two
    crops are aligned (every LR value is unique, so a shifted crop cannot match by chance).
    """
    hrs, lrs = [], []
    for h, w in sizes:
        versions = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(variants)]
        lrs.append(versions)
        hrs.append(np.kron(versions[0], np.ones((scale, scale, 1), dtype=np.uint8)))
    return hrs, lrs


def batches(dataset):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def make(images, **kwargs):
    kwargs = {"patch_size": 4 * images.scale, "global_batch": 4, "seed": 7, "num_steps": 3} | kwargs
    return train_dataset.make_train_dataset(images, **kwargs)


def find_crop(image, crop):
    """Every (y, x) where ``crop`` occurs in ``image``."""
    h, w = crop.shape[:2]
    return [
        (y, x)
        for y in range(image.shape[0] - h + 1)
        for x in range(image.shape[1] - w + 1)
        if np.array_equal(image[y : y + h, x : x + w], crop)
    ]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("augment", [False, True])
def test_crops_are_aligned_with_and_without_augmentation(rng, scale, augment):
    hrs, lrs = block_images(rng, scale)
    images = training_images_from_arrays(hrs, lrs, scale=scale)
    for batch in batches(make(images, augment=augment)):
        lr = np.round(batch["lr"] * 255).astype(np.uint8)
        hr = np.round(batch["hr"] * 255).astype(np.uint8)
        assert lr.shape == (4, 4, 4, 3) and hr.shape == (4, 4 * scale, 4 * scale, 3)
        np.testing.assert_array_equal(hr[:, ::scale, ::scale], lr)
        # HR blocks stay constant: the augmentation did not shift the HR grid against the LR.
        np.testing.assert_array_equal(hr, np.kron(lr, np.ones((1, scale, scale, 1), np.uint8)))


def test_unaugmented_lr_crops_occur_exactly_once_in_the_images(rng):
    scale = 2
    hrs, lrs = block_images(rng, scale)
    images = training_images_from_arrays(hrs, lrs, scale=scale)
    for batch in batches(make(images, augment=False)):
        for lr_crop in np.round(batch["lr"] * 255).astype(np.uint8):
            hits = [hit for versions in lrs for hit in find_crop(versions[0], lr_crop)]
            assert len(hits) == 1


def test_augmentation_uses_all_eight_orientations(rng):
    # One 2x2 LR image: a crop of the whole image shows which rotation/flip was drawn.
    lr = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    hr = np.kron(lr, np.ones((2, 2, 1), np.uint8))
    images = training_images_from_arrays([hr], [lr], scale=2)
    seen = set()
    for batch in batches(make(images, patch_size=4, global_batch=16, num_steps=4)):
        seen.update(np.round(b * 255).astype(np.uint8).tobytes() for b in batch["lr"])
    assert len(seen) == 8


def test_bicubic_input_is_cropped_at_hr_coordinates(rng):
    scale = 3
    hrs, lrs = block_images(rng, scale)
    images = training_images_from_arrays(hrs, lrs, scale=scale, with_bicubic=True)
    dataset = make(images, outputs=("lr", "bicubic", "hr"), augment=False)
    for batch in batches(dataset):
        assert batch["bicubic"].shape == batch["hr"].shape == (4, 12, 12, 3)
        for lr_crop, bic_crop in zip(batch["lr"], batch["bicubic"], strict=True):
            lr_crop = np.round(lr_crop * 255).astype(np.uint8)
            for i, versions in enumerate(lrs):
                hits = find_crop(versions[0], lr_crop)
                if not hits:
                    continue
                ((y, x),) = hits
                full = images.bicubic[i][0]
                expected = full[y * scale : y * scale + 12, x * scale : x * scale + 12]
                np.testing.assert_allclose(bic_crop, expected, atol=1e-6)
                break
            else:
                pytest.fail("LR crop not found in any image")


def test_bicubic_only_pipeline_sizes(rng):
    hrs, lrs = block_images(rng, 2)
    images = training_images_from_arrays(hrs, lrs, scale=2, with_bicubic=True)
    (batch, *_) = batches(make(images, outputs=("bicubic", "hr"), patch_size=10))
    assert set(batch) == {"bicubic", "hr"}
    assert batch["bicubic"].shape == batch["hr"].shape == (4, 10, 10, 3)
    assert batch["bicubic"].dtype == np.float32


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("lr_grid", [True, False])
def test_bicubic_only_crops_start_on_the_lr_grid_when_asked(rng, scale, lr_grid):
    # HR blocks of scale x scale equal pixels: a crop is on the LR grid iff it is made of
    # whole blocks. A phase-dependent model (lr_grid) must only see such crops; without the
    # flag, 48 crops anywhere in the HR image include some off the grid.
    hrs, lrs = block_images(rng, scale, sizes=((14, 15), (16, 13)))
    images = training_images_from_arrays(hrs, lrs, scale=scale, with_bicubic=True)
    dataset = make(images, outputs=("bicubic", "hr"), lr_grid=lr_grid, global_batch=16)
    crops = np.concatenate([batch["hr"] for batch in batches(dataset)])
    crops = np.round(crops * 255).astype(np.uint8)
    blocks = np.kron(crops[:, ::scale, ::scale], np.ones((1, scale, scale, 1), np.uint8))
    on_grid = [np.array_equal(crop, block) for crop, block in zip(crops, blocks, strict=True)]
    assert all(on_grid) if lr_grid else not all(on_grid)


def test_phase_dependent_models_are_the_ones_with_a_polyphase_skip():
    from amls2 import models
    from amls2.models.phase_layers import is_phase_dependent

    assert is_phase_dependent(models.build_model("srcnn", 3, residual=True, linear_residual=True))
    assert not is_phase_dependent(models.build_model("srcnn", 3, residual=True))
    assert not is_phase_dependent(models.build_model("linear", 3))


def test_bicubic_upscale_matches_images_imresize(rng):

    lr = rng.random((6, 5, 3)).astype(np.float32)
    up = resize.bicubic_upscale_float(lr, 2)
    assert up.shape == (12, 10, 3) and up.dtype == np.float32
    np.testing.assert_allclose(up, resize.imresize(lr, 2), atol=1e-6)


@pytest.mark.parametrize("augment", [False, True])
def test_same_seed_same_batches_other_seed_differs(rng, augment):
    hrs, lrs = block_images(rng, 2, variants=2)
    images = training_images_from_arrays(hrs, lrs, scale=2)
    first = batches(make(images, seed=3, augment=augment))
    second = batches(make(images, seed=3, augment=augment))
    other = batches(make(images, seed=4, augment=augment))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["hr"], b["hr"])
    assert any(not np.array_equal(a["hr"], c["hr"]) for a, c in zip(first, other, strict=True))


def test_restart_at_a_step_sees_the_same_batches(rng):
    hrs, lrs = block_images(rng, 2)
    images = training_images_from_arrays(hrs, lrs, scale=2)
    full = batches(make(images, num_steps=5))
    tail = batches(make(images, start_step=3, num_steps=2))
    for a, b in zip(full[3:], tail, strict=True):
        np.testing.assert_array_equal(a["lr"], b["lr"])


class FakeInputContext:
    def __init__(self, num_pipelines, pipeline_id, replicas_per_pipeline=1):
        self.num_input_pipelines = num_pipelines
        self.input_pipeline_id = pipeline_id
        self.num_replicas_in_sync = num_pipelines * replicas_per_pipeline

    def get_per_replica_batch_size(self, global_batch):
        return global_batch // self.num_replicas_in_sync


@pytest.mark.parametrize("num_pipelines,replicas", [(2, 1), (4, 1), (2, 2)])
def test_workers_split_the_global_batch(rng, num_pipelines, replicas):
    hrs, lrs = block_images(rng, 2)
    images = training_images_from_arrays(hrs, lrs, scale=2)
    single = batches(make(images, global_batch=8, num_steps=2))
    per_worker = [
        batches(make(images, global_batch=8, num_steps=2, input_context=FakeInputContext(n, p, r)))
        for n, r in [(num_pipelines, replicas)]
        for p in range(n)
    ]
    per_replica = 8 // (num_pipelines * replicas)
    for step in range(2):
        # Worker p, local replica r of step t holds chunk (p * replicas + r) of the global batch.
        parts = [
            per_worker[p][step * replicas + r]["hr"]
            for p in range(num_pipelines)
            for r in range(replicas)
        ]
        assert all(part.shape[0] == per_replica for part in parts)
        np.testing.assert_array_equal(np.concatenate(parts), single[step]["hr"])


@pytest.mark.parametrize(
    "kwargs,option",
    [
        ({"patch_size": 5}, "--patch-size"),
        ({"patch_size": 40}, "--patch-size"),
        ({"global_batch": 0}, "--batch-size"),
        ({"outputs": ("lr", "sr")}, "outputs"),
        ({"outputs": ("bicubic", "hr")}, "bicubic"),
    ],
)
def test_bad_options_raise_config_error_naming_them(rng, kwargs, option):
    hrs, lrs = block_images(rng, 2)
    images = training_images_from_arrays(hrs, lrs, scale=2)
    with pytest.raises(ConfigError, match=option):
        make(images, **kwargs)


def test_numpy_crop_generator_is_aligned(rng):
    hrs, lrs = block_images(rng, 2)
    images = training_images_from_arrays(hrs, lrs, scale=2)
    x, y = next(pipeline.numpy_crop_batches(images, patch_size=8, batch_size=3, seed=0))
    assert x.shape == (3, 4, 4, 3) and y.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(y[:, ::2, ::2], x)
