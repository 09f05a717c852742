"""Hostile and careless inputs (issue 11): each one gets one line on stderr naming the file or
option and exit code 2, nothing the user had is overwritten or deleted, and a command that
cannot finish its job does not report success.

``REFUSED`` is the table of inputs that must be refused; the tests after it cover what must be
handled instead (skipped, resumed, cleaned, fetched again). Everything is tiny and CPU-only: the
``bicubic`` model where a model is not the point, a 12000 x 12000 PNG of 140 KB that is never
decoded, a local HTTP server on 127.0.0.1 for downloads.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from amls2.cli import main
from amls2.data import datasets
from amls2.imaging import image_headers, images, resize

# ----------------------------------------------------------------------------- helpers


def png(path: Path, shape=(12, 14, 3), seed: int = 0) -> Path:
    return images.write_image(path, np.random.default_rng(seed).random(shape))


def jpeg_bytes(shape=(96, 96, 3), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (5, 5), 2)
    return cv2.imencode(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def corrupt_scan(data: bytes) -> bytes:
    """200 bytes cut from the middle of the entropy-coded scan; the end marker stays."""
    middle = (data.rfind(b"\xff\xda") + len(data)) // 2
    return data[:middle] + data[middle + 200 :]


def huge_png(path: Path, side: int = 12000) -> Path:
    """A valid grey PNG of side x side zero pixels: about 140 KB on disk, 144 MB decoded."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every regular file under ``root`` (not following links) and its bytes, and every folder."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if (p.is_file() or p.is_dir()) and not p.is_symlink()
    }


# tqdm's progress bars ("name: 100%|####| 1.00k/1.00k [00:00<00:00, ...]") share stderr.
_PROGRESS_BAR = re.compile(r"\[\d\d:\d\d(<[\d:?]+)?, ")


def error_lines(err: str) -> list[str]:
    lines = err.replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip() and not _PROGRESS_BAR.search(line)]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def synthetic_set(folder: Path, count: int, shape, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((shape[0] // 8, shape[1] // 8, 3))
        images.write_image(
            folder / f"img{i}.png", np.clip(resize.imresize(small, output_shape=shape), 0, 1)
        )
    return folder


def train_argv(data: Path, out_dir, *extra) -> list[str]:
    return [
        "train", "--model", "espcn", "--variant", "tiny", "--scale", "2",
        "--train-set", data / "train", "--val-set", data / "val",
        "--patch-size", "16", "--batch-size", "4", "--lr", "1e-3", "--epochs", "2",
        "--steps-per-epoch", "6", "--steps-per-execution", "3", "--checkpoint-every", "3",
        "--out-dir", out_dir, "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    synthetic_set(root / "train", 14, (40, 40), seed=0)  # more than a default holdout
    synthetic_set(root / "val", 1, (24, 24), seed=1)
    return root


@pytest.fixture(scope="module")
def finished_run(train_data, tmp_path_factory) -> Path:
    """A finished tiny run (12 steps, checkpoints every 3): last.npz and prev.npz exist."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([str(a) for a in train_argv(train_data, out)]) == 0
    assert (out / "checkpoints" / "last.npz").is_file()
    assert (out / "checkpoints" / "prev.npz").is_file()
    return out


def copy_run(finished_run: Path, dest: Path) -> Path:
    for path in finished_run.rglob("*"):
        if path.is_file():
            target = dest / path.relative_to(finished_run)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return dest


class ArchiveServer:
    """Serves ``files`` (URL path -> bytes) from 127.0.0.1."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ArchiveServer()
    yield srv
    srv.close()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lr_archive_entries() -> dict[str, bytes]:
    return {
        f"DIV2K_valid_LR_bicubic/X2/{n:04d}x2.png": cv2.imencode(".png", np.full((6, 6, 3), n % 256, np.uint8))[1].tobytes()
        for n in (801, 802)
    }  # fmt: skip


def bad_crc(archive: bytes) -> bytes:
    """A stored zip with one byte of its first member's data changed (the CRC no longer fits)."""
    data = bytearray(archive)
    name_length, extra_length = struct.unpack("<HH", data[26:30])
    data[30 + name_length + extra_length + 40] ^= 0xFF
    return bytes(data)


# ----------------------------------------------------------------------------- refused inputs


@dataclasses.dataclass(frozen=True)
class Refused:
    """One hostile input: ``make(tmp_path, request)`` builds the files and returns the argv and
    the strings the one error line must contain (the file or option at fault)."""

    id: str
    make: Callable[..., tuple[list, list[str]]]
    posix_only: bool = False


def _suffix_empty_jpg_over_png(tmp, request):
    folder = tmp / "photos"
    images.write_image(folder / "photo.jpg", np.random.default_rng(1).random((12, 14, 3)))
    png(folder / "photo.png")
    argv = ["upscale", folder, "--model", "bicubic", "--scale", 2, "--suffix", "", "--force"]
    return argv, ["photo.png"]


def _two_inputs_one_output(force: bool):
    def make(tmp, request):
        folder = tmp / "photos"
        images.write_image(folder / "photo.jpg", np.random.default_rng(1).random((12, 14, 3)))
        png(folder / "photo.png")
        png(folder / "photo_x2_bicubic.png", seed=3)  # a file of the user's, by that name
        argv = ["upscale", folder, "--model", "bicubic", "--scale", 2]
        return argv + (["--force"] if force else []), ["photo.jpg", "photo.png"]

    return make


def _suffix_with_separator(tmp, request):
    src = png(tmp / "in" / "a.png")
    argv = ["upscale", src, "--model", "bicubic", "--scale", 2, "--out", tmp / "o" / "p"]
    return argv + ["--suffix", "/../../x"], ["--suffix"]


def _degrade_into_hr_folder(inside: bool):
    def make(tmp, request):
        hr = tmp / "hr"
        png(hr / "0801.png", (16, 16, 3))
        out = hr / "lr" if inside else hr
        return ["degrade", hr, out, "--scale", 2, "--track", "bicubic", "--force"], [str(out)]

    return make


def _degrade_tiny_image(side: int, scale: int):
    def make(tmp, request):
        hr = tmp / "hr"
        png(hr / "a_good.png", (16, 16, 3))
        tiny = png(hr / "b_tiny.png", (side, side, 3))
        argv = ["degrade", hr, tmp / "lr", "--scale", scale, "--track", "bicubic"]
        return argv, [str(tiny), f"x{scale}"]

    return make


def _huge_png(tmp, request):
    path = huge_png(tmp / "in" / "huge.png")
    return ["upscale", path, "--model", "bicubic", "--scale", 2], [str(path), "--max-pixels"]


def _over_max_pixels(command: str):
    def make(tmp, request):
        folder = tmp / "in"
        png(folder / "a.png", (10, 10, 3))
        big = png(folder / "b.png", (40, 40, 3))
        if command == "upscale":
            argv = ["upscale", folder, "--model", "bicubic", "--scale", 2]
        else:
            argv = ["degrade", folder, tmp / "lr", "--scale", 2, "--track", "bicubic"]
        return argv + ["--max-pixels", 1000], [str(big), "--max-pixels"]

    return make


def _fifo(tmp, request):
    fifo = tmp / "in" / "pipe.png"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    return ["upscale", fifo, "--model", "bicubic", "--scale", 2], [str(fifo), "regular file"]


def _dev_zero(tmp, request):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    link = tmp / "in" / "zero.png"
    link.parent.mkdir()
    link.symlink_to("/dev/zero")
    return ["upscale", link, "--model", "bicubic", "--scale", 2], [str(link), "regular file"]


def _corrupt_jpeg(tmp, request):
    path = tmp / "in" / "broken.jpg"
    path.parent.mkdir()
    path.write_bytes(corrupt_scan(jpeg_bytes()))
    return ["upscale", path, "--model", "bicubic", "--scale", 2], [str(path), "Corrupt JPEG"]


def _skip_bad_all_bad(command: str):
    def make(tmp, request):
        folder = tmp / "in"
        (folder / "a.png").parent.mkdir()
        (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        (folder / "b.jpg").write_bytes(corrupt_scan(jpeg_bytes()))
        if command == "upscale":
            argv = ["upscale", folder, "--model", "bicubic", "--scale", 2, "--skip-bad"]
        else:
            argv = ["degrade", folder, tmp / "lr", "--scale", 2, "--track", "bicubic", "--skip-bad"]
        return argv, ["a.png"]

    return make


def _tile(option: str, value: int):
    def make(tmp, request):
        src = png(tmp / "in" / "a.png")
        argv = ["upscale", src, "--model", "bicubic", "--scale", 2, "--tile", 8, option, value]
        return argv, [option, str(value)]

    return make


def _out_is_a_file(tmp, request):
    src = png(tmp / "in" / "a.png")
    out = tmp / "results"
    out.write_text("my notes")
    return ["upscale", src, "--model", "bicubic", "--scale", 2, "--out", out], [
        "--out",
        str(out),
        "is a file",
    ]


def _evaluate_unwritable(option: str, where: str):
    def make(tmp, request):
        data = tmp / "set"
        png(data / "a.png", (16, 16, 3))
        if where == "under-a-file":
            (tmp / "notes.txt").write_text("mine")
            target = tmp / "notes.txt" / "results.json"
        else:
            if not Path("/proc/self").exists():
                pytest.skip("no /proc")
            target = Path("/proc/amls2-results.csv")
        argv = ["evaluate", "--model", "bicubic", "--dataset", data, "--scale", 2]
        return argv + [option, target], [option, str(target)]

    return make


def _keras_of_another_scale(tmp, request):
    pytest.importorskip("keras")
    from amls2 import models

    path = tmp / "model.keras"
    models.build_model("espcn", 2, variant="tiny").save(path)  # no sidecar
    src = png(tmp / "in" / "a.png")
    return ["upscale", src, "--model", path, "--scale", 4], ["model.keras", "x2", "x4"]


def _non_finite(option: str, value: str):
    def make(tmp, request):
        data = request.getfixturevalue("train_data")
        return train_argv(data, tmp / "run", option, value), [option, value]

    return make


def _unreadable_checkpoints(previous: str):
    def make(tmp, request):
        run_dir = copy_run(request.getfixturevalue("finished_run"), tmp / "run")
        last = run_dir / "checkpoints" / "last.npz"
        last.write_bytes(last.read_bytes()[:1000])
        prev = run_dir / "checkpoints" / "prev.npz"
        if previous == "missing":
            prev.unlink()
        else:
            prev.write_bytes(b"")
        data = request.getfixturevalue("train_data")
        return train_argv(data, run_dir), [str(last), "--force"]

    return make


def _train_refused(*extra):
    def make(tmp, request):
        data = request.getfixturevalue("train_data")
        return train_argv(data, tmp / "runs" / "v", *extra), [extra[0]]

    return make


def _few_images_default_holdout(tmp, request):
    """The default holdout (10) of a 5-image set: refused before runs/v or its config exist."""
    five = synthetic_set(tmp / "five", 5, (40, 40), seed=0)
    argv = ["train", "--model", "espcn", "--variant", "tiny", "--scale", 2, "--train-set", five]
    argv += ["--val-set", five, "--out-dir", tmp / "runs" / "v", "--no-progress"]
    return argv, ["--holdout 10", str(five)]


def _refused_option(argv_of, names):
    def make(tmp, request):
        png(tmp / "in" / "a.png", (16, 16, 3))
        return argv_of(tmp), names

    return make


REFUSED = [
    Refused("train: default --holdout of a 5-image set, no run folder", _few_images_default_holdout),
    Refused("train: --holdout too large, no run folder", _train_refused("--holdout", "14")),
    Refused("train: --init-from missing, no run folder", _train_refused("--init-from", "nope.keras")),
    Refused("train: --teacher missing, no run folder", _train_refused("--teacher", "nope.keras")),
    Refused("upscale: unknown --model, no --out folder", _refused_option(
        lambda t: ["upscale", t / "in", "--model", "nosuch", "--scale", 2, "--out", t / "o"], ["--model"])),
    Refused("degrade: missing --spec, no OUT_DIR", _refused_option(
        lambda t: ["degrade", t / "in", t / "lr", "--scale", 2, "--track", "bicubic", "--spec", t / "s.json"], ["s.json"])),
    Refused("prepare: --patch 7 at x2, no --out folder", _refused_option(
        lambda t: ["prepare", t / "in", "--scale", 2, "--track", "bicubic", "--out", t / "p", "--patch", 7], ["--patch 7"])),
    Refused("prepare: --stride 0, no --out folder", _refused_option(
        lambda t: ["prepare", t / "in", "--scale", 2, "--track", "bicubic", "--out", t / "p", "--stride", 0], ["--stride 0"])),
    Refused("evaluate: unknown --model, no --json or --save-images", _refused_option(
        lambda t: ["evaluate", "--model", "nosuch", "--dataset", t / "in", "--scale", 2, "--json", t / "r" / "r.json", "--save-images", t / "s"], ["--model"])),
    Refused("ship: not a run folder, no --weights-dir", _refused_option(
        lambda t: ["ship", t / "in", "--weights-dir", t / "w"], [str(Path("in"))])),
    Refused("download: unknown --parts, no --data-dir", _refused_option(
        lambda t: ["download", "DIV2K", "--data-dir", t / "d", "--parts", "nosuchpart"], ["--parts"])),
    Refused("upscale: --suffix '' --force maps photo.jpg onto photo.png", _suffix_empty_jpg_over_png),
    Refused("upscale: photo.jpg and photo.png map to one output", _two_inputs_one_output(False)),
    Refused("upscale: ... and with --force", _two_inputs_one_output(True)),
    Refused("upscale: --suffix with a path separator", _suffix_with_separator),
    Refused("degrade: OUT_DIR is the HR folder", _degrade_into_hr_folder(False)),
    Refused("degrade: OUT_DIR inside the HR folder", _degrade_into_hr_folder(True)),
    Refused("degrade: 1x1 image, nothing written", _degrade_tiny_image(1, 2)),
    Refused("degrade: 3x3 image at x4, nothing written", _degrade_tiny_image(3, 4)),
    Refused("upscale: 12000x12000 PNG of 140 KB", _huge_png),
    Refused("upscale: --max-pixels", _over_max_pixels("upscale")),
    Refused("degrade: --max-pixels, nothing written", _over_max_pixels("degrade")),
    Refused("upscale: a FIFO named .png", _fifo, posix_only=True),
    Refused("upscale: /dev/zero named .png", _dev_zero, posix_only=True),
    Refused("upscale: JPEG corrupt in the middle of its scan", _corrupt_jpeg),
    Refused("upscale: --skip-bad and every input bad", _skip_bad_all_bad("upscale")),
    Refused("degrade: --skip-bad and every input bad", _skip_bad_all_bad("degrade")),
    Refused("upscale: --tile -1", _tile("--tile", -1)),
    Refused("upscale: --tile-overlap -3", _tile("--tile-overlap", -3)),
    Refused("upscale: --out names a file", _out_is_a_file),
    Refused("evaluate: --json under a file", _evaluate_unwritable("--json", "under-a-file")),
    Refused("evaluate: --csv in a read-only place", _evaluate_unwritable("--csv", "proc")),
    Refused("upscale: .keras of another scale, no sidecar", _keras_of_another_scale),
    Refused("train: --lr nan", _non_finite("--lr", "nan")),
    Refused("train: --lr inf", _non_finite("--lr", "inf")),
    Refused("train: --perceptual-weight nan", _non_finite("--perceptual-weight", "nan")),
    Refused("train: truncated last checkpoint, empty prev", _unreadable_checkpoints("empty")),
    Refused("train: truncated last checkpoint, no prev", _unreadable_checkpoints("missing")),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
def test_refused_with_one_line_exit_2_and_every_file_kept(case, tmp_path, capsys, request):
    if case.posix_only and os.name != "posix":
        pytest.skip("POSIX only")
    argv, names = case.make(tmp_path, request)
    before = snapshot(tmp_path)
    code, _, err = run(capsys, *argv)
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(name in lines[0] for name in names), lines[0]
    assert snapshot(tmp_path) == before  # nothing changed, lost or (partially) written


# ----------------------------------------------------------------------------- handled inputs


def test_second_upscale_of_a_folder_skips_the_first_runs_outputs(tmp_path, capsys, caplog):
    folder = tmp_path / "photos"
    png(folder / "a.png")
    png(folder / "b.png", seed=1)
    assert run(capsys, "upscale", folder, "--model", "bicubic", "--scale", 2)[0] == 0
    first = snapshot(folder)
    code, _, _ = run(capsys, "upscale", folder, "--model", "bicubic", "--scale", 2, "--force")
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.png", "a_x2_bicubic.png", "b.png", "b_x2_bicubic.png",
    ]  # fmt: skip
    assert snapshot(folder) == first  # the rerun rewrote the same outputs
    said = [r.getMessage() for r in caplog.records if "named like this command" in r.getMessage()]
    assert len(said) == 1 and "2 file(s)" in said[0]  # said once, not once per file


def test_skip_bad_skips_over_budget_and_unreadable_inputs_and_writes_the_rest(tmp_path, capsys):
    folder = tmp_path / "in"
    png(folder / "a.png", (10, 10, 3))
    png(folder / "big.png", (40, 40, 3))
    (folder / "c.jpg").write_bytes(corrupt_scan(jpeg_bytes()))
    argv = ["upscale", folder, "--model", "bicubic", "--scale", 2, "--out", tmp_path / "o"]
    code, out, _ = run(capsys, *argv, "--skip-bad", "--max-pixels", 1000)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_x2_bicubic.png"]


def test_degrade_skip_bad_skips_a_too_small_image(tmp_path, capsys, caplog):
    hr = tmp_path / "hr"
    png(hr / "a.png", (16, 16, 3))
    tiny = png(hr / "b.png", (1, 1, 3))
    argv = ["degrade", hr, tmp_path / "lr", "--scale", 2, "--track", "bicubic", "--skip-bad"]
    assert run(capsys, *argv)[0] == 0
    assert [p.name for p in (tmp_path / "lr").iterdir()] == ["ax2.png"]
    assert any(str(tiny) in r.getMessage() for r in caplog.records)


def test_tiled_upscaling_of_a_big_image_within_the_budget_still_works(tmp_path, capsys):
    pytest.importorskip("keras")
    from amls2 import models
    from amls2.models.io import save_model

    path = save_model(
        models.build_model("espcn", 2, variant="tiny"), tmp_path / "e.keras", {"track": "bicubic"}
    )
    src = png(tmp_path / "in" / "a.png", (40, 44, 3))
    argv = ["upscale", src, "--model", path, "--scale", 2, "--tile", 16, "--max-pixels", 40 * 44]
    assert run(capsys, *argv)[0] == 0
    assert images.read_image(tmp_path / "in" / "a_x2_e.png").shape == (80, 88, 3)


@pytest.mark.parametrize(
    ("suffix", "shape", "params"),
    [
        (".png", (13, 17, 3), []),
        (".png", (13, 17), []),
        (".png", (5, 3, 4), []),
        (".jpg", (300, 17, 3), []),
        (".jpg", (13, 17, 3), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".jpg", (13, 17), []),
        (".bmp", (13, 17, 3), []),
        (".bmp", (2, 700), []),
        (".tif", (13, 17, 4), []),
        (".tiff", (9, 70000), []),
    ],
)
def test_header_size_is_the_decoded_size(tmp_path, suffix, shape, params):
    pixels = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), pixels, params)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image_headers.image_size(path) == decoded.shape[:2]


def test_jpeg_with_large_metadata_before_the_frame_header(tmp_path):
    data = jpeg_bytes((20, 30, 3))
    app = b"\xff\xe1" + struct.pack(">H", 65535) + b"\x00" * 65533  # an APP1 segment
    path = tmp_path / "meta.jpg"
    path.write_bytes(data[:2] + app * 5 + data[2:])
    assert image_headers.image_size(path) == (20, 30)
    assert images.read_image(path).shape == (20, 30, 3)


def _trained_run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return copy_run(finished_run, tmp_path / "runs" / "x")


def test_unreadable_last_checkpoint_falls_back_to_the_previous(
    finished_run, train_data, tmp_path, capsys, caplog
):
    caplog.set_level(logging.INFO)
    run_dir = _trained_run_copy(finished_run, tmp_path)
    last, prev = run_dir / "checkpoints" / "last.npz", run_dir / "checkpoints" / "prev.npz"
    prev_step = json.loads(str(np.load(prev)["state"]))["step"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert run(capsys, *train_argv(train_data, run_dir))[0] == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("prev.npz" in m and "last.npz" in m for m in warned), warned
    assert any(f"from step {prev_step}" in r.getMessage() for r in caplog.records)
    assert json.loads(str(np.load(last)["state"]))["step"] == 12  # finished again


@pytest.mark.parametrize("spelling", ["./runs/x", "runs/x/", "absolute"])
def test_out_dir_spelled_another_way_resumes_the_same_run(
    finished_run, train_data, tmp_path, capsys, caplog, monkeypatch, spelling
):
    caplog.set_level(logging.INFO)
    _trained_run_copy(finished_run, tmp_path)
    config = json.loads((tmp_path / "runs" / "x" / "config.json").read_text())
    config["out_dir"] = "runs/x"  # as first given
    (tmp_path / "runs" / "x" / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    out_dir = str(tmp_path / "runs" / "x") if spelling == "absolute" else spelling
    code, _, err = run(capsys, *train_argv(train_data, out_dir))
    assert code == 0, err
    assert any("from step 12" in r.getMessage() for r in caplog.records)


def test_checkpoint_keeps_the_previous_one(tmp_path):
    pytest.importorskip("keras")
    from amls2 import models
    from amls2.training import TrainConfig, model_setup, run_folder

    model = models.build_model("espcn", 2, variant="tiny")
    optimizer = model_setup.make_optimizer(TrainConfig())
    path = tmp_path / "checkpoints" / "last.npz"
    run_folder.save_checkpoint(path, model, optimizer, None, {"step": 3})
    run_folder.save_checkpoint(path, model, optimizer, None, {"step": 6})
    assert json.loads(str(np.load(path)["state"]))["step"] == 6
    assert json.loads(str(np.load(run_folder.previous_checkpoint(path))["state"]))["step"] == 3


@pytest.mark.parametrize("broken", ["truncated tar", "zip with a bad CRC", "truncated zip"])
def test_broken_archive_is_a_clear_error_and_is_not_reused(server, tmp_path, capsys, broken):
    good = lr_archive_entries()
    archive = {
        "truncated tar": lambda: tar_of(good)[: 512 + 40],  # cut in the first member's data
        "zip with a bad CRC": lambda: bad_crc(zip_of(good)),
        "truncated zip": lambda: zip_of(good)[:-30],
    }[broken]()
    name = "DIV2K_valid_LR_bicubic_X2.zip"
    server.files[f"/{name}"] = archive
    argv = ["download", "DIV2K", "--data-dir", tmp_path, "--parts", "valid_LR_bicubic_X2"]
    code, _, err = run(capsys, *argv, "--base-url", server.url)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and name in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "_downloads" / name).exists()  # deleted, not reused
    server.files[f"/{name}"] = zip_of(good)  # the server is fixed
    assert run(capsys, *argv, "--base-url", server.url)[0] == 0
    assert sorted(p.name for p in (tmp_path / "DIV2K" / "DIV2K_valid_LR_bicubic" / "X2").iterdir()) == [
        "0801x2.png", "0802x2.png",
    ]  # fmt: skip


def test_cached_archive_of_the_wrong_size_is_fetched_again(server, tmp_path, capsys, monkeypatch):
    pixels = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    good = zip_of({"DIV2K_valid_HR/0801.png": pixels})
    info = datasets.DATASETS["DIV2K"]
    archives = tuple(
        dataclasses.replace(a, size=len(good)) if a.part == "valid_HR" else a for a in info.archives
    )
    monkeypatch.setitem(datasets.DATASETS, "DIV2K", dataclasses.replace(info, archives=archives))
    cached = tmp_path / "_downloads" / "DIV2K_valid_HR.zip"
    cached.parent.mkdir()
    cached.write_bytes(good[: len(good) // 2])  # an interrupted copy of an older run
    server.files["/DIV2K_valid_HR.zip"] = good
    argv = ["download", "DIV2K", "--data-dir", tmp_path, "--parts", "valid_HR"]
    assert run(capsys, *argv, "--base-url", server.url)[0] == 0
    assert cached.read_bytes() == good
    assert (tmp_path / "DIV2K" / "DIV2K_valid_HR" / "0801.png").is_file()


def test_div2k_hr_archives_have_their_official_sizes():
    sizes = {a.filename: a.size for a in datasets.get_dataset("DIV2K").archives}
    assert sizes["DIV2K_train_HR.zip"] == 3_530_603_713
    assert sizes["DIV2K_valid_HR.zip"] == 448_993_893


def test_next_write_into_a_folder_removes_its_stale_temporary_files_only(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(finished.stdout)
    minutes_ago, days_ago = time.time() - 120, time.time() - 3 * 86400
    files = {
        f".a_x2_bicubic.{dead}-abcd1234.tmp.png": (minutes_ago, "stale"),  # its writer is gone
        ".b.zzzzzzzz.tmp.png": (days_ago, "stale"),  # an older version's, untouched for days
        f".c.{os.getpid()}-abcd1234.tmp.png": (minutes_ago, "kept"),  # a live writer's
        ".d.abcd1234.tmp.png": (time.time(), "kept"),  # being written right now
        ".notes.tmp.png": (days_ago, "kept"),  # the user's
        "photo.tmp.png": (days_ago, "kept"),  # the user's
    }
    for name, (mtime, _) in files.items():
        (out / name).write_bytes(b"x")
        os.utime(out / name, (mtime, mtime))
    src = png(tmp_path / "in" / "a.png")
    assert run(capsys, "upscale", src, "--model", "bicubic", "--scale", 2, "--out", out)[0] == 0
    kept = sorted(name for name, (_, fate) in files.items() if fate == "kept")
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept, "a_x2_bicubic.png"])


def test_sidecar_is_renamed_into_place_before_the_model(tmp_path, renamed):
    from amls2 import fileio

    with fileio.atomic_paths(tmp_path / "m.json", tmp_path / "m.keras") as (side, model):
        side.write_text("{}")
        model.write_bytes(b"model")
    assert renamed == ["m.json", "m.keras"]
    (tmp_path / "m.keras").write_bytes(b"old model")
    pair = fileio.atomic_paths(tmp_path / "m.json", tmp_path / "m.keras")
    with pytest.raises(RuntimeError), pair as (side, _):
        side.write_text('{"new": 1}')
        raise RuntimeError("killed before the model was written")
    assert (tmp_path / "m.json").read_text() == "{}"
    assert (tmp_path / "m.keras").read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]


def test_ship_writes_the_sidecar_before_the_model(tmp_path, renamed):
    pytest.importorskip("keras")
    from amls2 import models
    from amls2.evaluation.shipping import ship_run
    from amls2.models.io import save_model

    run_dir = tmp_path / "runs" / "espcn-tiny_x2_bicubic"
    save_model(
        models.build_model("espcn", 2, variant="tiny"),
        run_dir / "espcn-tiny_x2_bicubic.keras",
        {"track": "bicubic", "steps": 1, "config": {"seed": 0}},
    )
    val = tmp_path / "val"
    png(val / "v.png", (16, 16, 3))
    ship_run(run_dir, weights_dir=tmp_path / "weights", datasets=(str(val),))
    assert renamed.index("espcn_x2.json") < renamed.index("espcn_x2.keras")


def test_commands_are_quiet_about_tensorflow_on_a_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "amls2", "models", "--scale", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cuInit" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert not re.search(r"^[IWE]\d{4} ", result.stderr, re.MULTILINE), result.stderr
    assert "srcnn" in result.stdout


def test_user_log_level_is_kept_and_verbose_shows_everything(monkeypatch):
    from amls2.cli import quiet_tensorflow

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    with quiet_tensorflow(False):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    with quiet_tensorflow(True):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
