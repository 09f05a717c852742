"""Training crops of a paired dataset keep the LR/HR offset of the files exactly.

A DIV2K-shaped tree is written whose LR pixel ``i`` is the mean of HR pixels ``i*s + a`` and
``i*s + a + h`` (``h`` 0 or 1) along each axis, i.e. centred at HR ``i*s + a + h/2``: an offset of
``a + h/2 - (s-1)/2`` HR pixels from MATLAB bicubic's LR pixel centre. HR values are multiples of
4, so the LR is exact in uint8. Crops are taken through the training pipeline (NumPy side, the
prepared-patch cutter and the tf.data pipeline) and the offset of every (HR crop, LR crop) is
measured by least squares (``operator.estimate_operator`` on that one crop pair).
"""

from __future__ import annotations

import numpy as np
import pytest

from amls2.data.operator_fit import estimate_operator
from amls2.data.patches import crop_pair
from amls2.data.pipeline import load_training_images, numpy_crop_batches
from amls2.imaging.images import to_float, write_image

# (scale, (a_y, h_y), (a_x, h_x)): integer and half-pixel offsets, different per axis.
CASES = [
    (2, (1, 0), (0, 1)),  # offsets (+0.5, 0.0)
    (3, (1, 0), (2, 1)),  # (0.0, +1.5)
    (4, (0, 1), (2, 0)),  # (-1.0, +0.5)
]


def _expected_offset(scale, ay_hy, ax_hx):
    return tuple(a + h / 2 - (scale - 1) / 2 for a, h in (ay_hy, ax_hx))


def _sample_axis(img, axis, scale, a, h):
    n = img.shape[axis] // scale
    first = np.take(img, np.arange(n) * scale + a, axis=axis, mode="wrap")
    second = np.take(img, np.arange(n) * scale + a + h, axis=axis, mode="wrap")
    return (first + second) / 2


def _shifted_tree(root, rng, scale, ay_hy, ax_hx, count=2):
    for i in range(count):
        hr8 = rng.integers(0, 64, (16 * scale, 20 * scale, 3)) * 4
        lr = _sample_axis(hr8.astype(np.float64), 0, scale, *ay_hy)
        lr = _sample_axis(lr, 1, scale, *ax_hx)
        assert np.array_equal(lr, np.round(lr))  # exact in uint8
        write_image(root / "DIV2K_train_HR" / f"{i:04d}.png", to_float(hr8.astype(np.uint8)))
        lr_dir = root / "DIV2K_train_LR_unknown" / f"X{scale}"
        write_image(lr_dir / f"{i:04d}x{scale}.png", to_float(lr.astype(np.uint8)))


def _measured_offset(hr_crop, lr_crop, scale):
    op = estimate_operator(
        [(np.asarray(hr_crop, np.float64), np.asarray(lr_crop, np.float64))],
        scale,
        sizes=[2 * scale + 1],
        bias=False,
        borders=("symmetric",),
        max_pixels=None,
    )
    return op.offset


@pytest.fixture(params=CASES, ids=lambda c: f"x{c[0]}")
def shifted(request, tmp_path, rng):
    scale, ay_hy, ax_hx = request.param
    _shifted_tree(tmp_path / "Shifted", rng, scale, ay_hy, ax_hx)
    images = load_training_images(
        ["Shifted"], scale=scale, track="unknown", data_dir=tmp_path, split="train"
    )
    return images, _expected_offset(scale, ay_hy, ax_hx)


def test_the_measurement_itself_sees_the_offset_of_whole_images(shifted):
    images, expected = shifted
    offset = _measured_offset(images.hr[0] / 255.0, images.lr[0][0] / 255.0, images.scale)
    assert offset == pytest.approx(expected, abs=1e-6)


def test_numpy_crops_and_prepared_patches_keep_the_offset(shifted):
    images, expected = shifted
    s, patch = images.scale, 12 * images.scale
    batches = numpy_crop_batches(images, patch_size=patch, batch_size=4, seed=3)
    lr_crops, hr_crops = next(batches)
    for lr, hr in zip(lr_crops, hr_crops, strict=True):
        assert _measured_offset(hr, lr, s) == pytest.approx(expected, abs=1e-6)
    hr, lr = crop_pair(images.hr[1], images.lr[1][0], 2 * s, 3 * s, patch, s)
    assert _measured_offset(hr / 255.0, lr / 255.0, s) == pytest.approx(expected, abs=1e-6)


def _orientations_of(offset):
    """The offsets of a pair after each of the 8 rotations/mirrors of both crops: about MATLAB's
    centre a mirror flips the sign along its axis and a quarter turn swaps the axes."""
    dy, dx = offset
    return {
        (round(sy * y, 6), round(sx * x, 6))
        for y, x in ((dy, dx), (dx, dy))
        for sy in (1, -1)
        for sx in (1, -1)
    }


@pytest.mark.parametrize("augment", [False, True])
def test_tf_data_crops_keep_the_offset(shifted, augment):
    """Without augmentation every crop has the files' offset exactly. With it, each crop has the
    offset of one of its 8 orientations: a non-zero offset is NOT invariant under the flips and
    quarter turns, so augmenting pairs of such an operator mixes up to 8 different operators."""
    from amls2.data.train_dataset import make_train_dataset

    images, expected = shifted
    s = images.scale
    dataset = make_train_dataset(
        images, patch_size=12 * s, global_batch=8, seed=5, num_steps=1, augment=augment
    )
    batch = next(iter(dataset))
    measured = [
        _measured_offset(hr, lr, s)
        for hr, lr in zip(batch["hr"].numpy(), batch["lr"].numpy(), strict=True)
    ]
    allowed = _orientations_of(expected) if augment else {tuple(round(e, 6) for e in expected)}
    for offset in measured:
        assert tuple(round(v, 6) for v in offset) in allowed, (offset, allowed)
    if not augment:
        return
    # At least one crop was turned into a different offset (the seed makes this deterministic).
    assert any(tuple(round(v, 6) for v in o) != tuple(expected) for o in measured)
