"""Tests of amls2.imaging.images: file reading/writing, pixel conversions and MATLAB-exact imresize.

The external reference for imresize is the MATLAB-made ``LR_bicubic`` files of Set5/Set14
(shared data), plus hand-computed values of MATLAB's cubic kernel.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from amls2.errors import ImageError
from amls2.imaging import images, resize
from amls2.imaging.images import (
    list_images,
    load_image,
    mod_crop,
    read_image,
    rgb_to_y,
    to_float,
    to_uint8,
    write_image,
)
from amls2.imaging.resize import bicubic_downscale, bicubic_upscale, imresize

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _smooth_uint8(rng, shape) -> np.ndarray:
    """A smooth-ish random uint8 image (so that JPEG round trips stay close)."""
    noise = rng.random(shape).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return to_uint8(blurred)


def _write_raw(path: Path, bgr: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), bgr)
    return path


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_read_lossless_8bit_formats_exact(tmp_path, rng, suffix):
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = _write_raw(tmp_path / f"a{suffix}", rgb[:, :, ::-1])
    img = read_image(path)
    assert img.dtype == np.float32 and img.shape == (7, 9, 3)
    np.testing.assert_array_equal(img, rgb.astype(np.float32) / 255)
    assert load_image(path).bit_depth == 8


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_read_jpeg_close_and_rgb_order(tmp_path, rng, suffix):
    rgb = _smooth_uint8(rng, (32, 40, 3))
    rgb[:, :, 0] = 255  # a strong red cast shows a BGR/RGB mix-up
    path = _write_raw(tmp_path / f"a{suffix}", rgb[:, :, ::-1])
    img = read_image(path)
    assert img.shape == (32, 40, 3)
    assert np.abs(img - rgb / 255).mean() < 0.02
    assert img[:, :, 0].mean() > 0.95


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_16bit_divides_by_65535(tmp_path, suffix):
    values = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    bgr = np.repeat(values[:, :, None], 3, axis=2)
    path = _write_raw(tmp_path / f"a{suffix}", bgr)
    loaded = load_image(path)
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(loaded.rgb[0, :, 0], values[0] / 65535.0, rtol=0, atol=1e-7)


def test_read_grayscale_expands_to_rgb(tmp_path, rng):
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    path = _write_raw(tmp_path / "g.png", grey)
    img = read_image(path)
    assert img.shape == (5, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(img[:, :, channel], grey / np.float32(255))
    loaded = load_image(path)
    assert loaded.grayscale and loaded.alpha is None


def test_read_rgba_drops_alpha_with_warning(tmp_path, rng, caplog):
    bgra = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    path = _write_raw(tmp_path / "rgba.png", bgra)
    with caplog.at_level(logging.WARNING, logger="amls2.imaging.images"):
        img = read_image(path)
    assert img.shape == (4, 5, 3)
    np.testing.assert_array_equal(to_uint8(img), bgra[:, :, 2::-1])
    assert any("alpha" in r.getMessage() and "rgba.png" in r.getMessage() for r in caplog.records)
    loaded = load_image(path)
    np.testing.assert_array_equal(to_uint8(loaded.alpha), bgra[:, :, 3])
    assert not loaded.grayscale


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.png", lambda good: b"", "empty"),
        ("text.png", lambda good: b"this is not an image\n" * 20, "not a readable image"),
        ("trunc.png", lambda good: _truncated(good[".png"]), "truncated PNG"),
        ("trunc.jpg", lambda good: _truncated(good[".jpg"]), "truncated JPEG"),
        ("garbage.jpg", lambda good: good[".jpg"][:2] + b"\x00" * 500 + b"\xff\xd9", "image"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, rng, name, make, message):
    rgb = _smooth_uint8(rng, (64, 64, 3))
    good = {s: cv2.imencode(s, rgb)[1].tobytes() for s in (".png", ".jpg")}
    path = tmp_path / name
    path.write_bytes(make(good))
    with pytest.raises(ImageError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cut", [0.8, 0.99, "no-eoi"])
def test_truncated_jpeg_rejected_even_if_opencv_decodes_it(tmp_path, rng, monkeypatch, cut):
    """Older OpenCV builds decode a cut JPEG partially (grey bottom, stderr warning only):
    simulate that decoder, read_image must still refuse the file."""
    data = cv2.imencode(".jpg", _smooth_uint8(rng, (64, 64, 3)))[1].tobytes()
    data = data[:-2] if cut == "no-eoi" else data[: int(len(data) * cut)]
    path = tmp_path / "cut.jpg"
    path.write_bytes(data)
    monkeypatch.setattr(
        images.cv2, "imdecode", lambda buffer, flags: np.zeros((64, 64, 3), np.uint8)
    )
    with pytest.raises(ImageError, match="truncated JPEG"):
        read_image(path)


@pytest.mark.parametrize("progressive", [0, 1])
def test_jpeg_with_trailing_bytes_after_end_marker_reads(tmp_path, rng, progressive):
    """Camera trailers after EOI are not truncation (only a cut scan is)."""
    rgb = _smooth_uint8(rng, (32, 32, 3))
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive]
    data = cv2.imencode(".jpg", rgb, params)[1].tobytes()
    path = tmp_path / "trailer.jpg"
    path.write_bytes(data + b"TRAILER" * 100)
    assert read_image(path).shape == (32, 32, 3)


def test_missing_file_and_folder_raise(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="nope"):
        list_images(tmp_path / "nope")


def test_folder_without_images_raises_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="no images") as info:
        list_images(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_list_images_sorted_and_filtered(tmp_path, rng):
    for name in ["b.png", "a.JPG", "c.bmp", "d.txt", ".hidden.png"]:
        _write_raw(tmp_path / name, _smooth_uint8(rng, (8, 8, 3))) if name != "d.txt" else None
    (tmp_path / "d.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.bmp"]


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_write_read_round_trip(tmp_path, rng, bit_depth, suffix):
    levels = 255 if bit_depth == 8 else 65535
    img = (rng.integers(0, levels + 1, (6, 7, 3)) / levels).astype(np.float32)
    path = write_image(tmp_path / f"out{suffix}", img, bit_depth=bit_depth)
    loaded = load_image(path)
    assert loaded.bit_depth == bit_depth
    np.testing.assert_allclose(loaded.rgb, img, rtol=0, atol=1e-6)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == (
        np.uint8 if bit_depth == 8 else np.uint16
    )


@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 1)])
def test_write_grey_stays_single_channel(tmp_path, rng, shape):
    img = rng.random(shape).astype(np.float32)
    path = write_image(tmp_path / "g.png", img)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.shape == (5, 6)
    np.testing.assert_array_equal(raw, to_uint8(img.reshape(5, 6)))


def test_write_rgba_keeps_alpha(tmp_path, rng):
    img = rng.random((4, 5, 4)).astype(np.float32)
    path = write_image(tmp_path / "rgba.png", img)
    loaded = load_image(path)
    np.testing.assert_array_equal(to_uint8(loaded.rgb), to_uint8(img[:, :, :3]))
    np.testing.assert_array_equal(to_uint8(loaded.alpha), to_uint8(img[:, :, 3]))


def test_write_clips_and_rounds_like_im2uint8(tmp_path):
    img = np.array([[-0.5, 0.0, 0.5 / 255 + 1e-6, 0.49 / 255, 1.0, 2.0]], dtype=np.float64)
    path = write_image(tmp_path / "c.png", img)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw[0], [0, 0, 1, 0, 255, 255])


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, rng):
    path = tmp_path / "out.png"
    write_image(path, rng.random((4, 4, 3)))
    write_image(path, rng.random((4, 4, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_failed_write_keeps_old_file(tmp_path, rng, monkeypatch):
    path = write_image(tmp_path / "out.png", rng.random((4, 4, 3)))
    before = path.read_bytes()

    class HalfWriter:
        """A partial write, then the disk is full."""

        def __init__(self, filename, mode):
            self.handle = open(filename, mode)  # noqa: SIM115 (closed in __exit__)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(bytes(data)[:2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(images, "open", HalfWriter, raising=False)
    with pytest.raises(ImageError, match="out.png.*No space left"):
        write_image(path, rng.random((4, 4, 3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize(
    ("name", "kwargs", "img_shape", "message"),
    [
        ("a.jpg", {"bit_depth": 16}, (4, 4, 3), "16-bit"),
        ("a.png", {"bit_depth": 12}, (4, 4, 3), "bit_depth"),
        ("a.gif", {}, (4, 4, 3), "suffix"),
        ("a.png", {}, (4, 4, 5), "shape"),
        ("a.jpg", {}, (4, 4, 2), "alpha can only be written as PNG"),
    ],
)
def test_write_rejects_bad_requests(tmp_path, name, kwargs, img_shape, message):
    with pytest.raises(ImageError, match=message):
        write_image(tmp_path / name, np.zeros(img_shape), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_existing_without_overwrite(tmp_path, rng):
    path = write_image(tmp_path / "out.png", rng.random((4, 4, 3)))
    before = path.read_bytes()
    with pytest.raises(ImageError, match="exists"):
        write_image(path, rng.random((4, 4, 3)), overwrite=False)
    assert path.read_bytes() == before


def test_write_rejects_nan(tmp_path):
    img = np.zeros((3, 3, 3))
    img[1, 1, 1] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        write_image(tmp_path / "n.png", img)


# --------------------------------------------------------------------------------------------
# pixel conversions
# --------------------------------------------------------------------------------------------


def test_to_uint8_rounds_half_up_and_clips():
    values = np.array([-0.1, 0.0, 0.51 / 255, 0.49 / 255, 254.5 / 255 + 1e-9, 1.0, 1.5])
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 1, 0, 255, 255, 255])
    assert to_uint8(values).dtype == np.uint8


def test_to_float_inverts_to_uint8():
    levels = np.arange(256, dtype=np.uint8)
    assert to_float(levels).dtype == np.float32
    np.testing.assert_array_equal(to_uint8(to_float(levels)), levels)


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((0, 0, 0), 16.0),
        ((1, 1, 1), 235.0),
        ((1, 0, 0), 16 + 65.481),
        ((0, 1, 0), 16 + 128.553),
        ((0, 0, 1), 16 + 24.966),
        ((0.5, 0.25, 0.75), 16 + 0.5 * 65.481 + 0.25 * 128.553 + 0.75 * 24.966),
    ],
)
def test_rgb_to_y_bt601_known_values(rgb, expected):
    img = np.array(rgb, dtype=np.float32).reshape(1, 1, 3)
    y = rgb_to_y(img)
    assert y.shape == (1, 1) and y.dtype == np.float64
    assert y[0, 0] == pytest.approx(expected, abs=1e-5)


def test_rgb_to_y_matches_opencv_luma():
    """Cross-check: (Y - 16) * 255/219 is the full-range BT.601 luma OpenCV computes."""
    rng = np.random.default_rng(0)
    img = rng.random((6, 6, 3)).astype(np.float32)
    full = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    np.testing.assert_allclose((rgb_to_y(img) - 16) * 255 / 219 / 255, full, atol=2e-6)


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((10, 11, 3), 2, (10, 10, 3)),
        ((10, 11, 3), 3, (9, 9, 3)),
        ((7, 9), 4, (4, 8)),
        ((8, 8, 3), 1, (8, 8, 3)),
    ],
)
def test_mod_crop(shape, scale, expected):
    img = np.arange(np.prod(shape)).reshape(shape)
    out = mod_crop(img, scale)
    assert out.shape == expected
    np.testing.assert_array_equal(out, img[: expected[0], : expected[1]])


# --------------------------------------------------------------------------------------------
# imresize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "scale", "output_shape", "expected"),
    [
        ((10, 12, 3), 0.5, None, (5, 6, 3)),
        ((7, 9, 3), 1 / 3, None, (3, 3, 3)),  # ceil(7/3) = 3, ceil(9/3) = 3
        ((8, 11, 3), 1 / 3, None, (3, 4, 3)),
        ((5, 7), 2, None, (10, 14)),
        ((5, 7, 3), 3, None, (15, 21, 3)),
        ((5, 7, 3), 1.5, None, (8, 11, 3)),
        ((9, 9, 3), None, (4, 13), (4, 13, 3)),
        ((9, 9, 1), None, (9, 9), (9, 9, 1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_imresize_output_shapes_and_dtypes(rng, shape, scale, output_shape, expected, dtype):
    img = rng.random(shape)
    img = to_uint8(img) if dtype == np.uint8 else img.astype(dtype)
    out = imresize(img, scale, output_shape=output_shape)
    assert out.shape == expected and out.dtype == dtype


def test_imresize_hand_computed_matlab_cubic_upscale():
    """MATLAB x2 on the ramp [0, 1, 2, 3], worked by hand from imresize.m.

    Output x (1-based) samples u = x/2 + 1/4 with taps j = floor(u - 2) .. + 5, weights
    cubic(u - j): k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125,
    k(1.75) = -0.0234375; taps outside 1..4 are clamped to the edge pixel. out(1): u = 0.75,
    taps 0,1 -> pixel 1 and tap 2: (k(1.75) + k(0.75) + k(0.25)) * 0 + k(1.25) * 1 = -0.0703125.
    out(2): u = 1.25: k(0.25) * 0 + k(0.75) * 1 + k(1.75) * 2 = 0.1796875. out(3): u = 1.75:
    k(0.25) * 1 + k(1.25) * 2 = 0.7265625. out(4), out(5) see no border: the ramp u - 1.
    The rest mirrors: out(9 - x) = 3 - out(x)."""
    row = np.array([[0.0, 1.0, 2.0, 3.0]])
    out = imresize(row, 2)
    assert out.shape == (2, 8)
    first = [-0.0703125, 0.1796875, 0.7265625, 1.25]
    expected_row = np.array(first + [3 - v for v in reversed(first)])
    np.testing.assert_allclose(out[0], expected_row, atol=1e-12)
    np.testing.assert_allclose(out[1], expected_row, atol=1e-12)


def test_imresize_hand_computed_antialiased_downscale():
    """x1/2: kernel widened to 8 taps, u = 2x - 0.5; a ramp stays a ramp inside: out = 2x + 0.5
    (0-based x); the ends see the replicated edge."""
    ramp = np.arange(16, dtype=np.float64)[None, :]
    out = imresize(ramp, 0.5)[0]
    np.testing.assert_allclose(out[2:-2], 2 * np.arange(2, 6) + 0.5, atol=1e-12)
    # First output: taps at u - k for the widened kernel 0.5 * cubic(0.5 * d), d = u - j.
    u = 1.5
    taps = np.arange(-2, 6)  # 1-based input positions touched by u
    w = 0.5 * resize._cubic(0.5 * (u - taps))
    w = w / w.sum()
    values = np.clip(taps - 1, 0, 15)  # replicated border, 0-based values of the ramp
    assert out[0] == pytest.approx(float(w @ values), abs=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4, 1.7])
def test_imresize_constant_image_stays_constant(scale):
    img = np.full((13, 17, 3), 0.3, dtype=np.float32)
    np.testing.assert_allclose(imresize(img, scale), 0.3, atol=1e-6)
    levels = np.full((13, 17, 3), 77, dtype=np.uint8)
    assert np.all(imresize(levels, scale) == 77)


def _two_pass(img: np.ndarray, out_shape, rows_first: bool) -> np.ndarray:
    """Resize one axis then the other with output_shape, rounding to uint8 after each pass."""
    height, width = img.shape[:2]
    first = (out_shape[0], width) if rows_first else (height, out_shape[1])
    mid = imresize(img.astype(np.float64), output_shape=first)
    mid = np.clip(np.floor(mid + 0.5), 0, 255)
    out = imresize(mid, output_shape=out_shape)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("out_shape", "rows_first"),
    [((12, 16), True), ((36, 48), True), ((12, 96), True), ((72, 16), False)],
)
def test_imresize_uint8_rounds_after_each_pass_in_scale_order(rng, out_shape, rows_first):
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    got = imresize(img, output_shape=out_shape)
    np.testing.assert_array_equal(got, _two_pass(img, out_shape, rows_first))
    # The order matters for rounding, and so does rounding in between (the float-only path).
    other_order = _two_pass(img, out_shape, not rows_first)
    float_only = to_uint8(imresize(img.astype(np.float64) / 255, output_shape=out_shape))
    assert np.mean(got != float_only) > 0.02
    if out_shape[0] / 24 != out_shape[1] / 32:
        assert np.any(got != other_order)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_round_trip_shapes_and_closeness(rng, scale):
    hr = cv2.GaussianBlur(rng.random((48, 60, 3)).astype(np.float32), (0, 0), 3)
    lr = bicubic_downscale(hr, scale)
    assert lr.shape == (48 // scale, 60 // scale, 3) and lr.dtype == np.float32
    np.testing.assert_array_equal(lr, to_float(to_uint8(lr)))  # holds uint8 levels
    up = bicubic_upscale(lr, scale)
    assert up.shape == hr.shape and up.dtype == np.float32
    assert np.abs(up - hr)[8:-8, 8:-8].mean() < 0.02


def test_imresize_rejects_bad_arguments():
    img = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 2, output_shape=(8, 8))
    with pytest.raises(ValueError):
        imresize(img, -1)
    with pytest.raises(ValueError):
        imresize(img.astype(np.int32), 2)


# --------------------------------------------------------------------------------------------
# acceptance: MATLAB-made LR files
# --------------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_downscale_matches_matlab_lr_files(shared_data, dataset, scale):
    equal_inner = total_inner = equal_all = total_all = 0
    for hr_path in list_images(shared_data / dataset / "HR"):
        ref_path = (
            shared_data / dataset / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        )
        hr = mod_crop(read_image(hr_path), scale)
        ref = to_uint8(read_image(ref_path))
        lr = to_uint8(bicubic_downscale(hr, scale))
        assert lr.shape == ref.shape, hr_path.name
        same = lr == ref
        equal_all += same.sum()
        total_all += same.size
        equal_inner += same[2:-2, 2:-2].sum()
        total_inner += same[2:-2, 2:-2].size
    # Measured: every pixel equal (1.0 / 1.0) for Set5 and Set14 at x2, x3, x4.
    assert equal_inner / total_inner >= 0.9999
    assert equal_all / total_all >= 0.9999


@pytest.mark.data
def test_grey_bridge_reference_is_single_channel_and_matches(shared_data):
    """Set14 bridge is a one-channel file, and so are its MATLAB LR files: both read as RGB
    with equal channels, so the RGB path reproduces the grey MATLAB resize."""
    hr_path = shared_data / "Set14" / "HR" / "bridge.png"
    ref_path = shared_data / "Set14" / "LR_bicubic" / "X3" / "bridgex3.png"
    assert load_image(hr_path).grayscale and load_image(ref_path).grayscale
    lr = bicubic_downscale(mod_crop(read_image(hr_path), 3), 3)
    assert np.array_equal(lr[:, :, 0], lr[:, :, 1]) and np.array_equal(lr[:, :, 0], lr[:, :, 2])
    np.testing.assert_array_equal(to_uint8(lr), to_uint8(read_image(ref_path)))


@pytest.mark.parametrize(
    ("shape", "bit_depth"), [((300, 7, 3), 8), ((300, 7, 4), 8), ((300, 7), 16), ((600, 5, 3), 16)]
)
def test_writing_in_row_strips_equals_quantising_at_once(tmp_path, shape, bit_depth):
    """Images taller than one write strip are quantised exactly as a whole image would be."""
    from amls2.imaging.images import _WRITE_STRIP_ROWS

    assert shape[0] > _WRITE_STRIP_ROWS
    img = np.random.default_rng(1).random(shape).astype(np.float32)
    path = write_image(tmp_path / "tall.png", img, bit_depth=bit_depth)
    top = 255 if bit_depth == 8 else 65535
    expected = np.clip(np.floor(img.astype(np.float64) * top + 0.5), 0, top)
    if img.ndim == 3:
        expected = expected[..., [2, 1, 0, 3][: img.shape[2]]]
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), expected)
