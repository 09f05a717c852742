"""main.py as a user runs it: a subprocess in the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from amls2.config import PROJECT_ROOT

MAIN = PROJECT_ROOT / "main.py"


def run_main(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(MAIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env=env,
    )


def test_help_explains_every_flow():
    result = run_main("--help")
    assert result.returncode == 0
    for option in ("--train", "--render-demo", "--quick", "--out", "--track", "--scale", "--model"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "5"], "--scale"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--crop", "4"], "--crop 4"),
        (["--model", "nosuchnet"], "nosuchnet"),
        (["--train", "--model", "srcnn", "--model", "rfdn"], "--model"),
    ],
)
def test_bad_option_exits_2_without_traceback(args, message, tmp_path):
    result = run_main(*args, "--out", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_quick_without_weights_exits_0_with_note(tmp_path):
    """No shipped weights (an empty weights folder): bicubic rows, a note on what to train."""
    out = tmp_path / "out"
    result = run_main(
        "--quick", "--out", str(out), "--weights-dir", str(tmp_path / "none"),
        "--scale", "2", "--limit", "2", "--crop", "48",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| bicubic | samples | x2 |" in result.stdout
    assert "skipped (no shipped weights):" in result.stdout
    assert "amls2 train --recipe fd_srcnn_x2" in result.stdout
    assert f"wrote 7 file(s) under {out}" in result.stdout
    for name in ("results.md", "results.json", "demo_config.json"):
        assert (out / name).is_file() and str(out / name) in result.stdout


def test_train_quick_end_to_end(tmp_path):
    result = run_main(
        "--train", "--quick", "--out", str(tmp_path), "--track", "unknown", "--scale", "3",
        "--model", "srcnn", "--steps", "4", "--limit", "1", "--crop", "48",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "srcnn PSNR / SSIM" in result.stdout
    assert Path(tmp_path / "runs" / "srcnn_x3_unknown" / "history.csv").is_file()
