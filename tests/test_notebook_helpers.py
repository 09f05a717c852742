"""amls2.reporting.notebook_helpers: the tables, mosaics and data choices the notebooks display."""

from __future__ import annotations

import numpy as np
import pytest

from amls2.data import datasets, pairing
from amls2.reporting import notebook_helpers


def test_degradation_markdown_formats_the_drawn_parameters():
    pairs = pairing.load_pairs(datasets.SAMPLES, scale=4, track="unknown", limit=2)
    table = notebook_helpers.degradation_markdown(pairs).splitlines()
    assert len(table) == 4 and table[0].startswith("| image | kernel_type | sigma_x |")
    for pair, row in zip(pairs, table[2:], strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == pair.name and cells[2] == f"{pair.params['sigma_x']:.2f}"
        jpeg = pair.params.get("jpeg_quality")
        assert cells[-1] == ("-" if jpeg is None else str(jpeg))


@pytest.mark.parametrize(("scale", "count"), [(2, 3), (4, 5)])
def test_example_kernels_are_normalised(scale, count):
    kernels = notebook_helpers.example_kernels(scale, count=count)
    assert len(kernels) == count
    for kernel in kernels.values():
        assert kernel.sum() == pytest.approx(1.0)
        assert kernel.shape[0] % 2 == 1


def test_image_grid_and_png_bytes():
    tiles = {"a": np.ones((10, 20, 3), np.float32), "k": np.eye(5)}
    grid = notebook_helpers.image_grid(tiles, cell=40, columns=2)
    assert grid.shape == (40 + 18, 80, 3) and grid.dtype == np.float32
    # Tile "a" is white, scaled to 40x20 under its label strip; the kernel's diagonal is white.
    assert grid[18:38, 0:40].min() == 1.0
    assert grid[18, 40].max() == 1.0 and grid[18 + 39, 79].max() == 1.0
    assert grid[18 + 39, 40].max() == 0.0  # off the diagonal
    assert notebook_helpers.png_bytes(grid).startswith(b"\x89PNG")


def test_hr_lr_examples_every_track_and_scale():
    tiles = notebook_helpers.hr_lr_examples(crop=48)
    first = datasets.sample_paths()[0].stem
    assert list(tiles)[0] == f"HR {first}"
    assert tiles["LR unknown x4"].shape == (12, 12, 3)
    assert len(tiles) == 1 + 2 * 3


def test_status_table_and_pick_data(tmp_path):
    table = notebook_helpers.status_table(["samples", "Set5"], tmp_path)
    assert "| samples | yes | embedded |" in table and "| Set5 | no |" in table
    assert notebook_helpers.pick_data(tmp_path) == {"train": "samples", "val": "samples"}


def test_notebook_output_dir(tmp_path):
    assert notebook_helpers.notebook_output_dir("01", tmp_path) == tmp_path / "01"
    assert (tmp_path / "01").is_dir()
