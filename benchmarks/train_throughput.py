"""Training throughput (patches per second): the amls2 engine vs a plain ``model.fit``.

engine: ``amls2.training.train`` (tf.data pipeline, ``steps_per_execution`` steps per compiled
call, XLA where it compiles, prefetch), once per ``--precision`` (float32, and mixed_bfloat16:
bfloat16 compute with float32 weights, which AVX512-BF16/AMX CPUs run much faster). plain: ``model.compile(jit_compile=False)`` with the
default ``steps_per_execution=1`` and ``model.fit`` on a Python generator of NumPy crops. Both
use the same synthetic images, patch size, global batch, Adam and L1 loss; the first epoch of
each (tracing/compilation) is not timed. The machine is shared: read the ratio, not the
absolute numbers, and expect +-15 % noise between runs.

    python benchmarks/train_throughput.py [--quick] [--models fd_srcnn,srcnn] [--scales 2,4]
        [--precision float32,mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# (model, variant): fd_srcnn, srcnn, fsrcnn, EDSR baseline and the light model (RFDN small).
MODELS = {
    "fd_srcnn": None,
    "srcnn": "915",
    "fsrcnn": None,
    "edsr": "baseline",
    "rfdn": "small",
}


def write_images(folder: Path, count: int, size: int, seed: int = 0) -> None:
    from amls2 import images

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random((size // 8, size // 8, 3))
        img = np.clip(images.imresize(small, output_shape=(size, size)), 0, 1)
        images.write_image(folder / f"img{i}.png", img)


def engine_throughput(
    model, variant, scale, folder, *, patch, batch, steps, work, precision
) -> float:
    from amls2.training import DataConfig, OptimConfig, TrainConfig, train

    config = TrainConfig(
        model=model,
        variant=variant,
        scale=scale,
        data=DataConfig(train_sets=(str(folder),), val_sets=(), patch_size=patch, batch_size=batch),
        optim=OptimConfig(learning_rate=1e-4, loss="l1"),
        epochs=2,
        steps_per_epoch=steps,
        steps_per_execution=min(steps, 20),
        checkpoint_every=10 * steps,
        deterministic=False,
        precision=precision,
        out_dir=str(work / f"engine_{model}_x{scale}_{precision}"),
    )
    result = train(config, force=True, progress=False)
    return float(result.history[-1]["patches_per_second"])


def plain_throughput(model_name, variant, scale, folder, *, patch, batch, steps) -> float:
    import keras

    from amls2 import pipeline
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
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    model.fit(batches, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer])
    return steps * batch / timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, small patches")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--precision", default="float32,mixed_bfloat16", help="engine precisions")
    args = parser.parse_args()
    precisions = args.precision.split(",")
    logging.basicConfig(level=logging.WARNING)
    patch, batch, steps = (48, 16, 15) if args.quick else (96, 16, 60)
    models = args.models.split(",")
    scales = [int(s) for s in args.scales.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_images(work / "train", 8, 192)
        for model in models:
            for scale in scales:
                p = patch - patch % (4 * scale)  # a multiple of the scale and of model strides
                engine = {
                    precision: engine_throughput(
                        model,
                        MODELS[model],
                        scale,
                        work / "train",
                        patch=p,
                        batch=batch,
                        steps=steps,
                        work=work,
                        precision=precision,
                    )
                    for precision in precisions
                }
                plain = plain_throughput(
                    model, MODELS[model], scale, work / "train", patch=p, batch=batch, steps=steps
                )
                rows.append((model, scale, p, engine, plain))
                measured = " ".join(f"{k} {v:.0f}" for k, v in engine.items())
                print(
                    f"{model} x{scale}: engine {measured}; plain {plain:.0f} patches/s", flush=True
                )
    print()
    print(
        f"patch {patch} px (HR), global batch {batch}, {steps} timed steps, {os.cpu_count()} CPUs"
    )
    header = f"{'model':<10} {'scale':>5} {'patch':>5} {'plain p/s':>10}"
    for precision in precisions:
        header += f" {precision + ' p/s':>20} {'ratio':>6}"
    print(header)
    for model, scale, p, engine, plain in rows:
        line = f"{model:<10} {'x' + str(scale):>5} {p:>5} {plain:>10.1f}"
        for precision in precisions:
            line += f" {engine[precision]:>20.1f} {engine[precision] / plain:>6.2f}"
        print(line)


if __name__ == "__main__":
    main()
