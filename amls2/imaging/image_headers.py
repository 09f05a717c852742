"""What an image file holds, read before decoding it: only regular files (a FIFO or a device
would block or never end), the size from the header (PNG, JPEG, BMP, TIFF), the pixel budget,
and truncated PNG/JPEG files. :mod:`amls2.imaging.images` checks every file here before OpenCV decodes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from amls2.errors import ConfigError, ImageError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
_BMP_SIGNATURE = b"BM"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF

# A small file can decode to a huge image (a 140 KB PNG of 12000 x 12000 px needs 1.7 GB as
# float32 RGB), so the size is read from the header and checked before decoding. The default,
# 64 megapixels (8000 x 8000, 768 MB as float32 RGB), fits a laptop; `--max-pixels` changes it.
DEFAULT_MAX_PIXELS = 64_000_000
_max_pixels = DEFAULT_MAX_PIXELS
# Bytes a file may have per pixel of the budget (float32 RGBA TIFF, uncompressed) plus room for
# metadata: a larger file cannot hold an image within the budget and is not read into memory.
_MAX_BYTES_PER_PIXEL = 16
_META = 16 << 20
# Bytes read to find the size in a header; JPEG metadata segments before the frame header may
# need more, and then the whole file is read.
_HEADER_BYTES = 1 << 18
# libjpeg reports a corrupt scan only as a warning printed to the C stderr while it decodes
# garbage (OpenCV gives no way to see it): these lines make the decode an error.


def _check_complete(path: Path, data: bytes) -> None:
    """Raise if a PNG or JPEG file is truncated (OpenCV may decode those partially, silently).

    PNG: the IEND chunk must be present. JPEG: an end-of-image marker must follow the last
    start-of-scan marker; entropy-coded data cannot contain FF D9 (byte stuffing), and looking
    after the last scan ignores the EOI of an EXIF thumbnail while allowing trailing metadata.
    """
    if data.startswith(_PNG_SIGNATURE) and data.rfind(_PNG_IEND) < 0:
        raise ImageError(f"{path}: truncated PNG (no IEND chunk)")
    if data.startswith(_JPEG_SOI):
        last_scan = data.rfind(_JPEG_SOS)
        if last_scan < 0 or data.find(_JPEG_EOI, last_scan) < 0:
            raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")


# ----------------------------------------------------------------------------- pixel budget


def max_pixels() -> int:
    """The pixel budget in force: images with more pixels are refused before decoding (0: none)."""
    return _max_pixels


@contextlib.contextmanager
def pixel_budget(limit: int) -> Iterator[int]:
    """Within the block, refuse images of more than ``limit`` pixels (0: no limit).

    Process-wide (every reader, including the training pipeline's, sees it); restored on exit.
    """
    global _max_pixels
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"--max-pixels {limit!r}: must be a whole number >= 0 (0: no limit)")
    previous, _max_pixels = _max_pixels, limit
    try:
        yield limit
    finally:
        _max_pixels = previous


def _check_budget(path: Path, size: tuple[int, int]) -> None:
    height, width = size
    if _max_pixels and height * width > _max_pixels:
        raise ImageError(
            f"{path}: {width}x{height} image ({height * width} pixels) is over the pixel budget "
            f"of {_max_pixels} pixels; raise it with --max-pixels"
        )


# ----------------------------------------------------------------------------- headers


class _ShortHeader(Exception):
    """The bytes read end before the header field needed (read more of the file)."""


def _unpack(data: bytes, start: int, length: int, order: str) -> int:
    if start + length > len(data):
        raise _ShortHeader
    return int.from_bytes(data[start : start + length], order)


def _png_size(data: bytes, path: Path) -> tuple[int, int]:
    if data[12:16] != b"IHDR" and len(data) >= 16:
        raise ImageError(f"{path}: not a readable image (corrupt PNG header)")
    return _unpack(data, 20, 4, "big"), _unpack(data, 16, 4, "big")


# JPEG frame headers (SOF0-15) carry the size; C4 (DHT), C8 (reserved) and CC (DAC) are not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes, path: Path) -> tuple[int, int]:
    """Walk the marker segments from SOI to the first frame header (before the first scan)."""
    pos = 2
    while True:
        if pos >= len(data):
            raise _ShortHeader
        if data[pos] != 0xFF:
            raise ImageError(f"{path}: not a readable image (corrupt JPEG header)")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            raise _ShortHeader
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers: no length
            continue
        if marker in (0xD9, 0xDA):
            raise ImageError(f"{path}: not a readable image (JPEG without a frame header)")
        if marker in _JPEG_SOF:
            return _unpack(data, pos + 3, 2, "big"), _unpack(data, pos + 5, 2, "big")
        pos += _unpack(data, pos, 2, "big")


def _bmp_size(data: bytes, path: Path) -> tuple[int, int]:
    if _unpack(data, 14, 4, "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return _unpack(data, 20, 2, "little"), _unpack(data, 18, 2, "little")
    width = int.from_bytes(data[18:22], "little", signed=True) if len(data) >= 22 else None
    height = int.from_bytes(data[22:26], "little", signed=True) if len(data) >= 26 else None
    if width is None or height is None:
        raise _ShortHeader
    if width < 0:
        raise ImageError(f"{path}: not a readable image (corrupt BMP header)")
    return abs(height), width  # a negative height is a top-down bitmap


def _tiff_size(data: bytes, path: Path) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) of the first image file directory."""
    order = "little" if data[:2] == b"II" else "big"
    big = _unpack(data, 2, 2, order) == 43  # BigTIFF: 8-byte offsets and counts
    count_size, entry_size, value_size = (8, 20, 8) if big else (2, 12, 4)
    ifd = _unpack(data, 8, 8, order) if big else _unpack(data, 4, 4, order)
    found: dict[int, int] = {}
    for i in range(_unpack(data, ifd, count_size, order)):
        entry = ifd + count_size + i * entry_size
        tag = _unpack(data, entry, 2, order)
        if tag in (256, 257):
            kind = _unpack(data, entry + 2, 2, order)
            width = {3: 2, 4: 4, 16: 8}.get(kind)  # SHORT, LONG, LONG8
            if width is None:
                raise ImageError(f"{path}: not a readable image (corrupt TIFF header)")
            found[tag] = _unpack(data, entry + 4 + value_size, width, order)
        if len(found) == 2:
            return found[257], found[256]
    raise ImageError(f"{path}: not a readable image (TIFF without a width and height)")


def _header_size(data: bytes, path: Path) -> tuple[int, int]:
    """(height, width) from the header bytes of a PNG, JPEG, BMP or TIFF file."""
    if data.startswith(_PNG_SIGNATURE):
        size = _png_size(data, path)
    elif data.startswith(_JPEG_SOI):
        size = _jpeg_size(data, path)
    elif data.startswith(_BMP_SIGNATURE):
        size = _bmp_size(data, path)
    elif data.startswith(_TIFF_SIGNATURES):
        size = _tiff_size(data, path)
    else:
        raise ImageError(f"{path}: not a readable image (not a PNG, JPEG, BMP or TIFF file)")
    if min(size) < 1:
        raise ImageError(f"{path}: not a readable image (size {size[1]}x{size[0]} in its header)")
    return size


def _open_regular(path: Path) -> tuple[int, int]:
    """An open descriptor of ``path`` and its size; ImageError unless it is a regular file.

    A FIFO, ``/dev/zero`` or a socket could block or never end: refused from ``stat`` before
    opening, and opened without blocking so that a file swapped for a FIFO meanwhile cannot hang.
    """
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                return fd, info.st_size
            os.close(fd)
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path}: is a folder, not an image file")
    raise ImageError(f"{path}: not a regular file (a device, FIFO or socket); refused")


def _read_regular(path: Path, limit: int | None = None) -> bytes:
    """The first ``limit`` bytes (None: all) of regular file ``path``, refusing a file larger
    than any image within the pixel budget could be."""
    fd, size = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        if limit is None and _max_pixels and size > _max_pixels * _MAX_BYTES_PER_PIXEL + _META:
            raise ImageError(
                f"{path}: {size} bytes, larger than any image within the pixel budget of "
                f"{_max_pixels} pixels; raise it with --max-pixels"
            )
        try:
            return handle.read() if limit is None else handle.read(limit)
        except OSError as exc:
            raise ImageError(f"{path}: cannot read ({exc.strerror})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels.

    Raises ImageError naming the file if it is not a regular file, not a PNG/JPEG/BMP/TIFF, has
    a corrupt header, or is over the pixel budget (:func:`pixel_budget`).
    """
    path = Path(path)
    data = _read_regular(path, _HEADER_BYTES)
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        size = _header_size(data, path)
    except _ShortHeader:
        if len(data) < _HEADER_BYTES:  # that was the whole file
            raise ImageError(f"{path}: not a readable image (header cut short)") from None
        size = _size_of(path, _read_regular(path))
    _check_budget(path, size)
    return size


def _size_of(path: Path, data: bytes) -> tuple[int, int]:
    """``_header_size`` of a whole file's bytes."""
    try:
        return _header_size(data, path)
    except _ShortHeader:
        raise ImageError(f"{path}: not a readable image (header cut short)") from None


# ----------------------------------------------------------------------------- EXIF orientation

_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag (274) of the first IFD of EXIF (TIFF-structured) bytes; 1 if absent."""
    if tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = _unpack(tiff, 4, 4, order)
    for i in range(_unpack(tiff, ifd, 2, order)):
        entry = ifd + 2 + i * 12
        if _unpack(tiff, entry, 2, order) == _ORIENTATION_TAG:
            value = _unpack(tiff, entry + 8, 2, order)  # a SHORT, left-justified in the field
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF bytes of the first APP1 Exif segment before the first scan."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA or marker == 0xD9:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(_EXIF_PREFIX):
            return body[len(_EXIF_PREFIX) :]
        pos += 2 + length
    return None


def _png_exif(data: bytes) -> bytes | None:
    """The bytes of the ``eXIf`` chunk, if any."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return data[pos + 8 : pos + 8 + length]
        if kind in (b"IDAT", b"IEND"):
            return None  # eXIf must come before the image data
        pos += 12 + length
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8; 1: as stored) of a JPEG or PNG file's bytes.

    OpenCV's ``IMREAD_UNCHANGED`` (needed for 16 bits and alpha) ignores it, so the reader
    applies it, as image viewers do. TIFF is left out: OpenCV's TIFF decoder applies the tag.
    A missing, unreadable or out-of-range tag counts as 1.
    """
    if data.startswith(_JPEG_SOI):
        exif = _jpeg_exif(data)
    elif data.startswith(_PNG_SIGNATURE):
        exif = _png_exif(data)
    else:
        return 1
    if not exif:
        return 1
    try:
        return _tiff_orientation(exif)
    except _ShortHeader:
        return 1


def is_grey_alpha_png(data: bytes) -> bool:
    """True for a PNG of colour type 4, grey + alpha (OpenCV decodes it as BGRA)."""
    return data.startswith(_PNG_SIGNATURE) and len(data) > 25 and data[25] == 4


def is_jpeg(data: bytes) -> bool:
    """True if ``data`` starts like a JPEG file (SOI marker)."""
    return data.startswith(_JPEG_SOI)


def read_checked(path: Path) -> bytes:
    """The bytes of image file ``path``, read only once it is known to be a regular file, not
    empty, not a truncated PNG/JPEG, and within the pixel budget (ImageError naming it)."""
    data = _read_regular(path)
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    _check_complete(path, data)
    _check_budget(path, _size_of(path, data))
    return data
