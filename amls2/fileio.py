"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written image, weights file or table, and a crash leaves the old file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from amls2.errors import Amls2Error


def _default_file_mode() -> int:
    """0o666 less the process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    With ``overwrite=False`` an existing ``path`` raises instead of being replaced. The temporary
    file keeps the target's suffix so that writers choosing a format by extension still work.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise Amls2Error(f"{path}: already exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files: give the output the mode a plain open() would (or keep the mode
    # of the file it replaces), so that shared figures and weights stay readable.
    os.chmod(tmp_path, path.stat().st_mode & 0o777 if path.exists() else _default_file_mode())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def json_safe(obj):
    """``obj`` with non-finite floats replaced by the strings "inf", "-inf" and "nan".

    Standard JSON has no Infinity or NaN, and identical images do have an infinite PSNR.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(value) for value in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-finite floats as strings)."""
    text = json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False)
    return atomic_write_text(path, text + "\n", overwrite=overwrite)
