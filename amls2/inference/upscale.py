"""The ``amls2 upscale`` job: image files and folders in, PNG files out, formats kept.

Every output path is planned and every input's header read before the first write
(:func:`plan_upscale`): an output that is an input of the run, or two inputs mapping to one
output, is refused; files named like this command's outputs are skipped. Grayscale stays
grayscale, alpha is upscaled with float bicubic and re-attached, 16-bit stays 16-bit, JPEG becomes
PNG. Large images are tiled automatically (:func:`_tile_for`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from amls2.errors import ConfigError, ImageError
from amls2.fileio import check_writable_folder
from amls2.imaging import image_headers, images, resize
from amls2.inference.receptive_field import receptive_field
from amls2.inference.upscaler import Upscaler, bicubic_baseline
from amls2.inference.weights import load_upscaler

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class UpscaleConfig:
    """An ``amls2 upscale`` job. ``tile``/``tile_overlap`` in LR pixels (tile 0: whole image,
    None: automatic, whole image up to ``AUTO_TILE`` px per side, else tiles keeping
    ``AUTO_TILE`` px each). One tile per model call by default: tiles are already large."""

    inputs: tuple[Path, ...]
    model: str
    scale: int
    track: str = "bicubic"
    out_dir: Path | None = None
    suffix: str | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    self_ensemble: bool = False
    save_intermediate: bool = False
    force: bool = False
    skip_bad: bool = False
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 0:
            raise ConfigError(f"--tile {self.tile}: must be positive (0 or omitted: whole image)")
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ConfigError(f"--tile-overlap {self.tile_overlap}: must be 0 or more")
        if self.suffix is not None:
            check_suffix(self.suffix)


AUTO_TILE = 320
OUTPUT_SUFFIX = ".png"
# Characters that would make a suffix a path: it could then write outside --out.
_PATH_CHARACTERS = ("/", "\\", "\0")


@dataclasses.dataclass(frozen=True)
class UpscaleResult:
    """What happened to one input: ``status`` is "written", "skipped-existing" or "skipped-bad"."""

    input: Path
    output: Path | None
    status: str
    message: str = ""


def default_suffix(model_name: str, scale: int) -> str:
    """``_x<scale>_<model>``, the default output-name suffix."""
    return f"_x{scale}_{model_name}"


def check_suffix(suffix: str) -> str:
    """``suffix`` if it is a plain file-name fragment, else ConfigError naming it."""
    if any(char in suffix for char in _PATH_CHARACTERS):
        raise ConfigError(
            f"--suffix {suffix!r}: must be a plain file-name fragment (no path separators)"
        )
    return suffix


def output_path_for(
    src: Path, *, out_dir: Path | None, suffix: str, extension: str = OUTPUT_SUFFIX
) -> Path:
    """Output file for input ``src``: ``<out_dir or src folder>/<stem><suffix><extension>``.

    Images are always PNG (lossless; keeps 16-bit and alpha; JPEG in -> PNG out), videos MP4.
    An output equal to the input is refused so that a user's file is never overwritten.
    """
    folder = out_dir if out_dir is not None else src.parent
    out = folder / f"{src.stem}{suffix}{extension}"
    if out.resolve() == src.resolve():
        raise ConfigError(
            f"{src}: output path equals the input; use a different --out or a non-empty --suffix"
        )
    return out


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given and the images inside given folders (sorted), in order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found.extend(images.list_images(path))
        elif path.exists():
            found.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    unique: dict[str, Path] = {}
    for path in found:  # one entry per file, however it was spelled
        unique.setdefault(_path_key(path), path)
    return list(unique.values())


def _path_key(path: Path) -> str:
    """What two spellings of one file have in common."""
    return os.path.normcase(os.path.realpath(path))


def _tile_for(config: UpscaleConfig, shape: tuple[int, ...], upscaler: Upscaler) -> int | None:
    """Tile size in LR px: as configured (0: whole image), or automatic for large images.

    Automatic tiles keep ``AUTO_TILE`` px of output per tile after the overlap on both sides
    (twice the receptive field) is cut off, so the overlap costs at most about 2x compute.
    """
    if config.tile is not None:
        return config.tile or None
    if upscaler.is_bicubic or max(shape[0], shape[1]) <= AUTO_TILE:
        return None
    overlap = (
        config.tile_overlap
        if config.tile_overlap is not None
        else receptive_field(upscaler.model, scale=upscaler.scale, input_kind=upscaler.input_kind)
    )
    return AUTO_TILE + 2 * overlap


def upscale_image(
    upscaler: Upscaler, loaded, config: UpscaleConfig, *, tile_progress: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Upscale one ``images.LoadedImage`` keeping its format (``tile_progress``: a bar of its
    tiles; off for the frames of a video, which has its own bar).

    Returns (image to write, bicubic intermediate or None unless ``config.save_intermediate``
    with a model), float32 [0, 1] HxW (grayscale input),
    HxWx3 or HxWx4 (alpha upscaled with float bicubic and re-attached). Grayscale inputs run
    through the model as RGB (gray expanded) and come back as the mean of the output channels.
    """
    rgb = loaded.rgb
    tile = _tile_for(config, rgb.shape, upscaler)
    through_uint8 = loaded.bit_depth == 8
    sr = upscaler.upscale(
        rgb,
        tile=tile,
        overlap=config.tile_overlap,
        self_ensemble=config.self_ensemble,
        batch_size=config.batch_size,
        progress=tile_progress,
        through_uint8=through_uint8,
    )
    sr = _restore_format(sr, loaded, config.scale)
    if not config.save_intermediate or upscaler.is_bicubic:
        return sr, None  # a full-size bicubic copy costs memory: only made on request
    bic = bicubic_baseline(rgb, config.scale, through_uint8=through_uint8)
    return sr, _restore_format(bic, loaded, config.scale)


def _restore_format(rgb: np.ndarray, loaded, scale: int) -> np.ndarray:
    out = rgb.mean(axis=-1, dtype=np.float32) if loaded.grayscale else rgb
    if loaded.alpha is not None:
        alpha = np.clip(np.asarray(resize.imresize(loaded.alpha, scale), dtype=np.float32), 0, 1)
        base = out[..., None] if out.ndim == 2 else out  # grey + alpha stays two channels
        out = np.concatenate([base, alpha[..., None]], axis=-1)
    return out


@dataclasses.dataclass(frozen=True)
class UpscaleJob:
    """One input and where it goes: ``output``, and ``intermediate`` (the bicubic upscale, with
    ``--save-intermediate`` and a model) or None."""

    input: Path
    output: Path
    intermediate: Path | None = None


def own_outputs(sources: Sequence[Path], suffix: str) -> list[Path]:
    """The files of ``sources`` named like this command's outputs (``*<suffix>.png`` and the
    intermediates ``*<suffix>_bicubic.png``): what an earlier run wrote beside its inputs.
    Upscaling them again would make ``a_x2_edsr_x2_edsr.png``. None for an empty suffix."""
    if not suffix:
        return []
    endings = (f"{suffix}{OUTPUT_SUFFIX}", f"{suffix}_bicubic{OUTPUT_SUFFIX}")
    return [path for path in sources if path.name.endswith(endings)]


def plan_upscale(
    sources: Sequence[Path], *, out_dir: Path | None, suffix: str, intermediate: bool
) -> list[UpscaleJob]:
    """Every output path of the run, checked before anything is written.

    ConfigError naming the files if an output is an input of the run (``--suffix ""`` maps
    ``photo.jpg`` onto ``photo.png``) or if two inputs map to one output (``photo.jpg`` and
    ``photo.png`` both give ``photo_x2_edsr.png``): either would overwrite a file of the run.
    """
    inputs = {_path_key(src): src for src in sources}
    claimed: dict[str, Path] = {}
    jobs = []
    for src in sources:
        out = output_path_for(src, out_dir=out_dir, suffix=suffix)
        inter = (
            output_path_for(src, out_dir=out_dir, suffix=f"{suffix}_bicubic")
            if intermediate
            else None
        )
        for target in (out, inter):
            if target is None:
                continue
            key = _path_key(target)
            if key in inputs:
                raise ConfigError(
                    f"{src}: its output {target} is an input of this run ({inputs[key]}); "
                    "use another --out or --suffix"
                )
            if key in claimed:
                raise ConfigError(
                    f"{claimed[key]} and {src} would both be written to {target}; "
                    "rename one, or upscale them separately or into another --out"
                )
            claimed[key] = src
        jobs.append(UpscaleJob(src, out, inter))
    return jobs


def _check_inputs(
    jobs: Sequence[UpscaleJob], config: UpscaleConfig
) -> tuple[list[UpscaleJob], list[UpscaleResult]]:
    """Split ``jobs`` before the first write: (to run, results of those not run). An existing
    output is kept unless ``force``; an input that is not a regular file, not an image, or over
    the pixel budget (read from its header) raises, or with ``skip_bad`` is skipped."""
    run: list[UpscaleJob] = []
    done: list[UpscaleResult] = []
    for job in jobs:
        if job.output.exists() and not config.force:
            log.warning("%s: exists, kept (use --force to overwrite)", job.output)
            done.append(UpscaleResult(job.input, job.output, "skipped-existing", "output exists"))
            continue
        try:
            image_headers.image_size(job.input)
        except ImageError as exc:
            if not config.skip_bad:
                raise
            done.append(_skipped_bad(job.input, exc))
            continue
        run.append(job)
    return run, done


def _skipped_bad(src: Path, exc: ImageError) -> UpscaleResult:
    log.warning("skipping bad input %s: %s", src, exc)
    return UpscaleResult(src, None, "skipped-bad", str(exc))


def _check_produced(results: Sequence[UpscaleResult]) -> None:
    """A run that skipped every input as bad did not do its job: ImageError naming the first."""
    bad = [r for r in results if r.status == "skipped-bad"]
    if bad and len(bad) == len(results):
        raise ImageError(
            f"no output written: all {len(bad)} input(s) were bad and skipped; first: "
            f"{bad[0].message}"
        )


def upscale_files(
    config: UpscaleConfig, *, upscaler: Upscaler | None = None
) -> list[UpscaleResult]:
    """Run an ``amls2 upscale`` job: every input file/folder image to ``<stem><suffix>.png``.

    Every output path is planned and every input's header read before the first write
    (:func:`plan_upscale`); files named like this command's outputs are skipped (said once).
    Existing outputs are kept (skipped with a warning) unless ``config.force``. A bad input
    raises ImageError naming it, or with ``skip_bad`` is logged and skipped; if every input was
    bad, ImageError says so (nothing was produced).
    """
    if config.out_dir is not None:
        check_writable_folder(config.out_dir, "--out")
    if upscaler is None:
        upscaler = load_upscaler(config.model, scale=config.scale, track=config.track)
    suffix = (
        config.suffix if config.suffix is not None else default_suffix(upscaler.name, config.scale)
    )
    sources = collect_inputs(config.inputs)
    skipped = own_outputs(sources, suffix)
    if skipped:
        names = ", ".join(p.name for p in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        log.warning(
            "skipping %d file(s) named like this command's outputs (*%s.png): %s",
            len(skipped),
            suffix,
            names,
        )
        sources = [src for src in sources if src not in skipped]
        if not sources:
            raise ImageError(
                f"{skipped[0]}: nothing to upscale: every input is named like an output of this "
                f"command (*{suffix}.png); rename them or choose another --suffix"
            )
    jobs = plan_upscale(
        sources,
        out_dir=config.out_dir,
        suffix=suffix,
        intermediate=config.save_intermediate and not upscaler.is_bicubic,
    )
    jobs, results = _check_inputs(jobs, config)
    for job in jobs:
        try:
            loaded = images.load_image(job.input)
        except ImageError as exc:  # the pixels themselves (a corrupt scan) can still be bad
            if not config.skip_bad:
                raise
            results.append(_skipped_bad(job.input, exc))
            continue
        sr, bic = upscale_image(upscaler, loaded, config)
        images.write_image(job.output, sr, bit_depth=loaded.bit_depth)
        if bic is not None:
            if job.intermediate.exists() and not config.force:
                log.warning("%s: exists, kept (use --force to overwrite)", job.intermediate)
            else:
                images.write_image(job.intermediate, bic, bit_depth=loaded.bit_depth)
        log.info("%s -> %s", job.input, job.output)
        results.append(UpscaleResult(job.input, job.output, "written"))
    _check_produced(results)
    return results
