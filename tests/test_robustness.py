"""The robustness sweep of the blind models: the cases, their trained-range flags, the rows."""

from __future__ import annotations

import numpy as np
import pytest

from amls2.data import pairing
from amls2.data.degradations import DEFAULT_SPEC, kernel_shift
from amls2.evaluation import robustness
from amls2.inference.upscaler import Upscaler


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cases_cover_every_family_and_flag_the_trained_range(scale):
    cases = robustness.sweep_cases(scale)
    by_family = {}
    for case in cases:
        by_family.setdefault(case.family, []).append(case)
    assert list(by_family) == ["blur", "anisotropic", "noise", "jpeg", "shift"]
    lo, hi = DEFAULT_SPEC.sigma_range(scale)
    blur = by_family["blur"]
    assert [c.value for c in blur] == [round(hi * f, 3) for f in robustness.SIGMA_FRACTIONS]
    assert [c.in_training_range for c in blur] == [lo <= c.value <= hi for c in blur]
    assert not blur[-1].in_training_range  # 1.5x the largest training sigma
    assert [c.in_training_range for c in by_family["noise"]] == [True, True, True, False, False]
    assert [c.in_training_range for c in by_family["jpeg"]] == [True, True, True, False, False]
    assert not any(c.in_training_range for c in by_family["shift"])
    shift = by_family["shift"][0].params
    assert shift["kernel_shift"] == kernel_shift(scale) + 0.5


def test_sweep_rows_give_zero_gain_for_bicubic_itself():
    """An upscaler that IS bicubic interpolation (an untrained image-skip model) gains 0 dB on
    every case; the table and the in-range check report it."""
    from amls2.models import build_model

    model = build_model("espcn", 2, variant="tiny", image_skip="bicubic")
    upscaler = Upscaler(name="skip", scale=2, track="unknown", model=model)
    pairs = pairing.load_pairs("samples", scale=2, track="bicubic", limit=1)
    pairs = [robustness.dataclasses.replace(p, hr=p.hr[:64, :64]) for p in pairs]
    cases = robustness.sweep_cases(2)[:2]
    rows = robustness.run_sweep([upscaler], pairs, scale=2, cases=cases)
    assert [row["value"] for row in rows] == [0.2, 0.5]
    for row in rows:
        # Not exactly 0: the baseline rounds to uint8 after each resize pass, as MATLAB does on
        # uint8 images, and the float skip does not (up to 0.05 dB on this 64 px crop).
        assert row["skip"] == pytest.approx(0.0, abs=0.05) and np.isfinite(row["bicubic_psnr"])
    table = robustness.sweep_markdown(rows, ["skip"]).splitlines()
    assert table[0].startswith("| degradation | value | trained range |") and len(table) == 4
    worse = [{**rows[0], "skip": -0.1}, {**rows[1], "in_training_range": False, "skip": -1.0}]
    assert robustness.below_bicubic_in_range(worse, ["skip"]) == ["skip at blur 0.2"]
