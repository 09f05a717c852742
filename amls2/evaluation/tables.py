"""Result records as tables and files: Markdown, CSV and LaTeX, written atomically.

The records are ``amls2.evaluation.scoring``'s (one per model x dataset x scale x track). Tables keep the
order in which models and rows first appear; non-finite values (the PSNR of identical images) are
shown as "inf"/"nan", and stored in JSON as strings (``fileio.json_safe``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amls2 import config as amls2_config
from amls2.evaluation.scoring import RECORD_KEYS
from amls2.fileio import (
    atomic_write_json,
    atomic_write_text,
    check_writable_file,
    check_writable_folder,
)

# ----------------------------------------------------------------------------- tables


def _models_in_order(records: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in records))


def _rows_in_order(records: Sequence[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return list(dict.fromkeys((r["track"], r["dataset"], int(r["scale"])) for r in records))


def _index(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    return {(r["track"], r["dataset"], int(r["scale"]), r["model"]): r for r in records}


def _cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "-"
    return f"{_fmt(record['psnr'], 2)} / {_fmt(record['ssim'], 4)}"


def _fmt(value: float, digits: int) -> str:
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """Rows: dataset x scale (and track when several); columns: model PSNR / SSIM (means)."""
    models = _models_in_order(records)
    rows = _rows_in_order(records)
    index = _index(records)
    several_tracks = len({t for t, _, _ in rows}) > 1
    head = (["Track"] if several_tracks else []) + ["Dataset", "Scale"]
    head += [f"{m} PSNR / SSIM" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for track, dataset, scale in rows:
        cells = ([track] if several_tracks else []) + [dataset, f"x{scale}"]
        cells += [_cell(index.get((track, dataset, scale, m))) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def weight_sets_markdown(records: Sequence[dict[str, Any]]) -> str:
    """Records of ``NAME@SET`` models as one row per dataset x scale x NAME and one column per
    weight set: mean PSNR (dB) with the gain over bicubic on the same LR images in brackets."""
    cells: dict[tuple[str, int, str], dict[str, str]] = {}
    sets: list[str] = []
    for r in records:
        name, _, weights_set = str(r["model"]).partition("@")
        if not weights_set:
            continue
        sets += [weights_set] if weights_set not in sets else []
        gain = r["psnr"] - r["bicubic_psnr"]
        key = (r["dataset"], int(r["scale"]), name)
        cells.setdefault(key, {})[weights_set] = f"{r['psnr']:.2f} ({gain:+.2f})"
    head = ["Dataset", "Scale", "Model", *(f"@{s}" for s in sets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (dataset, scale, name), row in cells.items():
        values = [row.get(s, "-") for s in sets]
        lines.append("| " + " | ".join([dataset, f"x{scale}", name, *values]) + " |")
    return "\n".join(lines) + "\n"


def cost_markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """Rows: track x model (bicubic left out); columns: parameters and multiply-adds (one 1280x720
    output) per scale. Empty string when no record has a cost."""
    costs: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    for r in records:
        if r.get("params") is not None:
            costs.setdefault((r["track"], r["model"]), {})[int(r["scale"])] = (
                r["params"],
                r["macs_720p"],
            )
    if not costs:
        return ""
    scales = sorted({s for per_scale in costs.values() for s in per_scale})
    head = ["Track", "Model"] + [f"x{s} params / MACs (720p)" for s in scales]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (track, model), per_scale in costs.items():
        cells = [track, model]
        for s in scales:
            cost = per_scale.get(s)
            cells.append("-" if cost is None else f"{cost[0] / 1e3:,.0f} k / {cost[1] / 1e9:.1f} G")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(records: Sequence[dict[str, Any]]) -> str:
    """One CSV row per record (without the per-image list)."""
    buffer = io.StringIO()
    fields = [k for k in RECORD_KEYS if k != "images"] + ["n_images"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: record[k] for k in fields if k in record}
        row["n_images"] = len(record.get("images", []))
        writer.writerow(row)
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    for char in ("\\", "&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text


def latex_table(records: Sequence[dict[str, Any]]) -> str:
    """A booktabs tabular: rows dataset x scale, columns model PSNR/SSIM, best PSNR in bold."""
    models = _models_in_order(records)
    rows = _rows_in_order(records)
    index = _index(records)
    lines = [
        r"\begin{tabular}{ll" + "c" * len(models) + "}",
        r"\toprule",
        "Dataset & Scale & " + " & ".join(_latex_escape(m) for m in models) + r" \\",
        r"\midrule",
    ]
    for track, dataset, scale in rows:
        found = [index.get((track, dataset, scale, m)) for m in models]
        best = max((r["psnr"] for r in found if r is not None), default=None)
        cells = []
        for record in found:
            if record is None:
                cells.append("-")
                continue
            text = f"{_fmt(record['psnr'], 2)} / {_fmt(record['ssim'], 4)}"
            cells.append(r"\textbf{" + text + "}" if record["psnr"] == best else text)
        lines.append(f"{_latex_escape(dataset)} & $\\times{scale}$ & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- output files


def config_path_for(json_path: str | os.PathLike) -> Path:
    """Where the EvalConfig of a JSON output is saved: ``<stem>.config.json`` beside it."""
    path = Path(json_path)
    return path.with_name(f"{path.stem}.config.json")


def check_outputs(
    *,
    json_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    latex_path: str | os.PathLike | None = None,
    save_images: str | os.PathLike | None = None,
) -> None:
    """ConfigError naming the option unless every requested output can be written: checked
    before evaluating, so that an evaluation is not lost to an unwritable path at its end."""
    for option, path in (("--json", json_path), ("--csv", csv_path), ("--latex", latex_path)):
        if path is not None:
            check_writable_file(path, option)
    if json_path is not None:
        check_writable_file(config_path_for(json_path), "--json")
    if save_images is not None:
        check_writable_folder(save_images, "--save-images")


def write_outputs(
    records: Sequence[dict[str, Any]],
    config: Any,
    *,
    json_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    latex_path: str | os.PathLike | None = None,
) -> list[Path]:
    """Write the requested outputs atomically (and ``config``, the ``EvalConfig``, beside the
    JSON); return the paths."""
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_json(json_path, list(records)))
        written.append(amls2_config.save_config(config, config_path_for(json_path)))
    if csv_path is not None:
        written.append(atomic_write_text(csv_path, csv_text(records)))
    if latex_path is not None:
        written.append(atomic_write_text(latex_path, latex_table(records)))
    return written


def write_tables(records: Sequence[dict[str, Any]], out_dir: Path, stem: str = "results"):
    """``<stem>.md`` (markdown table), ``<stem>.json`` (records) and ``<stem>.csv``, atomically."""
    return [
        atomic_write_text(out_dir / f"{stem}.md", markdown_table(records)),
        atomic_write_json(out_dir / f"{stem}.json", list(records)),
        atomic_write_text(out_dir / f"{stem}.csv", csv_text(records)),
    ]
