"""Download and safely extract the public dataset archives of the registry (DIV2K, the small
benchmarks from EDSR's collection, T91 from the SRCNN authors' archive).

``fetch`` downloads one URL with a tqdm progress bar into ``<file>.part``, resuming a partial file
with an HTTP ``Range`` request, verifies the size and/or SHA-256 when known, then renames the part
file into place; a cached file that fails the check is fetched again. ``safe_extract`` unpacks a
zip or tar archive into a temporary folder beside the target, refusing any member that would land
outside it (absolute paths, ``..``, links pointing out, device files), then moves the extracted
entries into the target folder by renaming; a corrupt or truncated archive is a DownloadError.

Archives are kept in ``<data root>/_downloads/``; one that fails to extract is deleted, so that a
rerun downloads it again instead of failing the same way. A ``.<archive>.extracted`` marker in the
dataset folder makes a rerun skip archives already extracted. An archive shared by several datasets
(EDSR's ``benchmark.tar``) is downloaded once and only the dataset's own folder is extracted.

Where no checksum is published, the SHA-256 of the first download that extracts is recorded in
``<data root>/_downloads/SHA256SUMS`` (``sha256sum`` format, so ``sha256sum -c`` checks it too) and
every later use of that archive (a cached copy, a re-download) must match it.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import logging
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from amls2.config import data_root
from amls2.data.datasets import Archive, get_dataset
from amls2.errors import DownloadError
from amls2.fileio import atomic_write_text

log = logging.getLogger(__name__)

DOWNLOADS_DIR = "_downloads"
CHECKSUMS_FILE = "SHA256SUMS"  # checksums recorded on first download, sha256sum format
CHUNK_BYTES = 1 << 20
USER_AGENT = "amls2-downloader/0.1"


class _CannotWrite(DownloadError):
    """The extraction could not be written (a full disk, permissions): the archive is kept."""


# What a cut or damaged zip/tar (plain, gzip, xz) raises while it is read.
_CORRUPT_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # http(s) only: checked in fetch


def _verify(path: Path, url: str, size: int | None, sha256: str | None) -> None:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{path}: {actual_size} bytes downloaded from {url}, expected {size}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            raise DownloadError(f"{path}: sha256 {actual} does not match the expected {sha256}")


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and verify ``size``/``sha256`` if given.

    An existing ``dest`` that passes verification is kept without downloading. A failed check
    deletes the part file (it cannot be resumed into a correct file) and raises DownloadError
    naming the file; HTTP and network errors raise DownloadError naming the URL.
    """
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"{url}: only http(s) URLs are supported")
    dest = Path(dest)
    if dest.exists():
        try:
            _verify(dest, url, size, sha256)
        except DownloadError as exc:  # a cut or stale copy: fetch the right one
            log.warning("%s; downloading it again", exc)
            dest.unlink()
        else:
            log.info("%s: already downloaded", dest)
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:  # cannot be the start of the right file
        part.unlink()
        start = 0
    try:
        response = _open(url, start, timeout) if size is None or start < size else None
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the part file already holds the whole file
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None
    if response is not None:
        with response:
            _stream_to_part(response, part, start, size=size, url=url, progress=progress)
    try:
        _verify(part, url, size, sha256)
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


def _stream_to_part(
    response, part: Path, start: int, *, size: int | None, url: str, progress: bool
) -> None:
    """Append the response body to ``part`` (from byte ``start``; from 0 if the server ignored
    the Range request); DownloadError if it is cut short."""
    if start and response.status != 206:  # server ignored Range: start again
        log.info("%s: server does not resume; restarting", url)
        start = 0
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None else size
    mode = "ab" if start else "wb"
    try:
        with (
            open(part, mode) as fh,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                fh.write(chunk)
                bar.update(len(chunk))
    except OSError as exc:
        raise DownloadError(f"{url}: download interrupted ({exc}); rerun to resume") from None
    if length is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: truncated download ({part}); rerun to resume")


def _check_member_name(name: str, archive: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DownloadError(f"{archive}: unsafe absolute path {name!r} in archive")
    if ".." in pure.parts:
        raise DownloadError(f"{archive}: unsafe path {name!r} escapes the target folder")


def _check_link_target(name: str, target: str, archive: Path, *, hard: bool = False) -> None:
    """Refuse a link whose target resolves outside the extraction folder. A symlink's target is
    relative to its own folder; a tar hard link's is relative to the archive root."""
    if target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":"):
        raise DownloadError(f"{archive}: link {name!r} -> {target!r} points outside the target")
    base = PurePosixPath() if hard else PurePosixPath(name).parent
    depth = 0
    for part in (base / target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise DownloadError(f"{archive}: link {name!r} -> {target!r} points outside the target")


def _validate_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        _check_member_name(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            _check_link_target(info.filename, zf.read(info).decode("utf-8", "replace"), archive)


def _validate_tar(tf: tarfile.TarFile, archive: Path) -> None:
    for member in tf.getmembers():
        _check_member_name(member.name, archive)
        if member.issym() or member.islnk():
            _check_link_target(member.name, member.linkname, archive, hard=member.islnk())
        elif not (member.isfile() or member.isdir()):
            raise DownloadError(f"{archive}: unsupported member type in archive: {member.name!r}")


def _extract_into(archive: Path, folder: Path, member_dir: str | None = None) -> Path:
    """Extract after checking every member; DownloadError naming the archive if it is corrupt
    or truncated (CRC mismatch, cut stream) or the extraction cannot be written. Returns the
    extracted folder to move into place (``folder`` itself, or its ``member_dir``)."""
    try:
        return _extract_checked(archive, folder, member_dir)
    except _CORRUPT_ARCHIVE_ERRORS as exc:
        raise DownloadError(f"{archive}: corrupt or truncated archive ({_reason(exc)})") from None
    except OSError as exc:
        raise _CannotWrite(f"{archive}: cannot extract into {folder} ({_reason(exc)})") from None


def member_prefix(names: list[str], member_dir: str, archive: Path) -> tuple[str, ...]:
    """The path parts, inside the archive, of the folder ``member_dir`` (e.g. ``Train`` is found
    as ``Train/`` or ``SRCNN/Train/``): the shortest match, or DownloadError naming the archive."""
    wanted = PurePosixPath(member_dir).parts
    found: list[tuple[str, ...]] = []
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        for i in range(len(parts) - len(wanted)):  # a folder: something must lie below it
            if parts[i : i + len(wanted)] == wanted:
                found.append(parts[: i + len(wanted)])
                break
    if not found:
        raise DownloadError(f"{archive}: no folder {member_dir!r} in the archive")
    return min(found, key=lambda parts: (len(parts), parts))


def _under(name: str, prefix: tuple[str, ...]) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return parts[: len(prefix)] == prefix and len(parts) > len(prefix)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _extract_checked(archive: Path, folder: Path, member_dir: str | None) -> Path:
    """Check every member, then extract all of them (or only those under ``member_dir``)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _validate_zip(zf, archive)
            names = zf.namelist()
            prefix = member_prefix(names, member_dir, archive) if member_dir else ()
            zf.extractall(folder, members=[n for n in names if not prefix or _under(n, prefix)])
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _validate_tar(tf, archive)
            members = tf.getmembers()
            prefix = (
                member_prefix([m.name for m in members], member_dir, archive) if member_dir else ()
            )
            chosen = [m for m in members if not prefix or _under(m.name, prefix)]
            try:
                # filter="data": a second line of defence (Python >= 3.11.4)
                tf.extractall(folder, members=chosen, filter="data")
            except tarfile.FilterError as exc:
                raise DownloadError(f"{archive}: unsafe archive member ({exc})") from None
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive")
    return folder.joinpath(*prefix)


def _move_tree(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` by renaming, merging folders that already exist."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _move_tree(entry, target)
        else:
            os.replace(entry, target)


def safe_extract(
    archive: str | os.PathLike, target: str | os.PathLike, *, member_dir: str | None = None
) -> Path:
    """Extract a zip/tar archive into ``target`` safely and atomically per entry.

    Every member is checked first (no absolute path, no ``..``, no link pointing outside, no device
    files): an unsafe archive raises DownloadError naming it and nothing is extracted. Extraction
    goes to a temporary folder beside ``target`` which is then moved in by renames. With
    ``member_dir`` only the contents of that folder of the archive (see :func:`member_prefix`)
    are extracted, into ``target``.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        _move_tree(_extract_into(archive, tmp, member_dir), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def select_archives(name: str, parts: list[str] | tuple[str, ...] | None = None) -> list[Archive]:
    """The archives of dataset ``name`` matching ``parts`` (names or glob patterns such as
    ``valid_LR_bicubic_X*``; default: the dataset's default parts)."""
    info = get_dataset(name)
    if info.embedded:
        raise DownloadError(f"{name}: {info.source}")
    if not info.archives:
        raise DownloadError(f"{name}: {info.source}")
    wanted = list(parts) if parts else list(info.default_parts)
    chosen: list[Archive] = []
    for pattern in wanted:
        matches = [a for a in info.archives if fnmatch.fnmatchcase(a.part, pattern)]
        if not matches:
            known = [a.part for a in info.archives]
            raise DownloadError(f"--parts {pattern!r}: no such part of {name}; known: {known}")
        chosen += [a for a in matches if a not in chosen]
    return chosen


def _with_base_url(archive: Archive, base_url: str | None) -> str:
    if not base_url:
        return archive.url
    return base_url.rstrip("/") + "/" + archive.filename


def recorded_checksums(downloads: Path) -> dict[str, str]:
    """``{archive file name: sha256}`` recorded on first downloads in ``downloads``."""
    path = downloads / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    recorded = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise DownloadError(f"{path}, line {number}: not '<sha256>  <file name>'")
        recorded[name.strip()] = digest.lower()
    return recorded


def record_checksum(downloads: Path, filename: str, digest: str) -> Path:
    """Add ``filename``'s SHA-256 to ``downloads/SHA256SUMS`` (rewritten atomically)."""
    recorded = {**recorded_checksums(downloads), filename: digest}
    text = "".join(f"{recorded[name]}  {name}\n" for name in sorted(recorded))
    return atomic_write_text(downloads / CHECKSUMS_FILE, text)


def _fetch_checked(archive: Archive, url: str, downloads: Path, **kwargs) -> tuple[Path, bool]:
    """``fetch`` with the published checksum, else the one recorded on the first download; and
    whether the archive still needs recording (after it has extracted: a broken first download
    must not become the reference)."""
    recorded = None if archive.sha256 else recorded_checksums(downloads).get(archive.filename)
    try:
        path = fetch(
            url,
            downloads / archive.filename,
            size=archive.size,
            sha256=archive.sha256 or recorded,
            **kwargs,
        )
    except DownloadError as exc:
        if recorded and "sha256" in str(exc):
            raise DownloadError(
                f"{exc} (recorded on the first download in {downloads / CHECKSUMS_FILE}; if the "
                "published archive has changed, delete its line there)"
            ) from None
        raise
    return path, archive.sha256 is None and recorded is None


def _record_first_download(path: Path, downloads: Path) -> None:
    digest = sha256_of(path)
    record_checksum(downloads, path.name, digest)
    log.info("%s: sha256 %s recorded in %s", path.name, digest, CHECKSUMS_FILE)


def download_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    parts: list[str] | tuple[str, ...] | None = None,
    base_url: str | None = None,
    keep_archives: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download and extract dataset ``name`` into ``<data root>/<name>``; return that folder.

    ``base_url`` replaces the registry's base URL (a mirror, or a local server in tests). Archives
    go to ``<data root>/_downloads`` (deleted after extraction unless ``keep_archives``); an
    archive already extracted (marker file present) is skipped.
    """
    root = data_root(data_dir)
    target = root / name
    downloads = root / DOWNLOADS_DIR
    for archive in select_archives(name, parts):
        marker = target / f".{archive.filename}.extracted"
        if marker.exists():
            log.info("%s: already extracted into %s", archive.filename, target)
            continue
        path, unrecorded = _fetch_checked(
            archive,
            _with_base_url(archive, base_url),
            downloads,
            progress=progress,
            timeout=timeout,
        )
        log.info("extracting %s into %s", path, target / archive.into)
        try:
            safe_extract(path, target / archive.into, member_dir=archive.member_dir)
        except _CannotWrite:
            raise
        except DownloadError as exc:  # corrupt, truncated or unsafe
            path.unlink(missing_ok=True)  # else a rerun would reuse it and fail the same way
            raise DownloadError(
                f"{exc}; the archive was deleted: rerun to download it again"
            ) from None
        if unrecorded:
            _record_first_download(path, downloads)
        marker.write_text("ok\n", encoding="utf-8")
        if not keep_archives:
            path.unlink()
    return target
