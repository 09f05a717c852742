"""The benchmark scripts keep running: each prints its table on a tiny input (no timing is
checked here; speed is measured by running the scripts, never by tests)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amls2.inference.fast import onednn

ROOT = Path(__file__).resolve().parents[1]


def _timing_module():
    """``benchmarks/timing.py``, the benchmark scripts' yardsticks (not part of the package)."""
    spec = importlib.util.spec_from_file_location("timing", ROOT / "benchmarks" / "timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, tmp_path: Path) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    # The scripts import this checkout's package, whatever else is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("form", ["saved", "inference", "subpixel"])
def test_layer_profile_prints_every_layer_and_the_whole_model(form, tmp_path):
    out = _run(
        str(ROOT / "benchmarks" / "layer_profile.py"), "fsrcnn", "--defaults", "--size", "16",
        "--repeats", "1", "--form", form, tmp_path=tmp_path,
    )  # fmt: skip
    assert out.startswith("# CPU: ") and "whole model" in out
    transposed = "SubpixelTransposedConv" if form != "saved" else "Conv2DTranspose"
    assert transposed in out


def test_per_image_writes_its_table_and_figure(tmp_path):
    figure = tmp_path / "time_x{scale}.png"
    table = tmp_path / "table.md"
    _run(
        str(ROOT / "benchmarks" / "per_image.py"), "--dataset", "samples", "--models", "edsr",
        "--scales", "2", "--limit", "1", "--repeats", "1", "--figure", str(figure),
        "--markdown", str(table), tmp_path=tmp_path,
    )  # fmt: skip
    text = table.read_text()
    assert (
        "| bicubic | samples | edsr | 2 |" in text and "| bicubic | samples | bicubic | 2 |" in text
    )
    assert "1.0x" in text  # EDSR-small is its own yardstick
    assert (tmp_path / "time_x2.png").stat().st_size > 0


def test_inference_share_of_matmul_for_shipped_models(tmp_path):
    out = _run(
        str(ROOT / "benchmarks" / "inference.py"), "--shipped", "--models", "espcn", "edsr",
        "--scales", "2", "--size", "24", "--repeats", "1", tmp_path=tmp_path,
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith(("espcn", "edsr"))]
    # EDSR-small runs first, and every row's time per multiply-add is compared with its.
    assert [tuple(row[:2]) for row in rows] == [("edsr", "2"), ("espcn", "2")]
    assert all(row[-2].endswith("%") for row in rows)
    assert rows[0][-1] == "1.00x" and rows[1][-1].endswith("x")


def test_reparam_benchmark_compares_both_forms_of_shipped_models(tmp_path):
    out = _run(
        str(ROOT / "benchmarks" / "reparam.py"), "--models", "post_srcnn", "espcn",
        "--scales", "4", "--size", "16", "--repeats", "1", tmp_path=tmp_path,
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith(("post_srcnn", "espcn"))]
    assert [row[:2] for row in rows] == [["post_srcnn", "4"], ["espcn", "4"]]
    # espcn: nothing to replace, but its convolutions under oneDNN below AVX-512 (the
    # transposed form)
    espcn_replaced = onednn.conv_path() == "onednn-below-avx512"
    assert [int(row[2]) > 0 for row in rows] == [True, espcn_replaced]
    assert all(float(row[-1]) < 1e-5 for row in rows)  # the same outputs


def test_interleaved_timing_calls_the_functions_in_turns():
    calls: list[str] = []
    seconds = _timing_module().best_seconds_interleaved(
        [lambda: calls.append("a"), lambda: calls.append("b")], repeats=3
    )
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed ones
    assert len(seconds) == 2 and all(0 <= s < 1 for s in seconds)


def test_video_fps_prints_its_table(tmp_path):
    out = _run(
        str(ROOT / "benchmarks" / "video_fps.py"), "--model", "bicubic", "--frames", "2",
        "--width", "32", "--height", "24", tmp_path=tmp_path,
    )  # fmt: skip
    assert "# niceness" in out and "| bicubic | x2 | 32x24 | 64x48 | 2 |" in out
