"""Training throughput (patches per second): the amls2 engine vs a plain ``model.fit``, side by side.

engine: ``amls2.training.train`` (the tf.data pipeline, ``steps_per_execution`` steps per
compiled call, prefetch), once per ``--precision`` (float32, and mixed_bfloat16: bfloat16
compute with float32 weights, which AVX512-BF16/AMX CPUs run much faster). plain:
``model.compile(jit_compile=False)`` with the default ``steps_per_execution=1`` and
``model.fit`` on a Python generator of NumPy crops. Both use the same synthetic images, patch
size, global batch, Adam and L1 loss.

All variants are measured in one run, in ``--rounds`` interleaved rounds (plain and each engine
precision, in an order that rotates from round to round). Each measurement is a fresh run whose
first epoch (tracing, compilation) is not timed; the steps per epoch are chosen per model and
scale (from a short plain ``fit``) so that a float32 epoch lasts a few seconds, and the engine runs
its default 20 steps per compiled call. The CPU time that other processes used during each
measurement is printed ("others", in cores; Linux only). A variant's throughput is the mean of
its rounds in which others used at most ``BUSY_CORES``, so a burst of other work on a shared
machine spoils no result; if every round of a variant was disturbed, its best round is used and
its ratio is marked with ``*``. The header names the CPU
and its flags that matter here (AVX2, AVX-512, native bfloat16).

    python benchmarks/train_throughput.py [--quick] [--models fd_srcnn,srcnn] [--scales 2,4]
        [--precision float32,mixed_bfloat16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import timing  # noqa: E402

# (model, variant): fd_srcnn, srcnn, fsrcnn, EDSR baseline and the light model (RFDN small).
# CPU flags shown in the header: what float32 (AVX2, AVX-512) and bfloat16 (AVX512_BF16, AMX)
# training speed depends on.
# Other processes using more than this many cores during a measurement make it suspect.
BUSY_CORES = 0.2
MODELS = {
    "fd_srcnn": None,
    "srcnn": "915",
    "fsrcnn": None,
    "edsr": "baseline",
    "rfdn": "small",
}


def write_images(folder: Path, count: int, size: int, seed: int = 0) -> None:
    from amls2.imaging import images, resize

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((size // 8, size // 8, 3))
        img = np.clip(resize.imresize(small, output_shape=(size, size)), 0, 1)
        images.write_image(folder / f"img{i}.png", img)


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (``/proc/stat``), None where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """The CPU cores other processes kept busy during a ``with`` block (``cores``; None if
    unknown): machine-wide busy time minus this process's CPU time, over the wall time."""

    cores: float | None = None

    def __enter__(self):
        self._start = (_busy_seconds(), time.process_time(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy0, own0, wall0 = self._start
        busy, own, wall = _busy_seconds(), time.process_time(), time.perf_counter()
        if busy is not None and busy0 is not None and wall > wall0:
            self.cores = max(0.0, (busy - busy0 - (own - own0)) / (wall - wall0))
        return False


def engine_throughput(
    model, variant, scale, folder, *, patch, batch, steps, epochs, work, precision
) -> float:
    """Patches/s of ``amls2.training.train`` over ``epochs`` timed epochs of ``steps`` steps (20
    steps per compiled call, the default), after one untimed epoch."""
    from amls2.training import DataConfig, OptimConfig, TrainConfig, train

    config = TrainConfig(
        model=model,
        variant=variant,
        scale=scale,
        data=DataConfig(train_sets=(str(folder),), val_sets=(), patch_size=patch, batch_size=batch),
        optim=OptimConfig(learning_rate=1e-4, loss="l1"),
        epochs=1 + epochs,
        steps_per_epoch=steps,
        steps_per_execution=min(steps, 20),
        checkpoint_every=10 * steps * (1 + epochs),
        deterministic=False,
        precision=precision,
        out_dir=str(work / f"engine_{model}_x{scale}_{precision}"),
    )
    result = train(config, force=True, progress=False)
    timed = result.history[1:]
    return len(timed) * steps * batch / sum(row["seconds"] for row in timed)


def plain_throughput(model_name, variant, scale, folder, *, patch, batch, steps, epochs) -> float:
    """Patches/s of ``model.fit`` on NumPy crops over ``epochs`` timed epochs of ``steps``
    steps, after one untimed epoch."""
    import keras

    from amls2.data import pipeline
    from amls2.models import build_model, get_spec

    kind = get_spec(model_name).input_kind
    images = pipeline.load_training_images(
        [str(folder)], scale=scale, track="bicubic", with_bicubic=kind == "bicubic"
    )
    model = build_model(model_name, scale, variant=variant)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae", jit_compile=False)
    batches = pipeline.numpy_crop_batches(
        images, patch_size=patch, batch_size=batch, seed=0, input_kind=kind
    )

    class EpochTimer(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    timer.seconds = []
    model.fit(batches, steps_per_epoch=steps, epochs=1 + epochs, verbose=0, callbacks=[timer])
    return epochs * steps * batch / sum(timer.seconds[1:])


def epoch_steps(model_name, variant, scale, folder, *, patch, batch, seconds) -> int:
    """Steps per epoch (a multiple of 10, 10..300) for float32 epochs of about ``seconds``,
    from the step time of a short plain ``fit``: long enough that per-epoch and per-call costs
    do not decide a light model's ratio, short enough for a heavy model."""
    per_step = 1.0 / plain_throughput(
        model_name, variant, scale, folder, patch=patch, batch=batch, steps=5, epochs=1
    )
    return int(min(300, max(10, 10 * math.ceil(seconds / (batch * per_step) / 10))))


def summarize(rounds: list[tuple[float, float | None]]) -> tuple[float, float | None]:
    """(patches/s, others' cores) of one variant: the mean over its undisturbed rounds (others
    used at most ``BUSY_CORES``; all rounds where that is unknown), else its best round."""
    clean = [(pps, load) for pps, load in rounds if load is None or load <= BUSY_CORES]
    if not clean:
        return max(rounds, key=lambda m: m[0])
    loads = [load for _, load in clean if load is not None]
    return sum(pps for pps, _ in clean) / len(clean), max(loads) if loads else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, small patches")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--precision", default="float32,mixed_bfloat16", help="engine precisions")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per variant")
    args = parser.parse_args()
    precisions = args.precision.split(",")
    logging.basicConfig(level=logging.WARNING)
    # seconds per float32 epoch (sets the steps per epoch of each model and scale); timed epochs
    # per measurement (after an untimed one)
    patch, batch, seconds, epochs = (48, 16, 1.0, 1) if args.quick else (96, 16, 4.0, 2)
    models = args.models.split(",")
    scales = [int(s) for s in args.scales.split(",")]
    import tensorflow as tf

    header = (
        f"{timing.cpu_header()}\nTensorFlow {tf.__version__}; patch {patch} px (HR), global batch "
        f"{batch}; {args.rounds} interleaved round(s) of {epochs} timed epoch(s) per variant, "
        f"epochs of about {seconds:g} s in float32; mean of the undisturbed rounds"
    )
    print(header, flush=True)
    variants = ["plain", *precisions]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_images(work / "train", 8, 192)
        for model in models:
            for scale in scales:
                p = patch - patch % (4 * scale)  # a multiple of the scale and of model strides
                steps = epoch_steps(
                    model,
                    MODELS[model],
                    scale,
                    work / "train",
                    patch=p,
                    batch=batch,
                    seconds=seconds,
                )
                print(f"{model} x{scale}: {steps} steps per epoch", flush=True)
                measured: dict[str, list[tuple[float, float | None]]] = {v: [] for v in variants}
                for r in range(args.rounds):
                    shift = r % len(variants)
                    for name in variants[shift:] + variants[:shift]:
                        common = dict(patch=p, batch=batch, steps=steps, epochs=epochs)
                        with OtherLoad() as load:
                            if name == "plain":
                                pps = plain_throughput(
                                    model, MODELS[model], scale, work / "train", **common
                                )
                            else:
                                pps = engine_throughput(
                                    model,
                                    MODELS[model],
                                    scale,
                                    work / "train",
                                    work=work,
                                    precision=name,
                                    **common,
                                )
                        measured[name].append((pps, load.cores))
                        others = "n/a" if load.cores is None else f"{load.cores:.2f}"
                        label = name if name == "plain" else f"engine {name}"
                        print(
                            f"{model} x{scale} round {r + 1}: {label} {pps:.1f} patches/s "
                            f"(others {others} cores)",
                            flush=True,
                        )
                result = {name: summarize(measured[name]) for name in variants}
                rows.append((model, scale, p, steps, result))
    print()
    print(header)
    line = f"{'model':<10} {'scale':>5} {'patch':>5} {'steps':>5} {'plain p/s':>10}"
    for precision in precisions:
        line += f" {precision + ' p/s':>20} {'ratio':>6}"
    print(line + f" {'others':>7}")
    for model, scale, p, steps, result in rows:
        loads = [result[name][1] for name in variants]
        busiest = None if None in loads else max(loads)
        mark = "*" if busiest is not None and busiest > BUSY_CORES else ""
        plain = result["plain"][0]
        line = f"{model:<10} {'x' + str(scale):>5} {p:>5} {steps:>5} {plain:>10.1f}"
        for precision in precisions:
            pps = result[precision][0]
            line += f" {pps:>20.1f} {f'{pps / plain:.2f}{mark}':>6}"
        print(line + f" {'n/a' if busiest is None else f'{busiest:.2f}':>7}")
    print(
        "steps: per epoch; ratio: engine / plain fit, both measured above; others: the most CPU "
        f"cores other processes used in the rounds shown (* = above {BUSY_CORES} in every round "
        "of a variant: disturbed, its best round shown)"
    )


if __name__ == "__main__":
    main()
