"""The course notebooks: structure rules, and a quick-mode execution of each, top to bottom, in a
fresh kernel (outputs to a temporary folder, never into the repository)."""

from __future__ import annotations

import ast
import base64
import importlib.util
import subprocess

import cv2
import nbformat
import numpy as np
import pytest

from amls2.config import PROJECT_ROOT


def _load_tool():
    """The maintainer tool ``tools/notebooks.py`` (a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "notebooks_tool", PROJECT_ROOT / "tools" / "notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
NOTEBOOKS = tool.notebook_paths()
NAMES = [p.name for p in NOTEBOOKS]
# Lossless PNG figures at 100 dpi (readable text, crops that show the models' differences): the
# notebooks with the comparison figures of every scale come to about 4.3 MB.
MAX_BYTES = 5_000_000


def test_the_four_notebooks_exist():
    assert NAMES == [
        "01_preprocessing.ipynb",
        "02_track1_bicubic.ipynb",
        "03_track2_unknown.ipynb",
        "04_comparison.ipynb",
    ]


def code_sources(notebook) -> list[str]:
    return [c.source for c in notebook.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_structure(path):
    """One tagged parameter cell first among code cells (QUICK from $AMLS2_QUICK), no def/class,
    no pyplot, short cells, small file."""
    notebook = nbformat.read(path, as_version=4)
    codes = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in codes if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is codes[0]
    assert 'QUICK = os.environ.get("AMLS2_QUICK", "0") == "1"' in tagged[0].source
    for source in code_sources(notebook):
        lines = [line for line in source.splitlines() if not line.startswith("%")]
        tree = ast.parse("\n".join(lines))
        defined = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.Lambda)
        ]
        assert not defined, source
        assert "plt.show" not in source and "pyplot" not in source
        assert len(source.splitlines()) <= 25, source
    assert any(c.cell_type == "markdown" for c in notebook.cells)
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_outputs_have_no_errors_or_step_logs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"
            assert "it/s]" not in output.get("text", "")  # no tqdm bars


def test_drop_native_log_lines():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="WARNING: All log messages before absl::InitializeLog() is called are written "
            "to STDERR\nI0000 00:00:1795308232.421162   32233 port.cc:153] oneDNN\nreal warning\n",
        ),
        nbformat.v4.new_output("stream", name="stderr", text="E0000 00:00:17.5 x.cc:1] noise\n"),
        nbformat.v4.new_output("stream", name="stdout", text="I0000 00:00:1.0 kept on stdout\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    tool.drop_native_log_lines(notebook)
    assert [o["text"] for o in notebook.cells[0].outputs] == [
        "real warning\n",
        "I0000 00:00:1.0 kept on stdout\n",
    ]


def repo_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_executes_in_quick_mode(path, tmp_path, monkeypatch):
    """Runs top to bottom in a fresh kernel; writes only under the temporary output folder."""
    monkeypatch.setenv("AMLS2_WEIGHTS", str(tmp_path / "no_weights"))
    before = repo_status()
    executed = tool.execute_notebook(path, quick=True, output_dir=tmp_path / "out", timeout=600)
    assert repo_status() == before
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # Every notebook shows at least one figure (PNG), not a bare "<Figure ...>" repr.
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(
        "<Figure size" in o.get("data", {}).get("text/plain", "") and "image/png" not in o["data"]
        for o in outputs
        if "data" in o
    )
    assert any((tmp_path / "out").iterdir())


def test_compact_images_keeps_large_pngs_png_and_lossless():
    ramp = np.linspace(0, 255, 400, dtype=np.uint8)
    image = np.dstack([np.tile(ramp, (400, 1))] * 3)
    big = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1]  # stored, no zlib
    small = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1]
    assert len(big) > tool.COMPACT_PNG_BYTES > len(small)
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(b).decode()})
        for b in (big.tobytes(), small.tobytes())
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert tool.compact_images(notebook) == 1
    first, second = (output["data"] for output in cell.outputs)
    assert set(first) == {"image/png"} and set(second) == {"image/png"}
    raw = base64.b64decode(first["image/png"])
    assert len(raw) < len(big)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(raw, np.uint8), 1), image)
