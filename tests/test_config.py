"""Config paths, validation and the JSON round-trip of frozen dataclasses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from amls2.config import (
    check_scale,
    check_track,
    data_root,
    from_dict,
    from_json,
    load_config,
    save_config,
    to_json,
)
from amls2.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    milestones: tuple[int, ...] = (10, 20)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    out: Path = Path("runs")
    inner: Inner = Inner()
    teacher: str | None = None
    sets: tuple[str, ...] = ("T91",)


def test_round_trip_keeps_types():
    config = Outer(name="fd_srcnn", out=Path("/tmp/x"), inner=Inner(lr=0.5, milestones=(1, 2, 3)))
    again = from_json(Outer, to_json(config))
    assert again == config
    assert isinstance(again.out, Path)
    assert isinstance(again.inner.milestones, tuple)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="learning_rat"):
        from_dict(Outer, {"name": "x", "learning_rat": 1})


def test_invalid_json_is_config_error():
    with pytest.raises(ConfigError, match="invalid JSON"):
        from_json(Outer, "{not json")


def test_save_and_load_file(tmp_path):
    path = save_config(Outer(name="a"), tmp_path / "sub" / "config.json")
    assert json.loads(path.read_text())["name"] == "a"
    assert load_config(Outer, path) == Outer(name="a")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="missing.json"):
        load_config(Outer, tmp_path / "missing.json")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("AMLS2_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("AMLS2_DATA")
    assert data_root() == Path("Datasets")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_valid_scales(scale):
    assert check_scale(scale) == scale


@pytest.mark.parametrize("scale", [1, 5, 2.5, "x"])
def test_invalid_scale_lists_valid(scale):
    with pytest.raises(ConfigError, match=r"\[2, 3, 4\]"):
        check_scale(scale)


def test_invalid_track_lists_valid():
    assert check_track("unknown") == "unknown"
    with pytest.raises(ConfigError, match="bicubic"):
        check_track("gaussian")
