"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written image, weights file or table, and a crash leaves the old file.
A killed write leaves its hidden temporary file (``.<stem>.<pid>-<random>.tmp<suffix>``); the next
write into that folder in another process removes such files once they are stale, and only those.
Output locations can be checked before a long job (:func:`check_writable_folder`,
:func:`check_writable_file`) so that it does not fail at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from amls2.errors import Amls2Error, ConfigError

# This module's temporary files: ".<stem>.<pid>-<8 random chars>.tmp<suffix>" (the pid is absent
# in files left by older versions). Nothing else in a folder is ever removed.
_TEMP_NAME = re.compile(r"^\..*\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?:\.[^./]*)?$")
# A temporary file whose writer is gone (its pid is not running here) and that has not changed
# for a minute is stale; any one unchanged for a day is (a writer on another machine of a shared
# file system, or a name without a pid). A live write changes its file continuously.
_DEAD_WRITER_SECONDS = 60
_STALE_SECONDS = 24 * 3600
_swept_folders: set[str] = set()
_sweep_lock = threading.Lock()


def _default_file_mode() -> int:
    """0o666 less the process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: keep the file
    return True


def _is_stale_temp(entry: os.DirEntry, now: float) -> bool:
    match = _TEMP_NAME.match(entry.name)
    if not match or not entry.is_file(follow_symlinks=False):
        return False
    age = now - entry.stat(follow_symlinks=False).st_mtime
    if age > _STALE_SECONDS:
        return True
    pid = match["pid"]
    return pid is not None and age > _DEAD_WRITER_SECONDS and not _pid_running(int(pid))


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove this module's stale temporary files from ``folder`` (see the module docstring);
    return what was removed. Missing or unreadable folders are left alone."""
    removed: list[Path] = []
    now = time.time()
    try:
        with os.scandir(folder) as entries:
            stale = [Path(e.path) for e in entries if _is_stale_temp(e, now)]
    except OSError:
        return removed
    for path in stale:
        with contextlib.suppress(OSError):  # another process may be sweeping too
            path.unlink()
            removed.append(path)
    return removed


def _sweep_once(folder: Path) -> None:
    """``remove_stale_temps`` the first time this process writes into ``folder``."""
    key = os.path.abspath(folder)
    with _sweep_lock:
        if key in _swept_folders:
            return
        _swept_folders.add(key)
    remove_stale_temps(folder)


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
    _sweep_once(path.parent)
    tmp_path = None
    held = _hold_signals()
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem}.{os.getpid()}-", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        tmp_path = Path(tmp)
        held = _release_signals(held)  # a Ctrl-C or SIGTERM held back raises here: cleaned up
        os.close(fd)
        # mkstemp creates 0600 files: give the output the mode a plain open() would (or keep the
        # mode of the file it replaces), so that shared figures and weights stay readable.
        os.chmod(tmp_path, path.stat().st_mode & 0o777 if path.exists() else _default_file_mode())
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        _release_signals(held)
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


_HELD_SIGNALS = {getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)}


def _hold_signals() -> set | None:
    """Hold SIGINT and SIGTERM back (this thread) while a temporary file is created and named,
    so that an interrupt cannot leave it behind unnamed; returns the mask to restore."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)


def _release_signals(previous: set | None) -> None:
    """Restore the mask of :func:`_hold_signals` (a held signal is delivered now); None."""
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return None


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Temporary paths for several files written together, renamed into place in the given
    order once the block has written them all (an error in the block leaves all the old files).

    Put the file a reader checks first (e.g. a model's sidecar) before the one it describes, so
    that the described file never appears without it.
    """
    with contextlib.ExitStack() as stack:
        # An ExitStack leaves its contexts last in, first out: enter them backwards.
        temps = [stack.enter_context(atomic_path(path)) for path in reversed(paths)]
        yield tuple(reversed(temps))


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def _probe_writable(folder: Path) -> str | None:
    """None if a file can be created in ``folder``, else the reason. Tried for real: permission
    bits do not tell about read-only mounts, or anything when running as root."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".amls2-probe.{os.getpid()}-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def check_writable_folder(folder: str | os.PathLike, option: str) -> None:
    """Raise ConfigError naming ``option`` and ``folder`` unless files can be written into it
    (it exists as a writable folder, or can be created under one)."""
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        where = (
            "is a file" if existing == Path(os.path.abspath(folder)) else f"{existing} is a file"
        )
        raise ConfigError(f"{option} {folder}: {where}, not a folder")
    reason = _probe_writable(existing)
    if reason is not None:
        raise ConfigError(f"{option} {folder}: cannot write into {existing} ({reason})")


def check_writable_file(path: str | os.PathLike, option: str) -> None:
    """Raise ConfigError naming ``option`` and ``path`` unless ``path`` can be (re)written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder, not a file")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, not a folder")
    reason = _probe_writable(existing)
    if reason is not None:
        raise ConfigError(f"{option} {path}: cannot write into {existing} ({reason})")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def json_safe(obj):
    """``obj`` with NumPy scalars as Python numbers and non-finite floats replaced by the strings
    "inf", "-inf" and "nan".

    Standard JSON has no Infinity or NaN, and identical images do have an infinite PSNR.
    """
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(value) for value in obj]
    return obj


def json_text(obj) -> str:
    """``obj`` as the indented JSON text this module writes (non-finite floats as strings)."""
    return json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-finite floats as strings)."""
    return atomic_write_text(path, json_text(obj), overwrite=overwrite)
