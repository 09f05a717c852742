"""One writer per run folder: an exclusive OS file lock (``flock``) on ``<run folder>/.lock``,
held by the chief for the whole run.

The kernel releases the lock when the holder's process ends, however it ends (``kill -9``
included), so a lock is never stale. The file keeps the holder's process id for the error
message of a second run; it is left in place afterwards (removing it would let a third run lock
a fresh file while a second one still holds the old one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from amls2.errors import ConfigError

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None


def _busy(out_dir: Path, fd: int) -> ConfigError:
    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    return ConfigError(
        f"{out_dir}: another training run (pid {holder}) is writing this run folder; "
        "wait for it to end or choose another --out-dir"
    )


def check_not_locked(out_dir: str | os.PathLike) -> None:
    """Raise ConfigError naming the folder and the holder's pid if a run holds ``out_dir``.

    Writes nothing (an early check, before the options are all validated)."""
    out_dir = Path(out_dir)
    if fcntl is None:
        return
    try:
        fd = os.open(out_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return  # no lock file (or none readable): no run holds the folder
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out_dir, fd) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_run_folder(out_dir: str | os.PathLike, *, chief: bool = True) -> Iterator[None]:
    """Hold the exclusive lock of ``out_dir`` (which must exist) for the block.

    A folder another process holds raises ConfigError naming it and the holder's pid. Only the
    chief of a multi-worker run locks (``chief=False`` does nothing): the other workers write
    nothing and share the chief's folder."""
    if not chief or fcntl is None:
        yield
        return
    out_dir = Path(out_dir)
    try:
        fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot lock the run folder ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out_dir, fd) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
