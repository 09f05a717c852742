"""Aligned HR/LR patch files on disk (the seed project's preprocessing), resumable and idempotent.

Layout of the output folder ``DIR``::

    DIR/prepare_config.json          the PrepareConfig of the run
    DIR/HR/<stem>_<i>.png            HR patch i of image <stem> (patch x patch px)
    DIR/LR/<stem>_<i>x<s>.png        its LR partner (patch/s x patch/s px)
    DIR/manifest.json                every patch: files, source image, HR top-left (y, x)
    DIR/.records/<stem>.json         per-image record; its presence marks the image as done

Patches are taken on a regular grid of top-left corners ``(y, x)`` in ``range(0, H - patch + 1,
stride)`` (row-major, index ``i``) of the HR image mod-cropped to the scale; the LR patch is the
crop at ``(y/s, x/s)`` of size ``patch/s`` of the full LR image, so both are aligned under the
convention "LR pixel j covers HR pixels [j*s, (j+1)*s)". Border pixels that do not fill a patch are
dropped. Every file is written atomically, so an interrupted run leaves no half-written file and a
rerun skips images whose record and patches already exist.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from amls2.config import check_scale, check_track, load_config, save_config, to_dict
from amls2.data.degradations import VALIDATION_SEED
from amls2.data.pairing import Pair, load_pair, resolve_pairs
from amls2.errors import ConfigError
from amls2.fileio import atomic_write_json
from amls2.imaging.images import write_image

log = logging.getLogger(__name__)

CONFIG_FILE = "prepare_config.json"
MANIFEST_FILE = "manifest.json"
RECORDS_DIR = ".records"


@dataclass(frozen=True)
class PrepareConfig:
    """A patch-extraction job. ``patch``/``stride`` are HR pixels and must be multiples of
    ``scale`` (the LR patch and stride are divided by it). ``dataset`` is a registry name or folder;
    ``split`` only matters for DIV2K; ``seed`` drives synthesised LR images."""

    dataset: str
    scale: int
    track: str
    out_dir: Path
    patch: int = 120
    stride: int = 120
    data_dir: Path | None = None
    split: str | None = None
    seed: int = VALIDATION_SEED

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_track(self.track)
        for option in ("patch", "stride"):
            value = getattr(self, option)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--{option} {value!r}: must be a positive integer")
            if value % self.scale:
                raise ConfigError(
                    f"--{option} {value}: must be divisible by --scale {self.scale} "
                    "so that LR patches stay aligned"
                )

    def job_key(self) -> dict[str, Any]:
        """The options that determine the patch files (not where the data or output live)."""
        keys = ("dataset", "scale", "track", "patch", "stride", "split", "seed")
        return {k: getattr(self, k) for k in keys}


def patch_grid(height: int, width: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the patches that fit in ``height x width``, row-major."""
    ys = range(0, height - patch + 1, stride)
    xs = range(0, width - patch + 1, stride)
    return [(y, x) for y in ys for x in xs]


def crop_pair(
    hr: np.ndarray, lr: np.ndarray, y: int, x: int, patch: int, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """The HR patch at ``(y, x)`` (HR px, multiples of ``scale``) and its aligned LR patch."""
    lr_patch, ly, lx = patch // scale, y // scale, x // scale
    return hr[y : y + patch, x : x + patch], lr[ly : ly + lr_patch, lx : lx + lr_patch]


def centre_crop_pair(pair, crop: int, scale: int):
    """The pair cut to the centre ``crop`` x ``crop`` HR pixels (rounded down to a multiple of
    ``scale``; clipped to the image), the LR cut at the aligned position ``(y/s, x/s)``."""
    h, w = pair.hr.shape[:2]
    size = min(crop, h, w) // scale * scale
    # Top-left corner on the LR grid so the LR crop is exactly the HR crop's partner.
    y = (h - size) // 2 // scale * scale
    x = (w - size) // 2 // scale * scale
    hr, lr = crop_pair(pair.hr, pair.lr, y, x, size, scale)
    hr, lr = np.ascontiguousarray(hr), np.ascontiguousarray(lr)
    return Pair(pair.name, hr, lr, pair.params, pair.grayscale)


def patch_names(stem: str, index: int, scale: int) -> tuple[str, str]:
    """Relative file names of patch ``index`` of ``stem``: ``HR/<stem>_<i>.png``,
    ``LR/<stem>_<i>x<s>.png``."""
    return f"HR/{stem}_{index}.png", f"LR/{stem}_{index}x{scale}.png"


def _check_out_dir(config: PrepareConfig) -> None:
    """Refuse an output folder that holds patches of a different job (they would mix)."""
    path = config.out_dir / CONFIG_FILE
    if not path.exists():
        return
    previous = load_config(PrepareConfig, path)
    if previous.job_key() != config.job_key():
        changed = sorted(k for k, v in config.job_key().items() if previous.job_key()[k] != v)
        raise ConfigError(
            f"{path}: {config.out_dir} holds patches made with different {changed}; "
            "choose another --out"
        )


def _record_done(out_dir: Path, stem: str) -> dict[str, Any] | None:
    """The record of an image already done, if it and all its patch files exist."""
    path = out_dir / RECORDS_DIR / f"{stem}.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    files = [p[key] for p in record.get("patches", []) for key in ("hr", "lr")]
    return record if all((out_dir / f).exists() for f in files) else None


def _write_image_patches(
    config: PrepareConfig, source, hr: np.ndarray, lr: np.ndarray
) -> list[dict[str, Any]]:
    entries = []
    grid = patch_grid(hr.shape[0], hr.shape[1], config.patch, config.stride)
    if not grid:
        log.warning("%s: smaller than one %d px patch; skipped", source.hr_path, config.patch)
    for index, (y, x) in enumerate(grid):
        hr_patch, lr_patch = crop_pair(hr, lr, y, x, config.patch, config.scale)
        hr_name, lr_name = patch_names(source.name, index, config.scale)
        write_image(config.out_dir / hr_name, hr_patch)
        write_image(config.out_dir / lr_name, lr_patch)
        entries.append({"hr": hr_name, "lr": lr_name, "source": source.name, "y": y, "x": x})
    return entries


def prepare_patches(config: PrepareConfig, *, progress: bool = True) -> dict[str, Any]:
    """Cut every pair of ``config.dataset`` into aligned patch files under ``config.out_dir``.

    Resumable: images whose record and patch files exist are skipped. Returns the manifest (also
    written to ``DIR/manifest.json``): the config, counts, every patch and, for synthesised LR
    images, the degradation parameters per image.
    """
    out_dir = config.out_dir
    _check_out_dir(config)
    sources = resolve_pairs(
        config.dataset,
        scale=config.scale,
        track=config.track,
        data_dir=config.data_dir,
        split=config.split,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / CONFIG_FILE)
    patches: list[dict[str, Any]] = []
    degradations: dict[str, Any] = {}
    skipped = 0
    for source in tqdm(sources, desc=f"prepare x{config.scale}", unit="img", disable=not progress):
        record = _record_done(out_dir, source.name)
        if record is None:
            pair = load_pair(source, scale=config.scale, track=config.track, seed=config.seed)
            entries = _write_image_patches(config, source, pair.hr, pair.lr)
            record = {"source_hr": str(source.hr_path), "patches": entries, "params": pair.params}
            # Written last: its presence means every patch of this image is complete.
            atomic_write_json(out_dir / RECORDS_DIR / f"{source.name}.json", record)
        else:
            skipped += 1
        patches += record["patches"]
        if record.get("params"):
            degradations[source.name] = record["params"]
    manifest = {
        "config": to_dict(config),
        "n_images": len(sources),
        "n_patches": len(patches),
        "hr_patch": config.patch,
        "lr_patch": config.patch // config.scale,
        "patches": patches,
        "degradations": degradations,
    }
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    log.info(
        "%d patches from %d images in %s (%d images already done)",
        len(patches),
        len(sources),
        out_dir,
        skipped,
    )
    return manifest
