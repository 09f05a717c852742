"""Paths, the tracks and scales the project knows, and typed job configs saved as JSON.

Every job (degrade, prepare, train, evaluate, upscale) takes one frozen dataclass; ``to_json`` /
``from_json`` round-trip it so that the exact config can be stored next to every output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from amls2.errors import ConfigError
from amls2.fileio import atomic_write_json

TRACKS: tuple[str, ...] = ("bicubic", "unknown")
# Shipped weight sets (folders of Selected_models/) and the track each one's models are for.
# "unknown" models are blind: trained on random degradations (the stand-in), for images of
# unknown origin. "track2sim" models learned ONE fixed operator per scale from the Track2sim
# pairs, as NTIRE 2017 Track 2 asks; they fit that operator only.
WEIGHT_SETS: dict[str, str] = {"bicubic": "bicubic", "unknown": "unknown", "track2sim": "unknown"}
SCALES: tuple[int, ...] = (2, 3, 4)
# What a model eats (``amls2.models``): the LR image itself, or its MATLAB-exact bicubic upscale.
INPUT_KINDS: tuple[str, ...] = ("lr", "bicubic")
DATA_ENV_VAR = "AMLS2_DATA"
DEFAULT_DATA_DIR = Path("Datasets")
# The repository root (the folder holding the package), used to find shipped weights and recipes.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SELECTED_MODELS_DIR = PROJECT_ROOT / "Selected_models"
# The shipped training recipes (package data).
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

T = TypeVar("T")


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$AMLS2_DATA``, else ``./Datasets``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR


def check_scale(scale: int, allowed: tuple[int, ...] = SCALES) -> int:
    """Return ``scale`` as an int, or raise naming the valid scales."""
    try:
        value = int(scale)
    except (TypeError, ValueError):
        raise ConfigError(f"--scale {scale!r}: not an integer; valid: {list(allowed)}") from None
    if value != scale or value not in allowed:
        raise ConfigError(f"--scale {scale!r}: unsupported; valid: {list(allowed)}")
    return value


def _check_choice(value: str, valid, what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise naming ``what`` and the choices."""
    if value not in valid:
        raise ConfigError(f"{what} {value!r}: unknown; valid: {list(valid)}")
    return value


def check_track(track: str) -> str:
    """Return ``track``, or raise naming the valid tracks."""
    return _check_choice(track, TRACKS, "--track")


def check_input_kind(input_kind: str) -> str:
    """Return ``input_kind``, or raise naming the valid input kinds."""
    return _check_choice(input_kind, INPUT_KINDS, "input_kind")


def check_weights_set(weights_set: str) -> str:
    """Return ``weights_set``, or raise naming the valid weight sets."""
    return _check_choice(weights_set, WEIGHT_SETS, "weights set")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (Paths as strings, tuples as lists)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return convert(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build the dataclass ``cls`` from a dict, rebuilding nested dataclasses, tuples and Paths.

    Unknown keys are an error naming them, so that a typo in a JSON config is not ignored.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown option(s) {unknown}; valid: {sorted(names)}")
    kwargs = {key: _coerce(hints[key], value) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def _coerce(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    if hint is Path:
        return Path(value)
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        return tuple(_coerce(a, v) for a, v in zip(args, value, strict=False))
    if origin is dict and isinstance(value, dict):
        return dict(value)
    return value


def to_json(config: Any) -> str:
    """The config as indented JSON text."""
    return json.dumps(to_dict(config), indent=2)


def from_json(cls: type[T], text: str) -> T:
    """Parse JSON text into the dataclass ``cls``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cls.__name__}: invalid JSON ({exc})") from None
    return from_dict(cls, data)


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write ``config`` as JSON to ``path`` atomically."""
    return atomic_write_json(path, to_dict(config))


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read a JSON config file into ``cls``, with errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        return from_json(cls, text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
