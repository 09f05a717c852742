"""``amls2 evaluate`` labels every model uniquely (NAME@SET for shipped weights, the shortest
telling path suffix otherwise), and the label is the same in the table, the JSON and the CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from amls2.cli import main
from amls2.evaluation.scoring import model_labels
from amls2.imaging import images

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("models", "labels"),
    [
        (["Selected_models/track2sim/edsr_x2.keras", "Selected_models/unknown/edsr_x2.keras"],
         ["edsr@track2sim", "edsr@unknown"]),
        (["runs/a/edsr_x2.keras", "runs/b/edsr_x2.keras"], ["a/edsr_x2", "b/edsr_x2"]),
        (["/x/runs/a/m.keras", "/y/b/runs/a/m.keras", "c/m.keras"],
         ["x/runs/a/m", "b/runs/a/m", "c/m"]),
        (["runs/a/edsr_x2.keras"], ["edsr_x2"]),
        (["bicubic", "espcn", "espcn@unknown", "x/espcn.keras"],
         ["bicubic", "espcn", "espcn@unknown", "x/espcn"]),
        (["espcn", "espcn"], ["espcn", "espcn#2"]),
        (["z/m.keras@unknown", "z/m.keras"], ["m@unknown", "m"]),
    ],
)  # fmt: skip
def test_labels_are_unique_and_short(models, labels):
    assert model_labels(models) == labels
    assert len(set(labels)) == len(labels)


def test_two_shipped_models_of_one_file_name_keep_their_labels_everywhere(tmp_path, capsys):
    pytest.importorskip("keras")
    paths = [REPO / "Selected_models" / s / "edsr_x2.keras" for s in ("track2sim", "unknown")]
    if not all(p.is_file() for p in paths):
        pytest.skip("shipped EDSR x2 weights (track2sim, unknown) not in this checkout")
    data = tmp_path / "set"
    images.write_image(data / "a.png", np.random.default_rng(0).random((24, 24, 3)))
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    argv = ["evaluate", "--model", *map(str, paths), "--dataset", str(data), "--scale", "2"]
    argv += ["--track", "unknown", "--json", str(out_json), "--csv", str(out_csv)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    expected = ["edsr@track2sim", "edsr@unknown"]
    assert [r["model"] for r in json.loads(out_json.read_text())] == expected
    with open(out_csv, newline="") as handle:
        assert [row["model"] for row in csv.DictReader(handle)] == expected
    assert all(label in table for label in expected), table
