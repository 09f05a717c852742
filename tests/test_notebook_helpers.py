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


@pytest.mark.parametrize("quick", [True, False])
def test_choose_data_falls_back_to_quick_mode_without_data(quick, tmp_path):
    choice = notebook_helpers.choose_data(quick, tmp_path / "empty")
    assert choice["train"] == choice["val"] == datasets.SAMPLES
    assert choice["quick"] is True and "quick mode" in choice["note"]
    assert ("no DIV2K" in choice["note"]) is not quick


def _operator(scale):
    from amls2.data.degradations import make_kernel
    from amls2.data.operator import operator_from_kernel

    check = {"remade_heldout": {"images": 3, "psnr_db": 71.5, "exact_fraction": 0.995}}
    return operator_from_kernel(make_kernel(1.0, 1.0, 0.0, size=7), scale, check=check)


def test_operator_markdown_states_offset_and_recorded_psnr():
    table = notebook_helpers.operator_markdown({3: _operator(3), 2: _operator(2)}).splitlines()
    assert len(table) == 4 and table[2].startswith("| x2 | 7x7 |")
    # A centred kernel: offset 0 at x3 (odd scale), -0.5 at x2 (its centre is an HR pixel,
    # MATLAB's LR centre lies half-way between two).
    assert "| -0.50, -0.50 |" in table[2] and "| +0.00, +0.00 |" in table[3]
    assert "| 71.5 | 3 | 99.50 % |" in table[3]


def test_remake_check_compares_with_the_given_lr():
    # Bicubic-track samples: the given LR is MATLAB bicubic's downscale, so bicubic re-makes it
    # exactly and a Gaussian operator does not.
    check = notebook_helpers.remake_check(_operator(2), datasets.SAMPLES, track="bicubic")
    assert check["bicubic_psnr"] == float("inf")
    assert 25 < check["remade_psnr"] < 60 and check["name"]


def _sidecar(folder, name, scale, psnr, **extra):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    validation = {"Track2sim": {"psnr": psnr, "bicubic_psnr": 27.0, **extra}}
    targets = {"Track2sim": {"target_psnr": psnr - 0.5, "gap": 0.5}}
    text = json.dumps({"validation": validation, "targets": targets})
    (folder / f"{name}_x{scale}.json").write_text(text, encoding="utf-8")


def test_track2sim_rows_and_findings_from_the_sidecars(tmp_path):
    folder = tmp_path / "track2sim"
    _sidecar(folder, "linear", 2, 31.0)
    _sidecar(folder, "edsr", 2, 32.5, blind_model_psnr=28.0)
    _sidecar(folder, "srcnn", 2, 30.0, blind_model_psnr=28.5)
    (folder / "notes.json").write_text("{}", encoding="utf-8")  # not a sidecar: ignored
    rows = notebook_helpers.track2sim_rows(tmp_path)
    assert [(r["model"], r["linear"], r["over_linear"]) for r in rows] == [
        ("edsr", 31.0, 1.5),
        ("srcnn", 31.0, -1.0),
    ]
    assert "| x2 | edsr | 27.00 | 31.00 | 28.00 | 32.50 | +1.50 | 32.00 | +0.50 |" in (
        notebook_helpers.track2sim_markdown(rows)
    )
    (line,) = notebook_helpers.track2sim_findings(rows)
    assert line.startswith("x2: best fixed-operator model edsr 32.50 dB (+1.50 over linear")
    assert "best blind model srcnn 28.50 dB (-2.50 against linear); 1/2 above linear" in line
    assert line.endswith("2/2 at target")


def test_source_of_reads_names_tsv(tmp_path):
    folder = tmp_path / "Track2sim"
    folder.mkdir()
    (folder / "names.tsv").write_text(
        "split\tnumber\tsource\nvalid\t0801\tSet5/baby.png\n", encoding="utf-8"
    )
    assert notebook_helpers.source_of("0801", "Track2sim", tmp_path) == "Set5/baby.png"
    assert notebook_helpers.source_of("0802", "Track2sim", tmp_path) == ""
    assert notebook_helpers.source_of("0801", "Track2sim", tmp_path / "none") == ""


def test_best_by_row_picks_the_highest_psnr_model_per_row():
    records = [
        {"model": m, "dataset": d, "scale": s, "track": "bicubic", "psnr": p}
        for m, d, s, p in [
            ("bicubic", "Set5", 2, 40.0),
            ("a", "Set5", 2, 35.0),
            ("b", "Set5", 2, 36.0),
            ("a", "Set5", 4, 30.0),
            ("b", "Set5", 4, 29.0),
        ]
    ]
    best = notebook_helpers.best_by_row(records)
    assert [(r["model"], r["scale"]) for r in best] == [("b", 2), ("a", 4)]


def test_present_knows_registered_names_and_plain_folders(tmp_path):
    (tmp_path / "Track2sim").mkdir()
    assert notebook_helpers.present("Track2sim", tmp_path)
    assert not notebook_helpers.present("Other", tmp_path)
    assert notebook_helpers.present(datasets.SAMPLES, tmp_path)
    assert not notebook_helpers.present("Set5", tmp_path)
