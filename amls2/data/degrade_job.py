"""The ``amls2 degrade`` job: write the LR partner of every HR image of a folder or dataset.

The degradation itself is :func:`amls2.data.degradations.degrade` (pure maths on arrays); this module
is the folder job around it: it finds the HR images (``datasets.resolve_hr_images``), checks
every header and the output folder before the first write, writes ``<stem>x<s>.png`` files
atomically and, for the ``unknown`` track, records the parameters drawn for each image. With an
estimated :class:`amls2.data.operator.Operator` instead of a track, that operator makes every LR image
and is recorded whole.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from amls2.config import check_scale, check_track, to_dict
from amls2.data.degradations import DEFAULT_SPEC, VALIDATION_SEED, DegradationSpec, degrade
from amls2.data.operator import Operator, apply_operator
from amls2.data.pairing import resolve_hr_images
from amls2.errors import ConfigError, ImageError
from amls2.fileio import atomic_write_json, check_writable_folder
from amls2.imaging.image_headers import image_size
from amls2.imaging.images import read_image, write_image

log = logging.getLogger(__name__)

DEGRADATION_RECORD = "degradation.json"


def lr_filename(stem: str, scale: int) -> str:
    """The DIV2K-style LR file name: ``0801`` -> ``0801x2.png``."""
    return f"{stem}x{scale}.png"


def _check_out_dir(out_dir: Path, hr_paths: list[Path]) -> None:
    """Refuse an LR folder that is an HR folder or inside one: a rerun would list the LR images
    as HR images (and with --force write over them)."""
    out = Path(os.path.realpath(out_dir))
    for folder in {Path(os.path.realpath(p.parent)) for p in hr_paths}:
        if out == folder or folder in out.parents:
            raise ConfigError(
                f"{out_dir}: the LR folder is the HR folder {folder} or inside it; "
                "choose an OUT_DIR outside it"
            )


def _usable_hr_images(
    hr_paths: list[Path], scale: int, *, skip_bad: bool, skipped: list[str]
) -> list[Path]:
    """The HR images whose header is readable, within the pixel budget and at least ``scale``
    pixels a side (checked before any output is written); a bad one raises ImageError naming it,
    or with ``skip_bad`` is skipped with a warning and its error appended to ``skipped``."""
    usable = []
    for path in hr_paths:
        try:
            height, width = image_size(path)
            if height < scale or width < scale:
                raise ImageError(f"{path}: {width}x{height} image is too small for x{scale}")
        except ImageError as exc:
            if not skip_bad:
                raise
            log.warning("skipping %s", exc)
            skipped.append(str(exc))
            continue
        usable.append(path)
    return usable


def _refuse_existing(planned: list[Path]) -> None:
    """ConfigError naming the first planned output that exists (``--force`` replaces them)."""
    existing = [t for t in planned if t.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(f"{existing[0]}: already exists{more}; use --force to overwrite")


def _nothing_written(hr_dir, skipped: list[str]) -> ImageError:
    return ImageError(
        f"{hr_dir}: no LR image written: all {len(skipped)} HR image(s) were bad and skipped; "
        f"first: {skipped[0]}"
    )


def _read_or_skip(hr_path: Path, *, skip_bad: bool, skipped: list[str]):
    """The HR image, or None (its error added to ``skipped``) when it is bad and ``skip_bad``:
    the pixels themselves (a corrupt scan) can be bad after a good header."""
    try:
        return read_image(hr_path)
    except ImageError as exc:
        if not skip_bad:
            raise
        log.warning("skipping %s: %s", hr_path, exc)
        skipped.append(str(exc))
        return None


def _degrader(scale: int, track: str, *, seed: int, spec: DegradationSpec, operator):
    """``(hr, name) -> (lr, params)``: the fixed ``operator`` when given (no parameters to
    record; ConfigError unless its scale is ``scale``), else the track's degradation of the image
    called ``name``."""
    if operator is not None and operator.scale != scale:
        raise ConfigError(f"--scale {scale}: the operator is x{operator.scale}")
    if operator is not None:
        return lambda hr, name: (apply_operator(hr, operator), {})
    return lambda hr, name: degrade(hr, scale, track, seed=seed, name=name, spec=spec)


def _write_record(path: Path, images, scale, track, seed, spec, operator) -> None:
    """``degradation.json``: the operator, else the ``unknown`` track's seed, spec and the
    parameters of every image."""
    if operator is not None:
        atomic_write_json(path, {"scale": scale, "operator": operator.to_dict()})
    else:
        record = {"scale": scale, "track": track, "seed": seed, "spec": to_dict(spec)}
        atomic_write_json(path, {**record, "images": images})


def degrade_folder(
    hr_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scale: int,
    track: str,
    seed: int = VALIDATION_SEED,
    spec: DegradationSpec | None = None,
    force: bool = False,
    skip_bad: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    operator: Operator | None = None,
) -> list[Path]:
    """Write the LR partner of every HR image of ``hr_dir`` as ``out_dir/<stem>x<s>.png``.

    ``hr_dir`` is a folder or a dataset name (see :func:`amls2.data.datasets.resolve_hr_images`).
    Before anything is written: ``out_dir`` may not be the HR folder or inside it (a rerun would
    take the LR images for HR ones), every HR image's header is read (a file that is not an
    image, is over the pixel budget or smaller than ``scale`` pixels raises naming it, or is
    skipped with a warning if ``skip_bad``), and existing outputs are refused (one error naming
    the first) unless ``force``. For the ``unknown`` track the parameters of every image are
    written to ``out_dir/degradation.json``. A run that skipped every image raises. Returns the
    LR paths written. ``operator`` (its scale must be ``scale``) replaces the track's
    degradation; it is then what ``degradation.json`` records.
    """
    scale, track = check_scale(scale), check_track(track)
    spec = spec or DEFAULT_SPEC
    degrade_one = _degrader(scale, track, seed=seed, spec=spec, operator=operator)
    recorded = track == "unknown" or operator is not None
    out_dir = Path(out_dir)
    hr_paths = resolve_hr_images(hr_dir, data_dir=data_dir)
    _check_out_dir(out_dir, hr_paths)
    check_writable_folder(out_dir, "OUT_DIR")
    skipped: list[str] = []
    hr_paths = _usable_hr_images(hr_paths, scale, skip_bad=skip_bad, skipped=skipped)
    if skipped and not hr_paths:
        raise _nothing_written(hr_dir, skipped)
    targets = [out_dir / lr_filename(p.stem, scale) for p in hr_paths]
    record_path = out_dir / DEGRADATION_RECORD
    if not force:
        _refuse_existing(targets + ([record_path] if recorded else []))
    label = "operator" if operator is not None else track
    jobs = list(zip(hr_paths, targets, strict=True))
    bar = tqdm(jobs, desc=f"degrade x{scale} {label}", unit="img", disable=not progress)
    records: dict[str, dict[str, Any]] = {}
    written: list[Path] = []
    for hr_path, target in bar:
        hr = _read_or_skip(hr_path, skip_bad=skip_bad, skipped=skipped)
        if hr is None:
            continue
        lr, records[hr_path.stem] = degrade_one(hr, hr_path.stem)
        write_image(target, lr)
        written.append(target)
    if skipped and not written:
        raise _nothing_written(hr_dir, skipped)
    if recorded:
        _write_record(record_path, records, scale, track, seed, spec, operator)
    log.info("wrote %d LR images to %s", len(written), out_dir)
    return written
