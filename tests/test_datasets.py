"""Datasets: registry, data-root precedence, layouts, pairing and mismatch errors on tiny trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amls2.config import data_root
from amls2.data.datasets import DATASETS, DIV2K_BASE_URL, dataset_status, find_dataset
from amls2.data.degradations import VALIDATION_SEED, degrade
from amls2.data.pairing import PairSource, load_pair, load_pairs, resolve_hr_images, resolve_pairs
from amls2.errors import DatasetError
from amls2.imaging.images import mod_crop, read_image, write_image
from amls2.imaging.resize import bicubic_downscale


def _image(rng, h: int, w: int) -> np.ndarray:
    return rng.random((h, w, 3)).astype(np.float32)


def make_hr_lr_tree(root: Path, rng, stems=("baby", "bird"), scale=2, size=24, lr_prefix="LR_"):
    """``root/HR/<stem>.png`` and ``root/<lr_prefix>bicubic/X<s>/<stem>x<s>.png``."""
    for stem in stems:
        hr = _image(rng, size, size)
        write_image(root / "HR" / f"{stem}.png", hr)
        write_image(
            root / f"{lr_prefix}bicubic" / f"X{scale}" / f"{stem}x{scale}.png",
            bicubic_downscale(hr, scale),
        )
    return root


def make_div2k_tree(root: Path, rng, split="valid", first=801, n=2, scale=2, size=24):
    """The official extracted DIV2K tree with ``n`` tiny images and bicubic LR at ``scale``."""
    for number in range(first, first + n):
        hr = _image(rng, size, size)
        write_image(root / f"DIV2K_{split}_HR" / f"{number:04d}.png", hr)
        write_image(
            root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{number:04d}x{scale}.png",
            bicubic_downscale(hr, scale),
        )
    return root


# ---------------------------------------------------------------- registry and data root


def test_registry_lists_every_dataset_with_standard_counts():
    counts = {name: info.split_counts for name, info in DATASETS.items()}
    assert counts == {
        "samples": (("all", 6),),
        "DIV2K": (("train", 800), ("valid", 100)),
        "Set5": (("all", 5),),
        "Set14": (("all", 14),),
        "B100": (("all", 100),),
        "Urban100": (("all", 100),),
        "Manga109": (("all", 109),),
        "T91": (("all", 91),),
        "BSD200": (("all", 200),),
    }


def test_div2k_archives_use_the_official_names_and_url():
    archives = {a.part: a for a in DATASETS["DIV2K"].archives}
    assert len(archives) == 2 + 2 * 2 * 3
    assert archives["train_HR"].filename == "DIV2K_train_HR.zip"
    assert archives["valid_LR_unknown_X3"].filename == "DIV2K_valid_LR_unknown_X3.zip"
    assert archives["train_LR_bicubic_X2"].url == DIV2K_BASE_URL + "DIV2K_train_LR_bicubic_X2.zip"
    assert DIV2K_BASE_URL == "https://data.vision.ee.ethz.ch/cvl/DIV2K/"


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("AMLS2_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("AMLS2_DATA")
    assert data_root() == Path("Datasets")


def test_find_dataset_by_name_follows_the_data_root(monkeypatch, tmp_path, rng):
    make_hr_lr_tree(tmp_path / "env" / "Set5", rng)
    make_hr_lr_tree(tmp_path / "arg" / "Set5", rng)
    monkeypatch.setenv("AMLS2_DATA", str(tmp_path / "env"))
    assert find_dataset("Set5") == tmp_path / "env" / "Set5"
    assert find_dataset("Set5", tmp_path / "arg") == tmp_path / "arg" / "Set5"


def test_any_folder_under_the_data_root_is_a_dataset_by_name(tmp_path, rng, monkeypatch):
    """``--dataset Track2sim`` works like a registered name; the data root wins over a
    same-named folder in the working directory, and paths keep working."""
    make_div2k_tree(tmp_path / "root" / "Track2sim", rng, "train", 1, 3)
    make_hr_lr_tree(tmp_path / "cwd" / "Track2sim", rng)
    monkeypatch.chdir(tmp_path / "cwd")
    assert find_dataset("Track2sim", tmp_path / "root") == tmp_path / "root" / "Track2sim"
    pairs = resolve_pairs("Track2sim", scale=2, track="bicubic", data_dir=tmp_path / "root")
    assert [p.name for p in pairs] == ["0001", "0002", "0003"]
    assert find_dataset("./Track2sim", tmp_path / "root") == Path("./Track2sim")
    with pytest.raises(DatasetError, match="under the data root"):
        find_dataset("Nowhere", tmp_path / "root")


def test_dataset_names_are_case_sensitive_folders(tmp_path, rng):
    make_hr_lr_tree(tmp_path / "set5", rng)
    with pytest.raises(DatasetError, match="Set5"):
        find_dataset("Set5", tmp_path)


def test_missing_known_dataset_names_where_it_is_expected(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "DIV2K")):
        find_dataset("DIV2K", tmp_path)


def test_unknown_name_that_is_not_a_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="nonexistent"):
        find_dataset(tmp_path / "nonexistent")


def test_samples_are_embedded_and_independent_of_the_data_root(tmp_path):
    paths = resolve_hr_images("samples", data_dir=tmp_path / "nowhere")
    assert [p.name for p in paths][:2] == ["astronaut.png", "chelsea.png"]
    assert len(paths) == 6 and all(p.is_file() for p in paths)
    (pair,) = load_pairs("samples", scale=3, track="unknown", limit=1)
    assert pair.name == "astronaut"
    assert pair.hr.shape == (510, 510, 3) and pair.lr.shape == (170, 170, 3)
    assert pair.params["seed"] == VALIDATION_SEED


# ---------------------------------------------------------------- layouts and pairing


def test_div2k_tree_pairs_by_stem_and_split(tmp_path, rng):
    make_div2k_tree(tmp_path, rng, "valid", 801, 2)
    make_div2k_tree(tmp_path, rng, "train", 1, 3)
    valid = resolve_pairs(tmp_path, scale=2, track="bicubic")
    assert [(s.name, s.lr_path.name) for s in valid] == [
        ("0801", "0801x2.png"),
        ("0802", "0802x2.png"),
    ]
    train = resolve_pairs(tmp_path, scale=2, track="bicubic", split="train")
    assert [s.name for s in train] == ["0001", "0002", "0003"]
    assert train[0].lr_path == tmp_path / "DIV2K_train_LR_bicubic" / "X2" / "0001x2.png"


def test_div2k_by_name_under_the_data_root(tmp_path, rng):
    make_div2k_tree(tmp_path / "DIV2K", rng)
    pairs = load_pairs("DIV2K", scale=2, track="bicubic", data_dir=tmp_path, split="valid")
    assert [p.name for p in pairs] == ["0801", "0802"]
    np.testing.assert_array_equal(pairs[0].lr, bicubic_downscale(pairs[0].hr, 2))


def test_missing_div2k_split_is_an_error(tmp_path, rng):
    make_div2k_tree(tmp_path, rng, "valid")
    with pytest.raises(DatasetError, match="DIV2K_train_HR"):
        resolve_pairs(tmp_path, scale=2, track="bicubic", split="train")


def test_missing_lr_partner_names_both_files(tmp_path, rng):
    make_div2k_tree(tmp_path, rng, n=2)
    (tmp_path / "DIV2K_valid_LR_bicubic" / "X2" / "0802x2.png").unlink()
    with pytest.raises(DatasetError) as info:
        resolve_pairs(tmp_path, scale=2, track="bicubic")
    assert "0802.png" in str(info.value) and "0802x2.png" in str(info.value)


def test_lr_of_the_wrong_size_names_both_files(tmp_path, rng):
    make_hr_lr_tree(tmp_path, rng, stems=("baby",), scale=2)
    write_image(tmp_path / "LR_bicubic" / "X2" / "babyx2.png", _image(rng, 11, 12))
    (source,) = resolve_pairs(tmp_path, scale=2, track="bicubic")
    with pytest.raises(DatasetError) as info:
        load_pair(source, scale=2, track="bicubic")
    message = str(info.value)
    assert "babyx2.png" in message and "baby.png" in message and "12x11" in message


def test_hr_lr_tree_pairs_and_is_mod_cropped(tmp_path, rng):
    # 25x25 HR at x2: the HR is cropped to 24x24 before pairing with a 12x12 LR.
    hr = _image(rng, 25, 25)
    write_image(tmp_path / "HR" / "baby.png", hr)
    write_image(
        tmp_path / "LR_bicubic" / "X2" / "babyx2.png", bicubic_downscale(mod_crop(hr, 2), 2)
    )
    (pair,) = load_pairs(tmp_path, scale=2, track="bicubic")
    assert pair.hr.shape == (24, 24, 3) and pair.lr.shape == (12, 12, 3)
    assert pair.params is None
    np.testing.assert_allclose(pair.hr, np.floor(hr[:24, :24] * 255 + 0.5) / 255, atol=1e-6)


def test_lr_named_like_the_hr_is_accepted(tmp_path, rng):
    make_hr_lr_tree(tmp_path, rng, stems=("baby",))
    lr_dir = tmp_path / "LR_bicubic" / "X2"
    (lr_dir / "babyx2.png").rename(lr_dir / "baby.png")
    (source,) = resolve_pairs(tmp_path, scale=2, track="bicubic")
    assert source.lr_path == lr_dir / "baby.png"


def test_unknown_track_without_lr_folder_is_synthesised_with_the_validation_seed(tmp_path, rng):
    make_hr_lr_tree(tmp_path, rng, stems=("baby",))
    (source,) = resolve_pairs(tmp_path, scale=2, track="unknown")
    assert source.lr_path is None
    pair = load_pair(source, scale=2, track="unknown")
    expected, params = degrade(pair.hr, 2, "unknown", seed=VALIDATION_SEED, name="baby")
    np.testing.assert_array_equal(pair.lr, expected)
    assert pair.params == params


def test_unknown_track_uses_real_lr_unknown_folder(tmp_path, rng):
    make_hr_lr_tree(tmp_path, rng, stems=("0801",))
    write_image(tmp_path / "LR_unknown" / "X2" / "0801x2.png", _image(rng, 12, 12))
    (source,) = resolve_pairs(tmp_path, scale=2, track="unknown")
    assert source.lr_path == tmp_path / "LR_unknown" / "X2" / "0801x2.png"


def test_scale_without_lr_folder_is_synthesised(tmp_path, rng):
    make_hr_lr_tree(tmp_path, rng, scale=2)
    sources = resolve_pairs(tmp_path, scale=4, track="bicubic")
    assert [s.lr_path for s in sources] == [None, None]
    pair = load_pair(sources[0], scale=4, track="bicubic")
    np.testing.assert_array_equal(pair.lr, bicubic_downscale(pair.hr, 4))


@pytest.mark.parametrize("as_given", ["parent", "original_dataset"])
def test_seed_project_original_dataset_layout(tmp_path, rng, as_given):
    make_hr_lr_tree(
        tmp_path / "original_dataset", rng, stems=("0001", "0002"), scale=3, lr_prefix=""
    )
    folder = tmp_path if as_given == "parent" else tmp_path / "original_dataset"
    sources = resolve_pairs(folder, scale=3, track="bicubic")
    assert [s.lr_path for s in sources] == [
        tmp_path / "original_dataset" / "bicubic" / "X3" / f"{n}x3.png" for n in ("0001", "0002")
    ]
    assert load_pair(sources[0], scale=3, track="bicubic").lr.shape == (8, 8, 3)


def test_plain_folder_of_hr_images(tmp_path, rng):
    for stem in ("b", "a"):
        write_image(tmp_path / f"{stem}.png", _image(rng, 20, 20))
    (tmp_path / "notes.txt").write_text("not an image")
    sources = resolve_pairs(tmp_path, scale=4, track="bicubic")
    assert sources == [
        PairSource("a", tmp_path / "a.png", None),
        PairSource("b", tmp_path / "b.png", None),
    ]
    assert [p.lr.shape for p in load_pairs(tmp_path, scale=4, track="bicubic", limit=1)] == [
        (5, 5, 3)
    ]


def test_empty_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path)):
        resolve_pairs(tmp_path, scale=2, track="bicubic")


def test_grayscale_hr_is_expanded_to_rgb(tmp_path, rng):
    write_image(tmp_path / "bridge.png", rng.random((16, 16)).astype(np.float32))
    (pair,) = load_pairs(tmp_path, scale=2, track="bicubic")
    assert pair.hr.shape == (16, 16, 3)
    np.testing.assert_array_equal(pair.hr[..., 0], pair.hr[..., 2])


def test_dataset_status_counts_what_is_on_disk(tmp_path, rng):
    make_div2k_tree(tmp_path / "DIV2K", rng, "valid", n=3)
    status = dataset_status("DIV2K", tmp_path)
    assert status.present and not status.complete and status.layout == "div2k"
    assert status.counts == (("train", 0, 800), ("valid", 3, 100))
    assert status.lr_folders == ("valid bicubic X2",)
    missing = dataset_status("Set5", tmp_path)
    assert not missing.present and missing.location == tmp_path / "Set5"


# ---------------------------------------------------------------- shared real data


def test_shared_set14_pairs_match_matlab_lr(shared_data):
    pairs = load_pairs("Set14", scale=3, track="bicubic", data_dir=shared_data)
    assert len(pairs) == 14
    bridge = next(p for p in pairs if p.name == "bridge")
    assert bridge.hr.shape[2] == 3  # grayscale on disk, expanded to RGB
    np.testing.assert_array_equal(bridge.hr[..., 0], bridge.hr[..., 1])
    assert bridge.grayscale
    assert [p.name for p in pairs if p.grayscale] == ["bridge"]  # man.png has 3 equal channels
    for pair in pairs[:3]:
        assert pair.lr.shape[:2] == (pair.hr.shape[0] // 3, pair.hr.shape[1] // 3)
        assert np.abs(bicubic_downscale(pair.hr, 3) - pair.lr).max() <= 1 / 255 + 1e-6


def test_shared_set5_lr_files_are_read_not_synthesised(shared_data):
    sources = resolve_pairs("Set5", scale=2, track="bicubic", data_dir=shared_data)
    assert sources[0].lr_path == shared_data / "Set5" / "LR_bicubic" / "X2" / "babyx2.png"
    assert read_image(sources[0].lr_path).shape == (256, 256, 3)
