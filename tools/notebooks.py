"""Maintainer tool: execute the course notebooks in place and compact their outputs.

    python tools/notebooks.py                     # every notebooks/0*.ipynb, quick mode
    AMLS2_DATA=../shared/datasets python tools/notebooks.py --full   # full mode
    python tools/notebooks.py notebooks/01_preprocessing.ipynb

Each notebook runs top to bottom in a fresh kernel (cwd: its folder) with ``AMLS2_QUICK`` and
``AMLS2_OUTPUT`` set for its parameter cell. The executed notebook is saved in place, without
TensorFlow's native log lines and with large PNG figures re-compressed losslessly (still PNG), so that the committed
notebooks stay small and show only results. Not part of the package: ``tests/test_notebooks.py``
uses it to run every notebook in quick mode.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import nbformat
import numpy as np
from nbclient import NotebookClient

from amls2.config import PROJECT_ROOT
from amls2.fileio import atomic_write_text

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
# Environment variables the notebooks' parameter cells read.
QUICK_ENV = "AMLS2_QUICK"
DATA_ENV = "AMLS2_DATA"
OUTPUT_ENV = "AMLS2_OUTPUT"


def execute_notebook(
    path: str | os.PathLike,
    *,
    quick: bool = True,
    output_dir: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    timeout: int = 1800,
):
    """Run a notebook top to bottom in a fresh kernel (cwd: its folder) with ``AMLS2_QUICK`` and
    ``AMLS2_OUTPUT`` set for its parameter cell; optionally save it (with outputs) to ``save_to``
    atomically. Returns the executed ``nbformat`` notebook; a failing cell raises nbclient's
    CellExecutionError."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env[QUICK_ENV] = "1" if quick else "0"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if env.get(DATA_ENV):
        # The kernel runs in the notebook's folder: a data root relative to where this tool was
        # started (e.g. ../shared/datasets from the repository root) must not change meaning.
        env[DATA_ENV] = os.path.abspath(env[DATA_ENV])
    if output_dir is not None:
        env[OUTPUT_ENV] = str(output_dir)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    drop_native_log_lines(notebook)
    compact_images(notebook)
    if save_to is not None:
        save_to = Path(save_to)
        mode = save_to.stat().st_mode & 0o777 if save_to.exists() else 0o644
        atomic_write_text(save_to, nbformat.writes(notebook))
        # fileio's temporary files are created 0600: keep the notebook's permissions.
        save_to.chmod(mode)
    return notebook


# TensorFlow's C++ (absl) start-up lines, which no environment variable silences: dropped from
# the stderr outputs of executed notebooks so that committed notebooks show only results.
_NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |"
    r"To enable the following instructions)"
)


def drop_native_log_lines(notebook) -> None:
    """Remove TensorFlow's native log lines from the stderr stream outputs of ``notebook``."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = output["text"].splitlines(keepends=True)
                output["text"] = "".join(x for x in lines if not _NATIVE_LOG_LINE.match(x))
                if not output["text"].strip():
                    continue
            kept.append(output)
        cell["outputs"] = kept


# PNG outputs larger than this are re-encoded at zlib level 9: figures stay PNG (JPEG blurs the
# text and the crops the comparison figures are about), only smaller.
COMPACT_PNG_BYTES = 150_000


def compact_images(notebook) -> int:
    """Re-encode ``image/png`` outputs over COMPACT_PNG_BYTES as PNG at the highest compression
    (lossless, same pixels) when that is smaller; returns how many were re-encoded."""
    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png = data.get("image/png")
            if png is None:
                continue
            raw = base64.b64decode(png if isinstance(png, str) else "".join(png))
            if len(raw) <= COMPACT_PNG_BYTES:
                continue
            image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok or len(png) >= len(raw):
                continue
            data["image/png"] = base64.b64encode(png.tobytes()).decode("ascii")
            count += 1
    return count


def notebook_paths() -> list[Path]:
    """The course notebooks ``notebooks/0*.ipynb`` in order."""
    return sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/notebooks.py",
        description="Execute the notebooks in place (refreshing their committed outputs).",
    )
    parser.add_argument("--full", action="store_true", help="full mode (default: quick mode)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=1800,
        help="seconds one cell may run (default 1800; full mode trains four models in one cell, "
        "which takes longer on CPUs without AVX-512)",
    )
    parser.add_argument("names", nargs="*", help="notebook files (default: notebooks/0*.ipynb)")
    args = parser.parse_args(argv)
    paths = [Path(n) for n in args.names] or notebook_paths()
    for path in paths:
        start = time.perf_counter()
        execute_notebook(path, quick=not args.full, save_to=path, timeout=args.timeout)
        print(f"{path}: executed in {time.perf_counter() - start:.0f} s")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
