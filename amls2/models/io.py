"""Saving and loading trained models with a JSON sidecar.

``save_model(model, "runs/x/weights.keras", {...})`` writes ``weights.keras`` atomically (Keras
native format, loadable with ``safe_mode=True``) and ``weights.json`` beside it, recording what
the weights are for: model name, hparams, scale, track, input kind and library versions.
``load_model`` reads either a ``.keras`` file or a legacy ``.h5`` file and refuses weights
trained for another scale or track than the one requested.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import keras

import amls2.models as zoo
from amls2.errors import ModelError
from amls2.fileio import atomic_paths, json_text
from amls2.models.layers import CUSTOM_OBJECTS

log = logging.getLogger(__name__)

MODEL_SUFFIXES: tuple[str, ...] = (".keras", ".h5")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of ``dir/<stem>.keras`` (or ``.h5``): ``dir/<stem>.json``."""
    return Path(path).with_suffix(".json")


def _versions() -> dict[str, str]:
    import tensorflow as tf

    return {"keras_version": keras.__version__, "tensorflow_version": tf.__version__}


def _default_sidecar(model: keras.Model) -> dict[str, Any]:
    """What is known about ``model`` without the caller's help: build_model's record, else the
    name and scale parsed from ``model.name`` (``"<name>_x<scale>"``)."""
    info = zoo.build_info(model)
    if info is not None:
        return {k: info[k] for k in ("name", "scale", "input_kind", "hparams", "variant")}
    match = re.fullmatch(r"(?P<name>.+)_x(?P<scale>\d+)", model.name)
    if not match:
        return {"name": model.name, "scale": None, "input_kind": None, "hparams": {}}
    name = match["name"]
    spec = zoo.MODELS.get(name)
    return {
        "name": name,
        "scale": int(match["scale"]),
        "input_kind": spec.input_kind if spec else None,
        "hparams": {},
    }


def save_model(
    model: keras.Model,
    path: str | os.PathLike,
    sidecar: dict[str, Any] | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write ``model`` to ``path`` (must end in ``.keras``) atomically, plus ``<stem>.json``.

    The sidecar holds at least name, hparams, scale, track, input_kind, keras_version and
    tensorflow_version; values in ``sidecar`` override the defaults (track defaults to None).
    With ``overwrite=False`` an existing file raises. Returns the ``.keras`` path.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"{path}: model files must end in .keras")
    meta = {"track": None, **_default_sidecar(model), **_versions(), **(sidecar or {})}
    if not overwrite and path.exists():
        raise ModelError(f"{path}: already exists (use --force to overwrite)")
    # Both files are written first, then renamed sidecar first: a reader never finds the model
    # without its sidecar, or beside the sidecar of the model it replaces.
    with atomic_paths(sidecar_path(path), path) as (side_tmp, model_tmp):
        side_tmp.write_text(json_text(meta), encoding="utf-8")
        model.save(model_tmp)
    log.debug("saved %s and %s", path, sidecar_path(path).name)
    return path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of model file ``path`` as a dict; {} with a warning when it is missing."""
    side = sidecar_path(path)
    if not side.is_file():
        log.warning("%s: no sidecar %s; scale/track cannot be checked", Path(path).name, side.name)
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: unreadable sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{side}: sidecar is not a JSON object")
    return data


def _check_sidecar(path: Path, sidecar: dict[str, Any], scale: int | None, track: str | None):
    side = sidecar_path(path).name
    if scale is not None and "scale" in sidecar and sidecar["scale"] != scale:
        raise ModelError(
            f"{path.name}: trained for x{sidecar['scale']} (sidecar {side}), not x{scale}"
        )
    if track is not None and "track" in sidecar and sidecar["track"] != track:
        raise ModelError(
            f"{path.name}: trained for track {sidecar['track']!r} (sidecar {side}), not {track!r}"
        )


def _load_keras_file(path: Path) -> keras.Model:
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras model file (not a zip archive)")
    try:
        if path.suffix == ".h5":
            # Legacy HDF5 (Keras 2 / model.save("x.h5")): custom layers by name.
            model = keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        else:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files; report one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load model ({first_line})") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"{path}: does not contain a Keras model")
    return model


def load_model(
    path: str | os.PathLike, *, scale: int | None = None, track: str | None = None
) -> tuple[keras.Model, dict[str, Any]]:
    """Load a ``.keras`` (safe_mode=True) or legacy ``.h5`` model and its sidecar.

    The sidecar is checked before the weights are read: ModelError naming the file if it was
    trained for a different ``scale`` or ``track`` than requested, or if the file is missing,
    unreadable or not a model. A missing sidecar gives ``{}`` and a warning.
    """
    path = Path(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: unknown model format; valid suffixes: {list(MODEL_SUFFIXES)}")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    sidecar = read_sidecar(path)
    _check_sidecar(path, sidecar, scale, track)
    return _load_keras_file(path), sidecar
