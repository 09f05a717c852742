"""Where a model's inference time goes: every layer timed alone on its real input, with its
multiply-adds and the GFLOP/s it reaches as a share of dense matmul (measured in the same run).

    python benchmarks/layer_profile.py fd_srcnn --scale 2            # shipped bicubic weights
    python benchmarks/layer_profile.py fd_srcnn --scale 4 --form saved  # the layers as saved
    python benchmarks/layer_profile.py fsrcnn --scale 3 --size 128   # registry defaults

Each layer runs as its own tf.function on the intermediate tensors of one whole-image forward
pass (LR input ``--size`` square), best of ``--repeats`` after a warm-up. The sum of the layer
times is close to, not equal to, the whole-model time (one graph schedules ops together).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import timing  # noqa: E402


def model_nodes(model) -> list:
    """The layer calls of ``model``'s own graph, inputs first (a layer shared with another model,
    as in the re-parameterised forms, has nodes in both graphs)."""
    by_depth = model._nodes_by_depth
    nodes = [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]
    return [node for node in nodes if node.input_tensors]  # not the InputLayer


def layer_rows(model, lr: np.ndarray, repeats: int):
    """(layer name, class, output shape, seconds, MACs) for every layer call of ``model``."""
    import keras
    import tensorflow as tf

    from amls2.models.cost import _layer_macs

    nodes = model_nodes(model)
    probe = keras.Model(model.inputs, [node.output_tensors[0] for node in nodes])
    values = {id(model.inputs[0]): tf.constant(lr[None])}
    for node, out in zip(nodes, probe(lr[None]), strict=True):
        values[id(node.output_tensors[0])] = out
    for node in nodes:
        layer = node.operation
        args = [values[id(t)] for t in node.input_tensors]
        if len(node.arguments.args) > 1:  # called with separate tensors (FusedUpAddPReLU)
            call = tf.function(lambda *a, layer=layer: layer(*a))
        else:  # one tensor, or a list of them (Add)
            call = tf.function(lambda *a, layer=layer: layer(list(a) if len(a) > 1 else a[0]))
        seconds = timing.best_seconds(lambda call=call, args=args: call(*args).numpy(), repeats)
        shapes = [tuple(int(d) for d in a.shape[1:]) for a in args]
        out_shape = tuple(int(d) for d in values[id(node.output_tensors[0])].shape[1:])
        macs = _layer_macs(layer, shapes, out_shape)
        yield layer.name, type(layer).__name__, out_shape, seconds, macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="registry name")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="LR input size (square)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights-set", default="bicubic", help="shipped weights to load")
    parser.add_argument("--defaults", action="store_true", help="registry defaults, not shipped")
    parser.add_argument(
        "--form",
        choices=("saved", "inference", "subpixel"),
        default="inference",
        help="the saved layers, what inference runs (default), or that with every strided "
        "transposed convolution in the sub-pixel form",
    )
    args = parser.parse_args()

    from amls2 import models
    from amls2.inference.fast.reparam import fast_inference_model
    from amls2.inference.weights import shipped_weights_path
    from amls2.models.io import load_model

    path = shipped_weights_path(args.model, scale=args.scale, weights_set=args.weights_set)
    if args.defaults or not path.is_file():
        model, source = models.build_model(args.model, args.scale), "registry defaults"
    else:
        model, source = load_model(path)[0], str(path)
    if args.form != "saved":
        model = fast_inference_model(model, subpixel="all" if args.form == "subpixel" else "auto")
    size = args.size * (args.scale if models.get_spec(args.model).input_kind == "bicubic" else 1)
    lr = np.random.default_rng(0).random((size, size, model.inputs[0].shape[-1]), np.float32)
    peak = timing.matmul_gflops()
    print(f"# {timing.cpu_header()}; dense matmul {peak:.1f} GFLOP/s")
    print(f"# {args.model} x{args.scale} ({source}{', ' + args.form + ' form'}), {size}px in")
    header = f"{'layer':<34} {'class':<24} {'output':>18} {'ms':>8} {'GMACs':>7} {'of matmul':>9}"
    print(header)
    print("-" * len(header))
    total_s = total_macs = 0
    for name, cls, shape, seconds, macs in layer_rows(model, lr, args.repeats):
        total_s, total_macs = total_s + seconds, total_macs + macs
        share = f"{2 * macs / seconds / 1e9 / peak:>9.0%}" if macs else f"{'':>9}"
        shape_text = "x".join(map(str, shape))
        print(
            f"{name:<34} {cls:<24} {shape_text:>18} {seconds * 1e3:>8.2f} {macs / 1e9:>7.2f} {share}"
        )
    whole = timing.best_seconds(lambda: model(lr[None], training=False).numpy(), args.repeats)
    print("-" * len(header))
    print(f"{'sum of layers':<78} {total_s * 1e3:>8.2f} {total_macs / 1e9:>7.2f}")
    print(
        f"{'whole model':<78} {whole * 1e3:>8.2f} {'':>7} {2 * total_macs / whole / 1e9 / peak:>9.0%}"
    )


if __name__ == "__main__":
    main()
