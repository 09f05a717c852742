"""Tests of amls2.inference.weights: where shipped weights live, and resolving names to upscalers."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from amls2 import models  # noqa: E402
from amls2.errors import ModelError  # noqa: E402
from amls2.inference import weights  # noqa: E402
from amls2.inference.upscaler import super_resolve  # noqa: E402
from amls2.inference.weights import load_upscaler  # noqa: E402


def test_bicubic_upscaler_is_the_matlab_uint8_baseline():
    from amls2.imaging import resize

    up = load_upscaler("bicubic", scale=2)
    lr = np.random.default_rng(6).random((8, 10, 3), dtype=np.float32)
    assert up.is_bicubic and up.name == "bicubic"
    np.testing.assert_array_equal(up.upscale(lr), resize.bicubic_upscale(lr, 2))


def test_unknown_model_name_lists_the_valid_names():
    with pytest.raises(ModelError) as info:
        load_upscaler("no_such_model", scale=2)
    message = str(info.value)
    assert "no_such_model" in message and "bicubic" in message and "srcnn" in message


def test_missing_shipped_weights_name_the_file_and_the_train_command(tmp_path, monkeypatch):
    from amls2 import config

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    with pytest.raises(ModelError) as info:
        load_upscaler("fsrcnn", scale=3, track="unknown")
    message = str(info.value)
    assert str(tmp_path / "unknown" / "fsrcnn_x3.keras") in message
    assert "amls2 train --model fsrcnn --scale 3 --track unknown" in message


def test_shipped_weights_load_by_registry_name(tmp_path, monkeypatch):
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 2, variant="tiny")
    save_model(model, tmp_path / "bicubic" / "espcn_x2.keras", {"track": "bicubic"})
    up = load_upscaler("espcn", scale=2, track="bicubic")
    assert up.name == "espcn" and up.input_kind == "lr" and not up.is_bicubic
    lr = np.random.default_rng(8).random((6, 7, 3), dtype=np.float32)
    np.testing.assert_allclose(up.upscale(lr), super_resolve(model, lr, scale=2), atol=1e-6)


def test_name_at_track_runs_the_other_tracks_weights(tmp_path, monkeypatch):
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 3, variant="tiny")
    save_model(model, tmp_path / "bicubic" / "espcn_x3.keras", {"track": "bicubic"})
    with pytest.raises(ModelError, match="unknown"):
        load_upscaler("espcn", scale=3, track="unknown")  # no unknown-track weights
    up = load_upscaler("espcn@bicubic", scale=3, track="unknown")
    assert (up.name, up.track, up.sidecar["track"]) == ("espcn@bicubic", "unknown", "bicubic")
    lr = np.random.default_rng(9).random((5, 6, 3), dtype=np.float32)
    np.testing.assert_allclose(up.upscale(lr), super_resolve(model, lr, scale=3), atol=1e-6)
    path = tmp_path / "bicubic" / "espcn_x3.keras"
    with pytest.raises(ModelError, match="track"):
        load_upscaler(str(path), scale=3, track="unknown")  # the sidecar says bicubic
    up = load_upscaler(f"{path}@bicubic", scale=3, track="unknown")
    assert (up.name, up.track) == (f"{path}@bicubic", "unknown")


@pytest.mark.parametrize("text", ["espcn@nope", "espcn@", "m.keras@x"])
def test_name_at_a_bad_track_is_a_clear_error(text, tmp_path, monkeypatch):
    from amls2 import config

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    with pytest.raises(ModelError, match="weights set"):
        load_upscaler(text, scale=3, track="unknown")


def test_weights_file_with_a_sidecar_for_another_scale_is_refused(tmp_path):
    from amls2.models.io import save_model

    path = save_model(
        models.build_model("srcnn", 2, variant="tiny"), tmp_path / "m.keras", {"track": "bicubic"}
    )
    with pytest.raises(ModelError, match="x2"):
        load_upscaler(str(path), scale=4, track="bicubic")
    up = load_upscaler(str(path), scale=2, track="bicubic")
    assert up.input_kind == "bicubic" and up.name == "m"


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_upscaler(str(tmp_path / "nope.keras"), scale=2)


@pytest.mark.parametrize(
    ("name", "scale", "weights_set", "expected"),
    [
        ("rfdn", 2, "bicubic", "amls2 train --recipe rfdn_x2"),
        ("srcnn", 2, "unknown", "amls2 train --recipe srcnn_x2_unknown"),
        ("edsr", 4, "track2sim", "amls2 train --recipe edsr_x4_track2sim"),
        ("espcn", 3, "track2sim", "amls2 train --recipe espcn_x3_track2sim"),
        ("fsrcnn", 3, "bicubic", "amls2 train --model fsrcnn --scale 3 --track bicubic"),
        ("fsrcnn", 3, "track2sim", "amls2 train --model fsrcnn --scale 3 --track unknown"),
    ],
)
def test_train_hint_points_at_the_shipped_recipe(name, scale, weights_set, expected):
    assert weights.train_hint(name, scale=scale, weights_set=weights_set) == expected


def test_name_at_a_weights_set_loads_that_folder_for_its_track(tmp_path, monkeypatch):
    """``edsr@track2sim`` reads Selected_models/track2sim/ and checks the sidecar says unknown."""
    from amls2 import config
    from amls2.models.io import save_model

    monkeypatch.setattr(config, "SELECTED_MODELS_DIR", tmp_path)
    model = models.build_model("espcn", 2, variant="tiny")
    save_model(model, tmp_path / "track2sim" / "espcn_x2.keras", {"track": "unknown"})
    up = load_upscaler("espcn@track2sim", scale=2, track="unknown")
    assert up.source == str(tmp_path / "track2sim" / "espcn_x2.keras")
    assert (up.name, up.track) == ("espcn@track2sim", "unknown")
    x3 = models.build_model("espcn", 3, variant="tiny")
    save_model(x3, tmp_path / "track2sim" / "espcn_x3.keras", {"track": "bicubic"})
    with pytest.raises(ModelError, match="bicubic"):
        load_upscaler("espcn@track2sim", scale=3, track="unknown")


def test_shipped_weights_layout(tmp_path):
    """One owner of ``<weights dir>/<weights set>/<name>_x<s>.keras`` and its history file."""
    from amls2 import config

    path = weights.shipped_weights_path(
        "edsr", scale=2, weights_set="track2sim", weights_dir=tmp_path
    )
    assert path == tmp_path / "track2sim" / "edsr_x2.keras"
    history = weights.history_path("edsr", scale=2, weights_set="track2sim", weights_dir=tmp_path)
    assert history == tmp_path / "track2sim" / "edsr_x2.history.csv"
    default = weights.shipped_weights_path("srcnn", scale=3, weights_set="bicubic")
    assert default == config.SELECTED_MODELS_DIR / "bicubic" / "srcnn_x3.keras"
    missing = weights.missing_weights(
        ["edsr"], scales=[2, 3], weights_set="unknown", weights_dir=tmp_path
    )
    assert [(m.model, m.scale, m.hint) for m in missing] == [
        ("edsr", 2, "amls2 train --recipe edsr_x2_unknown"),
        ("edsr", 3, "amls2 train --recipe edsr_x3_unknown"),
    ]
