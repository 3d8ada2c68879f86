"""A built table on disk and on screen: its markdown (title, caption, table) and its
``.csv`` / ``.md`` / ``.json`` files under the scale's tables folder, written and read back.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from abanet_lib.core import paths
from abanet_lib.paper.definitions import TABLES, TableDefinition


def _fmt(value: float, metric: str, spec: TableDefinition) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric == "fps":
        return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
    if metric in spec.percent or metric == "released_iou":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt_paper(value: float, metric: str, spec: TableDefinition) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:g}"


def to_markdown(frame: pd.DataFrame, spec: TableDefinition | None = None) -> str:
    """Markdown table: ``ours (mean +- std)`` then ``paper`` per metric, status and flags."""
    spec = spec or TABLES[frame.attrs.get("table", "table2")]
    headers = ["row", "status", "n"]
    for m in spec.metrics:
        headers += [f"{m} (ours)", f"{m} (paper)"]
    if "released_iou" in frame.columns:
        headers.append("iou (released scores)")
    ci_column = f"{spec.primary}_ci_low" in frame.columns
    if ci_column:
        headers.append(f"{spec.primary} 95 % CI (ours)")
    paired = "vs_ref_diff" in frame.columns and frame["vs_ref_diff"].notna().any()
    if paired:
        headers.append(f"{spec.primary} minus {frame.attrs.get('reference_row', 'ABANet')}, same folds [95 % CI] (pairs)")
    headers += [f"diff {spec.primary}", "within spread", "tied with best", "note"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, r in frame.iterrows():
        cells = [str(label), str(r["status"]), str(int(r["n"]))]
        for m in spec.metrics:
            mean, std = r[m], r[f"{m}_std"]
            text = _fmt(mean, m, spec)
            if text and not math.isnan(std) and m != "fps":  # one FPS per architecture: no spread
                text += f" ± {_fmt(std, m, spec)}"
            cells.append(text)
            paper = _fmt_paper(r[f"paper_{m}"], m, spec)
            if paper and f"paper_{m}_std" in frame.columns and not math.isnan(r[f"paper_{m}_std"]):
                paper += f" ± {r[f'paper_{m}_std']:g}"
            cells.append(paper)
        if "released_iou" in frame.columns:
            cells.append(_fmt(r["released_iou"], "released_iou", spec))
        if ci_column:
            low, high = r[f"{spec.primary}_ci_low"], r[f"{spec.primary}_ci_high"]
            cells.append(interval_cell(low, high, spec))
        if paired:
            cells.append(paired_cell(r, spec))
        diff = r[f"diff_{spec.primary}"]
        cells.append("" if math.isnan(diff) else f"{diff:+.2f}" if spec.primary in spec.percent else f"{diff:+.3f}")
        cells.append(_flag(r["within_spread"]))
        cells.append(_flag(r["tied_with_best"]))
        cells.append(str(r["note"]))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def paired_cell(r, spec: TableDefinition) -> str:
    """``"-1.00 [-3.48, +1.48] (3)"``: a row minus the reference row on their shared folds, its
    t interval (n >= 2) and the number of pairs; empty without pairs."""
    n = r["vs_ref_n"]
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    sign = lambda v: f"{v:+.2f}" if spec.primary in spec.percent else f"{v:+.3f}"  # noqa: E731
    text = sign(r["vs_ref_diff"])
    if int(n) >= 2:
        text += f" [{sign(r['vs_ref_ci_low'])}, {sign(r['vs_ref_ci_high'])}]"
    return f"{text} ({int(n)})"


def interval_cell(low: float, high: float, spec: TableDefinition) -> str:
    """``"[77.03, 86.97]"`` in the primary metric's units; empty when there is no interval."""
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return ""
    return f"[{_fmt(low, spec.primary, spec)}, {_fmt(high, spec.primary, spec)}]"


def _flag(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "yes" if bool(value) else "no"


def table_markdown(frame: pd.DataFrame, heading: str = "**") -> str:
    """Title, caption and markdown table of a built table (the text of its ``.md`` file).

    Args:
        frame: a table from :func:`build_table` (or :func:`read_table`).
        heading: ``"# "`` for a markdown heading (files), ``"**"`` for bold (notebooks).
    """
    spec = TABLES[frame.attrs["table"]]
    title = frame.attrs.get("title", spec.title)
    title = f"# {title}" if heading == "# " else f"**{title}**"
    return f"{title}\n\n{frame.attrs.get('caption', '')}\n\n{to_markdown(frame, spec)}\n"


def write_table(frame: pd.DataFrame, name: str, folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.csv`` (numbers) and ``<name>.md`` (title, caption, table) into the tables
    folder of the frame's scale (a smoke table never lands where committed tables live)."""
    folder = Path(folder) if folder is not None else paths.tables_dir(frame.attrs.get("scale") or _scale_of(name))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / f"{name}.csv", folder / f"{name}.md"
    frame.to_csv(csv_path, float_format="%.6g")
    md_path.write_text(table_markdown(frame, heading="# "), encoding="utf-8")
    meta = {k: v for k, v in frame.attrs.items() if isinstance(v, (str, int, float))}
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    return csv_path, md_path


def _scale_of(name: str) -> str | None:
    """The scale a table file name ends with (``table2_smoke`` -> ``smoke``), if any."""
    tail = name.rsplit("_", 1)[-1]
    return tail if tail in ("smoke", "reduced", "paper", "gpu") else None


def read_table(name: str, folder: Path | None = None) -> pd.DataFrame:
    """Read back a written table with its attrs (title, caption, table, scale)."""
    folder = Path(folder) if folder is not None else paths.tables_dir(_scale_of(name))
    frame = pd.read_csv(folder / f"{name}.csv", index_col="row")
    meta_path = folder / f"{name}.json"
    if meta_path.is_file():
        frame.attrs.update(json.loads(meta_path.read_text(encoding="utf-8")))
    for col in ("within_spread", "tied_with_best"):
        if col in frame.columns:
            frame[col] = frame[col].astype("boolean")
    if "note" in frame.columns:
        frame["note"] = frame["note"].astype(object).where(frame["note"].notna(), "")
    return frame
