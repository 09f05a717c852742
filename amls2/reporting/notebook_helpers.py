"""Helpers the course notebooks call, so that their cells stay short calls with no logic.

Mosaics of images and kernels (:func:`image_grid`, :func:`png_bytes` for ``IPython.display``),
Markdown tables of the datasets on disk and of drawn degradation parameters, the datasets a
notebook uses, and where a notebook writes. The demo flows and the data crops the notebooks share
with ``python main.py`` are in :mod:`amls2.reporting.demo`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from amls2 import config as amls2_config
from amls2.data import datasets, degradations, operator_fit, pairing
from amls2.data import operator as operators
from amls2.errors import Amls2Error
from amls2.imaging import images, resize
from amls2.inference import weights
from amls2.reporting.demo import demo_pairs

NOTEBOOK_OUTPUT_DIR = amls2_config.PROJECT_ROOT / "outputs" / "notebooks"


def notebook_output_dir(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Where notebook ``name`` writes: ``<out_dir>/<name>``; default ``<repo>/outputs/notebooks``
    (git-ignored), never inside the repository's tracked files."""
    base = Path(out_dir) if out_dir else NOTEBOOK_OUTPUT_DIR
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_grid(tiles: Mapping[str, np.ndarray], *, cell: int = 160, columns: int = 4) -> np.ndarray:
    """A labelled mosaic (float32 RGB [0, 1]) of ``tiles``, each resized (nearest neighbour, so
    LR pixels stay visible) to fit a ``cell`` x ``cell`` square. Single-channel tiles (kernels)
    are normalised to their maximum and shown grey."""
    label_h = 18
    rows = -(-len(tiles) // columns)
    # Built in uint8: OpenCV draws text on 8-bit images only.
    grid = np.full((rows * (cell + label_h), min(columns, len(tiles)) * cell, 3), 255, np.uint8)
    for i, (label, tile) in enumerate(tiles.items()):
        tile = np.asarray(tile, dtype=np.float32)
        if tile.ndim == 2:
            tile = np.repeat((tile / max(float(tile.max()), 1e-12))[..., None], 3, axis=2)
        factor = cell / max(tile.shape[:2])
        size = (max(1, round(tile.shape[1] * factor)), max(1, round(tile.shape[0] * factor)))
        resized = cv2.resize(images.to_uint8(tile), size, interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, columns)
        y, x = r * (cell + label_h) + label_h, c * cell
        grid[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        cv2.putText(grid, label[:24], (x + 2, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return images.to_float(grid)


def png_bytes(img: np.ndarray) -> bytes:
    """``img`` (float32 RGB [0, 1]) encoded as 8-bit PNG bytes, e.g. for ``IPython.display.Image``."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(images.to_uint8(img), cv2.COLOR_RGB2BGR))
    if not ok:
        raise Amls2Error("png_bytes: OpenCV could not encode the image")
    return data.tobytes()


def hr_lr_examples(
    dataset: str = "samples",
    *,
    tracks: Sequence[str] = amls2_config.TRACKS,
    scales: Sequence[int] = amls2_config.SCALES,
    data_dir: str | os.PathLike | None = None,
    index: int = 0,
    crop: int = 96,
) -> dict[str, np.ndarray]:
    """HR crop and its LR partners (every track and scale) of image ``index``, for ``image_grid``."""
    tiles: dict[str, np.ndarray] = {}
    for track in tracks:
        for scale in scales:
            pair = demo_pairs(
                dataset, scale=scale, track=track, data_dir=data_dir, limit=index + 1, crop=crop
            )[index]
            tiles.setdefault(f"HR {pair.name}", pair.hr)
            tiles[f"LR {track} x{scale}"] = pair.lr
    return tiles


DEGRADATION_KEYS: tuple[str, ...] = (
    "kernel_type",
    "sigma_x",
    "sigma_y",
    "angle_deg",
    "noise_sigma",
    "jpeg_quality",
)


def degradation_markdown(pairs: Sequence[Any]) -> str:
    """A Markdown table of the stand-in degradation parameters drawn for each pair (``pair.params``:
    blur sigmas in HR px, angle in degrees, noise sigma in 8-bit grey levels, JPEG quality; "-"
    where a step was not applied), numbers to two decimals."""

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    keys = DEGRADATION_KEYS
    rows = ["| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for pair in pairs:
        params = pair.params or {}
        rows.append(f"| {pair.name} | " + " | ".join(fmt(params.get(k)) for k in keys) + " |")
    return "\n".join(rows) + "\n"


def example_kernels(scale: int, *, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` blur kernels of the ``unknown`` stand-in at ``scale`` (labelled by sigmas)."""
    spec = degradations.DEFAULT_SPEC
    kernels = {}
    for i in range(count):
        params = degradations.sample_params(spec, scale, degradations.rng_for(seed, f"k{i}"))
        kernel = degradations.make_kernel(
            params["sigma_x"],
            params["sigma_y"],
            params["angle_deg"],
            size=params["kernel_size"],
            shift=params["kernel_shift"],
        )
        label = f"s{params['sigma_x']:.1f}/{params['sigma_y']:.1f} {params['angle_deg']:.0f}deg"
        kernels[label] = kernel
    return kernels


def status_table(names: Sequence[str], data_dir: str | os.PathLike | None = None) -> str:
    """Markdown table of ``datasets.dataset_status`` for ``names``: where, layout, counts.

    Locations under the data root are shown as ``<data root>/NAME``: a committed notebook must
    not carry one machine's absolute paths."""
    root = amls2_config.data_root(data_dir)
    lines = ["| Dataset | Present | Layout | Images (found/expected) | Location |", "|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        s = datasets.dataset_status(name, data_dir)
        counts = ", ".join(f"{split}: {found}/{expected}" for split, found, expected in s.counts)
        embedded = s.layout == "embedded"
        where = "scikit-image's data" if embedded else _relative_to_root(s.location, root)
        lines.append(f"| {name} | {'yes' if s.present else 'no'} | {s.layout} | {counts} | `{where}` |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _relative_to_root(location, root) -> str:
    """``<data root>/T91`` for a folder under the data root, else the location as it is."""
    try:
        return f"<data root>/{Path(location).relative_to(root).as_posix()}"
    except ValueError:
        return str(location)


def pick_data(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The datasets a notebook uses: DIV2K when present (train/valid splits), else T91 + Set5
    under the data root, else the embedded samples for both. Returns {"train", "val"}."""
    if datasets.dataset_status("DIV2K", data_dir).present:
        return {"train": "DIV2K", "val": "DIV2K"}
    if (
        datasets.dataset_status("T91", data_dir).present
        and datasets.dataset_status("Set5", data_dir).present
    ):
        return {"train": "T91", "val": "Set5"}
    return {"train": datasets.SAMPLES, "val": datasets.SAMPLES}


QUICK_NOTE = (
    "quick mode: the bundled scikit-image photos, tiny models, few steps (the numbers mean nothing)"
)


def choose_data(quick: bool, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The notebook's data and mode: ``{"train", "val", "quick", "note"}``. Quick mode, or no
    DIV2K / T91 + Set5 under the data root, uses the embedded samples in quick mode (``note``
    says which and why), so that a fresh clone runs instead of stopping at a DatasetError."""
    if quick:
        return {
            "train": datasets.SAMPLES,
            "val": datasets.SAMPLES,
            "quick": True,
            "note": QUICK_NOTE,
        }
    data = pick_data(data_dir)
    if data["train"] == datasets.SAMPLES:
        root = amls2_config.data_root(data_dir)
        note = f"no DIV2K or T91 + Set5 under the data root ({root.name}/): {QUICK_NOTE}"
        return {**data, "quick": True, "note": note}
    note = f"full mode: training on {data['train']}, validation images from {data['val']}"
    return {**data, "quick": False, "note": note}


def present(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether dataset ``name`` is on disk under the data root (a registered dataset, or a folder
    of that name such as the DIV2K-shaped ``Track2sim``)."""
    try:
        return datasets.dataset_status(name, data_dir).present
    except Amls2Error:  # not in the registry: a folder under the data root
        return (amls2_config.data_root(data_dir) / name).is_dir()


def operator_markdown(ops: Mapping[int, operators.Operator]) -> str:
    """A Markdown table of estimated operators by scale: kernel size, sub-pixel offset (dy, dx)
    relative to MATLAB bicubic's LR pixel centres, kernel widths (HR px), and the PSNR (dB, RGB
    uint8) of the LR images each re-makes from held-out train pairs, as recorded in its file."""
    rows = [
        "| scale | kernel | offset dy, dx (HR px) | width sigma_y, sigma_x (HR px) | re-made LR PSNR (dB) | held-out pairs | exact values |",  # fmt: skip
        "|---|---|---|---|---|---|---|",
    ]
    for scale, op in sorted(ops.items()):
        (dy, dx), (wy, wx) = op.offset, op.kernel_width
        check = op.check.get("remade_heldout", {})
        exact = check.get("exact_fraction")
        rows.append(
            f"| x{scale} | {op.kernel_size}x{op.kernel_size} | {dy:+.2f}, {dx:+.2f} | "
            f"{wy:.2f}, {wx:.2f} | {check.get('psnr_db', '-')} | {check.get('images', '-')} | "
            f"{'-' if exact is None else f'{100 * exact:.2f} %'} |"
        )
    return "\n".join(rows) + "\n"


def remake_check(
    op: operators.Operator,
    dataset: str = "Track2sim",
    *,
    data_dir: str | os.PathLike | None = None,
    index: int = 0,
    track: str = "unknown",
) -> dict[str, Any]:
    """Re-make the LR of train pair ``index`` of ``dataset`` with ``op`` and compare it with the
    given LR (whole image, RGB uint8): ``{"name", "remade_psnr", "bicubic_psnr", "exact_fraction"}``,
    where ``bicubic_psnr`` is MATLAB bicubic's downscale of the same HR against the given LR."""
    sources = pairing.resolve_pairs(
        dataset, scale=op.scale, track=track, data_dir=data_dir, split="train"
    )
    pair = pairing.load_pair(sources[index], scale=op.scale, track=track)
    report = operator_fit.remake_report([(pair.hr, pair.lr)], op)
    bicubic = resize.bicubic_downscale(pair.hr, op.scale)
    return {
        "name": pair.name,
        "remade_psnr": report["psnr_db"],
        "bicubic_psnr": round(operator_fit.psnr_uint8(bicubic, pair.lr), 3),
        "exact_fraction": report["exact_fraction"],
    }


def sidecar_scores(
    weights_set: str, dataset: str = "Track2sim", weights_dir: str | os.PathLike | None = None
) -> dict[tuple[str, int], dict[str, Any]]:
    """``{(model, scale): validation[dataset] of its sidecar, plus "target": targets[dataset]}``
    for every shipped model of a weight set whose sidecar records ``dataset`` (read from the
    files: whatever is shipped now)."""
    found = {}
    for path in sorted(weights.weight_set_dir(weights_set, weights_dir).glob("*_x*.json")):
        name, _, scale = path.stem.rpartition("_x")
        if not scale.isdigit():
            continue
        sidecar = json.loads(path.read_text(encoding="utf-8"))
        scores = sidecar.get("validation", {}).get(dataset)
        if scores and "psnr" in scores:
            target = sidecar.get("targets", {}).get(dataset, {})
            found[(name, int(scale))] = {**scores, "target": target}
    return found


def track2sim_rows(weights_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per fixed-operator model and scale shipped for ``track2sim``, from the sidecars'
    Track2sim valid-split scores (Y PSNR, dB): bicubic interpolation, the shipped ``linear``
    model, the blind model of the same name (None when it has none) and the model itself, with
    its gain over ``linear`` and its target gap (positive: above target)."""
    scores = sidecar_scores("track2sim", "Track2sim", weights_dir)
    rows = []
    for (name, scale), v in sorted(scores.items(), key=lambda item: (item[0][1], item[0][0])):
        if name == "linear":
            continue
        linear = scores.get(("linear", scale), {}).get("psnr")
        target = v.get("target", {})
        rows.append(
            {
                "model": name,
                "scale": scale,
                "bicubic": v.get("bicubic_psnr"),
                "linear": linear,
                "blind": v.get("blind_model_psnr"),
                "fixed": v["psnr"],
                "over_linear": None if linear is None else v["psnr"] - linear,
                "target": target.get("target_psnr"),
                "gap": target.get("gap"),
            }
        )
    return rows


def _db(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2f}" if sign else f"{value:.2f}")


def track2sim_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of :func:`track2sim_rows` (PSNR in dB, Y channel)."""
    lines = [
        "| scale | model | bicubic | linear | blind (`@unknown`) | fixed-operator (`@track2sim`) | over linear | target | gap |",  # fmt: skip
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"x{r['scale']}", r["model"], _db(r["bicubic"]), _db(r["linear"]), _db(r["blind"])]
        cells += [
            _db(r["fixed"]),
            _db(r["over_linear"], True),
            _db(r["target"]),
            _db(r["gap"], True),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def track2sim_findings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per scale of :func:`track2sim_rows`: the best fixed-operator model and its gain
    over ``linear`` and bicubic, the best blind model and how far it is from ``linear``, and how
    many models are above ``linear`` and reach their targets."""
    lines = []
    for scale in sorted({r["scale"] for r in rows}):
        group = [r for r in rows if r["scale"] == scale]
        best = max(group, key=lambda r: r["fixed"])
        blind = [r for r in group if r["blind"] is not None]
        above = [r for r in group if r["over_linear"] is not None and r["over_linear"] > 0]
        met = [r for r in group if r["gap"] is not None and r["gap"] >= 0]
        text = (
            f"x{scale}: best fixed-operator model {best['model']} {best['fixed']:.2f} dB "
            f"({_db(best['over_linear'], True)} over linear, "
            f"{best['fixed'] - best['bicubic']:+.2f} over bicubic)"
        )
        if blind:
            top = max(blind, key=lambda r: r["blind"])
            text += f"; best blind model {top['model']} {top['blind']:.2f} dB"
            if top["linear"] is not None:
                text += f" ({top['blind'] - top['linear']:+.2f} against linear)"
        text += f"; {len(above)}/{len(group)} above linear, {len(met)}/{len(group)} at target"
        lines.append(text)
    return lines


def source_of(name: str, dataset: str = "Track2sim", data_dir=None) -> str:
    """Where image ``name`` of a DIV2K-shaped stand-in came from, from its ``names.tsv``
    (``split, number, source`` rows, e.g. ``Set5/baby.png``); "" when the table or row is missing."""
    try:
        table = datasets.find_dataset(dataset, data_dir) / "names.tsv"
        lines = table.read_text(encoding="utf-8").splitlines()[1:]
    except (OSError, Amls2Error):
        return ""
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3 and parts[1] == name:
            return parts[2]
    return ""


def best_by_row(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """For each (track, dataset, scale) of evaluation ``records``, the model record (bicubic left
    out) with the highest PSNR, in order of scale, track and dataset."""
    best: dict[tuple, Mapping[str, Any]] = {}
    for r in records:
        key = (int(r["scale"]), r.get("track", ""), r["dataset"])
        if r["model"] != "bicubic" and (key not in best or r["psnr"] > best[key]["psnr"]):
            best[key] = r
    return [best[key] for key in sorted(best)]
