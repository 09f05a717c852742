"""Shipping a finished run into the weights folder: files, evaluated sidecar, index, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amls2.cli import main
from amls2.errors import ModelError
from amls2.evaluation.shipped_index import index_markdown
from amls2.evaluation.shipping import ship_run
from amls2.imaging import images
from amls2.models import build_model
from amls2.models.io import save_model


@pytest.fixture
def run_dir(tmp_path):
    """A finished-run folder as the engine leaves it: best model + sidecar + history."""
    run = tmp_path / "runs" / "espcn-tiny_x2_bicubic"
    model = build_model("espcn", 2, variant="tiny")
    sidecar = {"track": "bicubic", "steps": 12, "wall_time_s": 90.0, "config": {"seed": 0}}
    save_model(model, run / "espcn-tiny_x2_bicubic.keras", sidecar)
    (run / "history.csv").write_text("epoch,loss,val_psnr\n1,0.1,20.0\n")
    return run


@pytest.fixture
def val_set(tmp_path):
    folder = tmp_path / "val"
    rng = np.random.default_rng(0)
    for i in range(2):
        images.write_image(folder / f"v{i}.png", rng.random((24, 20, 3)))
    return folder


def test_ship_writes_weights_sidecar_history_and_index(run_dir, val_set, tmp_path):
    weights = tmp_path / "Selected_models"
    target = ship_run(run_dir, recipe="espcn_x2", weights_dir=weights, datasets=(str(val_set),))
    assert target == weights / "bicubic" / "espcn_x2.keras" and target.is_file()
    sidecar = json.loads(target.with_suffix(".json").read_text())
    scores = sidecar["validation"]["val"]
    assert scores["protocol"] == "y" and np.isfinite(scores["psnr"]) and "bicubic_psnr" in scores
    assert sidecar["reproduce"].startswith("amls2 train --recipe espcn_x2")
    assert sidecar["steps"] == 12 and sidecar["cost"]["params"] > 0
    assert (weights / "bicubic" / "espcn_x2.history.csv").read_text().startswith("epoch")
    index = (weights / "README.md").read_text()
    assert "`bicubic/espcn_x2.keras`" in index and "espcn (tiny)" in index
    assert index == index_markdown(weights)


def test_ship_refuses_to_replace_without_force(run_dir, val_set, tmp_path):
    weights = tmp_path / "Selected_models"
    ship_run(run_dir, weights_dir=weights, datasets=(str(val_set),))
    with pytest.raises(ModelError, match="already shipped"):
        ship_run(run_dir, weights_dir=weights, datasets=(str(val_set),))
    ship_run(run_dir, weights_dir=weights, datasets=(str(val_set),), force=True)


def test_a_folder_without_a_model_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["ship", str(tmp_path / "empty"), "--weights-dir", str(tmp_path / "w")]) == 2
    assert "no .keras model" in capsys.readouterr().err


def test_recipes_must_match_the_runs(run_dir, tmp_path, capsys):
    args = ["ship", str(run_dir), "--recipe", "a", "--recipe", "b"]
    assert main([*args, "--weights-dir", str(tmp_path / "w")]) == 2
    assert "--recipe" in capsys.readouterr().err


def test_targets_known_answers():
    from amls2.evaluation.shipping import targets_for

    scores = {
        "Set5": {"psnr": 37.39, "bicubic_psnr": 33.67},
        "Set14": {"psnr": 32.5, "bicubic_psnr": 30.23},
    }
    edsr = targets_for("edsr", "bicubic", 2, scores)
    assert edsr["Set5"] == {
        "target_psnr": 37.05,
        "source": "FSRCNN (Dong et al. 2016)",
        "gap": 0.34,
    }
    assert edsr["Set14"]["gap"] == -0.16
    unknown = targets_for("edsr", "unknown", 3, scores)
    assert unknown["Set5"]["target_psnr"] == 35.67 and unknown["Set5"]["gap"] == 1.72
    assert targets_for("fsrcnn", "bicubic", 2, scores) == {}
    fast = targets_for("espcn", "bicubic", 3, scores)  # the fast model: FSRCNN's published x3
    assert fast["Set5"]["target_psnr"] == 33.16 and fast["Set14"]["target_psnr"] == 29.43
    assert set(targets_for("srcnn", "bicubic", 4, scores)) == {"Set5"}


def test_index_only_adds_missing_targets(run_dir, val_set, tmp_path):
    weights = tmp_path / "Selected_models"
    target = ship_run(run_dir, weights_dir=weights, datasets=(str(val_set),))
    side = target.with_suffix(".json")
    data = json.loads(side.read_text())
    data["track"] = "unknown"  # pretend: an unknown-track model shipped before targets existed
    del data["targets"]
    (weights / "unknown").mkdir()
    target.rename(weights / "unknown" / target.name)
    side.unlink()
    (weights / "unknown" / side.name).write_text(json.dumps(data))
    assert main(["ship", "--index-only", "--weights-dir", str(weights)]) == 0
    refreshed = json.loads((weights / "unknown" / side.name).read_text())
    assert refreshed["targets"]["val"]["source"] == "bicubic + 2 dB"
    assert "`unknown/espcn_x2.keras`" in (weights / "README.md").read_text()


@pytest.fixture
def unknown_run(run_dir, tmp_path):
    """The same weights as ``run_dir``'s, as a finished unknown-track run."""
    model_file = next(run_dir.glob("*.keras"))
    run = tmp_path / "runs" / "espcn-tiny_x2_unknown"
    run.mkdir(parents=True)
    for suffix in (".keras", ".json"):
        (run / f"m{suffix}").write_bytes(model_file.with_suffix(suffix).read_bytes())
    side = json.loads((run / "m.json").read_text())
    (run / "m.json").write_text(json.dumps({**side, "track": "unknown"}))
    return run


def test_unknown_ship_compares_with_the_bicubic_track_model(
    run_dir, unknown_run, val_set, tmp_path
):
    """Same weights shipped for both tracks: on the unknown data the gain over the bicubic-track
    model is exactly zero; without a bicubic-track model the comparison is left out."""
    weights = tmp_path / "Selected_models"

    target = ship_run(unknown_run, weights_dir=weights, datasets=(str(val_set),))
    alone = json.loads(target.with_suffix(".json").read_text())["validation"]["val"]
    assert "bicubic_track_model_psnr" not in alone

    ship_run(run_dir, weights_dir=weights, datasets=(str(val_set),))
    ship_run(unknown_run, weights_dir=weights, datasets=(str(val_set),), force=True)
    scores = json.loads(target.with_suffix(".json").read_text())["validation"]["val"]
    assert scores["bicubic_track_model_psnr"] == scores["psnr"] == alone["psnr"]
    assert "| val +0.00 |" in (weights / "README.md").read_text()


@pytest.fixture
def linear_run(tmp_path):
    """A finished unknown-track run of the ``linear`` model (untrained: MATLAB bicubic)."""
    run = tmp_path / "runs" / "linear_x2_unknown"
    sidecar = {"track": "unknown", "steps": 0, "wall_time_s": 1.0, "config": {"seed": 0}}
    save_model(build_model("linear", 2), run / "linear_x2_unknown.keras", sidecar)
    (run / "history.csv").write_text("epoch,loss,val_psnr\n1,,20.0\n")
    return run


def test_track2sim_ship_goes_to_its_own_set_and_compares_with_blind_and_linear(
    run_dir, unknown_run, linear_run, val_set, tmp_path
):
    """A fixed-operator model (track unknown) ships into track2sim/, is compared with the blind
    model of the same name and with the shipped ``linear`` baseline, whose PSNR plus the
    model's margin is its target (none without a shipped linear); a bicubic-track run cannot
    ship there."""
    weights = tmp_path / "Selected_models"
    sets = (str(val_set),)
    with pytest.raises(ModelError, match="track2sim"):
        ship_run(run_dir, weights_dir=weights, datasets=sets, weights_set="track2sim")

    ship_run(unknown_run, weights_dir=weights, datasets=sets)  # the blind model
    target = ship_run(unknown_run, weights_dir=weights, datasets=sets, weights_set="track2sim")
    assert target == weights / "track2sim" / "espcn_x2.keras"
    shipped = json.loads(target.with_suffix(".json").read_text())
    scores = shipped["validation"]["val"]
    assert shipped["weights_set"] == "track2sim"
    assert scores["blind_model_psnr"] == scores["psnr"]  # the same weights: no gain
    assert "linear_model_psnr" not in scores and "val" not in shipped["targets"]

    ship_run(linear_run, weights_dir=weights, datasets=sets, weights_set="track2sim")
    ship_run(unknown_run, weights_dir=weights, datasets=sets, weights_set="track2sim", force=True)
    shipped = json.loads(target.with_suffix(".json").read_text())
    scores, goal = shipped["validation"]["val"], shipped["targets"]["val"]
    assert goal["source"] == "linear + 0.3 dB"
    assert goal["target_psnr"] == round(scores["linear_model_psnr"] + 0.3, 2)
    index = (weights / "README.md").read_text()
    assert "## `track2sim/`" in index and "| vs linear |" in index


def test_a_run_trained_with_edge_blocks_ships_merged_into_plain_convs(tmp_path, val_set):
    from amls2.models.ecb import has_edge_blocks
    from amls2.models.io import load_model

    run = tmp_path / "runs" / "espcn-fast_x2_bicubic"
    model = build_model("espcn", 2, variant="fast", conv_block="ecb", mid_layers=1)
    save_model(model, run / "espcn-fast_x2_bicubic.keras", {"track": "bicubic", "steps": 1})
    weights = tmp_path / "Selected_models"
    target = ship_run(run, weights_dir=weights, datasets=(str(val_set),))
    shipped = load_model(target)[0]
    assert not has_edge_blocks(shipped)
    x = np.random.default_rng(0).random((1, 9, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(shipped(x)), np.asarray(model(x)), atol=1e-5)
    sidecar = json.loads(target.with_suffix(".json").read_text())
    assert "merged into plain" in sidecar["deployed"]
    assert sidecar["cost"]["params"] == shipped.count_params() < model.count_params()


def fake_sidecar(folder, name: str, scale: int, *, psnr: float, macs: float, dataset="Set5"):
    """A shipped model as the summary table reads it: an (empty) .keras file and its sidecar,
    with bicubic's scores on Set5 x4 (or on Track2sim x4)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_x{scale}.keras").write_bytes(b"")
    bicubic = (28.4302, 0.81114) if dataset == "Set5" else (25.1596, 0.67957)
    scores = {"psnr": psnr, "ssim": 0.8, "bicubic_psnr": bicubic[0], "bicubic_ssim": bicubic[1]}
    side = {"name": name, "scale": scale, "validation": {dataset: scores}}
    side["cost"] = {"params": 1000, "macs_720p": macs}
    (folder / f"{name}_x{scale}.json").write_text(json.dumps(side))


def test_summary_table_rows_from_sidecars_and_timings(tmp_path):
    from amls2.evaluation.shipped_index import TIMING_FILE, summary_markdown

    weights = tmp_path / "Selected_models"
    fake_sidecar(weights / "bicubic", "edsr", 4, psnr=31.3287, macs=20.5e9)
    fake_sidecar(weights / "bicubic", "linear", 4, psnr=29.0, macs=0.1e9)
    fake_sidecar(weights / "bicubic", "edsr", 2, psnr=37.5, macs=45e9)  # another scale: not shown
    fake_sidecar(weights / "track2sim", "edsr", 4, psnr=26.907, macs=20.5e9, dataset="Track2sim")
    timing = {"machine": "CPU: test", "rows": [
        {"weights_set": "bicubic", "dataset": "Set5", "model": m, "scale": 4, "ms_per_image": t}
        for m, t in (("bicubic", 0.4), ("edsr", 15.5), ("linear", 2.04))
    ]}  # fmt: skip
    (weights / TIMING_FILE).write_text(json.dumps(timing))
    lines = summary_markdown(weights).splitlines()
    assert lines[2] == "| bicubic interpolation | 0 | - | 28.43 / 0.8111 | 25.16 / 0.6796 | 0.4 |"
    assert lines[3] == "| `linear` | 1,000 | 0.1 G | 29.00 / 0.8000 | - | 2.0 |"  # linear first
    assert lines[4] == "| `edsr` | 1,000 | 20.5 G | 31.33 / 0.8000 | 26.91 / 0.8000 | 15.5 |"
    assert len(lines) == 7 and lines[6].endswith("(CPU: test).")
    (weights / TIMING_FILE).unlink()
    assert summary_markdown(weights).endswith("no record yet, run it on a quiet machine.")


def test_ship_index_only_rewrites_only_the_readme_summary(tmp_path, capsys):
    from amls2.evaluation.shipped_index import SUMMARY_BEGIN, SUMMARY_END

    weights = tmp_path / "Selected_models"
    fake_sidecar(weights / "bicubic", "edsr", 4, psnr=31.3287, macs=20.5e9)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{SUMMARY_BEGIN}\nstale\n{SUMMARY_END}\n## Architecture\n")
    args = ["ship", "--index-only", "--weights-dir", str(weights), "--readme", str(readme)]
    assert main(args) == 0
    text = readme.read_text()
    assert "stale" not in text and "| `edsr` | 1,000 | 20.5 G | 31.33 / 0.8000 | - | - |" in text
    assert text.startswith("# title\n") and text.endswith(f"{SUMMARY_END}\n## Architecture\n")
    assert main([*args[:-1], str(tmp_path / "missing.md")]) == 2
    assert "--readme" in capsys.readouterr().err
    readme.write_text("no markers\n")
    (weights / "README.md").unlink()
    assert main(args) == 2 and readme.read_text() == "no markers\n"
    assert "markers" in capsys.readouterr().err
    assert not (weights / "README.md").exists()  # refused before anything was written
