"""EXIF orientation: a photo is read the way it is displayed, by every command alike, and files
without EXIF (every benchmark image) are read exactly as stored."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from amls2.cli import main
from amls2.imaging import image_headers, images, resize

PIL = pytest.importorskip("PIL")  # a matplotlib dependency; makes the EXIF files and the oracle
from PIL import Image, ImageOps  # noqa: E402


def stored_pixels(shape=(40, 56, 3), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((shape[0] // 4, shape[1] // 4, 3))
    return images.to_uint8(np.clip(resize.imresize(small, output_shape=shape[:2]), 0, 1))


def save_with_orientation(path, pixels: np.ndarray, orientation: int, **options) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **options)


def displayed(path) -> np.ndarray:
    """What an image viewer shows: Pillow's EXIF transpose, as RGB uint8."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_turns_the_pixels_as_displayed(tmp_path, suffix, orientation):
    path = tmp_path / f"o{orientation}{suffix}"
    save_with_orientation(path, stored_pixels(), orientation, quality=95)
    assert image_headers.exif_orientation(path.read_bytes()) == orientation
    np.testing.assert_array_equal(images.to_uint8(images.read_image(path)), displayed(path))


def test_big_endian_exif_is_read(tmp_path):
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHI", 0x0112, 3, 1) + struct.pack(">HH", 8, 0) + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = cv2.imencode(".jpg", stored_pixels()[..., ::-1])[1].tobytes()
    path = tmp_path / "mm.jpg"
    path.write_bytes(data[:2] + app1 + data[2:])
    assert image_headers.exif_orientation(path.read_bytes()) == 8
    assert images.read_image(path).shape == (56, 40, 3)


def test_upscale_of_a_portrait_photo_is_portrait(tmp_path, capsys):
    src = tmp_path / "phone.jpg"
    save_with_orientation(src, stored_pixels(), 6, quality=95)  # stored 40x56, shown 56x40
    assert main(["upscale", str(src), "--model", "bicubic", "--scale", "2"]) == 0
    out = cv2.imread(str(tmp_path / "phone_x2_bicubic.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (112, 80, 3)


def _run_command(command: str, folder, out, capsys) -> dict[str, bytes] | list:
    if command == "upscale":
        argv = ["upscale", folder, "--model", "bicubic", "--scale", 2, "--out", out]
    elif command == "degrade":
        argv = ["degrade", folder, out, "--scale", 2, "--track", "bicubic"]
    elif command == "prepare":
        argv = ["prepare", folder, "--scale", 2, "--track", "bicubic", "--out", out]
        argv += ["--patch", 16, "--stride", 16]
    else:
        argv = ["evaluate", "--model", "bicubic", "--dataset", folder, "--scale", 2]
        argv += ["--json", out / "results.json"]
        out.mkdir()
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    if command == "evaluate":
        records = json.loads((out / "results.json").read_text())
        return [{k: v for k, v in r.items() if "psnr" in k or "ssim" in k} for r in records]
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix == ".png"
    }


@pytest.mark.parametrize("command", ["upscale", "degrade", "prepare", "evaluate"])
def test_every_command_sees_the_displayed_image(tmp_path, capsys, command):
    """A PNG stored landscape with orientation 6 gives what its upright twin without EXIF gives."""
    upright = np.rot90(stored_pixels((40, 56, 3)), -1)  # what a viewer shows: 56x40
    (tmp_path / "exif").mkdir()
    (tmp_path / "plain").mkdir()
    save_with_orientation(tmp_path / "exif" / "a.png", stored_pixels((40, 56, 3)), 6)
    Image.fromarray(np.ascontiguousarray(upright)).save(tmp_path / "plain" / "a.png")
    with_exif = _run_command(command, tmp_path / "exif", tmp_path / "out_exif", capsys)
    without = _run_command(command, tmp_path / "plain", tmp_path / "out_plain", capsys)
    assert with_exif and with_exif == without


def test_benchmark_images_carry_no_orientation_and_read_as_stored(shared_data):
    paths = sorted((shared_data / "Set5" / "HR").iterdir()) + sorted(
        (shared_data / "Set14" / "HR").iterdir()
    )
    for path in paths:
        assert image_headers.exif_orientation(path.read_bytes()) == 1, path
        stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        stored = stored if stored.ndim == 2 else stored[..., 2::-1]
        read = images.to_uint8(images.read_image(path))
        np.testing.assert_array_equal(read if stored.ndim == 3 else read[..., 0], stored)
