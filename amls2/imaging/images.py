"""Image files and the MATLAB-exact image operations of the benchmark protocol.

Images in memory are float32, HxWx3, RGB, in [0, 1]. Files are read and written with OpenCV
(8/16-bit PNG, JPEG, BMP, TIFF); a missing, empty, truncated, corrupt or non-image file raises
:class:`~amls2.errors.ImageError` naming it. Only regular files are read (a FIFO or a device
would block or never end), and an image's size is read from its header and checked against the
pixel budget (:mod:`amls2.imaging.image_headers`, default 64 megapixels) before its pixels are decoded; a JPEG
scan that libjpeg reports as corrupt is an error too. A JPEG or PNG carrying an EXIF orientation
is turned the way it is displayed (a phone's portrait photo stays portrait); files without one,
as every benchmark image, are read as stored.

The protocol-exact part reproduces MATLAB, where the published SISR numbers come from:
``to_uint8`` is ``im2uint8`` (round half up, clip), ``rgb_to_y`` is the Y of ``rgb2ycbcr``
(ITU-R BT.601, Y in [16, 235]).

The MATLAB-exact ``imresize`` and the protocol's bicubic down- and upscaling are
:mod:`amls2.imaging.resize`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from amls2.errors import Amls2Error, ImageError
from amls2.fileio import atomic_path
from amls2.imaging.image_headers import exif_orientation, is_grey_alpha_png, is_jpeg, read_checked

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Suffixes that can hold 16 bits per channel when writing.
_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")

# ITU-R BT.601 luma as MATLAB rgb2ycbcr, for RGB in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B.
_Y_OFFSET = 16.0
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)

_JPEG_CORRUPT_MESSAGES = ("Corrupt JPEG data", "Premature end of JPEG file")
_STDERR_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    """An image file as read for upscaling, keeping what is needed to write it back alike.

    ``rgb`` is float32 HxWx3 in [0, 1]; ``alpha`` float32 HxW in [0, 1] or None; ``grayscale``
    tells that the file had one (or a grey+alpha) channel; ``bit_depth`` is 8 or 16.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool
    bit_depth: int
    path: Path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files (by suffix, case-insensitive) directly inside ``folder``, sorted by name.

    Raises ImageError naming the folder if it does not exist or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: image folder not found")
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise ImageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in folder")
    return paths


# ----------------------------------------------------------------------------- decoding


@contextlib.contextmanager
def _captured_c_stderr() -> Iterator[list[str]]:
    """Send what C code writes to the process's stderr (fd 2) during the block into the list
    yielded (filled on exit). One block at a time in the process: fd 2 is shared by all threads.
    Without a usable fd 2 nothing is captured."""
    captured: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()  # Python's own buffered text goes out before the switch
            saved = os.dup(2)
        except (OSError, ValueError):
            yield captured
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def _imdecode(path: Path, data: bytes) -> np.ndarray | None:
    """``cv2.imdecode``; for JPEG, libjpeg's "Corrupt JPEG data" warning becomes an ImageError
    and any other C stderr text is passed on."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if not is_jpeg(data):
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    with _captured_c_stderr() as captured:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    text = "".join(captured)
    for line in text.splitlines():
        if line.startswith(_JPEG_CORRUPT_MESSAGES):
            raise ImageError(f"{path}: corrupt JPEG ({line.strip()})")
    if text:
        os.write(2, text.encode("utf-8"))
    return pixels


def _decode_file(path: str | os.PathLike) -> np.ndarray:
    """The file's pixels as OpenCV decodes them (BGR(A) or grey, uint8/uint16/float), turned
    by the file's EXIF orientation.

    Only regular files are read, and the size in the header is checked against the pixel
    budget before decoding (:mod:`amls2.imaging.image_headers`).
    """
    path = Path(path)
    data = read_checked(path)
    # imdecode on the bytes (not imread on the path): handles non-ASCII paths and reads once.
    try:
        pixels = _imdecode(path, data)
    except cv2.error as exc:
        raise ImageError(f"{path}: corrupt or unsupported image ({exc.err})") from None
    if pixels is None or pixels.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt or unsupported format)")
    if pixels.ndim == 3 and pixels.shape[2] == 4 and is_grey_alpha_png(data):
        pixels = pixels[:, :, [0, 3]]  # OpenCV expands grey + alpha to BGRA: back to two
    return apply_orientation(pixels, exif_orientation(data))


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels (HxW[xC]) turned as EXIF ``orientation`` (1-8) says they are displayed.

    2 mirrors left-right, 3 turns 180 degrees, 4 mirrors top-bottom, 5 transposes, 6 turns 90
    degrees clockwise, 7 transverses, 8 turns 90 degrees anticlockwise.
    """
    turned = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }[orientation](pixels)
    return turned if turned is pixels else np.ascontiguousarray(turned)


def _to_unit_float(pixels: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """Integer or float pixels as float32 in [0, 1], and the bit depth (8 or 16)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0, 8
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0, 16
    if pixels.dtype in (np.float32, np.float64):
        # Float TIFFs are taken to be in [0, 1] already; written back as 16 bit to keep precision.
        return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0), 16
    raise ImageError(f"{path}: unsupported pixel type {pixels.dtype} (need 8 or 16 bit)")


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image keeping its format facts (alpha, grayscale, bit depth) for writing it back.

    ``rgb`` is float32 HxWx3 RGB in [0, 1] (grey replicated to three channels); ``alpha`` is the
    alpha channel as float32 HxW in [0, 1], or None. Raises ImageError naming the file.
    """
    path = Path(path)
    pixels = _decode_file(path)
    values, bit_depth = _to_unit_float(pixels, path)
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    alpha = None
    if channels == 1:
        rgb, grayscale = np.repeat(values, 3, axis=2), True
    elif channels == 2:
        rgb, alpha, grayscale = np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1], True
    elif channels == 3:
        rgb, grayscale = values[:, :, ::-1], False
    elif channels == 4:
        rgb, alpha, grayscale = values[:, :, 2::-1], values[:, :, 3], False
    else:
        raise ImageError(f"{path}: unsupported number of channels ({channels})")
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    return LoadedImage(rgb=rgb, alpha=alpha, grayscale=grayscale, bit_depth=bit_depth, path=path)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1].

    8-bit values are divided by 255, 16-bit by 65535; grayscale is replicated to RGB; an alpha
    channel is dropped with a logged warning. Raises ImageError naming the file if it is missing,
    empty, truncated, corrupt or not an image.
    """
    loaded = load_image(path)
    if loaded.alpha is not None:
        log.warning("%s: alpha channel dropped (images are processed as RGB)", loaded.path)
    return loaded.rgb


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


# Rows quantised at a time when writing: a 6000x6000 output then needs one uint8/uint16 copy
# instead of several full-size float64 ones.
_WRITE_STRIP_ROWS = 256


def _quantise(img: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] -> uint8 or uint16 with round half up and clipping."""
    if bit_depth == 8:
        return to_uint8(img)
    top = 65535.0
    return np.clip(np.floor(np.asarray(img, np.float64) * top + 0.5), 0, top).astype(np.uint16)


def _opencv_pixels(img: np.ndarray, bit_depth: int, path: Path) -> np.ndarray:
    """Quantise ``img`` strip by strip into OpenCV's layout: HxW / HxWx1 grey, BGR, BGRA."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 2):
        order = None  # grey, or grey + alpha
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        order = [2, 1, 0] if img.shape[2] == 3 else [2, 1, 0, 3]
    else:
        raise ImageError(
            f"{path}: cannot write an image of shape {img.shape} (need HxW, HxWx1/2/3/4)"
        )
    pixels = np.empty(img.shape, dtype=np.uint8 if bit_depth == 8 else np.uint16)
    for start in range(0, img.shape[0], _WRITE_STRIP_ROWS):
        rows = slice(start, start + _WRITE_STRIP_ROWS)
        values = _quantise(img[rows], bit_depth)
        pixels[rows] = values if order is None else values[..., order]
    return pixels


def _encode(path: Path, suffix: str, pixels: np.ndarray) -> bytes:
    """The file bytes of OpenCV-layout ``pixels`` in the format of ``suffix``."""
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        if suffix != ".png":
            raise ImageError(f"{path}: grey + alpha can only be written as PNG")
        return _grey_alpha_png(pixels)
    try:
        ok, encoded = cv2.imencode(suffix, pixels)
    except cv2.error as exc:
        raise ImageError(f"{path}: cannot write image ({exc.err})") from None
    if not ok:
        raise ImageError(f"{path}: cannot write image (OpenCV refused it)")
    return encoded.tobytes()


def _grey_alpha_png(pixels: np.ndarray) -> bytes:
    """A PNG of colour type 4 (grey + alpha, 8 or 16 bit), which OpenCV cannot write."""
    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.view(np.uint8).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, 4, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def write_image(
    path: str | os.PathLike, img: np.ndarray, *, bit_depth: int = 8, overwrite: bool = True
) -> Path:
    """Write ``img`` (float in [0, 1]; HxW, HxWx1 grey, HxWx2 grey + alpha (PNG only), HxWx3 RGB
    or HxWx4 RGBA) to ``path``.

    The format follows the suffix (PNG, JPEG, BMP, TIFF); ``bit_depth`` is 8 or 16 (16 for PNG
    and TIFF only). Grey stays single-channel. Values are clipped to [0, 1] and rounded. The file
    is written atomically: a failed write leaves any existing file untouched. With
    ``overwrite=False`` an existing file raises ImageError. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(
            f"{path}: unsupported image suffix (use one of {', '.join(IMAGE_SUFFIXES)})"
        )
    if bit_depth not in (8, 16):
        raise ImageError(f"{path}: bit_depth {bit_depth!r} not supported (use 8 or 16)")
    if bit_depth == 16 and suffix not in _SIXTEEN_BIT_SUFFIXES:
        raise ImageError(f"{path}: {suffix} cannot hold 16-bit images (use .png or .tif)")
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = to_float(img)
    if not np.all(np.isfinite(img)):
        raise ImageError(f"{path}: image contains NaN or infinite values; not written")
    pixels = _opencv_pixels(img, bit_depth, path)
    if not overwrite and path.exists():
        raise ImageError(f"{path}: already exists (use --force to overwrite)")
    try:
        # Encoded in memory, written by Python: a full disk or a file-size limit is then an
        # OSError with its reason (OpenCV's own writer only says False, libpng prints to stderr).
        encoded = _encode(path, suffix, pixels)
        with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as handle:
            handle.write(encoded)
    except ImageError:
        raise
    except Amls2Error as exc:
        raise ImageError(str(exc)) from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot write image ({exc.strerror})") from None
    return path


# --------------------------------------------------------------------------------------------
# Pixel conversions
# --------------------------------------------------------------------------------------------


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 as MATLAB ``im2uint8``: ``floor(x * 255 + 0.5)`` clipped to [0, 255]."""
    values = np.floor(np.asarray(img, dtype=np.float64) * 255.0 + 0.5)
    return np.clip(values, 0, 255).astype(np.uint8)


def to_float(img_uint8: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1] (MATLAB ``im2single``)."""
    return np.asarray(img_uint8, dtype=np.float32) / np.float32(255.0)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """The BT.601 luma of float RGB in [0, 1] as MATLAB ``rgb2ycbcr``: float64 HxW in [16, 235].

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``. Not rounded (MATLAB's uint8 path rounds; the
    metrics module decides). uint8 input is taken as [0, 255].
    """
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"rgb_to_y: need an HxWx3 RGB image, got shape {img.shape}")
    return _Y_OFFSET + np.asarray(img, dtype=np.float64) @ _Y_WEIGHTS


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale`` (MATLAB modcrop)."""
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"mod_crop: scale must be >= 1, got {scale}")
    height, width = img.shape[:2]
    return img[: height - height % scale, : width - width % scale]


# --------------------------------------------------------------------------------------------
# MATLAB-exact bicubic imresize
