"""Tests of ``amls2 upscale``: formats kept, bad inputs, never overwriting a user's file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from amls2.cli import main
from amls2.imaging import images, resize


@pytest.fixture
def photo(rng):
    return rng.random((12, 14, 3)).astype(np.float32)


def _run(capsys, *argv):
    code = main(["upscale", *map(str, argv)])
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    ("name", "kind"), [("gray.png", "gray"), ("rgba.png", "rgba"), ("deep.png", "16bit"),
                       ("photo.jpg", "jpeg"), ("plain.png", "rgb")]
)  # fmt: skip
def test_upscale_keeps_the_format(tmp_path, capsys, photo, name, kind):
    src = tmp_path / name
    if kind == "gray":
        images.write_image(src, photo[..., 0])
    elif kind == "rgba":
        alpha = np.linspace(0, 1, photo.shape[0] * photo.shape[1]).reshape(photo.shape[:2])
        images.write_image(src, np.dstack([photo, alpha]))
    elif kind == "16bit":
        images.write_image(src, photo, bit_depth=16)
    else:
        images.write_image(src, photo)
    code, _ = _run(capsys, src, "--model", "bicubic", "--scale", 2)
    assert code == 0
    out = tmp_path / f"{src.stem}_x2_bicubic.png"
    pixels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert pixels.shape[:2] == (24, 28)
    expected = {
        "gray": (2, np.uint8),
        "rgba": (4, np.uint8),
        "16bit": (3, np.uint16),
        "jpeg": (3, np.uint8),
        "rgb": (3, np.uint8),
    }[kind]
    assert (pixels.ndim if kind == "gray" else pixels.shape[2]) == expected[0]
    assert pixels.dtype == expected[1]
    loaded = images.load_image(out)
    if kind == "rgba":
        # Alpha upscaled with bicubic: a smooth ramp stays a ramp in [0, 1].
        assert (
            loaded.alpha is not None and loaded.alpha[0, 0] < 0.05 and loaded.alpha[-1, -1] > 0.95
        )
    if kind == "rgb":
        np.testing.assert_allclose(
            loaded.rgb, resize.bicubic_upscale(images.read_image(src), 2), atol=1 / 255 + 1e-6
        )


def test_folder_input_and_out_dir(tmp_path, capsys, photo):
    folder = tmp_path / "in"
    for i in range(2):
        images.write_image(folder / f"p{i}.png", photo)
    code, captured = _run(
        capsys, folder, "--model", "bicubic", "--scale", 3, "--out", tmp_path / "o"
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "p0_x3_bicubic.png",
        "p1_x3_bicubic.png",
    ]
    assert "p0_x3_bicubic.png" in captured.out


def test_corrupt_input_is_an_error_naming_it_unless_skip_bad(tmp_path, capsys, photo):
    images.write_image(tmp_path / "good.png", photo)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, captured = _run(capsys, tmp_path, "--model", "bicubic", "--scale", 2)
    assert code == 2
    assert "bad.png" in captured.err and len(captured.err.strip().splitlines()) == 1
    code, _ = _run(capsys, tmp_path, "--model", "bicubic", "--scale", 2, "--skip-bad")
    assert code == 0
    assert (tmp_path / "good_x2_bicubic.png").is_file()
    assert not (tmp_path / "bad_x2_bicubic.png").exists()


def test_unknown_model_lists_the_valid_names(tmp_path, capsys, photo):
    images.write_image(tmp_path / "a.png", photo)
    code, captured = _run(capsys, tmp_path / "a.png", "--model", "srcnnn", "--scale", 2)
    assert code == 2
    assert "srcnnn" in captured.err and "bicubic" in captured.err and "fsrcnn" in captured.err


def test_model_file_for_another_scale_names_the_sidecar_scale(tmp_path, capsys, photo):
    pytest.importorskip("keras")
    from amls2 import models
    from amls2.models.io import save_model

    path = save_model(
        models.build_model("espcn", 2, variant="tiny"), tmp_path / "e.keras", {"track": "bicubic"}
    )
    images.write_image(tmp_path / "a.png", photo)
    code, captured = _run(capsys, tmp_path / "a.png", "--model", path, "--scale", 4)
    assert code == 2 and "x2" in captured.err
    code, _ = _run(
        capsys, tmp_path / "a.png", "--model", path, "--scale", 2, "--save-intermediate",
        "--self-ensemble", "--tile", 8, "--tile-overlap", 3,
    )  # fmt: skip
    assert code == 0
    assert images.read_image(tmp_path / "a_x2_e.png").shape == (24, 28, 3)
    assert images.read_image(tmp_path / "a_x2_e_bicubic.png").shape == (24, 28, 3)


def test_output_equal_to_input_is_refused(tmp_path, capsys, photo):
    src = images.write_image(tmp_path / "a.png", photo)
    before = src.read_bytes()
    code, captured = _run(capsys, src, "--model", "bicubic", "--scale", 2, "--suffix", "")
    assert code == 2 and "equals the input" in captured.err
    assert src.read_bytes() == before


def test_existing_output_is_kept_without_force(tmp_path, capsys, photo, caplog):
    src = images.write_image(tmp_path / "a.png", photo)
    out = tmp_path / "a_x2_bicubic.png"
    out.write_bytes(b"precious")
    code, _ = _run(capsys, src, "--model", "bicubic", "--scale", 2)
    assert code == 0 and out.read_bytes() == b"precious"
    assert any("exists" in r.getMessage() for r in caplog.records)
    code, _ = _run(capsys, src, "--model", "bicubic", "--scale", 2, "--force")
    assert code == 0 and images.read_image(out).shape == (24, 28, 3)
