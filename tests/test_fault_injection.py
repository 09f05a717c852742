"""Faults as they happen on real machines, and the image formats a careless user feeds in.

* ``WRITE_FAULTS``: a real command in a subprocess under a file-size limit (``RLIMIT_FSIZE``,
  set in the child): it exits 2 with one line, leaves no temporary file, and every output it
  left is complete.
* SIGINT / SIGTERM in the middle of a folder job: every output present is complete, no
  temporary file is left; ``kill -9`` in the middle of ``ship``: every model has its sidecar.
* ``FORMATS``: every kind of image file in, through ``amls2 upscale``: the same depth, channels
  and displayed orientation out, or a one-line error saying what is not supported.

Tiny images and the ``bicubic`` model (``espcn`` ``tiny`` where TensorFlow is the point).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from amls2.cli import main
from amls2.imaging import images, resize

pytestmark = pytest.mark.skipif(os.name != "posix", reason="rlimits and signals are POSIX")

REPO = Path(__file__).resolve().parents[1]
# amls2.fileio's temporary files: ".<stem>.<pid>-<random>.tmp<suffix>".
_TEMP = re.compile(r"^\..*\.tmp(\.[^./]*)?$")
_PROGRESS_BAR = re.compile(r"\[\d\d:\d\d(<[\d:?]+)?, ")


def smooth(shape, seed=0) -> np.ndarray:
    small = np.random.default_rng(seed).random((max(shape[0] // 6, 2), max(shape[1] // 6, 2), 3))
    return np.clip(resize.imresize(small, output_shape=shape[:2]), 0, 1)


def noise_png(path: Path, shape=(48, 48, 3), seed=0) -> Path:
    """Random pixels: PNG cannot compress them, so the output size is predictable."""
    return images.write_image(path, np.random.default_rng(seed).random(shape))


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and _TEMP.match(p.name)]


def error_lines(err: str) -> list[str]:
    lines = err.replace("\r", "\n").splitlines()
    keep = [ln for ln in lines if ln.strip() and not _PROGRESS_BAR.search(ln)]
    return [ln for ln in keep if not ln.startswith(("INFO ", "WARNING "))]


def child_env() -> dict[str, str]:
    """This checkout's amls2, no GPU, and TensorFlow's log level left to the CLI (which then
    filters TensorFlow's start-up lines out of stderr, as for a user)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def file_size_limit(limit: int) -> Callable[[], None]:
    def set_limit() -> None:  # runs in the child, before it starts Python
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def amls2(argv, *, cwd: Path, limit: int | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "amls2", *map(str, argv)],
        cwd=cwd,
        env=child_env(),
        preexec_fn=file_size_limit(limit) if limit else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def complete_images(folder: Path) -> list[Path]:
    """Every PNG under ``folder``; each must decode whole (ImageError otherwise)."""
    found = sorted(p for p in folder.rglob("*.png") if not _TEMP.match(p.name))
    for path in found:
        images.read_image(path)
    return found


# ----------------------------------------------------------------------------- write faults


def tiny_run(root: Path) -> Path:
    """A finished-looking run folder: a tiny ESPCN model and its sidecar (no training)."""
    pytest.importorskip("keras")
    from amls2 import models
    from amls2.models.io import save_model

    run_dir = root / "runs" / "espcn-tiny_x2_bicubic"
    model = models.build_model("espcn", 2, variant="tiny")
    save_model(model, run_dir / "espcn-tiny_x2_bicubic.keras", {"track": "bicubic", "steps": 1})
    return run_dir


def tiny_train_set(root: Path) -> Path:
    for i in range(3):
        images.write_image(root / "data" / f"img{i}.png", smooth((40, 40), seed=i))
    return root / "data"


@dataclasses.dataclass(frozen=True)
class WriteFault:
    """``make(tmp)`` builds the inputs and returns (argv, folder of the outputs, byte limit);
    ``slow``: TensorFlow starts in the child (about 10 s alone, far more on a busy CPU)."""

    id: str
    make: Callable[[Path], tuple[list, Path, int]]
    slow: bool = False


def _upscale_fault(tmp: Path):
    for i in range(2):
        noise_png(tmp / "in" / f"p{i}.png", seed=i)  # outputs of ~28 KB each
    return (
        ["upscale", tmp / "in", "--model", "bicubic", "--scale", 2, "--out", tmp / "o"],
        tmp / "o",
        8000,
    )


def _degrade_fault(tmp: Path):
    noise_png(tmp / "hr" / "0801.png", (96, 96, 3))  # an LR of ~7 KB
    return ["degrade", tmp / "hr", tmp / "lr", "--scale", 2, "--track", "bicubic"], tmp / "lr", 3000


def _train_fault(tmp: Path):
    data = tiny_train_set(tmp)
    argv = ["train", "--model", "espcn", "--variant", "tiny", "--scale", 2, "--train-set", data]
    argv += ["--val-set", data, "--holdout", 0, "--patch-size", 16, "--batch-size", 2]
    argv += ["--epochs", 1, "--steps-per-epoch", 2, "--steps-per-execution", 1]
    argv += ["--checkpoint-every", 1, "--out-dir", tmp / "run", "--no-progress"]
    return argv, tmp / "run", 6000  # config.json fits, a checkpoint does not


def _ship_fault(tmp: Path):
    run_dir = tiny_run(tmp)
    images.write_image(tmp / "val" / "v.png", smooth((16, 16)))
    argv = ["ship", run_dir, "--weights-dir", tmp / "w", "--dataset", tmp / "val"]
    return argv, tmp / "w", 6000  # the sidecar fits, the model does not


WRITE_FAULTS = [
    WriteFault("upscale: file-size limit", _upscale_fault),
    WriteFault("degrade: file-size limit", _degrade_fault),
    WriteFault("train: file-size limit on the checkpoint", _train_fault, slow=True),
    WriteFault("ship: file-size limit on the model", _ship_fault, slow=True),
]  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in WRITE_FAULTS],
)
def test_write_fault_is_one_line_and_leaves_no_partial_or_temporary_file(case, tmp_path):
    argv, outputs, limit = case.make(tmp_path)
    process = amls2(argv, cwd=tmp_path, limit=limit)
    _, err = process.communicate(timeout=300)
    lines = error_lines(err)
    assert process.returncode == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err and "too large" in lines[0], err[-3000:]
    assert temp_files(tmp_path) == []
    complete_images(tmp_path)
    for checkpoint in outputs.rglob("*.npz"):
        np.load(checkpoint)["state"]  # a checkpoint present is a whole one
    for model in outputs.rglob("*.keras"):  # a model present has its sidecar beside it
        assert json.loads(model.with_suffix(".json").read_text())


# ----------------------------------------------------------------------------- signals


def many_inputs(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    data = cv2.imencode(".png", (smooth((128, 128)) * 255).astype(np.uint8))[1].tobytes()
    for i in range(count):
        (folder / f"img{i:03d}.png").write_bytes(data)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, "the command ended before the fault"
        assert time.monotonic() < deadline, "timed out waiting for the command to start"
        time.sleep(0.005)


@pytest.mark.parametrize(("sig", "code", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
])  # fmt: skip
def test_signal_mid_folder_leaves_only_complete_outputs(tmp_path, sig, code, word):
    many_inputs(tmp_path / "in", 150)
    out = tmp_path / "o"
    process = amls2(
        ["upscale", tmp_path / "in", "--model", "bicubic", "--scale", 2, "--out", out],
        cwd=tmp_path,
    )
    wait_for(lambda: out.is_dir() and len(list(out.iterdir())) >= 3, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-2000:]
    assert error_lines(err)[-1].endswith(word), err[-2000:]
    written = complete_images(out)
    assert 0 < len(written) < 150
    assert all(images.read_image(p).shape == (256, 256, 3) for p in written)
    assert temp_files(tmp_path) == []


def test_kill_9_mid_ship_leaves_every_model_with_its_sidecar(tmp_path, capsys):
    run_dir = tiny_run(tmp_path)
    images.write_image(tmp_path / "val" / "v.png", smooth((16, 16)))
    weights = tmp_path / "w"
    argv = ["ship", run_dir, "--weights-dir", weights, "--dataset", tmp_path / "val"]
    process = amls2(argv, cwd=tmp_path)
    wait_for(lambda: weights.is_dir() and any(weights.rglob("*")), process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    # A killed write may leave its hidden temporary file (removed by a later write once
    # stale); every file under its final name is whole, and no model is without its sidecar.
    for model in (p for p in weights.rglob("*.keras") if not _TEMP.match(p.name)):
        assert json.loads(model.with_suffix(".json").read_text())["weights_set"] == "bicubic"
    for side in (p for p in weights.rglob("*.json") if not _TEMP.match(p.name)):
        json.loads(side.read_text())
    index = weights / "README.md"
    if index.is_file():  # the index names only models that exist
        for name in re.findall(r"\b(\w+_x\d)\.keras", index.read_text()):
            assert any(weights.rglob(f"{name}.keras")), name
    # Shipping again finishes the job and leaves index and sidecars in step.
    assert main([str(a) for a in [*argv, "--force"]]) == 0
    assert (weights / "bicubic" / "espcn_x2.json").is_file()
    assert "espcn_x2" in (weights / "README.md").read_text()


# ----------------------------------------------------------------------------- formats

PIL_Image = pytest.importorskip("PIL.Image")  # a matplotlib dependency: writes what OpenCV cannot
PIL_ImageOps = pytest.importorskip("PIL.ImageOps")


def _rgb8(shape=(20, 24)) -> np.ndarray:
    return (smooth(shape) * 255).round().astype(np.uint8)


def _cv2_file(suffix: str, pixels_of: Callable[[], np.ndarray], params=()):
    def make(folder: Path) -> Path:
        path = folder / f"in{suffix}"
        assert cv2.imwrite(str(path), pixels_of(), list(params))
        return path

    return make


def _pil_file(suffix: str, mode: str, **options):
    def make(folder: Path) -> Path:
        path = folder / f"in{suffix}"
        image = PIL_Image.fromarray(_rgb8())
        if mode == "LA":
            image = image.convert("L")
            image.putalpha(
                PIL_Image.fromarray(np.linspace(0, 255, 480).reshape(20, 24).astype(np.uint8))
            )
        elif mode != "RGB":
            image = image.convert(mode)
        image.save(path, **options)
        return path

    return make


def _oriented_jpeg(orientation: int):
    def make(folder: Path) -> Path:
        path = folder / "in.jpg"
        exif = PIL_Image.Exif()
        exif[0x0112] = orientation
        PIL_Image.fromarray(_rgb8()).save(path, exif=exif.tobytes(), quality=95)
        return path

    return make


@dataclasses.dataclass(frozen=True)
class Format:
    """An input file (``make(folder)``) and what ``amls2 upscale`` must make of it: the output's
    dtype and channels, or (``error``) the words of its one-line refusal."""

    id: str
    make: Callable[[Path], Path]
    dtype: type | None = np.uint8
    channels: int = 3
    error: tuple[str, ...] = ()


def _grey16() -> np.ndarray:
    return (smooth((20, 24))[..., 0] * 65535).astype(np.uint16)


def _grey_alpha16_png(folder: Path) -> Path:
    """Written by amls2 (neither OpenCV nor Pillow writes 16-bit grey + alpha)."""
    grey = _grey16().astype(np.float64) / 65535
    return images.write_image(folder / "in.png", np.dstack([grey, grey[::-1]]), bit_depth=16)


def png_layout(path: Path) -> tuple[type, int]:
    """(dtype, channels) that a PNG file's header declares (OpenCV decodes grey + alpha as
    BGRA, so the file itself is asked)."""
    header = path.read_bytes()[16:26]
    depth, colour = header[8], header[9]
    return (np.uint16 if depth == 16 else np.uint8), {0: 1, 2: 3, 4: 2, 6: 4}[colour]


FORMATS = [
    Format("PNG 8-bit RGB", _cv2_file(".png", _rgb8)),
    Format("PNG 16-bit RGB", _cv2_file(".png", lambda: _rgb8().astype(np.uint16) * 257), np.uint16),
    Format("PNG 8-bit grey", _cv2_file(".png", lambda: _rgb8()[..., 0]), channels=1),
    Format("PNG 16-bit grey", _cv2_file(".png", _grey16), np.uint16, channels=1),
    Format("PNG 16-bit grey + alpha", _grey_alpha16_png, np.uint16, channels=2),
    Format("PNG grey + alpha", _pil_file(".png", "LA"), channels=2),
    Format("PNG RGBA", _cv2_file(".png", lambda: np.dstack([_rgb8(), _rgb8()[..., :1]])), channels=4),
    Format("PNG palette", _pil_file(".png", "P")),
    Format("PNG palette with transparency", _pil_file(".png", "P", transparency=0), channels=4),
    Format("JPEG baseline", _cv2_file(".jpg", _rgb8)),
    Format("JPEG progressive", _cv2_file(".jpg", _rgb8, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1))),
    Format("JPEG grey", _cv2_file(".jpg", lambda: _rgb8()[..., 0]), channels=1),
    Format("JPEG CMYK", _pil_file(".jpg", "CMYK")),
    *(Format(f"JPEG EXIF orientation {o}", _oriented_jpeg(o)) for o in range(1, 9)),
    Format("BMP", _cv2_file(".bmp", _rgb8)),
    Format("TIFF 8-bit", _cv2_file(".tif", _rgb8)),
    Format("TIFF 16-bit", _cv2_file(".tiff", lambda: _rgb8().astype(np.uint16) * 257), np.uint16),
    Format("WebP", _pil_file(".webp", "RGB"), None, error=("not a PNG, JPEG, BMP or TIFF",)),
]  # fmt: skip


def _displayed(path: Path, channels: int, dtype) -> np.ndarray:
    """The pixels an image viewer shows, RGB(A) order: Pillow with the EXIF orientation
    applied, or OpenCV for 16 bits (Pillow reads 16-bit colour as 8 bits)."""
    if dtype == np.uint16:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if channels == 2:
            return pixels[..., [0, 3]]  # OpenCV's BGRA of grey + alpha
        return pixels if pixels.ndim == 2 else pixels[..., 2::-1]
    with PIL_Image.open(path) as image:
        image = PIL_ImageOps.exif_transpose(image)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        return np.asarray(image.convert(mode))


@pytest.mark.parametrize("case", FORMATS, ids=[f.id for f in FORMATS])
def test_every_format_keeps_depth_channels_and_orientation_or_is_refused(case, tmp_path, capsys):
    path = case.make(tmp_path)
    code = main(["upscale", str(path), "--model", "bicubic", "--scale", "2"])
    err = capsys.readouterr().err
    out = tmp_path / f"{path.stem}_x2_bicubic.png"
    if case.error:
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and all(w in lines[0] for w in case.error), err
        assert not out.exists()
        return
    assert code == 0, err
    assert png_layout(out) == (case.dtype, case.channels)
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if case.channels == 2:
        written = written[..., [0, 3]]  # OpenCV's BGRA of grey + alpha
    shown = _displayed(path, case.channels, case.dtype)
    assert written.shape[:2] == (2 * shown.shape[0], 2 * shown.shape[1])
    # The displayed image, upscaled: PIL's and OpenCV's decoders agree to a level or two.
    top = 65535.0 if case.dtype == np.uint16 else 255.0
    expected = resize.bicubic_upscale_float(
        (shown[..., None] if shown.ndim == 2 else shown).astype(np.float32) / top, 2
    )
    got = written.astype(np.float32) / top
    got = got[..., None] if got.ndim == 2 else got
    if got.shape[2] >= 3:
        got = np.concatenate([got[..., 2::-1], got[..., 3:]], axis=2)  # BGR(A) -> RGB(A)
    assert np.abs(got - expected).mean() < 0.02


# ----------------------------------------------------------------------------- paths


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder under ``root``, links not followed."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def test_spaces_and_unicode_in_names(tmp_path, capsys):
    src = noise_png(tmp_path / "my photos ü" / "café 1.png", (8, 10, 3))
    assert main(["upscale", str(src.parent), "--model", "bicubic", "--scale", "2"]) == 0
    assert images.read_image(src.parent / "café 1_x2_bicubic.png").shape == (16, 20, 3)


def test_leading_dash_after_double_dash(tmp_path, capsys, monkeypatch):
    noise_png(tmp_path / "-a.png", (8, 10, 3))
    monkeypatch.chdir(tmp_path)
    assert main(["upscale", "--model", "bicubic", "--scale", "2", "--", "-a.png"]) == 0
    assert images.read_image(tmp_path / "-a_x2_bicubic.png").shape == (16, 20, 3)


def test_symlinked_input_folder(tmp_path, capsys):
    noise_png(tmp_path / "real" / "a.png", (8, 10, 3))
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert main(["upscale", str(tmp_path / "link"), "--model", "bicubic", "--scale", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["a.png", "a_x2_bicubic.png"]


@pytest.mark.parametrize("suffix", [None, ""])
def test_output_folder_that_is_a_symlink_into_the_input_folder(tmp_path, capsys, suffix):
    folder = tmp_path / "in"
    noise_png(folder / "a.png", (8, 10, 3))
    (tmp_path / "out").symlink_to(folder, target_is_directory=True)
    before = snapshot(tmp_path)
    argv = [
        "upscale",
        str(folder),
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    if suffix is None:
        assert main(argv) == 0
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x2_bicubic.png"]
        assert (folder / "a.png").read_bytes() == before["in/a.png"]
        return
    assert main([*argv, "--suffix", suffix]) == 2  # a.png -> out/a.png is a.png itself
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "a.png" in err[0] and "equals the input" in err[0]
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- concurrency


def test_two_upscales_writing_into_one_folder(tmp_path):
    for name in ("a", "b"):
        many_inputs(tmp_path / name, 25)
    out = tmp_path / "o"
    processes = [
        amls2(["upscale", tmp_path / n, "--model", "bicubic", "--scale", 2, "--out", out,
               "--suffix", f"_{n}"], cwd=tmp_path)
        for n in ("a", "b")
    ]  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    assert len(complete_images(out)) == 50
    assert temp_files(tmp_path) == []


# ----------------------------------------------------------------------------- datasets


def _paired_set(tmp: Path, hr: dict[str, tuple], lr: dict[str, tuple]) -> Path:
    for name, shape in hr.items():
        noise_png(tmp / "set" / "HR" / name, shape)
    for name, shape in lr.items():
        noise_png(tmp / "set" / "LR_bicubic" / "X2" / name, shape)
    return tmp / "set"


def _evaluate(tmp: Path, data: Path) -> list:
    return ["evaluate", "--model", "bicubic", "--dataset", data, "--scale", 2,
            "--json", tmp / "r" / "r.json"]  # fmt: skip


def _no_lr_partner(tmp):
    data = _paired_set(tmp, {"a.png": (16, 16, 3), "b.png": (16, 16, 3)}, {"ax2.png": (8, 8, 3)})
    return _evaluate(tmp, data), ["b.png", "bx2.png", "no LR partner"]


def _lr_of_the_wrong_size(tmp):
    data = _paired_set(tmp, {"a.png": (16, 16, 3)}, {"ax2.png": (7, 8, 3)})
    return _evaluate(tmp, data), ["ax2.png", "a.png", "HR/2"]


def _duplicate_stems(command: str):
    def make(tmp):
        noise_png(tmp / "hr" / "a.png", (16, 16, 3))
        images.write_image(tmp / "hr" / "a.jpg", smooth((16, 16)))
        if command == "degrade":
            argv = ["degrade", tmp / "hr", tmp / "lr", "--scale", 2, "--track", "bicubic"]
        elif command == "prepare":
            argv = ["prepare", tmp / "hr", "--scale", 2, "--track", "bicubic", "--out", tmp / "p"]
        else:
            argv = _evaluate(tmp, tmp / "hr")
        return argv, ["a.png", "a.jpg", "two HR images"]

    return make


def _too_small_to_validate(tmp):
    for i in range(2):
        images.write_image(tmp / "train" / f"t{i}.png", smooth((40, 40), seed=i))
    images.write_image(tmp / "val" / "tiny.png", smooth((12, 12)))
    argv = ["train", "--model", "espcn", "--variant", "tiny", "--scale", 2, "--train-set",
            tmp / "train", "--val-set", tmp / "val", "--holdout", 0, "--patch-size", 16,
            "--out-dir", tmp / "run", "--no-progress"]  # fmt: skip
    return argv, ["tiny.png", "too small to validate"]


DATASET_REFUSED = [
    ("evaluate: HR image without its LR partner", _no_lr_partner),
    ("evaluate: LR image of the wrong size", _lr_of_the_wrong_size),
    ("degrade: duplicate stems, different extensions", _duplicate_stems("degrade")),
    ("prepare: duplicate stems, different extensions", _duplicate_stems("prepare")),
    ("evaluate: duplicate stems, different extensions", _duplicate_stems("evaluate")),
    ("train: validation image smaller than the SSIM window", _too_small_to_validate),
]


@pytest.mark.parametrize(("name", "make"), DATASET_REFUSED, ids=[c[0] for c in DATASET_REFUSED])
def test_broken_dataset_is_one_line_naming_the_file(tmp_path, capsys, name, make):
    argv, words = make(tmp_path)
    before = snapshot(tmp_path)
    code = main([str(a) for a in argv])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1, lines
    assert all(w in lines[0] for w in words), lines[0]
    assert snapshot(tmp_path) == before  # nothing written, nothing lost
