"""What ``amls2.inference.fast.reparam`` buys: each shipped model as saved against its inference form
(what every model call runs), side by side in one run, with the largest output difference.

    python benchmarks/reparam.py                         # every shipped bicubic model, 512 px
    python benchmarks/reparam.py --models fd_srcnn --scales 3 4 --size 256

Both forms run through the same wrapper (a concrete ``tf.function`` with a [1, None, None, 3]
signature, as ``model_call`` does), on the same random LR input; best of ``--repeats`` after a
warm-up call at that size, the two forms interleaved round by round.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import timing  # noqa: E402


def concrete(model):
    import tensorflow as tf

    channels = int(model.inputs[0].shape[-1])
    spec = tf.TensorSpec([1, None, None, channels], tf.float32)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", help="only these registry names")
    parser.add_argument("--scales", nargs="*", type=int, default=[2, 3, 4])
    parser.add_argument("--size", type=int, default=512, help="LR input size (square)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights-set", default="bicubic")
    args = parser.parse_args()

    import tensorflow as tf

    from amls2 import models
    from amls2.inference.fast.reparam import count_replaceable, fast_inference_model
    from amls2.inference.weights import shipped_models, shipped_weights_path
    from amls2.models.io import load_model

    names = args.models or shipped_models(args.weights_set)
    print(timing.cpu_header())
    header = (
        f"{'model':<11} {'x':>2} {'layers':>6} {'saved s':>8} {'inference s':>11} "
        f"{'speed-up':>8} {'max diff':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        for scale in args.scales:
            path = shipped_weights_path(name, scale=scale, weights_set=args.weights_set)
            if not path.is_file():
                continue
            model = load_model(path)[0]
            forms = {"saved": concrete(model), "inference": concrete(fast_inference_model(model))}
            # Models of input kind "bicubic" (SRCNN) take the upscaled image: the same LR content.
            size = args.size * (scale if models.get_spec(name).input_kind == "bicubic" else 1)
            x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32))
            outputs = {form: np.asarray(fn(x)) for form, fn in forms.items()}  # the warm-up
            best = {form: float("inf") for form in forms}
            for _ in range(args.repeats):  # interleaved: both forms see the same machine state
                for form, fn in forms.items():
                    best[form] = min(best[form], timing.best_seconds(lambda f=fn, x=x: f(x), 1))
            diff = float(np.abs(outputs["saved"] - outputs["inference"]).max())
            print(
                f"{name:<11} {scale:>2} {count_replaceable(model):>6} {best['saved']:>8.3f} "
                f"{best['inference']:>11.3f} {best['saved'] / best['inference']:>7.2f}x "
                f"{diff:>9.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
