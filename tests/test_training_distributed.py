"""Multi-worker training: two worker processes on 127.0.0.1 (TF_CONFIG, free ports) end with
identical weights, equal to a single-process run on the same global batch; only the chief writes.
The same through ``amls2 train --cluster ... --task-index I`` with TF_CONFIG unset.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def write_synthetic_set(folder: Path, count: int, shape, seed: int) -> None:
    """Smooth random colour PNGs (as in test_training; test files do not import each other)."""
    from amls2.imaging import images, resize

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((shape[0] // 8, shape[1] // 8, 3))
        images.write_image(
            folder / f"img{i}.png", np.clip(resize.imresize(small, output_shape=shape), 0, 1)
        )


# One training job, parametrised by its output folder and the file to dump the final weights to.
_WORKER = """
import sys
import numpy as np
from amls2.training import DataConfig, OptimConfig, TrainConfig, train
data, out_dir, weights_file = sys.argv[1:4]
config = TrainConfig(
    model="espcn", variant="tiny", scale=2,
    data=DataConfig(train_sets=(data + "/train",), val_sets=(data + "/val",),
                    patch_size=16, batch_size=4),
    optim=OptimConfig(learning_rate=1e-3),
    epochs=2, steps_per_epoch=6, steps_per_execution=3, checkpoint_every=6, out_dir=out_dir,
    precision="float32",  # exact comparison; "auto" picks bfloat16 on some CPUs
)
result = train(config, progress=False)
np.savez(weights_file, *result.model.get_weights())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(data: Path, out_dir: Path, weights: Path, tf_config: dict | None) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(data), str(out_dir), str(weights)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> None:
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"worker timed out:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]


def test_two_workers_match_each_other_and_a_single_process_run(tmp_path):
    data = tmp_path / "data"
    write_synthetic_set(data / "train", 4, (48, 40), seed=0)
    write_synthetic_set(data / "val", 2, (24, 24), seed=1)
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [
        start(
            data,
            tmp_path / f"run{i}",
            tmp_path / f"worker{i}.npz",
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    single = start(data, tmp_path / "single", tmp_path / "single.npz", None)
    for process in [*workers, single]:
        finish(process)

    w0, w1, ref = (np.load(tmp_path / f"{n}.npz") for n in ("worker0", "worker1", "single"))
    assert w0.files == w1.files == ref.files and w0.files
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
        # Same global batch, split 2 + 2 between workers: equal up to summation order.
        np.testing.assert_allclose(w0[key], ref[key], rtol=0, atol=1e-6)
    # Only the chief (worker 0) wrote outputs.
    assert (tmp_path / "run0" / "history.csv").is_file()
    assert (tmp_path / "run0" / "espcn-tiny_x2_bicubic.keras").is_file()
    assert not any((tmp_path / "run1").iterdir())


def train_cli(data: Path, out_dir: Path, *cluster_options: str) -> subprocess.Popen:
    """``python -m amls2 train`` on the tiny config above, TF_CONFIG unset."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    argv = [
        *("--model", "espcn", "--variant", "tiny", "--scale", "2", "--track", "bicubic"),
        *("--train-set", str(data / "train"), "--val-set", str(data / "val"), "--holdout", "0"),
        *("--patch-size", "16", "--batch-size", "4", "--lr", "1e-3", "--precision", "float32"),
        *("--epochs", "2", "--steps-per-epoch", "6", "--steps-per-execution", "3"),
        *("--checkpoint-every", "6", "--out-dir", str(out_dir), "--no-progress"),
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "amls2", "train", *argv, *cluster_options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cluster_option_runs_two_workers_like_a_single_process(tmp_path):
    data = tmp_path / "data"
    write_synthetic_set(data / "train", 4, (48, 40), seed=0)
    write_synthetic_set(data / "val", 2, (24, 24), seed=1)
    cluster = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    workers = [
        train_cli(data, tmp_path / f"run{i}", "--cluster", cluster, "--task-index", str(i))
        for i in range(2)
    ]
    single = train_cli(data, tmp_path / "single")
    for process in [*workers, single]:
        finish(process)

    # Only the chief (worker 0) wrote outputs: the model, its config and its history.
    run0, single_dir = tmp_path / "run0", tmp_path / "single"
    for name in ("config.json", "history.csv", "espcn-tiny_x2_bicubic.keras"):
        assert (run0 / name).is_file(), name
    assert not any((tmp_path / "run1").iterdir())
    config0 = json.loads((run0 / "config.json").read_text())
    config1 = json.loads((single_dir / "config.json").read_text())
    assert config0.pop("out_dir") != config1.pop("out_dir")
    assert config0 == config1

    # The final weights equal the single-process run's, as with TF_CONFIG above.
    w0 = np.load(run0 / "checkpoints" / "last.npz")
    ref = np.load(single_dir / "checkpoints" / "last.npz")
    keys = [key for key in ref.files if key.startswith("model_")]
    assert keys and keys == [key for key in w0.files if key.startswith("model_")]
    for key in keys:
        np.testing.assert_allclose(w0[key], ref[key], rtol=0, atol=1e-6)
