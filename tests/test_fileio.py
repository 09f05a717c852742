"""Atomic writes: the target appears whole or not at all, and nothing is left behind."""

from __future__ import annotations

import json

import pytest

from amls2.errors import Amls2Error
from amls2.fileio import atomic_path, atomic_write_json, atomic_write_text


def test_write_text_creates_parents(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert path.read_text() == "hello"
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.txt"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_refuses_to_overwrite_when_asked(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("{}")
    with pytest.raises(Amls2Error, match="x.json"):
        atomic_write_json(target, {"a": 1}, overwrite=False)
    assert target.read_text() == "{}"


def test_temp_file_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras"
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_json_writes_non_finite_as_strings(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"psnr": float("inf"), "x": [float("nan"), 1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"psnr": "inf", "x": ["nan", 1.5]}


def test_new_files_get_the_default_mode_and_replaced_files_keep_theirs(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.txt", "a")
        assert fresh.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)
