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


def _conv_stack(kernels, *, channels=3, upsample=1, seed=0):
    """Sequential 'same' convs with random weights, then optional nearest upsampling."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    inp = keras.Input((None, None, channels))
    x = inp
    for k in kernels:
        layer = keras.layers.Conv2D(channels, k, padding="same")
        x = layer(x)
        layer.set_weights(
            [rng.normal(0, 0.2, (k, k, channels, channels)), rng.normal(0, 0.1, channels)]
        )
    if upsample > 1:
        x = keras.layers.UpSampling2D(upsample)(x)
    return keras.Model(inp, x)


@pytest.fixture
def conv_stack():
    """``conv_stack(kernels, upsample=1, seed=0)``: a small model of known receptive field."""
    return _conv_stack


@pytest.fixture
def renamed(monkeypatch) -> list[str]:
    """The file names ``os.replace`` moves into place, in order (atomic writes end with it)."""
    names: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        names.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    return names
