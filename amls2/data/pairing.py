"""(HR, LR) pairs of a dataset: which files pair up (``resolve_pairs``; the LR synthesised with
the validation seed where a dataset has no LR files) and loading them (``load_pair``,
``load_pairs``). Where a dataset lives and its layout are :mod:`amls2.data.datasets`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amls2.config import check_scale, check_track
from amls2.data.datasets import SAMPLES, detect_layout, find_dataset, sample_paths
from amls2.data.degradations import VALIDATION_SEED, DegradationSpec, degrade
from amls2.errors import DatasetError, ImageError
from amls2.imaging.images import IMAGE_SUFFIXES, list_images, load_image, mod_crop, read_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairSource:
    """Where one HR image and its LR partner live; ``lr_path`` None means "synthesise the LR"."""

    name: str
    hr_path: Path
    lr_path: Path | None


@dataclass(frozen=True, eq=False)
class Pair:
    """A loaded pair: ``hr`` float32 HxWx3 [0,1] mod-cropped to the scale, ``lr`` float32
    (H/s)x(W/s)x3 [0,1]. ``params`` records the degradation when the LR was synthesised.
    ``grayscale`` says the HR file has one channel: the benchmark protocol scores such images on
    their grey values (``metrics.evaluate_pair(..., grayscale=True)``), not through BT.601 Y."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    params: dict[str, Any] | None = field(default=None)
    grayscale: bool = False


def resolve_hr_images(
    name_or_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
) -> list[Path]:
    """The sorted HR image paths of a dataset (name or folder, any accepted layout)."""
    if str(name_or_dir) == SAMPLES:
        return sample_paths()
    layout = detect_layout(find_dataset(name_or_dir, data_dir), split)
    try:
        paths = list_images(layout.hr_dir)
    except ImageError as exc:
        raise DatasetError(str(exc)) from None
    _check_unique_stems(paths)
    return paths


def _check_unique_stems(paths: list[Path]) -> None:
    """DatasetError naming both files if two HR images share a stem (``a.png``, ``a.jpg``): LR
    partners, patches and degraded outputs are named by stem, so one would replace the other."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise DatasetError(
                f"{seen[path.stem]} and {path}: two HR images named {path.stem!r}; LR files and "
                "outputs are named by stem: rename or remove one"
            )
        seen[path.stem] = path


def _index_lr(lr_dir: Path) -> dict[str, Path]:
    suffixes = {s.lower() for s in IMAGE_SUFFIXES}
    return {p.stem: p for p in sorted(lr_dir.iterdir()) if p.suffix.lower() in suffixes}


def resolve_pairs(
    name_or_dir: str | os.PathLike,
    *,
    scale: int,
    track: str,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
) -> list[PairSource]:
    """Pair every HR image of a dataset with its LR file for ``track`` at ``scale``.

    The LR partner of ``<stem>.<ext>`` is ``<stem>x<s>.*`` (or ``<stem>.*``) in the track's LR folder;
    when that folder does not exist, ``lr_path`` is None (synthesised at load time). A missing
    partner in an existing LR folder is a DatasetError naming both files.
    """
    scale, track = check_scale(scale), check_track(track)
    hr_paths = resolve_hr_images(name_or_dir, data_dir, split)
    if str(name_or_dir) == SAMPLES:
        return [PairSource(p.stem, p, None) for p in hr_paths]
    layout = detect_layout(find_dataset(name_or_dir, data_dir), split)
    lr_dir = layout.lr_dir(track, scale)
    if lr_dir is None:
        log.debug("%s: no %s x%d LR folder; LR will be synthesised", layout.hr_dir, track, scale)
        return [PairSource(p.stem, p, None) for p in hr_paths]
    lr_index = _index_lr(lr_dir)
    sources = []
    for hr_path in hr_paths:
        lr_path = lr_index.get(f"{hr_path.stem}x{scale}") or lr_index.get(hr_path.stem)
        if lr_path is None:
            expected = lr_dir / f"{hr_path.stem}x{scale}.png"
            raise DatasetError(f"{hr_path}: no LR partner {expected} for {track} x{scale}")
        sources.append(PairSource(hr_path.stem, hr_path, lr_path))
    return sources


def load_pair(
    source: PairSource,
    *,
    scale: int,
    track: str,
    seed: int = VALIDATION_SEED,
    spec: DegradationSpec | None = None,
) -> Pair:
    """Read one pair of :func:`resolve_pairs` (which checked ``scale`` and ``track``): HR
    mod-cropped to ``scale``; LR read from disk or synthesised from ``(seed, name)``. An LR whose
    size is not HR/scale is a DatasetError naming both files."""
    loaded = load_image(source.hr_path)
    hr = mod_crop(loaded.rgb, scale)
    if source.lr_path is None:
        lr, params = degrade(hr, scale, track, seed=seed, name=source.name, spec=spec)
        return Pair(source.name, hr, lr, params, grayscale=loaded.grayscale)
    lr = read_image(source.lr_path)
    expected = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != expected:
        raise DatasetError(
            f"{source.lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} is not HR/{scale} = "
            f"{expected[1]}x{expected[0]} of {source.hr_path} (mod-cropped)"
        )
    return Pair(source.name, hr, lr, grayscale=loaded.grayscale)


def load_pairs(
    name_or_dir: str | os.PathLike,
    *,
    scale: int,
    track: str,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    seed: int = VALIDATION_SEED,
    limit: int | None = None,
    spec: DegradationSpec | None = None,
) -> list[Pair]:
    """Load the first ``limit`` (all if None) pairs of a dataset, sorted by HR file name."""
    sources = resolve_pairs(name_or_dir, scale=scale, track=track, data_dir=data_dir, split=split)
    if limit is not None:
        sources = sources[:limit]
    return [load_pair(s, scale=scale, track=track, seed=seed, spec=spec) for s in sources]
