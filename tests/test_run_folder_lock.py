"""One writer per run folder: a second training into a folder that a running training holds
exits 2 naming the folder and the holder's pid; the lock dies with its holder (``kill -9``
included); only the chief of a multi-worker run takes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from amls2.cli import main
from amls2.errors import ConfigError
from amls2.imaging import images, resize
from amls2.training.run_lock import LOCK_NAME, check_not_locked, hold_run_folder

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")

_HOLDER = """
import sys, time
from amls2.training.run_lock import hold_run_folder
with hold_run_folder(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def start_holder(folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def kill_9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def synthetic_set(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.random((5, 5, 3))
        images.write_image(
            folder / f"img{i}.png", np.clip(resize.imresize(small, output_shape=(40, 40)), 0, 1)
        )
    return folder


def train_argv(data: Path, out_dir: Path, epochs: int) -> list[str]:
    return [
        "train", "--model", "espcn", "--variant", "tiny", "--scale", "2",
        "--train-set", str(data), "--val-set", str(data), "--holdout", "0",
        "--patch-size", "16", "--batch-size", "2", "--epochs", str(epochs),
        "--steps-per-epoch", "50", "--out-dir", str(out_dir), "--no-progress",
    ]  # fmt: skip


def wait_for_lock(folder: Path, pid: int, process: subprocess.Popen, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = folder / LOCK_NAME
        if lock.is_file() and lock.read_text().strip() == str(pid):
            return
        assert process.poll() is None, "the first training ended before taking the lock"
        time.sleep(0.2)
    pytest.fail("the first training did not take the run folder lock")


def test_second_training_into_a_running_trainings_folder_exits_2(tmp_path, capsys):
    data = synthetic_set(tmp_path / "data", 2)
    out = tmp_path / "runs" / "c"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    first = subprocess.Popen(
        [sys.executable, "-m", "amls2", *train_argv(data, out, epochs=1000)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_lock(out, first.pid, first)
        code = main(train_argv(data, out, epochs=1000))
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, err
        assert len(lines) == 1 and str(out) in lines[0] and f"pid {first.pid}" in lines[0], err
        assert first.poll() is None  # the first run goes on undisturbed
    finally:
        kill_9(first)
    check_not_locked(out)  # the kernel released the killed run's lock
    with hold_run_folder(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_lock_is_released_by_kill_9(tmp_path):
    folder = tmp_path / "run"
    holder = start_holder(folder)
    try:
        with pytest.raises(ConfigError, match=rf"{folder}.*pid {holder.pid}"):
            check_not_locked(folder)
        with pytest.raises(ConfigError, match=rf"pid {holder.pid}"), hold_run_folder(folder):
            pass
    finally:
        kill_9(holder)
    with hold_run_folder(folder):
        pass


def test_only_the_chief_takes_the_lock(tmp_path):
    folder = tmp_path / "run"
    holder = start_holder(folder)  # the chief of a multi-worker run, on a shared folder
    try:
        with hold_run_folder(folder, chief=False):  # another worker: no lock, no write
            pass
        assert (folder / LOCK_NAME).read_text().strip() == str(holder.pid)
    finally:
        kill_9(holder)
