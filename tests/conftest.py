"""Shared test fixtures. Tests are CPU-only and small; tests that need the shared datasets skip
with a reason when ``$AMLS2_DATA`` does not point at them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests only: keep TensorFlow's C++ logging and oneDNN noise out of the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _shared_data_root() -> Path | None:
    env = os.environ.get("AMLS2_DATA")
    if not env:
        return None
    root = Path(env)
    return root if (root / "Set5" / "HR").is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared datasets folder (Set5, Set14, T91, BSD200), or skip with a reason."""
    root = _shared_data_root()
    if root is None:
        pytest.skip("shared datasets not found: set AMLS2_DATA=../shared/datasets (needs Set5/HR)")
    return root


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
