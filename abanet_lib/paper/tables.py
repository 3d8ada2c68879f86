"""Our tables beside the paper's: mean +- std over runs, the paper's number, the gap.

:func:`build_table` turns finished runs (:class:`abanet_lib.engine.registry.Run`) into one row per
experiment row of :mod:`abanet_lib.paper.experiments`, puts the paper's numbers
(:mod:`abanet_lib.paper.paper_numbers`) in the next columns, and writes
``results/tables/<table>_<scale>.csv`` and ``.md`` (with a caption naming scale, data, image
size, epochs, devices, number of runs and commit). :func:`write_results_readme` summarises every
written table in ``results/README.md`` with sentences computed from the numbers.

Units are the paper's: IoU, F1, precision, recall, accuracy in percent, MAE a fraction,
F-beta a fraction in Table 3 and a percent in Table 4 (as printed there). F-beta is the
*maximum* F-beta over thresholds (beta^2 = 0.3), the usual salient-object choice; the paper
does not say which F-beta it reports.

"Within spread" (primary metric, IoU unless stated): ``|ours - paper| <= std`` of our runs.
"Tied with best": our row's mean is within ``max(std_row, std_best)`` of our best row, i.e.
the difference between the two rows is smaller than the run-to-run spread.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from abanet_lib.paper import claims
from abanet_lib.core import paths
from abanet_lib.core.config import Scale, get_scale
from abanet_lib.paper.definitions import MASKEDFACENET, PERCENT, TABLE_ORDER, TABLES, TableDefinition
from abanet_lib.paper.experiments import ExperimentRow, table_rows
from abanet_lib.paper.paper_numbers import RELEASED_SMP_SCORES

#: Our column name -> key in a run's metrics summary (the one place to adapt if
#: :class:`abanet_lib.engine.metrics.MetricAccumulator` renames a key).
SUMMARY_KEYS = {
    "iou": "iou", "f1": "f1", "precision": "precision", "recall": "recall",
    "accuracy": "accuracy", "mae": "mae", "fbeta": "maxf", "s_measure": "s_measure",
    "fps": "fps",
}
#: Metrics where lower is better.
LOWER_IS_BETTER = {"mae"}


#: Cross-domain columns of the synthetic table -> (data set, metric).
CROSS_COLUMNS = {"iou@mfsd": ("mfsd", "iou"), "f1@mfsd": ("mfsd", "f1"),
                 "iou@maskedfacenet": (MASKEDFACENET, "iou"), "f1@maskedfacenet": (MASKEDFACENET, "f1")}


# ---------------------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------------------
def run_summary(run: Any) -> dict:
    """The metrics summary dict of a run (tolerates ``metrics.json`` nesting it)."""
    metrics = getattr(run, "metrics", None) or {}
    for key in ("summary", "test"):
        if isinstance(metrics.get(key), dict):
            return metrics[key]
    return metrics


def run_provenance(run: Any) -> dict:
    metrics = getattr(run, "metrics", None) or {}
    prov = metrics.get("provenance")
    return prov if isinstance(prov, dict) else {}


def _device_name(prov: dict) -> str:
    dev = prov.get("device")
    if isinstance(dev, dict):
        if dev.get("cuda_name"):
            return str(dev["cuda_name"])
        cpu = dev.get("cpu_model") or "CPU"
        threads = dev.get("torch_threads")
        return f"{cpu} ({threads} threads)" if threads else str(cpu)
    return str(dev) if dev else "unknown device"


def metric_value(summary: Mapping, column: str, percent: Collection[str]) -> float:
    """One of our metric columns from a summary, in the table's units (NaN when absent)."""
    key = SUMMARY_KEYS.get(column, column)
    value = summary.get(key)
    if value is None or isinstance(value, (dict, list, str)):
        return math.nan
    value = float(value)
    return value * 100.0 if column in percent else value


# ---------------------------------------------------------------------------------------
# Building one table
# ---------------------------------------------------------------------------------------
def build_table(
    table: str,
    runs: Iterable[Any],
    scale: Scale | str | None = None,
    rows: Iterable[str] | str | None = None,
    extra_metrics: Mapping[str, Mapping[str, float]] | None = None,
    write: bool = True,
    folder: Path | None = None,
    check_models: bool = True,
) -> pd.DataFrame:
    """Our table (mean +- std over runs) beside the paper's.

    Args:
        table: ``"table2"`` ... ``"table9"``, ``"fig7"``, ``"released_vs_paper"``, ``"synthetic"``.
        runs: finished runs (objects with ``config`` and ``metrics``); runs of other tables
            are ignored, so passing every run is fine.
        scale: the scale the runs belong to (caption, row list).
        rows: subset of rows (see :func:`abanet_lib.paper.experiments.table_rows`).
        extra_metrics: run id -> {column: value in the table's units} added to (and overriding)
            the run's own metrics. Columns recorded beside the scores (FPS: :func:`recorded_fps`,
            cross-domain scores: :func:`recorded_cross_domain`) are read from the records.
        write: write ``<table>_<scale>.csv`` and ``.md`` into ``folder`` (default
            ``results/tables/``).
        folder: output folder override.
        check_models: mark rows whose model cannot be built as "not built".

    Returns:
        DataFrame indexed by row label with ``status``, ``n``, per metric ``<m>``,
        ``<m>_std``, ``paper_<m>``, then ``diff_<primary>``, ``within_spread``,
        ``tied_with_best``, ``note``, ``run_ids``. ``attrs["caption"]`` holds the caption.
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    if table not in TABLES:
        raise ValueError(f"build_table: unknown table {table!r}; expected one of {', '.join(TABLES)}")
    spec = TABLES[table]
    exp_rows = table_rows(table, scale, rows, check_models=check_models)
    by_id = {}
    for run in runs:
        by_id.setdefault(run.config.run_id, run)
    extra: dict[str, dict[str, float]] = {}
    # Columns stored beside the scores (speed.json, cross_domain.json), read from the records only.
    recorded = RECORDED_COLUMNS & set(spec.metrics)
    if "fps" in recorded:
        _merge(extra, recorded_fps(by_id.values()))
    if recorded - {"fps"}:
        _merge(extra, recorded_cross_domain(by_id.values(), scale))
    _merge(extra, extra_metrics or {})

    records, used_runs = [], []
    for row in exp_rows:
        # A skipped row is not part of the scale's list, even if an earlier run of it exists.
        found = [] if row.skipped else [by_id[i] for i in row.run_ids if i in by_id]
        used_runs += found
        records.append(_row_record(row, found, spec, extra))
    frame = pd.DataFrame(records).set_index("row")
    frame.index.name = "row"
    _add_paper_columns(frame, table, exp_rows, spec)
    _add_comparisons(frame, spec)
    frame.attrs["caption"] = caption(table, scale, used_runs, exp_rows, spec)
    frame.attrs["title"] = spec.title
    frame.attrs["table"] = table
    frame.attrs["scale"] = scale.name
    if write:
        write_table(frame, f"{table}_{scale.name}", folder=folder)
    return frame


def _merge(into: dict, more: Mapping) -> None:
    for run_id, values in more.items():
        into.setdefault(run_id, {}).update(values)


def _row_record(row: ExperimentRow, found: list, spec: TableDefinition, extra: Mapping) -> dict:
    rec: dict[str, Any] = {"row": row.label}
    expected = len(row.configs)
    if row.not_built is not None:
        rec["status"] = f"not built: {row.not_built}"
    elif row.skipped is not None:
        rec["status"] = f"not run at this scale: {row.skipped}"
    elif not found:
        rec["status"] = "not run"
    elif len(found) < expected:
        rec["status"] = f"partial ({len(found)}/{expected} runs)"
    else:
        rec["status"] = "ok"
    rec["n"] = len(found)
    for m in spec.metrics:
        values = []
        for run in found:
            value = extra.get(run.config.run_id, {}).get(m)
            if value is None:
                value = metric_value(run_summary(run), m, spec.percent)
            values.append(float(value))
        values = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
        rec[m] = float(values.mean()) if len(values) else math.nan
        rec[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    missing = {m: [run.config.run_id for run in found
                   if math.isnan(float(extra.get(run.config.run_id, {}).get(m, math.nan)))]
               for m in spec.metrics if m in RECORDED_COLUMNS}
    gaps = [f"{m} not in the record of {', '.join(ids)} (measured after training only where the "
            f"weights were at hand; these runs' weights are not)" for m, ids in missing.items() if ids]
    rec["note"] = "; ".join([row.note] + gaps if row.note else gaps)
    rec["run_ids"] = ";".join(run.config.run_id for run in found)
    return rec


def _add_paper_columns(frame: pd.DataFrame, table: str, exp_rows: list[ExperimentRow], spec: TableDefinition) -> None:
    paper_frames: dict[str, pd.DataFrame | None] = {}
    for m in spec.metrics:
        frame[f"paper_{m}"] = math.nan
        frame[f"paper_{m}_std"] = math.nan
    for row in exp_rows:
        if row.paper_row is None:
            continue
        paper = paper_frames.setdefault(row.paper_table, TABLES[row.paper_table].paper_frame())
        if paper is None or row.paper_row not in paper.index:
            continue
        for m in spec.metrics:
            paper_col = _paper_column(m)
            if paper_col is not None and paper_col in paper.columns:
                frame.loc[row.label, f"paper_{m}"] = float(paper.loc[row.paper_row, paper_col])
            if f"{paper_col}_std" in paper.columns:
                frame.loc[row.label, f"paper_{m}_std"] = float(paper.loc[row.paper_row, f"{paper_col}_std"])
    for m in spec.metrics:  # drop std columns the paper never gives
        if frame[f"paper_{m}_std"].isna().all():
            del frame[f"paper_{m}_std"]
    if table == "table2":
        frame["released_iou"] = [float(RELEASED_SMP_SCORES.loc[r, "iou"]) if r in RELEASED_SMP_SCORES.index
                                 else math.nan for r in frame.index]


def _paper_column(metric: str) -> str | None:
    """The paper's column for one of ours; the paper has MFSD numbers only (no "@maskedfacenet")."""
    base, _, where = metric.partition("@")
    return base if where in ("", "mfsd") else None


def _add_comparisons(frame: pd.DataFrame, spec: TableDefinition) -> None:
    p = spec.primary
    sign = -1.0 if p in LOWER_IS_BETTER else 1.0
    ours, std, paper = frame[p], frame[f"{p}_std"], frame[f"paper_{p}"]
    frame[f"diff_{p}"] = ours - paper
    within = []
    for o, s, q in zip(ours, std, paper):
        within.append(None if any(math.isnan(v) for v in (o, s, q)) else bool(abs(o - q) <= s))
    frame["within_spread"] = pd.array(within, dtype="boolean")
    tied = [None] * len(frame)
    if ours.notna().any():
        best = (ours * sign).idxmax()
        best_mean, best_std = ours[best], std[best]
        for i, (label, o, s) in enumerate(zip(frame.index, ours, std)):
            if math.isnan(o):
                continue
            if label == best:
                tied[i] = True
                continue
            spread = np.nanmax([s, best_std]) if not (math.isnan(s) and math.isnan(best_std)) else math.nan
            tied[i] = None if math.isnan(spread) else bool(abs(o - best_mean) <= spread)
        frame.attrs["best_row"] = best
    frame["tied_with_best"] = pd.array(tied, dtype="boolean")


# ---------------------------------------------------------------------------------------
# Caption, markdown, files
# ---------------------------------------------------------------------------------------
def caption(table: str, scale: Scale, runs: Sequence[Any], exp_rows: Sequence[ExperimentRow],
            spec: TableDefinition | None = None) -> str:
    """Caption sentences: what was run, on what, how often, where, at which commit."""
    spec = spec or TABLES[table]
    configs = [c for r in exp_rows for c in r.configs]
    sizes = sorted({c.image_size for c in configs})
    epochs = sorted({c.epochs for c in configs})
    train_sets = sorted({" + ".join(c.train_datasets) for c in configs})
    test_sets = sorted({c.eval_dataset for c in configs})
    devices = sorted({_device_name(run_provenance(r)) for r in runs}) or ["none (no runs yet)"]
    commits = sorted({str(run_provenance(r).get("git_commit", "unknown"))[:10] for r in runs})
    dirty = any(run_provenance(r).get("git_dirty") for r in runs)
    per_row = sorted({len(r.configs) for r in exp_rows})
    parts = [
        f"Scale: {scale.description}.",
        f"Ours: mean +- std over the runs of each row (n in the table; {'/'.join(map(str, per_row))} "
        f"planned per row; std needs n >= 2). {len(runs)} runs in this table.",
        f"Train: {'; '.join(train_sets)}. Test: {', '.join(test_sets)} (split {scale.split}, "
        f"{scale.n_folds} folds where applicable).",
        f"Image size: {', '.join(f'{s}x{s}' for s in sizes)}. Epochs: {', '.join(map(str, epochs))}. "
        f"ImageNet weights: {'yes' if scale.pretrained else 'no (from scratch)'}.",
        f"Device(s): {'; '.join(devices)}.",
        f"Commit(s): {', '.join(commits) if commits else 'n/a'}{' (uncommitted changes)' if dirty else ''}.",
        f"Paper numbers: {spec.paper_source}.",
    ]
    if spec.notes:
        parts.append(spec.notes)
    if scale.name == "smoke":
        parts.append("Smoke scale runs a subset of rows (the table definition's smoke_rows) and its numbers "
                     "mean nothing; it checks the plumbing only.")
    parts.append("within spread: |ours - paper| <= our std on "
                 f"{spec.primary}; tied with best: within the larger std of the two rows.")
    return " ".join(parts)


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
        diff = r[f"diff_{spec.primary}"]
        cells.append("" if math.isnan(diff) else f"{diff:+.2f}" if spec.primary in spec.percent else f"{diff:+.3f}")
        cells.append(_flag(r["within_spread"]))
        cells.append(_flag(r["tied_with_best"]))
        cells.append(str(r["note"]))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------------------
# Extra measurements: FPS (Table 4) and cross-domain scores (synthetic)
# ---------------------------------------------------------------------------------------
def recorded_fps(runs: Iterable[Any]) -> dict[str, dict[str, float]]:
    """FPS of each run from its record's ``speed.json`` (batch 1, measured once after its
    evaluation; see :mod:`abanet_lib.paper.artifacts`). Runs without one are left out (empty cell).
    Re-measuring speed is :mod:`benchmarks.bench_speed`'s job and never feeds a table."""
    from abanet_lib.paper.artifacts import read_speed

    out = {}
    for run in runs:
        speed = read_speed(run)
        if speed is not None:
            out[run.config.run_id] = {"fps": float(speed["fps"])}
    return out


def recorded_cross_domain(runs: Iterable[Any], scale: Scale | str | None = None) -> dict[str, dict[str, float]]:
    """IoU/F1 of each synthetic-table run on both test sets (percent; run id -> columns), from
    the run's own test scores and its record's ``cross_domain.json``. A cross-domain score the
    record lacks stays NaN (the table's note says why)."""
    from abanet_lib.paper.artifacts import read_cross_domain

    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        cfg = run.config
        other = read_cross_domain(run) or {}
        values: dict[str, float] = {}
        for column, (dataset, metric) in CROSS_COLUMNS.items():
            name = scale.eval_dataset if dataset == "mfsd" else dataset
            summary = run_summary(run) if name == cfg.eval_dataset else other.get(name, {})
            values[column] = metric_value(summary, metric, PERCENT)
        out[cfg.run_id] = values
    return out


#: Columns that come from a record's artifacts rather than its test summary.
RECORDED_COLUMNS = frozenset({"fps", *CROSS_COLUMNS})




# ---------------------------------------------------------------------------------------
# results/README.md
# ---------------------------------------------------------------------------------------
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def summarize_table(frame: pd.DataFrame, spec: TableDefinition) -> list[str]:
    """Honest sentences computed from one table's numbers."""
    p = spec.primary
    unit = " points" if p in spec.percent else ""
    status = frame["status"].astype(str)
    n_rows = len(frame)
    done = frame[frame[p].notna()]
    n_not_built = int(status.str.startswith("not built").sum())
    n_not_run = int((status == "not run").sum())
    n_skipped = int(status.str.startswith("not run at this scale").sum())
    out = [f"{len(done)} of {n_rows} rows have results"
           + (f"; {n_not_built} not built" if n_not_built else "")
           + (f"; {n_skipped} left out at this scale for cost" if n_skipped else "")
           + (f"; {n_not_run} not run yet" if n_not_run else "") + "."]
    if done.empty:
        return out
    sign = -1.0 if p in LOWER_IS_BETTER else 1.0
    our_best = (done[p] * sign).idxmax()
    paper_done = done[done[f"paper_{p}"].notna()]
    fmt = (lambda v: f"{v:.2f}") if p in spec.percent else (lambda v: f"{v:.3f}")
    best_std = done.loc[our_best, f"{p}_std"]
    out.append(f"Our best row on {p}: {our_best} ({fmt(done.loc[our_best, p])}"
               + (f" ± {fmt(best_std)}" if not math.isnan(best_std) else ", single run") + ").")
    if len(paper_done) >= 2:
        # Who "wins" is the claims ledger's question (paired folds, CI): not asked here.
        agree, total = _pair_agreement(paper_done[p].to_numpy(), paper_done[f"paper_{p}"].to_numpy())
        if total:
            out.append(f"Our order agrees with the paper's for {agree} of {total} row pairs.")
    tied = done[done["tied_with_best"].fillna(False).astype(bool)]
    if len(tied) > 1:
        out.append(f"{len(tied)} rows ({', '.join(map(str, tied.index))}) lie within the run-to-run "
                   "spread of our best row: the ranking among them is not resolved by our runs.")
    elif done[f"{p}_std"].isna().all():
        out.append("Each row has a single run, so no spread is known and no difference between rows "
                   "can be called significant.")
    if len(paper_done):
        gap = (paper_done[p] - paper_done[f"paper_{p}"]).mean()
        within = paper_done["within_spread"].dropna()
        out.append(f"Mean gap ours - paper on {p}: {gap:+.2f}{unit} over {len(paper_done)} rows"
                   + (f"; {int(within.sum())} of {len(within)} rows are within our spread of the paper's value."
                      if len(within) else "."))
    return out


def _pair_agreement(ours: np.ndarray, paper: np.ndarray) -> tuple[int, int]:
    agree = total = 0
    for i in range(len(ours)):
        for j in range(i + 1, len(ours)):
            if paper[i] == paper[j]:
                continue
            total += 1
            agree += int(np.sign(ours[i] - ours[j]) == np.sign(paper[i] - paper[j]))
    return agree, total


CAVEATS = {
    "reduced": (
        "Caveats that apply to every table: the paper trains on 8,500 MFSD crops and tests on 1,758; "
        "offline we have 220 real MFSD crops (mfsd-sample), so each reduced-scale model sees about 150 "
        "training images and is tested on about 44 per fold. Encoders start from scratch (no ImageNet "
        "weights offline), images are smaller and training is shorter than the paper's (see each "
        "caption). Absolute numbers are therefore expected to sit below the paper's; the comparison "
        "that carries information is the order of rows and whether gaps exceed the spread over folds. "
        "EINet and the Table 4 methods other than GrabCut are stand-ins: the original networks are "
        "unpublished."
    ),
    "paper": (
        "Caveats: the paper-scale runs follow the paper's recipe (full MFSD split, 256x256, batch 8, Adam "
        "1e-4, ImageNet encoders) but not its unpublished details (epochs, model selection, augmentation); "
        "EINet and the Table 4 methods other than GrabCut are stand-ins for unpublished networks."
    ),
    "smoke": (
        "Caveat: smoke scale (1 epoch on 16 images of 64x64) only checks that the pipeline runs; its "
        "numbers mean nothing and must not be compared with the paper."
    ),
}


def _pick_scale(folder: Path) -> str | None:
    for name in ("paper", "reduced", "smoke"):
        if any(folder.glob(f"*_{name}.csv")):
            return name
    return None


def _ledger_sentences(scale: str, folder: Path) -> dict[str, list[str]]:
    """Write the claims ledger next to the tables and return, per table, one sentence per claim."""
    ledger = claims.write_claims(scale, folder=folder)
    table_of = {c.key: c.table for c in claims.CLAIMS}
    out: dict[str, list[str]] = {}
    for _, r in ledger.claims.iterrows():
        diff = claims.diff_ci_text(r) + (" IoU points" if int(r["n"]) else "")
        out.setdefault(table_of[r["claim"]], []).append(
            f"*{r['claim_text']}*: **{r['verdict']}** ({r['row']} vs {r['vs']}: {diff}, n = {int(r['n'])}).")
    return out


def write_results_readme(scale: str | None = None, folder: Path | None = None,
                         readme: Path | None = None, cost: bool = False) -> Path:
    """Write ``results/README.md`` from the written tables and update README.md's results block.

    Args:
        scale: which scale's tables to summarise (default: the largest scale with tables).
        folder: tables folder (default ``results/tables``).
        readme: the project README whose block between ``<!-- results:start -->`` and
            ``<!-- results:end -->`` is replaced (only when both markers exist).
        cost: also write ``results/cost_<scale>.md`` (:mod:`abanet_lib.paper.cost`: runs done, CPU-hours
            measured and left) and quote its summary line.

    Returns:
        Path of ``results/README.md``.
    """
    folder = Path(folder) if folder is not None else paths.tables_dir()
    scale = scale or _pick_scale(folder) or "reduced"
    lines = [f"# Results ({scale} scale)", "",
             "Generated by `abanet_lib.paper.tables.write_results_readme()` from `results/tables/`; "
             "do not edit by hand.", "", CAVEATS.get(scale, CAVEATS["reduced"]), ""]
    short = []
    ledger_sentences = _ledger_sentences(scale, folder.parent) if any(folder.glob(f"*_{scale}.csv")) else {}
    for table in TABLE_ORDER:
        name = f"{table}_{scale}"
        if not (folder / f"{name}.csv").is_file():
            continue
        frame = read_table(name, folder)
        spec = TABLES[table]
        sentences = summarize_table(frame, spec)
        verdicts = ledger_sentences.get(table, [])
        lines += [f"## {spec.title}", "", f"Table: [`tables/{name}.md`](tables/{name}.md).", "",
                  " ".join(sentences), ""]
        if verdicts:
            lines += ["Claims ledger ([`claims.md`](claims.md)):", "", *[f"- {v}" for v in verdicts], ""]
        short.append(f"- **{spec.title}** ([table](results/tables/{name}.md)): " + " ".join(sentences[:2])
                     + (" Ledger: " + " ".join(verdicts) if verdicts else ""))
    if not short:
        lines.append("No tables written yet: run the notebooks (or `make reproduce`).")
    if cost:
        from abanet_lib.paper import cost as cost_module

        frame = cost_module.cost_table(scale)
        report = cost_module.write_cost_report(scale, folder=folder.parent, frame=frame)
        headline = cost_module.headline(cost_module.summary(frame))
        lines += ["## Cost of the experiment list", "", f"{headline} Per model: [`{report.name}`]({report.name}).", ""]
        short.append(f"- **Cost** ([per model](results/{report.name})): {headline}")
    out = folder.parent / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    readme = Path(readme) if readme is not None else paths.PROJECT_ROOT / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if README_START in text and README_END in text:
            block = "\n".join([README_START, f"Results at {scale} scale (details: `results/README.md`).", "",
                               *(short or ["No tables written yet."]), "", README_END])
            new = re.sub(re.escape(README_START) + r".*?" + re.escape(README_END), lambda _: block,
                         text, count=1, flags=re.S)
            if new != text:
                readme.write_text(new, encoding="utf-8")
    return out
