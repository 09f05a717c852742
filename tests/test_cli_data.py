"""The data subcommands run in-process: degrade, datasets, download, prepare."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amls2.cli import main
from amls2.data.degradations import degrade
from amls2.imaging.images import read_image, write_image
from amls2.imaging.resize import bicubic_downscale


@pytest.fixture
def hr_dir(tmp_path, rng):
    folder = tmp_path / "hr"
    for stem in ("0801", "0802"):
        write_image(folder / f"{stem}.png", rng.random((26, 24, 3)).astype(np.float32))
    return folder


def test_degrade_bicubic_writes_div2k_names(tmp_path, hr_dir, capsys):
    out = tmp_path / "lr"
    assert main(["degrade", str(hr_dir), str(out), "--scale", "2", "--track", "bicubic"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0801x2.png", "0802x2.png"]
    hr = read_image(hr_dir / "0801.png")
    np.testing.assert_array_equal(read_image(out / "0801x2.png"), bicubic_downscale(hr, 2))
    assert "wrote 2 LR images" in capsys.readouterr().out


def test_degrade_refuses_to_overwrite_without_force(tmp_path, hr_dir, capsys):
    out = tmp_path / "lr"
    write_image(out / "0802x3.png", np.zeros((4, 4, 3), np.float32))
    before = (out / "0802x3.png").read_bytes()
    code = main(["degrade", str(hr_dir), str(out), "--scale", "3", "--track", "bicubic"])
    assert code == 2
    err = capsys.readouterr().err
    assert "0802x3.png" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "0802x3.png").read_bytes() == before
    assert not (out / "0801x3.png").exists()  # checked before writing anything
    assert (
        main(["degrade", str(hr_dir), str(out), "--scale", "3", "--track", "bicubic", "--force"])
        == 0
    )
    assert read_image(out / "0802x3.png").shape == (8, 8, 3)


def test_degrade_unknown_records_the_parameters_per_image(tmp_path, hr_dir):
    out = tmp_path / "lr"
    assert (
        main(
            ["degrade", str(hr_dir), str(out), "--scale", "4", "--track", "unknown", "--seed", "9"]
        )
        == 0
    )
    record = json.loads((out / "degradation.json").read_text())
    assert (
        record["seed"] == 9
        and record["scale"] == 4
        and sorted(record["images"]) == ["0801", "0802"]
    )
    lr, params = degrade(read_image(hr_dir / "0801.png"), 4, "unknown", seed=9, name="0801")
    assert record["images"]["0801"] == params
    np.testing.assert_array_equal(read_image(out / "0801x4.png"), lr)


def test_degrade_spec_file_is_used(tmp_path, hr_dir):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"sigma_ranges": [[2, 1.0, 1.0]], "anisotropic_prob": 0.0}))
    out = tmp_path / "lr"
    assert (
        main(
            [
                "degrade",
                str(hr_dir),
                str(out),
                "--scale",
                "2",
                "--track",
                "unknown",
                "--spec",
                str(spec),
            ]
        )
        == 0
    )
    record = json.loads((out / "degradation.json").read_text())
    assert record["images"]["0801"]["sigma_x"] == 1.0


def test_degrade_bad_image_fails_or_is_skipped(tmp_path, hr_dir, capsys):
    (hr_dir / "0803.png").write_bytes(b"not a png")
    out = tmp_path / "lr"
    assert main(["degrade", str(hr_dir), str(out), "--scale", "2", "--track", "bicubic"]) == 2
    assert "0803.png" in capsys.readouterr().err
    assert (
        main(
            [
                "degrade",
                str(hr_dir),
                str(out),
                "--scale",
                "2",
                "--track",
                "bicubic",
                "--skip-bad",
                "--force",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["0801x2.png", "0802x2.png"]


def test_datasets_lists_every_dataset_with_counts(tmp_path, rng, capsys):
    write_image(tmp_path / "Set5" / "HR" / "baby.png", rng.random((8, 8, 3)).astype(np.float32))
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert set(lines) == {
        "samples",
        "DIV2K",
        "Set5",
        "Set14",
        "B100",
        "Urban100",
        "Manga109",
        "T91",
        "BSD200",
    }
    assert "partial" in lines["Set5"] and "1/5" in lines["Set5"]
    assert "missing" in lines["DIV2K"] and "train 0/800" in lines["DIV2K"]
    assert "complete" in lines["samples"] and "6/6" in lines["samples"]


def test_download_of_a_manual_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["download", "Manga109", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amls2 download: error: Manga109") and "\n" not in err


def test_download_lists_parts(capsys):
    assert main(["download", "DIV2K", "--list-parts"]) == 0
    assert "DIV2K_valid_LR_unknown_X4.zip" in capsys.readouterr().out


def test_prepare_writes_patches_and_reruns(tmp_path, hr_dir, capsys):
    args = [
        "prepare",
        str(hr_dir),
        "--scale",
        "2",
        "--track",
        "bicubic",
        "--out",
        str(tmp_path / "p"),
        "--patch",
        "12",
        "--stride",
        "12",
    ]
    assert main(args) == 0
    assert main(args) == 0
    assert "8 patch pairs (12 px HR, 6 px LR) from 2 images" in capsys.readouterr().out
    assert len(list((tmp_path / "p" / "LR").iterdir())) == 8


def test_prepare_patch_not_divisible_by_scale_exits_2(tmp_path, hr_dir, capsys):
    args = [
        "prepare",
        str(hr_dir),
        "--scale",
        "4",
        "--track",
        "bicubic",
        "--out",
        str(tmp_path / "p"),
        "--patch",
        "30",
    ]
    assert main(args) == 2
    assert "--patch 30" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
