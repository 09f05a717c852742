"""The degradation operator estimated from pairs: estimation, files, and ``amls2 degrade
--operator`` / ``amls2 estimate-operator``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from amls2.cli import main
from amls2.data.degradations import blur_and_decimate, kernel_shift, make_kernel
from amls2.data.operator import (
    Operator,
    apply_operator,
    load_operator,
    operator_from_kernel,
    save_operator,
    shipped_operator_path,
)
from amls2.data.operator_fit import estimate_operator, remake_report
from amls2.imaging.images import read_image, write_image


def _hr_images(rng, count=2, size=72):
    return [rng.random((size, size + 6, 3)) for _ in range(count)]


def _shifted_kernel(scale, dy, dx, sigma=0.9):
    """A Gaussian kernel of width 2s+3 whose centroid sits at ``(dy, dx)`` HR px from MATLAB
    bicubic's LR pixel centre (applied with decimation start ``(s-1)//2``)."""
    size = 2 * scale + 3
    base = (scale - 1) / 2 - (scale - 1) // 2  # the even-scale half pixel
    taps = np.arange(size) - size // 2
    gy = np.exp(-0.5 * ((taps - base - dy) / sigma) ** 2)
    gx = np.exp(-0.5 * ((taps - base - dx) / (1.3 * sigma)) ** 2)
    kernel = np.outer(gy, gx)
    return kernel / kernel.sum()


@pytest.mark.parametrize(
    "scale, dy, dx", [(2, 0.5, 0.5), (2, 0.0, -0.5), (3, 0.0, 0.0), (3, 1.0, -0.5), (4, 0.5, 0.25)]
)
def test_known_kernel_and_offset_are_estimated_back(rng, scale, dy, dx):
    truth = operator_from_kernel(_shifted_kernel(scale, dy, dx), scale, bias=0.01)
    assert truth.offset == pytest.approx((dy, dx), abs=0.05)  # moved a little by truncation
    pairs = [(hr, apply_operator(hr, truth)) for hr in _hr_images(rng)]  # uint8 LR, as on disk
    est = estimate_operator(pairs, scale, sizes=[2 * scale + 3], max_pixels=None)
    np.testing.assert_allclose(est.kernel_array, truth.kernel_array, atol=2e-3)
    assert est.offset == pytest.approx(truth.offset, abs=0.01)
    assert est.kernel_sum == pytest.approx(1.0, abs=2e-3)
    assert est.bias == pytest.approx(0.01, abs=2e-3)
    remade = est.check["remade_fit"]
    assert remade["psnr_db"] > 50 and remade["noise_sigma_levels"] < 0.1


def test_unquantised_pairs_are_fitted_exactly_and_the_border_rule_is_found(rng):
    truth = operator_from_kernel(_shifted_kernel(2, 0.5, -0.5), 2, border="reflect")
    pairs = [(hr, apply_operator(hr, truth, quantise=False)) for hr in _hr_images(rng)]
    est = estimate_operator(pairs, 2, sizes=[5, 7], max_pixels=None)
    assert est.kernel_size == 7 and est.border == "reflect"
    np.testing.assert_allclose(est.kernel_array, truth.kernel_array, atol=1e-7)


def test_a_larger_candidate_kernel_than_needed_is_not_chosen_on_held_out_pairs(rng):
    truth = operator_from_kernel(_shifted_kernel(3, 0.0, 0.0), 3)
    pairs = [(hr, apply_operator(hr, truth)) for hr in _hr_images(rng, count=3)]
    est = estimate_operator(pairs[:2], 3, sizes=[3, 9], heldout_pairs=pairs[2:])
    residuals = est.check["interior_rms_levels_by_kernel_size_heldout"]
    assert est.kernel_size == 9 and residuals["9"] < 0.35 < residuals["3"]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_degradations_convention_has_zero_offset_and_matches_blur_and_decimate(rng, scale):
    """``degradations``' kernel_shift puts a symmetric kernel on MATLAB's grid; the operator
    with the mirrored-without-edge border is ``blur_and_decimate``."""
    kernel = make_kernel(1.2, size=4 * scale + 3, shift=kernel_shift(scale))
    op = operator_from_kernel(kernel, scale, border="reflect")
    assert op.offset == pytest.approx((0.0, 0.0), abs=1e-3)  # truncation: 5e-5 at x2
    hr = rng.random((12 * scale, 10 * scale, 3))
    ours = apply_operator(hr, op, quantise=False)
    np.testing.assert_allclose(ours, blur_and_decimate(hr, scale, kernel), atol=1e-5)


def test_json_round_trip_is_exact_and_reviewable(tmp_path):
    op = operator_from_kernel(
        _shifted_kernel(3, 1.0, 0.0), 3, bias=-0.002, source="test", check={"psnr_db": 55.0}
    )
    path = save_operator(op, tmp_path / "op.json")
    loaded = load_operator(path)
    assert loaded == op and loaded.check == {"psnr_db": 55.0}
    data = json.loads(path.read_text())
    assert data["offset"] == pytest.approx(list(op.offset)) and abs(data["offset"][0] - 1) < 0.05
    assert data["kernel_size"] == 9 and len(data["kernel"]) == 9
    assert all(isinstance(v, float) for row in data["kernel"] for v in row)
    assert path.read_text().count("\n") < 40  # one line per kernel row, not per tap


@pytest.fixture
def operator_file(tmp_path):
    op = operator_from_kernel(_shifted_kernel(2, 0.5, 0.5), 2, source="test")
    return save_operator(op, tmp_path / "op_x2.json"), op


@pytest.fixture
def hr_dir(tmp_path, rng):
    folder = tmp_path / "hr"
    for stem in ("a", "b"):
        write_image(folder / f"{stem}.png", rng.random((26, 24, 3)).astype(np.float32))
    return folder


def test_degrade_with_an_operator_file(tmp_path, hr_dir, operator_file, capsys):
    path, op = operator_file
    out = tmp_path / "lr"
    assert main(["degrade", str(hr_dir), str(out), "--operator", str(path)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ax2.png", "bx2.png", "degradation.json"]
    expected = apply_operator(read_image(hr_dir / "a.png"), op)
    np.testing.assert_array_equal(read_image(out / "ax2.png"), expected)
    record = json.loads((out / "degradation.json").read_text())
    assert record["operator"]["kernel"] == [list(r) for r in op.kernel]
    assert "x2, operator" in capsys.readouterr().out
    # the agreeing --scale is accepted; existing outputs are refused without --force
    assert main(["degrade", str(hr_dir), str(out), "--operator", str(path), "--scale", "2"]) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scale", "3"], "--scale 3 contradicts --operator"),
        (["--track", "bicubic"], "--operator and --track exclude each other"),
    ],
)
def test_degrade_operator_option_conflicts_are_refused(
    tmp_path, hr_dir, operator_file, capsys, extra, message
):
    out = tmp_path / "lr"
    assert (
        main(["degrade", str(hr_dir), str(out), "--operator", str(operator_file[0]), *extra]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def _good_dict():
    return operator_from_kernel(_shifted_kernel(2, 0.5, 0.5), 2).to_dict()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        (json.dumps({"kernel": [[1.0]]}), "not an amls2 operator file"),
        (json.dumps({**_good_dict(), "version": 99}), "version 99 not supported"),
        (json.dumps({k: v for k, v in _good_dict().items() if k != "kernel"}), "lacks ['kernel']"),
        (json.dumps({**_good_dict(), "kernel": [[0.5, 0.5]]}), "must be square with odd size"),
        (json.dumps({**_good_dict(), "kernel": [[1.0, "x"]]}), "lists of numbers"),
        (json.dumps({**_good_dict(), "kernel": [[5.0]]}), "sums to 5"),
        (json.dumps({**_good_dict(), "decimation_start": 2}), "decimation_start 2"),
        (json.dumps({**_good_dict(), "border": "wrap"}), "border 'wrap'"),
        (json.dumps({**_good_dict(), "scale": "2"}), "must be integers"),
    ],
)
def test_a_bad_operator_file_is_one_line_and_exit_2(tmp_path, hr_dir, capsys, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "lr"
    assert main(["degrade", str(hr_dir), str(out), "--operator", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and "\n" not in err
    assert not out.exists()


def _div2k_tree(root, rng, op, *, n_train=4, size=60):
    """A DIV2K-shaped tree whose train LR is made by ``op``; the valid LR is of the wrong size,
    so reading the valid split would fail."""
    s = op.scale
    for split, count in (("train", n_train), ("valid", 1)):
        for i in range(count):
            stem = f"{i + 1:04d}" if split == "train" else "0801"
            hr = rng.random((size, size + 12, 3)).astype(np.float32)
            write_image(root / f"DIV2K_{split}_HR" / f"{stem}.png", hr)
            lr = apply_operator(read_image(root / f"DIV2K_{split}_HR" / f"{stem}.png"), op)
            lr = lr if split == "train" else lr[:-1]
            write_image(root / f"DIV2K_{split}_LR_unknown" / f"X{s}" / f"{stem}x{s}.png", lr)


def test_estimate_operator_command_reads_only_the_train_split(tmp_path, rng, capsys):
    truth = operator_from_kernel(_shifted_kernel(2, 0.5, 0.5), 2)
    _div2k_tree(tmp_path / "Pairs", rng, truth)
    out = tmp_path / "est.json"
    argv = ["estimate-operator", "Pairs", "--scale", "2", "--out", str(out)]
    argv += ["--data-dir", str(tmp_path), "--holdout-every", "2", "--kernel-sizes", "7"]
    assert main(argv) == 0
    est = load_operator(out)
    assert est.offset == pytest.approx(truth.offset, abs=0.01)
    assert est.check["heldout_pairs"] == 2 and est.check["remade_heldout"]["psnr_db"] > 50
    assert (
        f"offset (dy, dx) = ({est.offset[0]:+.3f}, {est.offset[1]:+.3f})" in capsys.readouterr().out
    )
    assert main(argv) == 2  # an existing --out is kept
    assert "already exists" in capsys.readouterr().err


def test_remake_report_measures_added_noise(rng):
    op = operator_from_kernel(_shifted_kernel(2, 0.0, 0.0), 2)
    pairs = []
    for hr in _hr_images(rng):
        lr = apply_operator(hr, op, quantise=False)
        noisy = np.clip(lr + rng.normal(0, 3 / 255, lr.shape), 0, 1)
        pairs.append((hr, np.floor(noisy * 255 + 0.5) / 255))
    report = remake_report(pairs, op)
    assert report["noise_sigma_levels"] == pytest.approx(3.0, rel=0.1)
    assert report["psnr_db"] < 40


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_track2sim_operators_remake_held_out_lr(shared_data, scale):
    """The shipped operator re-makes a held-out Track2sim train LR image to within uint8
    quantisation (the 10th train pair is held out of the fit)."""
    if not (shared_data / "Track2sim").is_dir():
        pytest.skip(f"Track2sim not found under {shared_data}")
    op = load_operator(shipped_operator_path("track2sim", scale))
    assert isinstance(op, Operator) and op.scale == scale
    assert op.check["remade_heldout"]["psnr_db"] >= 50
    root = shared_data / "Track2sim"
    hr = read_image(root / "DIV2K_train_HR" / "0010.png")
    lr = read_image(root / "DIV2K_train_LR_unknown" / f"X{scale}" / f"0010x{scale}.png")
    report = remake_report([(hr, lr)], op)
    assert report["psnr_db"] >= 50 or math.isinf(report["psnr_db"])
