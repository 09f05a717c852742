"""Patch preparation: grid, alignment, idempotent and resumable runs, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amls2.config import load_config
from amls2.data.patches import (
    CONFIG_FILE,
    MANIFEST_FILE,
    PrepareConfig,
    crop_pair,
    patch_grid,
    patch_names,
    prepare_patches,
)
from amls2.errors import ConfigError
from amls2.imaging.images import read_image, write_image
from amls2.imaging.resize import bicubic_downscale


def smooth_image(rng, h: int, w: int) -> np.ndarray:
    """A smooth random colour image (upsampled noise), so bicubic comparisons are meaningful."""
    import cv2

    coarse = rng.random((h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


@pytest.fixture
def hr_folder(tmp_path, rng):
    folder = tmp_path / "hr"
    write_image(
        folder / "a.png", smooth_image(rng, 50, 74)
    )  # 2x3 patches of 24 px, borders dropped
    write_image(folder / "b.png", smooth_image(rng, 36, 36))
    return folder


def config_for(folder, out, **kwargs) -> PrepareConfig:
    options = {"scale": 2, "track": "bicubic", "patch": 24, "stride": 24, **kwargs}
    return PrepareConfig(dataset=str(folder), out_dir=out, **options)


@pytest.mark.parametrize(
    ("shape", "patch", "stride", "expected"),
    [
        ((250, 130), 120, 120, [(0, 0), (120, 0)]),
        ((24, 36), 12, 12, [(0, 0), (0, 12), (0, 24), (12, 0), (12, 12), (12, 24)]),
        ((30, 30), 20, 6, [(0, 0), (0, 6), (6, 0), (6, 6)]),
        ((10, 50), 12, 12, []),
    ],
)
def test_patch_grid_known_answers(shape, patch, stride, expected):
    assert patch_grid(*shape, patch, stride) == expected


@pytest.mark.parametrize(
    ("patch", "stride", "option"),
    [(100, 99, "--patch 100"), (120, 100, "--stride 100"), (0, 120, "--patch 0")],
)
def test_sizes_not_divisible_by_the_scale_are_config_errors(tmp_path, patch, stride, option):
    with pytest.raises(ConfigError, match=option):
        PrepareConfig("Set5", 3, "bicubic", tmp_path, patch=patch, stride=stride)


def test_defaults_are_120_px_patches_and_stride():
    config = PrepareConfig("T91", 4, "bicubic", "out")
    assert (config.patch, config.stride) == (120, 120)


def test_patch_names_follow_the_documented_layout():
    assert patch_names("0801", 3, 4) == ("HR/0801_3.png", "LR/0801_3x4.png")


def test_prepare_writes_aligned_patches_and_a_manifest(tmp_path, hr_folder):
    config = config_for(hr_folder, tmp_path / "out")
    manifest = prepare_patches(config, progress=False)
    out = tmp_path / "out"
    # a.png is 50x74 -> 2x3 patches of 24; b.png is 36x36 -> 1 patch.
    assert manifest["n_images"] == 2 and manifest["n_patches"] == 7
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest
    assert load_config(PrepareConfig, out / CONFIG_FILE) == config
    assert sorted(p.name for p in (out / "LR").iterdir())[:2] == ["a_0x2.png", "a_1x2.png"]
    entry = manifest["patches"][4]
    assert entry == {"hr": "HR/a_4.png", "lr": "LR/a_4x2.png", "source": "a", "y": 24, "x": 24}
    assert read_image(out / entry["hr"]).shape == (24, 24, 3)
    assert read_image(out / entry["lr"]).shape == (12, 12, 3)
    assert not list(out.rglob("*.tmp*"))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_lr_patch_matches_the_downscaled_hr_patch_away_from_the_border(
    tmp_path, rng, scale
):
    # The LR patch is cut from the LR of the whole image; bicubic_downscale of the HR patch only
    # differs within the kernel's reach (2 LR px) of the patch border.
    patch = 12 * scale
    folder = tmp_path / "hr"
    write_image(folder / "img.png", smooth_image(rng, 3 * patch, 3 * patch))
    manifest = prepare_patches(
        config_for(folder, tmp_path / "out", scale=scale, patch=patch, stride=patch), progress=False
    )
    assert manifest["n_patches"] == 9
    for entry in manifest["patches"]:
        hr_patch = read_image(tmp_path / "out" / entry["hr"])
        lr_patch = read_image(tmp_path / "out" / entry["lr"])
        np.testing.assert_allclose(
            lr_patch[2:-2, 2:-2],
            bicubic_downscale(hr_patch, scale)[2:-2, 2:-2],
            atol=1 / 255 + 1e-6,
        )


def test_lr_patches_are_crops_of_the_lr_file_at_hr_coordinates_over_scale(tmp_path, rng):
    data = tmp_path / "data"
    hr = smooth_image(rng, 48, 48)
    lr = rng.random((16, 16, 3)).astype(np.float32)  # any LR file: checks the crop coordinates
    write_image(data / "HR" / "x.png", hr)
    write_image(data / "LR_bicubic" / "X3" / "xx3.png", lr)
    manifest = prepare_patches(
        config_for(data, tmp_path / "out", scale=3, patch=24, stride=12), progress=False
    )
    lr_file = read_image(data / "LR_bicubic" / "X3" / "xx3.png")
    for entry in manifest["patches"]:
        y, x = entry["y"] // 3, entry["x"] // 3
        np.testing.assert_array_equal(
            read_image(tmp_path / "out" / entry["lr"]), lr_file[y : y + 8, x : x + 8]
        )


def test_crop_pair_is_aligned():
    hr = np.arange(12 * 12 * 3, dtype=np.float32).reshape(12, 12, 3)
    lr = hr[1::3, 1::3]  # LR pixel j sits at HR 3j+1, the centre of [3j, 3j+3)
    hr_patch, lr_patch = crop_pair(hr, lr, 3, 6, 6, 3)
    np.testing.assert_array_equal(lr_patch, hr_patch[1::3, 1::3])


def test_rerun_is_idempotent_and_rewrites_nothing(tmp_path, hr_folder):
    config = config_for(hr_folder, tmp_path / "out")
    first = prepare_patches(config, progress=False)
    files = sorted((tmp_path / "out").rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    second = prepare_patches(config, progress=False)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "out").rglob("*.png"))} == stamps


def test_interrupted_image_is_redone_and_complete_ones_are_skipped(tmp_path, hr_folder):
    out = tmp_path / "out"
    config = config_for(hr_folder, out)
    first = prepare_patches(config, progress=False)
    (out / "LR" / "a_2x2.png").unlink()  # as if the run stopped while writing a.png's patches
    b_stamp = (out / "HR" / "b_0.png").stat().st_mtime_ns
    assert prepare_patches(config, progress=False) == first
    assert (out / "LR" / "a_2x2.png").exists()
    assert (out / "HR" / "b_0.png").stat().st_mtime_ns == b_stamp


def test_out_dir_with_other_options_is_refused(tmp_path, hr_folder):
    prepare_patches(config_for(hr_folder, tmp_path / "out"), progress=False)
    with pytest.raises(ConfigError, match=r"prepare_config\.json.*\['patch', 'stride'\]"):
        prepare_patches(
            config_for(hr_folder, tmp_path / "out", patch=12, stride=12), progress=False
        )


def test_unknown_track_records_the_degradation_of_each_image(tmp_path, hr_folder):
    manifest = prepare_patches(
        config_for(hr_folder, tmp_path / "out", track="unknown", seed=5), progress=False
    )
    assert sorted(manifest["degradations"]) == ["a", "b"]
    assert manifest["degradations"]["a"]["seed"] == 5
    assert manifest["degradations"]["a"]["name"] == "a"
