"""The dataset registry, where datasets live on disk and their layouts (pairing them is
:mod:`amls2.data.pairing`).

A dataset is found by name under the data root (``--data-dir``, else ``$AMLS2_DATA``, else
``./Datasets``), as ``<root>/<Name>`` (case-sensitive), or given as any folder. ``samples`` is the
embedded default: colour photographs shipped with scikit-image, independent of the data root.

Accepted layouts of a dataset folder ``D`` (see ``Datasets/README.md``), tried in this order:

1. the official DIV2K tree: ``D/DIV2K_<split>_HR/0801.png`` with
   ``D/DIV2K_<split>_LR_<track>/X<s>/0801x<s>.png``;
2. ``D/HR/`` with ``D/LR_<track>/X<s>/`` (benchmark layout: ``baby.png`` + ``babyx2.png``);
3. the seed project's layout ``D/original_dataset/HR/`` with ``D/original_dataset/<track>/X<s>/``
   (also accepted with ``D`` being the ``original_dataset`` folder itself: ``D/HR`` + ``D/<track>/X<s>``);
4. a plain folder of HR images.

When the track's LR folder exists, every HR image needs its partner ``<stem>x<s>.<ext>`` (or
``<stem>.<ext>``) there: a missing one is a DatasetError naming both files. Without that folder the
LR is synthesised by :func:`amls2.data.degradations.degrade` (``lr_path`` None), for ``unknown`` with the
validation seed. HR images are mod-cropped to the scale before pairing; an LR whose size is not
HR/scale is a DatasetError naming both files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import skimage.data

from amls2.config import SCALES, TRACKS, data_root
from amls2.errors import DatasetError
from amls2.imaging.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

DIV2K_BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# EDSR's collection of the small benchmarks: benchmark/<Set>/HR/*.png and
# benchmark/<Set>/LR_bicubic/X<s>/*x<s>.png for Set5, Set14, B100 and Urban100 (one 250 MB tar).
EDSR_BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
# The SRCNN authors' code and data archive: Train/ holds the 91 training images (t1.bmp ...).
SRCNN_ARCHIVE_URL = "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_v1.zip"
SEED_LAYOUT_DIR = "original_dataset"
SAMPLES = "samples"
# Natural colour photographs shipped in skimage/data (no download, any licence-compatible use).
SAMPLE_FILES: tuple[str, ...] = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)


@dataclass(frozen=True)
class Archive:
    """One downloadable archive of a dataset.

    ``part`` is its short name for ``amls2 download --parts`` (e.g. ``valid_LR_bicubic_X2``).
    ``size`` (bytes) and ``sha256`` are verified when known (None: not published; the SHA-256
    of the first download is then recorded and checked from then on, see :mod:`amls2.data.download`);
    ``approx_size`` is only for display. ``member_dir``: only this folder of the archive is
    extracted (e.g. ``benchmark/Set5`` of an archive shared by several datasets; found at any
    depth), into the dataset folder's subfolder ``into`` ("" = the dataset folder itself).
    """

    part: str
    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None
    approx_size: str | None = None
    member_dir: str | None = None
    into: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the toolkit knows by name.

    ``split_counts``: ``(split, number of HR images)``; datasets without splits have ``("all", n)``.
    ``archives``: public archives :mod:`amls2.data.download` can fetch (empty: get it by hand, see
    ``source``). ``embedded``: shipped with a dependency, no data root needed.
    """

    name: str
    description: str
    split_counts: tuple[tuple[str, int], ...]
    source: str
    archives: tuple[Archive, ...] = ()
    default_parts: tuple[str, ...] = ()
    embedded: bool = False

    @property
    def splits(self) -> tuple[str, ...]:
        """The dataset's split names (e.g. train, valid)."""
        return tuple(split for split, _ in self.split_counts)

    @property
    def default_split(self) -> str:
        """``valid`` when there is one (evaluation default), else the only split."""
        return "valid" if "valid" in self.splits else self.splits[0]

    def expected_count(self, split: str | None = None) -> int:
        """The standard number of HR images of ``split`` (default split if None)."""
        split = split or self.default_split
        return dict(self.split_counts)[split]


def _div2k_archives() -> tuple[Archive, ...]:
    archives = [
        # The official sizes in bytes: a cached archive of another size is fetched again. The
        # LR archives' sizes are not known here exactly, so they stay None (not checked).
        Archive(
            "train_HR",
            "DIV2K_train_HR.zip",
            DIV2K_BASE_URL + "DIV2K_train_HR.zip",
            size=3_530_603_713,
            approx_size="3.5 GB",
        ),
        Archive(
            "valid_HR",
            "DIV2K_valid_HR.zip",
            DIV2K_BASE_URL + "DIV2K_valid_HR.zip",
            size=448_993_893,
            approx_size="449 MB",
        ),
    ]
    for split in ("train", "valid"):
        for track in ("bicubic", "unknown"):
            for scale in (2, 3, 4):
                filename = f"DIV2K_{split}_LR_{track}_X{scale}.zip"
                archives.append(
                    Archive(f"{split}_LR_{track}_X{scale}", filename, DIV2K_BASE_URL + filename)
                )
    return tuple(archives)


_BENCHMARK_SOURCE = (
    "not downloadable by amls2: get the {name} benchmark (HR images, e.g. from the EDSR/"
    "'SR benchmark' collections) and put it at <data root>/{name}/HR/ (LR_bicubic/X<s>/ optional)"
)


def _benchmark(name: str, n: int, description: str) -> DatasetInfo:
    return DatasetInfo(name, description, (("all", n),), _BENCHMARK_SOURCE.format(name=name))


def _edsr_benchmark(name: str, n: int, description: str) -> DatasetInfo:
    """A set of EDSR's benchmark.tar: its HR/ and LR_bicubic/X<s>/ folders (benchmark layout)."""
    archive = Archive(
        "benchmark",
        "benchmark.tar",
        EDSR_BENCHMARK_URL,
        approx_size="250 MB, shared by Set5, Set14, B100 and Urban100",
        member_dir=f"benchmark/{name}",
    )
    source = f"{EDSR_BENCHMARK_URL} (EDSR's benchmark collection: benchmark/{name}/)"
    return DatasetInfo(
        name, description, (("all", n),), source, archives=(archive,), default_parts=("benchmark",)
    )


def _t91() -> DatasetInfo:
    """T91 from the SRCNN authors' archive: its Train/ folder becomes T91/HR/."""
    archive = Archive("train", "SRCNN_v1.zip", SRCNN_ARCHIVE_URL, member_dir="Train", into="HR")
    return DatasetInfo(
        "T91",
        "Yang et al. 2010 training images (SRCNN)",
        (("all", 91),),
        f"{SRCNN_ARCHIVE_URL} (the SRCNN authors' archive: Train/*.bmp)",
        archives=(archive,),
        default_parts=("train",),
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            SAMPLES,
            "colour photographs bundled with scikit-image (embedded default)",
            (("all", len(SAMPLE_FILES)),),
            "embedded in scikit-image (skimage/data); nothing to download",
            embedded=True,
        ),
        DatasetInfo(
            "DIV2K",
            "NTIRE 2017 DIV2K 2K-resolution images, tracks bicubic and unknown",
            (("train", 800), ("valid", 100)),
            DIV2K_BASE_URL,
            archives=_div2k_archives(),
            # HR only by default: the bicubic LR can be synthesised exactly (amls2 degrade).
            default_parts=("train_HR", "valid_HR"),
        ),
        _edsr_benchmark("Set5", 5, "Bevilacqua et al. 2012 benchmark"),
        _edsr_benchmark("Set14", 14, "Zeyde et al. 2010 benchmark (bridge.png is grayscale)"),
        _edsr_benchmark(
            "B100", 100, "BSD100: Berkeley segmentation test images (Martin et al. 2001)"
        ),
        _edsr_benchmark("Urban100", 100, "Huang et al. 2015 urban scenes"),
        _benchmark("Manga109", 109, "Matsui et al. 2017 manga covers"),
        _t91(),
        _benchmark("BSD200", 200, "BSD500 train+val subset used for SRCNN/FSRCNN training"),
    )
}


def dataset_names() -> list[str]:
    """Names of every known dataset, registry order."""
    return list(DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    """The registry entry ``name``, or DatasetError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {dataset_names()}") from None


def samples_dir() -> Path:
    """The folder of scikit-image's bundled data files."""
    return Path(skimage.data.__file__).resolve().parent


def sample_paths() -> list[Path]:
    """The ``samples`` photographs (paths inside scikit-image)."""
    folder = samples_dir()
    paths = [folder / f for f in SAMPLE_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: sample image missing from the scikit-image install")
    return paths


def expected_location(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where dataset ``name`` is expected: ``<data root>/<name>`` (scikit-image for samples)."""
    if get_dataset(name).embedded:
        return samples_dir()
    return data_root(data_dir) / name


def find_dataset(name_or_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of a dataset given by registry name (under the data root), by the name of any
    folder under the data root, or as a folder path.

    A registry name, then a folder under the data root, win over a same-named folder in the
    working directory. ``samples`` gives the
    scikit-image data folder (use :func:`resolve_hr_images`, not a folder listing, for its photos).
    """
    key = str(name_or_dir)
    if key in DATASETS:
        folder = expected_location(key, data_dir)
        if not folder.is_dir():
            info = DATASETS[key]
            how = f"`amls2 download {key}`" if info.archives else info.source
            raise DatasetError(
                f"dataset {key!r} not found at {folder} (data root from --data-dir, $AMLS2_DATA or "
                f"./Datasets); get it: {how}"
            )
        return folder
    under_root = data_root(data_dir) / key
    if _is_bare_name(key) and under_root.is_dir():
        # A folder under the data root is a dataset by its folder name (e.g. Track2sim).
        return under_root
    folder = Path(name_or_dir).expanduser()
    if folder.is_dir():
        return folder
    raise DatasetError(
        f"{name_or_dir}: neither a folder, a folder under the data root {data_root(data_dir)}, "
        f"nor a known dataset {dataset_names()}"
    )


def _is_bare_name(text: str) -> bool:
    """A plain folder name (no separator, not . or ..): looked up under the data root first."""
    separators = {os.sep, os.altsep or os.sep, "/"}
    return bool(text) and text not in (".", "..") and not any(c in text for c in separators)


@dataclass(frozen=True)
class Layout:
    """A dataset folder resolved for one split: its kind, HR folder, and LR folders by track."""

    kind: str  # "div2k" | "hr_lr" | "seed" | "plain" | "samples"
    hr_dir: Path
    lr_dirs: dict[str, Path]  # "<track>_X<s>" -> folder, only those that exist

    def lr_dir(self, track: str, scale: int) -> Path | None:
        """The folder of the LR images of ``track`` at ``scale``, if the layout has one."""
        return self.lr_dirs.get(f"{track}_X{scale}")


def _lr_folders(candidates: dict[str, Path]) -> dict[str, Path]:
    return {key: path for key, path in candidates.items() if path.is_dir()}


def _lr_candidates(base: Path, prefix: str) -> dict[str, Path]:
    return {f"{t}_X{s}": base / f"{prefix}{t}" / f"X{s}" for t in TRACKS for s in SCALES}


def detect_layout(folder: Path, split: str | None = None) -> Layout:
    """Recognise the layout of a dataset folder (see the module doc); ``split`` only matters for
    the DIV2K tree (None -> ``valid`` if present, else ``train``)."""
    div2k_splits = [s for s in ("train", "valid") if (folder / f"DIV2K_{s}_HR").is_dir()]
    if div2k_splits:
        chosen = split or ("valid" if "valid" in div2k_splits else div2k_splits[0])
        if chosen not in div2k_splits:
            raise DatasetError(
                f"{folder / f'DIV2K_{chosen}_HR'}: DIV2K split {chosen!r} not found "
                f"(found {div2k_splits})"
            )
        lr = _lr_candidates(folder, f"DIV2K_{chosen}_LR_")
        return Layout("div2k", folder / f"DIV2K_{chosen}_HR", _lr_folders(lr))
    if split:
        log.debug("%s: not a DIV2K tree, split %r ignored", folder, split)
    if (folder / "HR").is_dir():
        benchmark = _lr_folders(_lr_candidates(folder, "LR_"))
        seed_style = _lr_folders(_lr_candidates(folder, ""))
        kind = "seed" if seed_style and not benchmark else "hr_lr"
        return Layout(kind, folder / "HR", {**seed_style, **benchmark})
    seed_dir = folder / SEED_LAYOUT_DIR
    if (seed_dir / "HR").is_dir():
        return Layout("seed", seed_dir / "HR", _lr_folders(_lr_candidates(seed_dir, "")))
    return Layout("plain", folder, {})


@dataclass(frozen=True)
class DatasetStatus:
    """What of a dataset is on disk: for ``amls2 datasets``."""

    name: str
    location: Path
    present: bool
    layout: str
    counts: tuple[tuple[str, int, int], ...]  # (split, found, expected)
    lr_folders: tuple[str, ...]  # e.g. ("valid bicubic X2", ...)

    @property
    def complete(self) -> bool:
        """Present, with every expected image found."""
        return self.present and all(found >= expected for _, found, expected in self.counts)


def _count_images(folder: Path) -> int:
    suffixes = {s.lower() for s in IMAGE_SUFFIXES}
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in suffixes)


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> DatasetStatus:
    """Look for dataset ``name`` under the data root and count what is there."""
    info = get_dataset(name)
    location = expected_location(name, data_dir)
    if info.embedded:
        found = sum(1 for f in SAMPLE_FILES if (location / f).is_file())
        return DatasetStatus(
            name, location, found > 0, "embedded", (("all", found, info.expected_count()),), ()
        )
    if not location.is_dir():
        counts = tuple((s, 0, n) for s, n in info.split_counts)
        return DatasetStatus(name, location, False, "-", counts, ())
    counts, lr_folders, kind = [], [], "-"
    for split, expected in info.split_counts:
        try:
            layout = detect_layout(location, None if split == "all" else split)
        except DatasetError:
            counts.append((split, 0, expected))
            continue
        kind = layout.kind
        counts.append((split, _count_images(layout.hr_dir), expected))
        prefix = f"{split} " if layout.kind == "div2k" else ""
        lr_folders += [f"{prefix}{key.replace('_', ' ')}" for key in layout.lr_dirs]
    return DatasetStatus(name, location, True, kind, tuple(counts), tuple(lr_folders))
