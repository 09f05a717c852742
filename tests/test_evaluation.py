"""Tests of amls2.evaluation.scoring and the ``amls2 evaluate`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from amls2.cli import main
from amls2.config import load_config
from amls2.errors import ConfigError
from amls2.evaluation import scoring, tables
from amls2.fileio import json_safe
from amls2.imaging import images


@pytest.fixture
def tiny_dataset(tmp_path, rng):
    """A plain folder of three smooth-ish 8-bit HR images (sizes not multiples of 3 or 4)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    yy, xx = np.mgrid[0:26, 0:31] / 10.0
    for i in range(3):
        base = 0.5 + 0.4 * np.sin(xx * (i + 1) + yy)[..., None] * np.array([1.0, 0.8, 0.6])
        noise = rng.normal(0, 0.02, base.shape)
        images.write_image(folder / f"im{i}.png", np.clip(base + noise, 0, 1))
    return folder


@pytest.mark.parametrize(
    ("psnrs", "ssims", "mean_psnr", "mean_ssim"),
    [([30.0, 32.0, 34.0], [0.8, 0.9, 1.0], 32.0, 0.9), ([20.0], [0.5], 20.0, 0.5)],
)
def test_record_means_are_means_of_per_image_values(psnrs, ssims, mean_psnr, mean_ssim):
    imgs = [
        {"name": str(i), "psnr": p, "ssim": s, "bicubic_psnr": p - 1, "bicubic_ssim": s - 0.1}
        for i, (p, s) in enumerate(zip(psnrs, ssims, strict=True))
    ]
    record = scoring.make_record(
        model="m", dataset="d", scale=2, track="bicubic", protocol="y", images=imgs, seconds=1.5
    )
    assert record["psnr"] == pytest.approx(mean_psnr)
    assert record["ssim"] == pytest.approx(mean_ssim)
    assert record["bicubic_psnr"] == pytest.approx(mean_psnr - 1)
    assert record["bicubic_ssim"] == pytest.approx(mean_ssim - 0.1)
    assert tuple(record) == scoring.RECORD_KEYS


def test_mean_is_not_the_psnr_of_the_mean_mse():
    # 20 dB and 40 dB average to 30 dB (per-image mean), not to PSNR(mean MSE) ~ 23 dB.
    assert scoring.mean_of([20.0, 40.0]) == 30.0


def test_infinite_psnr_is_written_as_a_string():
    data = json_safe([{"psnr": math.inf, "ssim": 1.0, "n": np.int64(3), "f": np.float32(0.5)}])
    assert data == [{"psnr": "inf", "ssim": 1.0, "n": 3, "f": 0.5}]
    json.dumps(data, allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"protocol": "ycbcr"}, "--protocol"),
        ({"scales": (5,)}, "--scale"),
        ({"tracks": ("blur",)}, "--track"),
        ({"tracks": ()}, "--track"),
        ({"models": ()}, "--model"),
    ],
)
def test_eval_config_rejects_bad_options(kwargs, option):
    base = {"models": ("bicubic",), "datasets": ("Set5",)}
    with pytest.raises(ConfigError, match=option):
        scoring.EvalConfig(**{**base, **kwargs})


def test_evaluate_cli_end_to_end_on_a_tiny_folder(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "evaluate", "--model", "bicubic", "--dataset", str(tiny_dataset),
            "--scale", "2", "3", "--track", "bicubic",
            "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
            "--latex", str(out / "r.tex"), "--save-images", str(out / "sr"),
        ]
    )  # fmt: skip
    assert code == 0
    stdout = capsys.readouterr().out
    assert "| Dataset | Scale | bicubic PSNR / SSIM |" in stdout
    assert "| tiny | x2 |" in stdout and "| tiny | x3 |" in stdout

    records = json.loads((out / "r.json").read_text())
    assert isinstance(records, list) and len(records) == 2
    for record, scale in zip(records, (2, 3), strict=True):
        assert list(record) == list(scoring.RECORD_KEYS)
        assert (record["model"], record["dataset"], record["scale"]) == ("bicubic", "tiny", scale)
        assert (record["track"], record["protocol"]) == ("bicubic", "y")
        for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "seconds"):
            assert isinstance(record[key], float)
        assert [img["name"] for img in record["images"]] == ["im0", "im1", "im2"]
        for img in record["images"]:
            assert set(img) == set(scoring.IMAGE_KEYS)
            assert isinstance(img["psnr"], float) and isinstance(img["ssim"], float)
            # The bicubic model is the baseline itself.
            assert img["psnr"] == img["bicubic_psnr"]
        assert record["psnr"] == pytest.approx(np.mean([i["psnr"] for i in record["images"]]))
        assert 15 < record["psnr"] < 60 and 0 < record["ssim"] <= 1
    assert records[0]["psnr"] > records[1]["psnr"]  # x2 is easier than x3

    config = load_config(scoring.EvalConfig, out / "r.config.json")
    assert config.models == ("bicubic",) and config.scales == (2, 3)
    csv_lines = (out / "r.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,dataset,scale,track,protocol,psnr,ssim")
    assert len(csv_lines) == 3
    assert "\\toprule" in (out / "r.tex").read_text()
    saved = sorted(p.name for p in (out / "sr" / "bicubic" / "tiny" / "x2").iterdir())
    assert saved == ["im0.png", "im1.png", "im2.png"]
    assert images.read_image(out / "sr" / "bicubic" / "tiny" / "x3" / "im0.png").shape == (
        24,
        30,
        3,
    )


def test_evaluate_with_a_model_file_matches_super_resolve(tiny_dataset, tmp_path):
    keras = pytest.importorskip("keras")
    from amls2 import models
    from amls2.data import pairing
    from amls2.imaging import metrics
    from amls2.inference.upscaler import super_resolve
    from amls2.models.io import save_model

    model = models.build_model("espcn", 2, variant="tiny")
    path = save_model(model, tmp_path / "espcn_tiny.keras", {"track": "bicubic"})
    config = scoring.EvalConfig(
        models=("bicubic", str(path)), datasets=(str(tiny_dataset),), scales=(2,), tile=8
    )
    records = scoring.evaluate(config)
    assert [r["model"] for r in records] == ["bicubic", "espcn_tiny"]
    pair = pairing.load_pairs(tiny_dataset, scale=2, track="bicubic")[0]
    expected = metrics.psnr(super_resolve(model, pair.lr, scale=2), pair.hr, scale=2)
    assert records[1]["images"][0]["psnr"] == pytest.approx(expected, abs=1e-3)
    assert records[1]["bicubic_psnr"] == pytest.approx(records[0]["psnr"])
    assert isinstance(keras.__version__, str)
    # The cost columns: none for bicubic; the model's parameters and 720p multiply-adds.
    from amls2.models.cost import count_macs, count_params

    assert records[0]["params"] is None and records[0]["macs_720p"] is None
    assert records[1]["params"] == count_params(model)
    assert records[1]["macs_720p"] == count_macs(model, (720, 1280))
    table = tables.cost_markdown_table(records)
    assert table.count("\n") == 3 and "| bicubic | espcn_tiny |" in table
    assert tables.cost_markdown_table(records[:1]) == ""


def test_evaluate_cli_runs_several_tracks(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", "bicubic", "--dataset", str(tiny_dataset), "--scale", "2"]
    assert main([*args, "--track", "bicubic", "unknown", "--json", str(out)]) == 0
    assert "| Track | Dataset | Scale |" in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert [r["track"] for r in records] == ["bicubic", "unknown"]
    # The unknown track's LR images are blurred, noisy and compressed: bicubic does worse on them.
    assert records[1]["psnr"] < records[0]["psnr"]
    config = load_config(scoring.EvalConfig, tmp_path / "r.config.json")
    assert config.tracks == ("bicubic", "unknown")


def test_markdown_table_has_one_column_per_model():
    recs = [
        {"model": m, "dataset": "Set5", "scale": 2, "track": "bicubic", "psnr": p, "ssim": 0.9}
        for m, p in (("bicubic", 33.66), ("srcnn", 36.1))
    ]
    table = tables.markdown_table(recs).splitlines()
    assert table[0] == "| Dataset | Scale | bicubic PSNR / SSIM | srcnn PSNR / SSIM |"
    assert table[2] == "| Set5 | x2 | 33.66 / 0.9000 | 36.10 / 0.9000 |"


# The published bicubic tables (Y of BT.601, ``scale`` px shaved, MATLAB bicubic); Set14's
# one-channel bridge.png is scored on its grey values, which the published numbers need.
PUBLISHED_BICUBIC = {"Set5": (33.66, 30.39, 28.42), "Set14": (30.24, 27.55, 26.00)}


@pytest.mark.parametrize("dataset", sorted(PUBLISHED_BICUBIC))
def test_bicubic_matches_the_published_tables(shared_data, dataset):
    config = scoring.EvalConfig(
        models=("bicubic",), datasets=(dataset,), scales=(2, 3, 4), data_dir=shared_data
    )
    records = scoring.evaluate(config)
    assert [r["scale"] for r in records] == [2, 3, 4]
    assert len(records[0]["images"]) == {"Set5": 5, "Set14": 14}[dataset]
    for record, published in zip(records, PUBLISHED_BICUBIC[dataset], strict=True):
        assert record["psnr"] == pytest.approx(published, abs=0.02)


def test_missing_shipped_weights_stop_the_job_unless_skip_missing(
    tiny_dataset, tmp_path, monkeypatch
):
    from amls2 import config as amls2_config
    from amls2.errors import MissingWeightsError
    from amls2.models import build_model
    from amls2.models.io import save_model

    monkeypatch.setattr(amls2_config, "SELECTED_MODELS_DIR", tmp_path / "weights")
    save_model(
        build_model("espcn", 2, variant="tiny"),
        tmp_path / "weights" / "bicubic" / "espcn_x2.keras",
        {"track": "bicubic"},
    )
    job = dict(models=("bicubic", "espcn"), datasets=(str(tiny_dataset),), scales=(2, 3))
    with pytest.raises(MissingWeightsError, match="espcn_x3.keras"):
        scoring.evaluate(scoring.EvalConfig(**job))
    records = scoring.evaluate(scoring.EvalConfig(**job, skip_missing=True))
    assert [(r["model"], r["scale"]) for r in records] == [
        ("bicubic", 2),
        ("espcn", 2),
        ("bicubic", 3),
    ]


def test_weight_sets_markdown_puts_each_set_in_a_column():
    def record(model, psnr, scale=2):
        return {"model": model, "dataset": "D", "scale": scale, "psnr": psnr, "bicubic_psnr": 30.0}

    records = [
        record("bicubic", 30.0),
        record("edsr@unknown", 31.0),
        record("edsr@track2sim", 32.5),
    ]
    records.append(record("edsr@unknown", 29.5, scale=3))
    lines = tables.weight_sets_markdown(records).splitlines()
    assert lines[0] == "| Dataset | Scale | Model | @unknown | @track2sim |"
    assert lines[2] == "| D | x2 | edsr | 31.00 (+1.00) | 32.50 (+2.50) |"
    assert lines[3] == "| D | x3 | edsr | 29.50 (-0.50) | - |"


def test_cli_prints_one_column_per_weight_set_for_name_at_set_models(tmp_path, capsys):
    from amls2.cli import main
    from amls2.imaging import images
    from amls2.models import build_model
    from amls2.models.io import save_model

    rng = np.random.default_rng(0)
    for i in range(2):
        images.write_image(tmp_path / "set" / f"v{i}.png", rng.random((24, 20, 3)))
    model = build_model("espcn", 2, variant="tiny", image_skip="bicubic")
    path = save_model(model, tmp_path / "m.keras", {"track": "bicubic"})
    argv = ["evaluate", "--model", "bicubic", f"{path}@bicubic", "--dataset", str(tmp_path / "set")]
    assert main([*argv, "--scale", "2"]) == 0
    out = capsys.readouterr().out
    assert "| Dataset | Scale | Model | @bicubic |" in out
    row = next(line for line in out.splitlines() if line.startswith("| set | x2 |"))
    # The file's label is its stem (the only model file), the weight set its column.
    assert row.startswith("| set | x2 | m | ") and row.endswith(") |")
