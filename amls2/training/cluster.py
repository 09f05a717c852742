"""``--cluster HOST:PORT,HOST:PORT --task-index I``: the ``TF_CONFIG`` of one worker process.

Pure functions, no TensorFlow and no environment changes: ``amls2 train`` sets ``TF_CONFIG`` to
what :func:`cluster_tf_config` returns before any TensorFlow work. Every task is a ``worker``;
worker 0 is the chief that writes the outputs (see :func:`amls2.training.distribution.is_chief`).
"""

from __future__ import annotations

import json

from amls2.errors import ConfigError


def parse_cluster(text: str) -> list[str]:
    """``"a:2222,b:2222"`` -> ``["a:2222", "b:2222"]``, ConfigError naming ``--cluster`` if bad.

    Each entry is ``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:2222``), the port a number in
    1..65535; at least two entries (one per worker), none listed twice.
    """
    entries = [part.strip() for part in text.split(",")]
    if any(not entry for entry in entries):
        raise ConfigError(f"--cluster {text!r}: empty entry; expected HOST:PORT,HOST:PORT,...")
    seen: dict[tuple[str, int], str] = {}
    result = []
    for entry in entries:
        host, colon, port = entry.rpartition(":")
        bad_host = not host or any(c.isspace() for c in host)
        if ":" in host and not (host.startswith("[") and host.endswith("]")):
            bad_host = True  # an IPv6 address without brackets: the port is ambiguous
        if not colon or bad_host or not (port.isascii() and port.isdigit()):
            raise ConfigError(f"--cluster: {entry!r} is not HOST:PORT (e.g. 10.0.0.1:2222)")
        number = int(port)
        if not 1 <= number <= 65535:
            raise ConfigError(f"--cluster: {entry!r}: port {number} is not in 1..65535")
        key = (host.lower(), number)
        if key in seen:
            raise ConfigError(f"--cluster: {entry!r} is listed twice (also as {seen[key]!r})")
        seen[key] = entry
        result.append(f"{host}:{number}")
    if len(result) < 2:
        raise ConfigError(
            f"--cluster {text!r}: needs at least 2 HOST:PORT entries, one per worker "
            "(on one machine, leave --cluster out)"
        )
    return result


def cluster_tf_config(
    cluster: str | None, task_index: int | None, existing_tf_config: str | None = None
) -> str | None:
    """The ``TF_CONFIG`` JSON for ``--cluster``/``--task-index``; None when neither is given.

    ``existing_tf_config`` is the current ``TF_CONFIG`` (of the environment): a user-set one is
    kept when the options are absent (None is returned), and refused when they are given.
    """
    if cluster is None and task_index is None:
        return None
    if cluster is None:
        raise ConfigError("--task-index: needs --cluster HOST:PORT,HOST:PORT,...")
    if task_index is None:
        raise ConfigError("--cluster: needs --task-index (this machine's position in the list)")
    if existing_tf_config and existing_tf_config.strip():
        raise ConfigError(
            "--cluster/--task-index: TF_CONFIG is also set; use one or the other "
            "(unset TF_CONFIG or drop the options)"
        )
    workers = parse_cluster(cluster)
    if not 0 <= task_index < len(workers):
        raise ConfigError(
            f"--task-index {task_index}: not in 0..{len(workers) - 1} "
            f"(one index per --cluster entry)"
        )
    return json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": task_index}}
    )
