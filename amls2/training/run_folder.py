"""A training run's folder: its checkpoints (kept with the one before, for a fallback), the
config that decides whether a rerun resumes, the history CSV and TensorBoard scalars (the machine
facts of the sidecar: ``amls2.machine``). Only the chief writes here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from amls2.config import to_dict
from amls2.errors import ConfigError
from amls2.fileio import atomic_path, atomic_write_json, atomic_write_text
from amls2.training.config import TrainConfig

log = logging.getLogger(__name__)

HISTORY_FIELDS: tuple[str, ...] = (
    "epoch",
    "step",
    "loss",
    "learning_rate",
    "val_psnr",
    "val_ssim",
    "seconds",
    "patches_per_second",
)
CHECKPOINT_NAME = "checkpoints/last.npz"
# The checkpoint before the last, kept until a new one is complete: the fallback when the last one
# cannot be read (a full disk, a file system that lost the last write, a truncated copy).
PREVIOUS_CHECKPOINT_NAME = "checkpoints/prev.npz"
HISTORY_NAME = "history.csv"
CONFIG_NAME = "config.json"
TENSORBOARD_DIR = "tensorboard"


# ----------------------------------------------------------------------------- checkpoints


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``prev.npz`` beside ``last.npz``."""
    return path.with_name("prev" + path.suffix)


def save_checkpoint(path: Path, model, optimizer, best_weights, state: dict[str, Any]) -> None:
    """Weights, optimiser state, best weights and the loop state in one atomically written npz.

    The new file is complete on disk before the old one moves to :func:`previous_checkpoint`
    and the new one takes its place.
    """
    arrays = {f"model_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.weights)}
    arrays.update({f"opt_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    for i, w in enumerate(best_weights or []):
        arrays[f"best_{i}"] = w
    arrays["state"] = np.array(json.dumps(state))
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            if path.exists():
                os.replace(path, previous_checkpoint(path))
    except OSError as exc:  # a full disk, a file-size limit: the old checkpoints stay
        raise ConfigError(f"{path}: cannot write the checkpoint ({exc.strerror or exc})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_checkpoint(path: Path, model, optimizer) -> tuple[list | None, dict[str, Any]]:
    with np.load(path) as data:
        state = json.loads(str(data["state"]))
        for i, v in enumerate(model.weights):
            v.assign(data[f"model_{i}"])
        for i, v in enumerate(optimizer.variables):
            v.assign(data[f"opt_{i}"])
        n_best = sum(1 for key in data.files if key.startswith("best_"))
        best = [data[f"best_{i}"] for i in range(n_best)] if n_best else None
    return best, state


def _try_load_checkpoint(path: Path, model, optimizer):
    """(best_weights, state), or the reason the file cannot be used as a str."""
    if not path.exists():
        return "missing"
    try:
        return _load_checkpoint(path, model, optimizer)
    except Exception as exc:  # a cut or corrupt npz raises zip, zlib, EOF, key and value errors
        return _reason(exc)


def restore_checkpoint(path: Path, model, optimizer) -> tuple[list | None, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`; returns (best_weights, state).

    If ``path`` is missing or unreadable, the previous checkpoint is loaded instead with a
    warning; if that fails too, ConfigError names the file(s) and what to do.
    """
    loaded = _try_load_checkpoint(path, model, optimizer)
    if not isinstance(loaded, str):
        return loaded
    previous = previous_checkpoint(path)
    fallback = _try_load_checkpoint(previous, model, optimizer)
    if not isinstance(fallback, str):
        log.warning("%s: %s; resuming from the previous checkpoint %s", path, loaded, previous)
        return fallback
    if fallback == "missing":
        also = "and there is no previous one"
    else:
        also = f"nor from {previous} ({fallback})"
    raise ConfigError(
        f"{path}: cannot resume from it ({loaded}) {also}; use --force to start the run over"
    )


# ----------------------------------------------------------------------------- outputs


def _json_normalised(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _same_run(previous: Any, current: dict[str, Any]) -> bool:
    """Whether two config dicts describe one run. ``out_dir`` is left out: config.json lives in
    the out_dir, so ``runs/x``, ``./runs/x`` and ``/abs/runs/x`` all name this very folder."""
    if not isinstance(previous, dict):
        return False
    return {**previous, "out_dir": None} == {**current, "out_dir": None}


def prepare_out_dir(config: TrainConfig, out_dir: Path, *, force: bool, chief: bool) -> bool:
    """Check the output folder; return True if a checkpoint of the same run should be resumed.

    A folder holding a run with a different config is refused unless ``force`` (which starts
    over, deleting the old checkpoint). The chief writes ``config.json``.
    """
    config_path = out_dir / CONFIG_NAME
    checkpoint = out_dir / CHECKPOINT_NAME
    current = _json_normalised(to_dict(config))
    resume = same = False
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = None
        same = _same_run(previous, current)
        if not same and not force:
            raise ConfigError(
                f"{out_dir}: holds a run with a different {CONFIG_NAME}; "
                "use --force to start over there or choose another --out-dir"
            )
        resume = (
            same and not force and (checkpoint.exists() or previous_checkpoint(checkpoint).exists())
        )
    if chief:
        if force:
            # Start over: the old run's state and logs go; model files are replaced on save.
            checkpoint.unlink(missing_ok=True)
            previous_checkpoint(checkpoint).unlink(missing_ok=True)
            (out_dir / HISTORY_NAME).unlink(missing_ok=True)
            shutil.rmtree(out_dir / TENSORBOARD_DIR, ignore_errors=True)
        if force or not same:  # the same run keeps its config.json as first written
            atomic_write_json(config_path, current)
    return resume


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch ``history`` rows as CSV at ``path``, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    atomic_write_text(path, buffer.getvalue())


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite."""
    return None if value is None or not math.isfinite(value) else float(value)


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar via the core ``tf.summary.write`` (tensorboard itself, which
    ``tf.summary.scalar`` needs, is not a dependency); call inside ``writer.as_default()``."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)
