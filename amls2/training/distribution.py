"""Where a training run executes: the tf.distribute strategy (the only tf.distribute code with
the engine) and which worker writes the outputs.

``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster of several tasks (``amls2
train --cluster`` builds it, see :mod:`amls2.training.cluster`); ``MirroredStrategy`` over the
local GPUs when there are several; otherwise the default strategy (one GPU or the CPU).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from amls2.errors import ConfigError

log = logging.getLogger(__name__)


def _tf_config() -> dict[str, Any]:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError:
        raise ConfigError("TF_CONFIG: not valid JSON") from None


def _cluster_size(tf_config: dict[str, Any]) -> int:
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def make_strategy():
    """Multi-worker if TF_CONFIG names several tasks, Mirrored over >1 local GPUs, else default.

    Must run before any other TensorFlow work in the process (multi-worker requirement).
    """
    import tensorflow as tf

    if _cluster_size(_tf_config()) > 1:
        log.info("TF_CONFIG describes a cluster: MultiWorkerMirroredStrategy")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """True for the task that writes outputs: the chief, or worker 0 of a chief-less cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) if resolver is not None else None
    if not task_type or task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster
