"""Degradations: kernels against OpenCV/SciPy, reproducibility, shapes, alignment, parameters."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from amls2.config import from_json, to_json
from amls2.data.degradations import (
    VALIDATION_SEED,
    DegradationSpec,
    apply_params,
    decimation_start,
    degrade,
    kernel_shift,
    make_kernel,
    rng_for,
    sample_params,
)
from amls2.errors import ConfigError, ImageError
from amls2.imaging.resize import bicubic_downscale

# A blur-only spec: no noise and no JPEG, so the output is a deterministic linear filter.
BLUR_ONLY = DegradationSpec(noise_prob=0.0, jpeg_prob=0.0)


@pytest.fixture
def hr(rng):
    return rng.random((37, 41, 3)).astype(np.float32)


@pytest.mark.parametrize(
    ("sx", "sy", "angle", "shift"),
    [(0.2, None, 0, 0.0), (1.3, None, 0, 0.5), (2.0, 0.5, 30, 0.0), (4.0, 1.0, 135, 0.5)],
)
def test_kernel_sums_to_one_and_is_odd_square(sx, sy, angle, shift):
    kernel = make_kernel(sx, sy, angle, shift=shift)
    assert kernel.shape[0] == kernel.shape[1]
    assert kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert kernel.min() >= 0


@pytest.mark.parametrize(("sigma", "size"), [(0.5, 5), (1.2, 9), (3.0, 19)])
def test_isotropic_kernel_matches_opencv(sigma, size):
    reference = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    np.testing.assert_allclose(make_kernel(sigma, size=size), reference @ reference.T, atol=1e-12)


@pytest.mark.parametrize(
    ("sx", "sy", "angle", "shift"), [(2.0, 0.7, 30.0, 0.0), (3.0, 1.0, 120.0, 0.5)]
)
def test_anisotropic_kernel_matches_scipy_gaussian(sx, sy, angle, shift):
    size = 21
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    offsets = np.arange(size) - size // 2 - shift
    dx, dy = np.meshgrid(offsets, offsets)
    pdf = multivariate_normal(mean=[0, 0], cov=cov).pdf(np.stack([dx, dy], axis=-1))
    np.testing.assert_allclose(
        make_kernel(sx, sy, angle, size=size, shift=shift), pdf / pdf.sum(), atol=1e-12
    )


def test_rotating_by_90_degrees_swaps_the_axes():
    np.testing.assert_allclose(make_kernel(3.0, 1.0, 90.0), make_kernel(1.0, 3.0, 0.0), atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shifted_kernel_centroid_sits_at_the_lr_pixel_centre(scale):
    kernel = make_kernel(1.0, size=15, shift=kernel_shift(scale))
    rows, cols = np.indices(kernel.shape)
    centre = 7 + kernel_shift(scale)  # kernel centre index 7, moved by the sub-pixel shift
    assert (kernel * cols).sum() == pytest.approx(centre, abs=1e-9)
    assert (kernel * rows).sum() == pytest.approx(centre, abs=1e-9)
    assert decimation_start(scale) + kernel_shift(scale) == pytest.approx((scale - 1) / 2)


@pytest.mark.parametrize("bad", [{"sigma_x": 0.0}, {"sigma_x": 1.0, "size": 4}])
def test_bad_kernel_arguments_are_config_errors(bad):
    with pytest.raises(ConfigError):
        make_kernel(**bad)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("track", ["bicubic", "unknown"])
def test_lr_is_hr_over_scale_after_mod_crop(hr, scale, track):
    lr, params = degrade(hr, scale, track, name="img")
    assert lr.shape == (37 // scale, 41 // scale, 3)
    assert lr.dtype == np.float32
    assert lr.min() >= 0.0 and lr.max() <= 1.0
    assert params["track"] == track and params["scale"] == scale


def test_bicubic_track_is_the_matlab_bicubic_downscale(hr):
    lr, _ = degrade(hr[:36, :40], 2, "bicubic")
    np.testing.assert_array_equal(lr, bicubic_downscale(hr[:36, :40], 2))


def test_same_seed_and_name_reproduce_lr_and_params(hr):
    lr1, p1 = degrade(hr, 3, "unknown", seed=7, name="0801")
    lr2, p2 = degrade(hr, 3, "unknown", seed=7, name="0801")
    np.testing.assert_array_equal(lr1, lr2)
    assert p1 == p2


@pytest.mark.parametrize(("seed", "name"), [(7, "0802"), (8, "0801")])
def test_other_name_or_seed_gives_other_degradation(hr, seed, name):
    lr1, p1 = degrade(hr, 3, "unknown", seed=7, name="0801")
    lr2, p2 = degrade(hr, 3, "unknown", seed=seed, name=name)
    assert p1["sigma_x"] != p2["sigma_x"]
    assert not np.array_equal(lr1, lr2)


def test_rng_depends_on_name_bytes_not_python_hash():
    # Known answer: SeedSequence([seed, crc32(name)]) is stable across processes and platforms.
    import zlib

    expected = np.random.default_rng(np.random.SeedSequence([3, zlib.crc32(b"baby")])).random()
    assert rng_for(3, "baby").random() == expected


def test_params_are_recorded_within_the_spec_ranges(hr):
    spec = DegradationSpec()
    for name in [f"im{i}" for i in range(20)]:
        _, p = degrade(hr, 4, "unknown", name=name, spec=spec)
        lo, hi = spec.sigma_range(4)
        assert lo <= p["sigma_x"] <= hi and lo <= p["sigma_y"] <= hi
        assert 0.0 <= p["angle_deg"] < 180.0
        assert p["kernel_size"] == 2 * int(np.ceil(3 * hi)) + 1
        assert (
            p["noise_sigma"] == 0.0
            or spec.noise_sigma_range[0] <= p["noise_sigma"] <= spec.noise_sigma_range[1]
        )
        assert p["jpeg_quality"] is None or 70 <= p["jpeg_quality"] <= 95
        assert p["seed"] == VALIDATION_SEED and p["name"] == name
        if p["kernel_type"] == "isotropic":
            assert p["sigma_x"] == p["sigma_y"] and p["angle_deg"] == 0.0


@pytest.mark.parametrize(("prob", "kind"), [(0.0, "isotropic"), (1.0, "anisotropic")])
def test_anisotropic_probability_is_honoured(prob, kind):
    spec = DegradationSpec(anisotropic_prob=prob)
    rng = np.random.default_rng(0)
    assert {sample_params(spec, 2, rng)["kernel_type"] for _ in range(30)} == {kind}


def test_recorded_params_regenerate_the_same_lr(hr):
    lr, params = degrade(
        hr[:36, :40], 2, "unknown", name="x", spec=DegradationSpec(noise_prob=1.0, jpeg_prob=1.0)
    )
    assert params["noise_sigma"] > 0 and params["jpeg_quality"] is not None
    np.testing.assert_array_equal(apply_params(hr[:36, :40], 2, params), lr)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("track", ["bicubic", "unknown"])
def test_lr_pixel_i_is_centred_on_hr_coordinate_i_s_plus_half_s_minus_one(scale, track):
    # A linear ramp is reproduced exactly by any symmetric normalised filter, so away from the
    # borders LR column i must hold the ramp's value at HR x = i*s + (s-1)/2, for both tracks: the
    # unknown stand-in is aligned like the bicubic benchmark. The ramp climbs 2 grey levels per HR
    # pixel, so a half-pixel misalignment would be off by a whole level (tolerance: half a level).
    width = 24 * scale
    levels = lambda x: (16.0 + 2.0 * x) / 255.0  # noqa: E731
    row = levels(np.arange(width, dtype=np.float64))
    hr = np.repeat(np.repeat(row[None, :, None], 8 * scale, axis=0), 3, axis=2).astype(np.float32)
    lr, _ = degrade(hr, scale, track, name="ramp", spec=BLUR_ONLY)
    expected = levels(np.arange(lr.shape[1]) * scale + (scale - 1) / 2)
    margin = 5  # LR px beyond the reach of the widest kernel from the mirrored border
    np.testing.assert_allclose(lr[4, margin:-margin, 1], expected[margin:-margin], atol=0.5 / 255)


def test_blur_only_on_a_constant_image_is_that_constant():
    hr = np.full((24, 24, 3), 0.4, np.float32)
    lr, _ = degrade(hr, 4, "unknown", name="flat", spec=BLUR_ONLY)
    np.testing.assert_allclose(lr, np.round(0.4 * 255) / 255, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sigma_ranges": ((2, 2.0, 1.0),)},
        {"noise_prob": 1.5},
        {"jpeg_quality_range": (0, 90)},
        {"noise_sigma_range": (5.0, 1.0)},
    ],
)
def test_invalid_spec_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        DegradationSpec(**kwargs)


def test_spec_without_the_scale_names_it(hr):
    with pytest.raises(ConfigError, match="--scale 4"):
        degrade(hr, 4, "unknown", spec=DegradationSpec(sigma_ranges=((2, 0.2, 2.0),)))


@pytest.mark.parametrize(
    ("scale", "track", "seed"), [(5, "bicubic", 0), (2, "noisy", 0), (2, "unknown", -1)]
)
def test_bad_options_are_config_errors(hr, scale, track, seed):
    with pytest.raises(ConfigError):
        degrade(hr, scale, track, seed=seed)


def test_too_small_image_is_an_image_error():
    with pytest.raises(ImageError, match="tiny"):
        degrade(np.zeros((3, 3, 3), np.float32), 4, "bicubic", name="tiny")


def test_spec_round_trips_through_json():
    spec = DegradationSpec(sigma_ranges=((2, 0.5, 1.5), (4, 1.0, 3.0)), jpeg_prob=0.0)
    assert from_json(DegradationSpec, to_json(spec)) == spec
