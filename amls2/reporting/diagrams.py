"""Architecture figures: the layer graph of any model (``architecture_diagram``) and the block
diagram of FD-SRCNN (``fd_srcnn_diagram``). Each function returns a Figure; nothing is shown."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from amls2.errors import ConfigError


def _layer_label(layer) -> str:
    """Layer type plus kernel, filters, stride and activation when it has them."""
    parts = [type(layer).__name__]
    config = layer.get_config()
    if "kernel_size" in config:
        parts.append("x".join(str(k) for k in config["kernel_size"]))
    if "filters" in config:
        parts.append(f"{config['filters']}")
    if "pool_size" in config:
        parts.append("pool " + "x".join(str(k) for k in config["pool_size"]))
    strides = config.get("strides")
    if strides and any(int(s) != 1 for s in np.atleast_1d(strides)):
        parts.append("/" + "x".join(str(s) for s in np.atleast_1d(strides)))
    if "scale" in config:
        parts.append(f"s={config['scale']}")
    activation = config.get("activation")
    if isinstance(activation, str) and activation != "linear":
        parts.append(activation)
    return " ".join(parts)


def _layer_edges(model) -> tuple[list[str], list[tuple[str, str]]]:
    """Layer names in topological order and (from, to) edges, from the functional config."""
    config = model.get_config()
    names: list[str] = []
    edges: list[tuple[str, str]] = []

    def histories(value):
        if isinstance(value, dict):
            if "keras_history" in value:
                yield value["keras_history"][0]
            elif (
                "config" in value
                and isinstance(value["config"], dict)
                and "keras_history" in value["config"]
            ):
                yield value["config"]["keras_history"][0]
            else:
                for item in value.values():
                    yield from histories(item)
        elif isinstance(value, list | tuple):
            if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
                yield value[0]  # legacy [name, node, tensor] triple
            else:
                for item in value:
                    yield from histories(item)

    for entry in config.get("layers", []):
        name = entry.get("name") or entry["config"]["name"]
        names.append(name)
        for source in histories(entry.get("inbound_nodes", [])):
            edges.append((source, name))
    if not names:  # Sequential or subclassed: a chain of layers
        names = [layer.name for layer in model.layers]
        edges = list(zip(names, names[1:], strict=False))
    return names, list(dict.fromkeys(edges))


def architecture_diagram(model, *, title: str | None = None) -> Figure:
    """Boxes per layer (type, kernel, filters, stride, activation), top to bottom in graph order,
    with arrows for connections; connections that skip layers (shortcuts) curve on the side."""
    names, edges = _layer_edges(model)
    by_name = {layer.name: layer for layer in model.layers}
    position = {name: i for i, name in enumerate(names)}
    n = len(names)
    fig = Figure(figsize=(6.5, 0.5 * n + 1.2))
    ax = fig.add_subplot()
    ax.set_title(title or model.name)
    ax.set_xlim(-2.2, 3.6)
    ax.set_ylim(-n + 0.3, 1.0)
    ax.axis("off")
    box_w, box_h = 3.6, 0.55
    for name in names:
        y = -position[name]
        layer = by_name.get(name)
        label = _layer_label(layer) if layer is not None else name
        ax.add_patch(
            FancyBboxPatch(
                (-box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor="#e0ecff",
                edgecolor="#1f4e99",
            )
        )
        ax.text(0, y, label, ha="center", va="center", fontsize=7)
    for source, target in edges:
        if source not in position or target not in position:
            continue
        y0, y1 = -position[source], -position[target]
        skip = position[target] - position[source]
        if skip == 1:
            start, end, style = (0, y0 - box_h / 2), (0, y1 + box_h / 2), "arc3"
        else:
            # Shortcut: leave and enter on the right, bowed out more the longer it is.
            start, end = (box_w / 2, y0), (box_w / 2, y1)
            # arc3 bulges by about rad * length / 2: keep the bulge between 0.35 and 1.3 units.
            bulge = min(1.3, 0.35 + 0.06 * skip)
            style = f"arc3,rad={-2 * bulge / skip:.3f}"
        ax.add_patch(
            FancyArrowPatch(
                start, end, connectionstyle=style, arrowstyle="-|>", mutation_scale=8, linewidth=0.8
            )
        )
    return fig


BLOCK_COLOURS: dict[str, str] = {
    "input": "#e5e7eb",
    "features": "#c7d2fe",
    "conv block": "#bfdbfe",
    "upsampler": "#fed7aa",
    "reconstructor": "#bbf7d0",
    "max-pool": "#e9d5ff",
    "output": "#fecaca",
}


def fd_srcnn_layout(model) -> dict[str, Any]:
    """FD-SRCNN's block configuration read from a built model's layers: input ``features``,
    ``width``, ``mid_width``, ``n_series`` per module, ``n_modules`` and their ``stride``,
    ``upsampler``, ``activation``, ``channels`` and how many bicubic image skips it has."""
    kinds = [type(layer).__name__ for layer in model.layers]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    channels = int(model.input_shape[-1])
    recs = [c for c in convs if c.get_config()["filters"] == channels]
    pools = [layer for layer in model.layers if type(layer).__name__ == "MaxPooling2D"]
    if len(convs) < 4 or not recs:
        raise ConfigError(f"{model.name}: not an FD-SRCNN (no feature conv + block series)")
    n_modules = len(recs) - len(pools)
    first = convs[0].get_config()
    activation = first.get("activation")
    if activation in (None, "linear"):
        activation = kinds[model.layers.index(convs[0]) + 1]
    stride = int(pools[0].get_config()["pool_size"][0]) if pools else None
    upsampler = "transposed" if any("Transpose" in k for k in kinds) else "subpixel"
    layout = {
        "channels": channels,
        "features": int(first["filters"]),
        "feature_kernel": int(first["kernel_size"][0]),
        "width": int(convs[1].get_config()["filters"]),
        "mid_width": int(convs[2].get_config()["filters"]),
        "n_modules": n_modules,
        "n_series": len(recs) // n_modules,
        "upsampler": upsampler,
        "activation": str(activation),
        "bicubic_skips": sum(k == "BicubicUpsample" for k in kinds),
    }
    if stride is None:  # one series per module: the scale is in the model's name
        scale = int(str(model.name).rsplit("x", 1)[-1]) if "_x" in model.name else 2
        stride = 2 if n_modules == 2 else scale
    layout["stride"] = stride
    layout["scale"] = stride**n_modules
    return layout


def _dims(factor: int, channels: int) -> str:
    return f"H×W×{channels}" if factor == 1 else f"{factor}H×{factor}W×{channels}"


def _block(ax, x, y, text, kind, *, width=3.0, height=1.0):
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.05",
            facecolor=BLOCK_COLOURS[kind],
            edgecolor="0.3",
            linewidth=0.8,
        )  # fmt: skip
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=7, linespacing=1.25)
    return (x, y, width, height)


def _arrow(ax, start, end, *, style="arc3", dashed=False, colour="0.2"):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            connectionstyle=style,
            arrowstyle="-|>",
            mutation_scale=9,
            linewidth=0.9,
            color=colour,
            linestyle="--" if dashed else "-",
            shrinkA=0,
            shrinkB=0,
        )  # fmt: skip
    )


def _bottom(box):
    return (box[0], box[1] - box[3] / 2 - 0.05)


def _top(box):
    return (box[0], box[1] + box[3] / 2 + 0.05)


def _right(box):
    return (box[0] + box[2] / 2 + 0.05, box[1])


def _left(box):
    return (box[0] - box[2] / 2 - 0.05, box[1])


def _path_arrow(ax, points, *, colour="0.2", dashed=False) -> None:
    """A polyline through ``points`` (data coordinates) with an arrow head on the last leg."""
    xs, ys = zip(*points, strict=True)
    ax.plot(xs[:-1], ys[:-1], color=colour, linewidth=0.9, linestyle="--" if dashed else "-")
    _arrow(ax, points[-2], points[-1], dashed=dashed, colour=colour)
    ax.plot(xs[-2:-1], ys[-2:-1], color=colour, linewidth=0)  # keep the corner in the limits


def _series(ax, cfg, geometry, m: int, i: int, *, factor: int, module_in, pool_box):
    """Series ``i`` of module ``m`` of ``fd_srcnn_diagram``: conv block, upsampler with its local
    shortcut, reconstructor and (but for the last series) the max-pool to the next; the
    reconstructor's and the pool's boxes."""
    col_w, row_h, box_w, ys = (geometry[k] for k in ("col_w", "row_h", "box_w", "ys"))
    up_name, act, s = geometry["up_name"], cfg["activation"], cfg["stride"]
    n, c, n_mod = cfg["n_series"], cfg["channels"], cfg["n_modules"]
    top, out_factor = -m * row_h, factor * s
    x = (i + 1) * col_w
    conv_box = _block(
        ax, x, top + ys[0],
        f"module {m + 1} · series {i + 1}: conv block\n5×5×{cfg['width']} → "
        f"3×3×{cfg['mid_width']} → 1×1×{cfg['width']} {act}\n"
        f"{_dims(factor, cfg['width'])}",
        "conv block", width=box_w, height=1.1,
    )  # fmt: skip
    up_box = _block(
        ax, x, top + ys[1],
        f"{up_name} 5×5 /{s}, add the local\nshortcut ({up_name} 1×1 /{s}), {act}"
        f"\n{_dims(out_factor, cfg['width'])}",
        "upsampler", width=box_w, height=1.1,
    )  # fmt: skip
    last = i == n - 1
    if last and m == n_mod - 1 and cfg["bicubic_skips"]:
        head = "linear conv 3×3 (residual)"
    elif cfg["bicubic_skips"] > 1:
        head = "linear 3×3 + bicubic of input"
    else:
        head = "conv 3×3 sigmoid"
    extra = "add global shortcut(s),\n" if last else ""
    rec_box = _block(
        ax, x, top + ys[2], f"reconstructor: {extra}{head}\n{_dims(out_factor, c)}",
        "reconstructor", width=box_w, height=1.1,
    )  # fmt: skip
    if i == 0:
        _arrow(ax, _right(module_in), _left(conv_box))
    else:
        _arrow(ax, _top(pool_box), _left(conv_box), style="angle,angleA=90,angleB=0")
    _arrow(ax, _bottom(conv_box), _top(up_box))
    _arrow(ax, _bottom(up_box), _top(rec_box))
    # Local shortcut: the series input skips the conv block into the upsampler's add.
    start = (x - box_w / 2 - 0.05, top + ys[0] - 0.3)
    _arrow(ax, start, _left(up_box), style="arc3,rad=0.6", dashed=True, colour="tab:red")
    if not last:
        pool_box = _block(
            ax, x + col_w / 2, top + ys[1], f"max-pool\n/{s}\n{_dims(factor, c)}",
            "max-pool", width=1.15, height=1.1,
        )  # fmt: skip
        _arrow(ax, _right(rec_box), _bottom(pool_box), style="angle,angleA=0,angleB=90")
    return rec_box, pool_box


def _carried_shortcut(ax, cfg, feats, last_rec, bottom, col_w, up_name) -> None:
    """The input features' shortcut to the last reconstructor (more than one module)."""
    n = cfg["n_series"]
    y_line = bottom + 0.9
    _path_arrow(
        ax,
        [_left(feats), (-2.3, feats[1]), (-2.3, y_line), (last_rec[0] + 0.4, y_line),
         (last_rec[0] + 0.4, last_rec[1] - 0.6)],
        colour="tab:purple", dashed=True,
    )  # fmt: skip
    ax.text(
        col_w * (n + 1) / 2, y_line - 0.3,
        f"carried shortcut: {up_name} 5×5 /{cfg['scale']} of the input features",
        ha="center", va="top", fontsize=7, color="tab:purple",
    )  # fmt: skip


def _block_legend(fig) -> None:
    """The legend of ``fd_srcnn_diagram``: one patch per kind of block, the shortcut line."""
    handles = [
        Patch(facecolor=colour, edgecolor="0.3", label=kind)
        for kind, colour in BLOCK_COLOURS.items()
    ]
    handles.append(Line2D([], [], color="tab:red", linestyle="--", label="shortcut"))
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7.5,
        frameon=False,
    )  # fmt: skip


def _input_blocks(ax, cfg, ys):
    """The LR input and the input-feature convolution of ``fd_srcnn_diagram``: the latter's box."""
    c, act = cfg["channels"], cfg["activation"]
    source = _block(ax, 0, ys[0], f"LR input\n{_dims(1, c)}", "input")
    k = cfg["feature_kernel"]
    feats = _block(
        ax, 0, ys[1],
        f"input features\nconv {k}×{k}×{cfg['features']} {act}\n{_dims(1, cfg['features'])}",
        "features",
    )  # fmt: skip
    _arrow(ax, _bottom(source), _top(feats))
    return feats


def _global_shortcut(ax, module_in, rec_box, y_line: float, x_text: float, text: str) -> None:
    """A module's global shortcut: its input, upsampled, joins before its last reconstructor."""
    _path_arrow(
        ax,
        [_bottom(module_in), (0, y_line), (rec_box[0], y_line), _bottom(rec_box)],
        colour="tab:red", dashed=True,
    )  # fmt: skip
    ax.text(x_text, y_line - 0.3, text, ha="center", va="top", fontsize=7, color="tab:red")


def fd_srcnn_diagram(model, *, title: str | None = None) -> Figure:
    """Block-level diagram of a built FD-SRCNN (:func:`fd_srcnn_layout` of its layers): the LR
    input and feature conv, each upscaling module's block series (conv block -> transposed-conv
    upsampler with its local shortcut -> reconstructor, max-pooling down between series), the
    global shortcuts, the exits and the tensor shapes; one colour per kind of block."""
    cfg = fd_srcnn_layout(model)
    s, n, c, n_mod = cfg["stride"], cfg["n_series"], cfg["channels"], cfg["n_modules"]
    up_name = "transposed conv" if cfg["upsampler"] == "transposed" else "sub-pixel conv"
    col_w, row_h, box_w = 5.0, 6.6, 3.6
    ys = (0.0, -1.6, -3.2)  # conv block, upsampler, reconstructor rows of a module
    geometry = {"col_w": col_w, "row_h": row_h, "box_w": box_w, "ys": ys, "up_name": up_name}
    bottom = -row_h * (n_mod - 1) + ys[2] - (3.0 if n_mod > 1 else 1.9)
    width_units = col_w * (n + 2)
    fig = Figure(figsize=(0.6 * width_units, 0.6 * (1.4 - bottom) + 0.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-2.6, width_units - col_w / 2)
    ax.set_ylim(bottom, 0.9)
    ax.set_aspect("equal")
    ax.set_axis_off()
    fig.suptitle(title or f"{model.name}: block diagram", fontsize=10)
    factor = 1
    feats = _input_blocks(ax, cfg, ys)
    module_in, last_rec, pool_box = feats, feats, feats
    for m in range(n_mod):
        top = -m * row_h
        if m:  # the next module starts from the previous module's image
            label = f"x{factor} image (module {m} exit)\n{_dims(factor, c)}"
            module_in = _block(ax, 0, top + ys[1], label, "output")
            y_path = top + row_h + ys[2] - 2.0
            _path_arrow(
                ax, [_bottom(last_rec), (last_rec[0], y_path), (0, y_path), _top(module_in)]
            )
        out_factor = factor * s
        for i in range(n):
            rec_box, pool_box = _series(
                ax, cfg, geometry, m, i, factor=factor, module_in=module_in, pool_box=pool_box
            )
        # Global shortcut: the module's input, upsampled, joins before the last reconstructor.
        _global_shortcut(ax, module_in, rec_box, top + ys[2] - 1.0, col_w * (n + 1) / 2,
                         f"global shortcut: {up_name} 5×5 /{s} of the module input")  # fmt: skip
        factor = out_factor
        last_rec = rec_box
    if n_mod > 1:  # the input features also reach the last reconstructor (stride = scale)
        _carried_shortcut(ax, cfg, feats, last_rec, bottom, col_w, up_name)
    skip = "\n+ bicubic upscale of LR" if cfg["bicubic_skips"] else ""
    exit_box = _block(
        ax, (n + 1) * col_w, last_rec[1],
        f"x{cfg['scale']} output{skip}\n{_dims(cfg['scale'], c)}", "output", width=2.8, height=1.1,
    )  # fmt: skip
    _arrow(ax, _right(last_rec), _left(exit_box))
    _block_legend(fig)
    return fig
