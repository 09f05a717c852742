"""Where shipped weights live, and resolving a model name to an ``inference.Upscaler``.

Shipped weights: ``Selected_models/<weights set>/<name>_x<scale>.keras``, a JSON sidecar beside
(``.json``) and the training history (``.history.csv``); the weight sets are
``config.WEIGHT_SETS`` (``bicubic``, ``unknown`` = blind, ``track2sim`` = one fixed operator).
Every other module asks this one for those paths, for the recipe that trains a weight set's
model (``recipe_name``) and for the command to run when weights are missing (``train_hint``).

:func:`load_upscaler` turns what a user types (``bicubic``, a registry name, ``NAME@SET``, a
``.keras``/``.h5`` path) into an ``Upscaler``. The model registry (and so TensorFlow) is imported
only when a name is not ``bicubic``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from amls2 import config as amls2_config
from amls2.config import check_input_kind
from amls2.errors import MissingWeightsError, ModelError
from amls2.inference.model_call import model_channels, run_batch
from amls2.inference.upscaler import Upscaler

BICUBIC = "bicubic"
# Weight files load_upscaler accepts as a path.
WEIGHT_SUFFIXES: tuple[str, ...] = (".keras", ".h5")
HISTORY_SUFFIX = ".history.csv"


@dataclasses.dataclass(frozen=True)
class Missing:
    """Shipped weights that are not there (``track``: the weight set), and the command that
    trains them."""

    track: str
    model: str
    scale: int
    path: Path
    hint: str


def weights_root(weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the weight sets: ``weights_dir``, or the repository's ``Selected_models``."""
    return Path(weights_dir) if weights_dir else amls2_config.SELECTED_MODELS_DIR


def weight_set_dir(weights_set: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder of one weight set: ``<weights_dir>/<weights set>`` (``config.WEIGHT_SETS``)."""
    return weights_root(weights_dir) / weights_set


def shipped_weights_path(
    name: str, *, scale: int, weights_set: str, weights_dir: str | os.PathLike | None = None
) -> Path:
    """Where the shipped weights of registry model ``name`` live:
    ``<weights_dir>/<weights set>/<name>_x<scale>.keras`` (default ``Selected_models``)."""
    return weight_set_dir(weights_set, weights_dir) / f"{name}_x{scale}.keras"


def history_path(
    name: str, *, scale: int, weights_set: str, weights_dir: str | os.PathLike | None = None
) -> Path:
    """The training history shipped beside the weights: ``<name>_x<scale>.history.csv``."""
    path = shipped_weights_path(name, scale=scale, weights_set=weights_set, weights_dir=weights_dir)
    return path.with_name(path.stem + HISTORY_SUFFIX)


def shipped_models(weights_set: str, weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Registry models with at least one ``<model>_x<s>.keras`` in the weight set's folder."""
    from amls2 import models  # the registry imports TensorFlow

    folder = weight_set_dir(weights_set, weights_dir)
    if not folder.is_dir():
        return []
    names = models.model_names()
    found = {p.stem.rsplit("_x", 1)[0] for p in folder.glob("*_x*.keras")}
    return [n for n in names if n in found]


def recipe_name(name: str, *, scale: int, weights_set: str) -> str:
    """The shipped recipe of a weight set's model: ``<name>_x<s>`` for bicubic, else
    ``<name>_x<s>_<weights set>`` (``edsr_x2_unknown``, ``edsr_x2_track2sim``)."""
    return f"{name}_x{scale}" + ("" if weights_set == "bicubic" else f"_{weights_set}")


def train_hint(name: str, *, scale: int, weights_set: str) -> str:
    """The command that trains the missing weights: the shipped recipe when there is one, else
    explicit options."""
    recipe = recipe_name(name, scale=scale, weights_set=weights_set)
    recipe_file = amls2_config.RECIPES_DIR / f"{recipe}.json"
    if recipe_file.is_file():
        return f"amls2 train --recipe {recipe}"
    track = amls2_config.WEIGHT_SETS[weights_set]
    return f"amls2 train --model {name} --scale {scale} --track {track}"


def missing_weights(
    models: Sequence[str],
    *,
    scales: Sequence[int],
    weights_set: str,
    weights_dir: str | os.PathLike | None = None,
) -> list[Missing]:
    """Every (model, scale) of ``models`` x ``scales`` without shipped weights in the weight set."""
    missing = []
    for model in models:
        for scale in scales:
            path = shipped_weights_path(
                model, scale=scale, weights_set=weights_set, weights_dir=weights_dir
            )
            if not path.is_file():
                hint = train_hint(model, scale=scale, weights_set=weights_set)
                missing.append(Missing(weights_set, model, scale, path, hint))
    return missing


def missing_summary(missing: Sequence[Missing]) -> list[str]:
    """One line per (track, model): the scales without weights and the commands that train them."""
    grouped: dict[tuple[str, str], list[Missing]] = {}
    for item in missing:
        grouped.setdefault((item.track, item.model), []).append(item)
    lines = []
    for (track, model), items in grouped.items():
        scales = " ".join(f"x{m.scale}" for m in items)
        hints = "; ".join(dict.fromkeys(m.hint for m in items))
        folder = items[0].path.parent
        lines.append(f"{model} ({track}) {scales}: no weights in {folder}; train: {hints}")
    return lines


def missing_markdown(missing: Sequence[Missing]) -> str:
    """A markdown note for notebooks: the skipped models and what trains them, or "all found"."""
    if not missing:
        return "All shipped weights found."
    lines = "\n".join(f"- {line}" for line in missing_summary(missing))
    return f"**Missing shipped weights** (skipped):\n\n{lines}\n"


def looks_like_path(name_or_path: str) -> bool:
    """Whether a ``--model`` value names a file (a weights suffix or a path separator)."""
    return (
        Path(name_or_path).suffix.lower() in WEIGHT_SUFFIXES
        or os.sep in name_or_path
        or (os.altsep is not None and os.altsep in name_or_path)
    )


def load_upscaler(
    name_or_path: str | os.PathLike,
    *,
    scale: int,
    track: str = "bicubic",
    weights_dir: str | os.PathLike | None = None,
) -> Upscaler:
    """Resolve NAME_OR_PATH into an ``Upscaler``.

    * ``"bicubic"``: the MATLAB-exact interpolation baseline;
    * a registry name: its shipped weights ``<weights_dir>/<track>/<name>_x<scale>.keras``
      (default ``Selected_models``; MissingWeightsError naming the missing file and the
      ``amls2 train`` command that makes it);
    * ``"<name or path>@<weights set>"``, e.g. ``"srcnn@bicubic"``: weights of another set
      (``config.WEIGHT_SETS``: bicubic, unknown = blind, track2sim = learned from the Track2sim
      pairs), run on ``track`` data (to measure what training for the data gains);
    * a ``.keras`` / ``.h5`` path: loaded with ``amls2.models.io.load_model``, which raises if the
      sidecar's scale or track differ from the requested ones.
    """
    scale = amls2_config.check_scale(scale)
    track = amls2_config.check_track(track)
    text = str(name_or_path)
    if text == BICUBIC:
        return Upscaler(name=BICUBIC, scale=scale, track=track, input_kind="lr", source=BICUBIC)
    from amls2 import models  # the registry imports TensorFlow: not for bicubic

    base, weights_track = _split_weights_track(text, track)
    if not looks_like_path(base) and base in models.model_names():
        path = shipped_weights_path(
            base, scale=scale, weights_set=weights_track, weights_dir=weights_dir
        )
        if not path.is_file():
            hint = train_hint(base, scale=scale, weights_set=weights_track)
            raise MissingWeightsError(
                f"{path}: shipped weights for {base!r} x{scale} ({weights_track}) are missing; "
                f"train them with `{hint}`"
            )
        return _load_weights(path, scale=scale, weights_track=weights_track, track=track, name=text)
    path = Path(base).expanduser()
    if path.suffix.lower() in WEIGHT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"{path}: weights file not found")
        name = text if base != text else None
        return _load_weights(path, scale=scale, weights_track=weights_track, track=track, name=name)
    valid = [BICUBIC, *models.model_names()]
    raise ModelError(
        f"--model {text!r}: not a model name or a .keras/.h5 file; valid names: {valid}"
    )


def _split_weights_track(text: str, track: str) -> tuple[str, str]:
    """``"srcnn@bicubic"`` -> ("srcnn", "bicubic"); without a suffix -> (text, track): the weight
    set named like the data's track (for ``unknown``, the blind models)."""
    from amls2 import models

    base, at, suffix = text.rpartition("@")
    if not at or not (base in models.model_names() or looks_like_path(base)):
        return text, track
    if suffix not in amls2_config.WEIGHT_SETS:
        raise ModelError(
            f"--model {text!r}: unknown weights set {suffix!r} after '@'; "
            f"valid: {list(amls2_config.WEIGHT_SETS)}"
        )
    return base, suffix


def _load_weights(
    path: Path, *, scale: int, weights_track: str, track: str, name: str | None
) -> Upscaler:
    """The weights at ``path`` (their sidecar must say the track of weight set
    ``weights_track``), to run on ``track`` data."""
    from amls2.models import get_spec
    from amls2.models.io import load_model

    model, sidecar = load_model(path, scale=scale, track=amls2_config.WEIGHT_SETS[weights_track])
    sidecar = dict(sidecar or {})
    if sidecar.get("scale") is None:
        _check_model_scale(model, path, scale)
    model_name = sidecar.get("model") or sidecar.get("name") or name
    input_kind = sidecar.get("input_kind")
    if input_kind is None and model_name:
        try:
            input_kind = get_spec(model_name).input_kind
        except ModelError:  # an unknown name in an old sidecar is not fatal
            input_kind = None
    if input_kind is None:
        input_kind = _guess_input_kind(model, scale)
    return Upscaler(
        name=name or path.stem,
        scale=scale,
        track=track,
        input_kind=check_input_kind(input_kind),
        model=model,
        sidecar=sidecar,
        source=str(path),
    )


def _check_model_scale(model, path: Path, scale: int) -> None:
    """With no sidecar to say it, measure the factor the model upsamples by: a model of another
    scale would otherwise fail later with a shape message that does not say why."""
    probe = np.zeros((1, 8 * scale, 8 * scale, model_channels(model)), dtype=np.float32)
    factor = run_batch(model, probe, fast=False).shape[1] / probe.shape[1]
    if factor not in (1, scale):  # 1: a "bicubic"-input model, whose scale cannot be seen
        raise ModelError(
            f"{path}: the model upsamples by x{factor:g}, not x{scale} as asked (--scale "
            f"{scale}); it has no sidecar {path.with_suffix('.json').name} giving its scale"
        )


def _guess_input_kind(model, scale: int) -> str:
    """Input kind from the model itself: output `scale` times larger -> "lr", same size -> "bicubic"."""
    probe = np.zeros((1, 8 * scale, 8 * scale, model_channels(model)), dtype=np.float32)
    out = run_batch(model, probe, fast=False)
    return "lr" if out.shape[1] == probe.shape[1] * scale else "bicubic"
