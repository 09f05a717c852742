"""Tests of amls2.imaging.metrics: known answers, scikit-image cross-checks, and the published bicubic
baselines of Set5/Set14 (shared data)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from amls2.errors import ImageError
from amls2.imaging import metrics
from amls2.imaging.images import list_images, load_image, mod_crop, to_float, to_uint8
from amls2.imaging.metrics import PROTOCOLS, evaluate_pair, psnr, psnr_from_mse, shave_for, ssim
from amls2.imaging.resize import bicubic_downscale, bicubic_upscale


def _image(rng, shape=(40, 48, 3), blur=2.0) -> np.ndarray:
    """A smooth random float32 RGB image holding uint8 levels."""
    noise = rng.random(shape).astype(np.float32)
    return to_float(to_uint8(cv2.GaussianBlur(noise, (0, 0), blur)))


def _noisy(rng, img, sigma=0.03) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 1).astype(np.float32)


def _skimage_view(img, scale, protocol, grayscale=False) -> np.ndarray:
    """The protocol's values computed independently of amls2.imaging.metrics."""
    levels = to_uint8(img)
    if protocol == "y":
        values = levels.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16
        if grayscale:
            values = levels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        shave = scale
    else:
        values = levels.astype(np.float64)
        shave = scale + 2
    return values[shave:-shave, shave:-shave]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_identical_images_give_inf_psnr_and_ssim_one(rng, protocol, scale):
    img = _image(rng)
    assert psnr(img, img.copy(), scale=scale, protocol=protocol) == math.inf
    assert ssim(img, img.copy(), scale=scale, protocol=protocol) == 1.0
    assert evaluate_pair(img, img, scale=scale, protocol=protocol) == {
        "psnr": math.inf,
        "ssim": 1.0,
    }


@pytest.mark.parametrize(
    ("mse", "data_range", "expected"),
    [(0.01, 1.0, 20.0), (1e-4, 1.0, 40.0), (0.0, 1.0, math.inf), (255.0**2 / 1000, 255.0, 30.0)],
)
def test_psnr_from_mse_known_values(mse, data_range, expected):
    assert psnr_from_mse(mse, data_range) == pytest.approx(expected, abs=1e-12)


def test_rgb_protocol_mse_point_zero_one_is_20_db():
    """A quarter of the pixels off by 51 levels (0.2): MSE = 0.25 * 0.2^2 = 0.01 -> 20 dB."""
    hr = np.full((40, 40, 3), 100 / 255, dtype=np.float32)
    sr = hr.copy()
    sr[:, ::2][::2] += np.float32(51 / 255)  # every other row and column: 1/4 of the pixels
    shave = shave_for("rgb", 2)
    assert np.mean(sr[shave:-shave, shave:-shave] != hr[shave:-shave, shave:-shave]) == 0.25
    assert psnr(sr, hr, scale=2, protocol="rgb") == pytest.approx(20.0, abs=1e-9)


@pytest.mark.parametrize("offset", [1, 5, 20])
def test_y_protocol_uniform_grey_offset_known_answer(offset):
    """A grey offset of d levels moves Y by 219 d / 255 (not rounded): PSNR = 20 log10(255 / that)."""
    hr = np.full((30, 30, 3), 90 / 255, dtype=np.float32)
    sr = hr + np.float32(offset / 255)
    expected = 20 * math.log10(255 / (219 * offset / 255))
    assert psnr(sr, hr, scale=3, protocol="y") == pytest.approx(expected, abs=1e-6)
    # A single-channel HR file is scored on its grey levels: 20 log10(255 / d).
    assert psnr(sr, hr, scale=3, grayscale=True) == pytest.approx(
        20 * math.log10(255 / offset), abs=1e-6
    )


@pytest.mark.parametrize(("protocol", "scale", "shave"), [("y", 2, 2), ("y", 4, 4), ("rgb", 3, 5)])
def test_shave_borders(rng, protocol, scale, shave):
    assert shave_for(protocol, scale) == shave
    hr = _image(rng)
    sr = hr.copy()
    # Changes inside the shaved border are ignored ...
    sr[:shave] = 1 - sr[:shave]
    sr[:, -shave:] = 1 - sr[:, -shave:]
    assert psnr(sr, hr, scale=scale, protocol=protocol) == math.inf
    # ... but the first pixel inside it counts.
    sr[shave, shave] = 1 - sr[shave, shave]
    assert psnr(sr, hr, scale=scale, protocol=protocol) < math.inf


def test_quantises_to_uint8_levels_first():
    hr = np.full((20, 20, 3), 100 / 255, dtype=np.float32)
    sr = hr + np.float32(0.4 / 255)  # rounds back to level 100
    assert psnr(sr, hr, scale=2, protocol="rgb") == math.inf
    assert psnr(sr, hr, scale=2, protocol="y") == math.inf


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_psnr_and_ssim_match_scikit_image(rng, protocol, scale):
    hr = _image(rng)
    sr = _noisy(rng, hr)
    a = _skimage_view(sr, scale, protocol)
    b = _skimage_view(hr, scale, protocol)
    expected_psnr = peak_signal_noise_ratio(b, a, data_range=255)
    expected_ssim = structural_similarity(
        b,
        a,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2 if protocol == "rgb" else None,
    )
    result = evaluate_pair(sr, hr, scale=scale, protocol=protocol)
    assert result["psnr"] == pytest.approx(expected_psnr, abs=1e-9)
    assert result["ssim"] == pytest.approx(expected_ssim, abs=1e-9)
    assert 0 < result["ssim"] < 1


def test_grayscale_y_matches_scikit_image_on_grey_levels(rng):
    grey = _image(rng)[:, :, :1]
    hr = np.repeat(grey, 3, axis=2)
    sr = np.repeat(_noisy(rng, grey), 3, axis=2)
    a = _skimage_view(sr, 2, "y", grayscale=True)
    b = _skimage_view(hr, 2, "y", grayscale=True)
    np.testing.assert_allclose(b, to_uint8(grey)[2:-2, 2:-2, 0], atol=1e-9)
    assert psnr(sr, hr, scale=2, grayscale=True) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9
    )
    expected = structural_similarity(
        b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(sr, hr, scale=2, grayscale=True) == pytest.approx(expected, abs=1e-9)


def test_ssim_known_answer_for_constant_images():
    """Constant maps: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2."""
    hr = np.full((30, 30, 3), 100 / 255, dtype=np.float32)
    sr = np.full((30, 30, 3), 120 / 255, dtype=np.float32)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert ssim(sr, hr, scale=2, protocol="rgb") == pytest.approx(expected, abs=1e-12)


def test_y_is_not_rounded():
    img = np.full((20, 20, 3), [10 / 255, 200 / 255, 30 / 255], dtype=np.float32)
    values = metrics.prepare(img, scale=2, protocol="y")
    assert values.shape == (16, 16, 1)
    expected = 16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255
    assert expected != round(expected)
    assert values[0, 0, 0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("sr_shape", "hr_shape", "error", "message"),
    [
        ((20, 20, 3), (20, 22, 3), ImageError, "shape"),
        ((20, 20), (20, 20), ImageError, "HxWx3"),
        ((8, 8, 3), (8, 8, 3), ImageError, "too small"),
    ],
)
def test_bad_inputs_raise(sr_shape, hr_shape, error, message):
    with pytest.raises(error, match=message):
        psnr(np.zeros(sr_shape), np.ones(hr_shape), scale=4)


def test_ssim_needs_an_11px_window():
    with pytest.raises(ImageError, match="SSIM window"):
        ssim(np.zeros((16, 16, 3)), np.ones((16, 16, 3)), scale=4)


def test_unknown_protocol_raises():
    with pytest.raises(ValueError, match="protocol"):
        psnr(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), scale=2, protocol="ycbcr")


# Published bicubic baselines (SRCNN / VDSR tables): mean over images of per-image PSNR (dB)
# and SSIM on Y, scale px shaved.
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


@pytest.mark.data
@pytest.mark.parametrize(("dataset", "scale"), list(PUBLISHED))
def test_bicubic_baseline_reproduces_published_numbers(shared_data, dataset, scale):
    """MATLAB-exact downscale then upscale (through uint8), scored under the "y" protocol.

    Measured: Set5 33.674 / 30.405 / 28.430, Set14 30.232 / 27.539 / 25.997 dB; SSIM within
    0.0007 of the published values.
    """
    scores = []
    for path in list_images(shared_data / dataset / "HR"):
        loaded = load_image(path)
        hr = mod_crop(loaded.rgb, scale)
        sr = bicubic_upscale(bicubic_downscale(hr, scale), scale)
        scores.append(evaluate_pair(sr, hr, scale=scale, grayscale=loaded.grayscale))
    mean_psnr = np.mean([s["psnr"] for s in scores])
    mean_ssim = np.mean([s["ssim"] for s in scores])
    published_psnr, published_ssim = PUBLISHED[(dataset, scale)]
    assert mean_psnr == pytest.approx(published_psnr, abs=0.02)
    assert mean_ssim == pytest.approx(published_ssim, abs=0.001)
