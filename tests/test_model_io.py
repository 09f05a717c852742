"""Saving and loading models: .keras round trips with safe_mode, legacy .h5, sidecars, errors."""

from __future__ import annotations

import json
import logging
import zipfile

import keras
import numpy as np
import pytest

from amls2.config import PROJECT_ROOT
from amls2.errors import Amls2Error, ModelError
from amls2.models import build_model, get_spec, model_names
from amls2.models.io import load_model, save_model, sidecar_path

LR_HW = (7, 9)
SHIPPED = sorted(PROJECT_ROOT.glob("Selected_models/*/*.keras"))


def random_batch(hw, seed=0):
    return np.random.default_rng(seed).random((1, *hw, 3), dtype=np.float32)


def predict(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", model_names())
def test_keras_round_trip_gives_identical_outputs(tmp_path, name, scale):
    keras.utils.set_random_seed(3)
    model = build_model(name, scale, variant="tiny")
    x = random_batch(LR_HW)
    path = save_model(model, tmp_path / "weights.keras", {"track": "bicubic"})
    loaded, sidecar = load_model(path, scale=scale, track="bicubic")
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    assert loaded.name == f"{name}_x{scale}"
    assert sidecar["name"] == name and sidecar["scale"] == scale
    assert sidecar["input_kind"] == get_spec(name).input_kind


@pytest.mark.parametrize("name", ["rfdn", "edsr", "post_srcnn", "iud_srcnn", "fd_srcnn"])
def test_image_skip_round_trip(tmp_path, name):
    keras.utils.set_random_seed(5)
    model = build_model(name, 3, variant="tiny", image_skip="bicubic")
    x = random_batch(LR_HW)
    path = save_model(model, tmp_path / "weights.keras", {"track": "bicubic"})
    loaded, sidecar = load_model(path, scale=3)
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    assert sidecar["hparams"]["image_skip"] == "bicubic"


@pytest.mark.parametrize("name", ["srcnn", "edsr", "rfdn"])
def test_legacy_h5_loads(tmp_path, name):
    # srcnn: plain layers; edsr tiny: MeanShift, PixelShuffle, channel attention; rfdn: ResizeLike.
    keras.utils.set_random_seed(4)
    model = build_model(name, 2, variant="tiny")
    path = tmp_path / "legacy.h5"
    model.save(path)  # Keras 3 writes the legacy HDF5 format for .h5
    loaded, sidecar = load_model(path)
    assert sidecar == {}
    x = random_batch(LR_HW)
    np.testing.assert_allclose(predict(loaded, x), predict(model, x), rtol=0, atol=1e-6)


def test_sidecar_has_the_required_fields_merged_with_the_given_dict(tmp_path):
    model = build_model("fd_srcnn", 3, variant="tiny")
    save_model(model, tmp_path / "w.keras", {"track": "unknown", "epochs": 5, "scale": 3})
    side = json.loads((tmp_path / "w.json").read_text())
    required = {"name", "hparams", "scale", "track", "input_kind"}
    assert required | {"keras_version", "tensorflow_version"} <= set(side)
    assert side["name"] == "fd_srcnn" and side["scale"] == 3 and side["track"] == "unknown"
    assert side["epochs"] == 5 and side["input_kind"] == "lr"
    assert side["hparams"]["n_series"] == 2 and side["hparams"]["width"] == 4
    assert side["keras_version"] == keras.__version__


def test_sidecar_defaults_from_the_model_name_when_not_built_by_the_registry(tmp_path):
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp), name="srcnn_x4")
    save_model(model, tmp_path / "m.keras")
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["name"] == "srcnn" and side["scale"] == 4 and side["input_kind"] == "bicubic"
    assert side["track"] is None


def test_save_is_atomic_and_can_refuse_to_overwrite(tmp_path):
    model = build_model("espcn", 2, variant="tiny")
    path = save_model(model, tmp_path / "w.keras", {"track": "bicubic"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json", "w.keras"]  # no temp files
    before = path.read_bytes()
    with pytest.raises(Amls2Error, match="already exists"):
        save_model(build_model("espcn", 2, variant="tiny"), path, overwrite=False)
    assert path.read_bytes() == before


@pytest.mark.parametrize("suffix", [".h5", ".json", ""])
def test_save_requires_keras_suffix(tmp_path, suffix):
    with pytest.raises(ModelError, match="must end in .keras"):
        save_model(build_model("srcnn", 2, variant="tiny"), tmp_path / f"w{suffix}")


@pytest.fixture(scope="module")
def saved_x2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    model = build_model("srcnn", 2, variant="tiny")
    return save_model(model, folder / "weights.keras", {"track": "bicubic"})


def test_wrong_scale_is_refused_naming_the_sidecar(saved_x2):
    expected = "weights.keras: trained for x2 (sidecar weights.json), not x4"
    with pytest.raises(ModelError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_model(saved_x2, scale=4)


def test_wrong_track_is_refused_naming_the_sidecar(saved_x2):
    with pytest.raises(
        ModelError, match=r"weights.keras: trained for track 'bicubic' .*not 'unknown'"
    ):
        load_model(saved_x2, track="unknown")


def test_matching_scale_and_track_load(saved_x2):
    model, sidecar = load_model(saved_x2, scale=2, track="bicubic")
    assert sidecar["track"] == "bicubic" and model.name == "srcnn_x2"


def test_missing_sidecar_loads_with_a_warning(tmp_path, caplog):
    path = save_model(build_model("srcnn", 2, variant="tiny"), tmp_path / "w.keras")
    sidecar_path(path).unlink()
    with caplog.at_level(logging.WARNING, logger="amls2.models.io"):
        model, sidecar = load_model(path, scale=4)  # nothing to check against
    assert sidecar == {} and model.name == "srcnn_x2"
    assert "w.keras: no sidecar w.json" in caplog.text


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothere.keras: model file not found"):
        load_model(tmp_path / "nothere.keras")


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("junk.keras", b"not a zip", "not a .keras model file"),
        ("junk.h5", b"not hdf5 either", "cannot load model"),
        ("empty.keras", b"", "not a .keras model file"),
    ],
)
def test_unreadable_file_names_the_file(tmp_path, filename, content, message):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ModelError, match=rf"{filename}: {message}") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_a_zip_that_is_not_a_model(tmp_path):
    import zipfile

    path = tmp_path / "archive.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelError, match=r"archive.keras: cannot load model"):
        load_model(path)


def test_unknown_suffix(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"w.pt: unknown model format"):
        load_model(tmp_path / "w.pt")


def test_corrupt_sidecar_names_it(tmp_path):
    path = save_model(build_model("srcnn", 2, variant="tiny"), tmp_path / "w.keras")
    sidecar_path(path).write_text("{not json")
    with pytest.raises(ModelError, match=r"w.json: unreadable sidecar"):
        load_model(path)


def test_the_sidecar_is_in_place_before_the_model(tmp_path, renamed):
    """save_model renames the sidecar first: a reader never sees a model without its sidecar,
    or beside the stale sidecar of the model it replaces."""
    save_model(build_model("espcn", 2, variant="tiny"), tmp_path / "m.keras", {"track": "bicubic"})
    assert renamed[-2:] == ["m.json", "m.keras"]


def _registered_names(path) -> set[str]:
    """The ``registered_name`` of every amls2 layer a ``.keras`` file records."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found, stack = set(), [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("registered_name")
            if isinstance(name, str) and name.startswith("amls2>"):
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def test_the_shipped_models_are_all_found():
    assert len(SHIPPED) >= 51


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_model_loads_in_safe_mode_by_its_registered_names(path):
    """The layers a shipped file names ("amls2>ClassName") are registered by importing
    amls2.models, wherever their classes live, and the file loads with safe_mode=True."""
    for name in _registered_names(path):
        assert keras.saving.get_registered_object(name) is not None, name
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert model.name == path.stem
