"""One reproduced table beside the paper's: mean +- std over runs, the paper's number, the gap.

:func:`build_table` turns finished runs (:class:`abanet_lib.engine.registry.Run`) into one row
per row of the table's definition (:mod:`abanet_lib.paper.definitions`, expanded by
:mod:`abanet_lib.paper.experiments`), puts the paper's numbers in the next columns, and writes
``results/tables/<table>_<scale>.csv`` and ``.md`` (:mod:`abanet_lib.paper.table_files`) with a
caption naming scale, data, image size, epochs, devices, number of runs and commit.

Units are the paper's: IoU, F1, precision, recall, accuracy in percent, MAE a fraction,
F-beta a fraction in Table 3 and a percent in Table 4 (as printed there). F-beta is the
*maximum* F-beta over thresholds (beta^2 = 0.3), the usual salient-object choice; the paper
does not say which F-beta it reports.

"95 % CI" (primary metric): the row's mean over its ``n`` runs +- ``t_{0.975, n-1} x sd / sqrt(n)``
(Student t over the runs, df = n - 1; none when n < 2). It is the interval of the row's own
mean; whether two rows differ is a *paired* interval, which removes the fold-to-fold spread both
rows share: the ``vs_ref_*`` columns give each row minus the table's canonical ABANet row on the
(fold, seed) pairs both rows have (a row's mean and ABANet's may stand on different folds; this
difference never does), and the claims ledger (``results/claims.md``) gives every claim's.

"Within spread" (primary metric, IoU unless stated): ``|ours - paper| <= std`` of our runs.
"Tied with best": our row's mean is within ``max(std_row, std_best)`` of our best row, i.e.
the difference between the two rows is smaller than the run-to-run spread.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from abanet_lib.core.config import Scale, get_scale
from abanet_lib.paper.definitions import ABANET_ROW, LOWER_IS_BETTER, TABLES, TableDefinition
from abanet_lib.paper.experiments import ExperimentRow, every_fold, has_own_folds, table_rows
from abanet_lib.paper.paper_numbers import RELEASED_SMP_SCORES
from abanet_lib.paper.recorded_metrics import (RECORDED_COLUMNS, metric_value, recorded_cross_domain, recorded_fps,
                                               run_provenance, run_summary)
from abanet_lib.paper.runs import load_finished
from abanet_lib.paper.table_files import write_table



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
    committed: bool = True,
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
        committed: also count the committed records (``results/runs``) of each row on folds
            beyond the scale's (a fold run from a notebook with ``folds=[1]``, say), as the
            claims ledger does; the row's status still judges the scale's own folds, and its
            note names the extra folds. Only for the scale's own folds: a scale whose folds a
            notebook chose (``notebook_scale(folds=...)``) shows exactly those. ``False``: only ``runs``.

    Returns:
        DataFrame indexed by row label with ``status``, ``n``, per metric ``<m>``,
        ``<m>_std``, ``<primary>_ci_low``/``<primary>_ci_high``, ``paper_<m>``, then ``diff_<primary>``, ``within_spread``,
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
    # Records beyond the scale's folds count; read before the recorded columns so they get theirs.
    beyond = _configs_beyond_scale(table, scale, exp_rows) if committed else {}
    by_id.update({i: run for i, run in load_finished(
        cfg for cfgs in beyond.values() for cfg in cfgs if cfg.run_id not in by_id).items()})

    extra: dict[str, dict[str, float]] = {}
    # Columns stored beside the scores (speed.json, cross_domain.json), read from the records only.
    recorded = RECORDED_COLUMNS & set(spec.metrics)
    if "fps" in recorded:
        _merge(extra, recorded_fps(by_id.values()))
    if recorded - {"fps"}:
        _merge(extra, recorded_cross_domain(by_id.values(), scale))
    _merge(extra, extra_metrics or {})

    records, used_runs, per_fold = [], [], {}
    for row in exp_rows:
        # A skipped row is not part of the scale's list, even if an earlier run of it exists.
        found = [] if row.skipped else [by_id[i] for i in row.run_ids if i in by_id]
        more = [] if row.skipped else [by_id[c.run_id] for c in beyond.get(row.label, ()) if c.run_id in by_id]
        used_runs += found + more
        records.append(_row_record(row, found, spec, extra, more))
        per_fold[row.label] = {(run.config.fold, run.config.seed): v for run in found + more
                               if math.isfinite(v := _value(run, spec.primary, spec, extra))}
    frame = pd.DataFrame(records).set_index("row")
    frame.index.name = "row"
    _add_paper_columns(frame, table, exp_rows, spec)
    _add_comparisons(frame, spec)
    _add_paired_to_reference(frame, per_fold, spec)
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


def _configs_beyond_scale(table: str, scale: Scale, exp_rows: Sequence[ExperimentRow]) -> dict[str, list]:
    """``{row label: configs}`` of each row on the folds of its split that ``scale`` does not plan
    (none when the folds were chosen by hand: they differ from the registered scale's)."""
    wide = every_fold(scale)
    if wide is scale or not has_own_folds(scale):
        return {}
    planned = {row.label: set(row.run_ids) for row in exp_rows}
    return {row.label: [cfg for cfg in row.configs if cfg.run_id not in planned[row.label]]
            for row in table_rows(table, wide, rows=list(planned), check_models=False)}


def _row_record(row: ExperimentRow, found: list, spec: TableDefinition, extra: Mapping,
                beyond: Sequence = ()) -> dict:
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
    found = list(found) + list(beyond)
    rec["n"] = len(found)
    for m in spec.metrics:
        values = np.asarray([v for v in (_value(run, m, spec, extra) for run in found) if not math.isnan(v)],
                            dtype=float)
        rec[m] = float(values.mean()) if len(values) else math.nan
        rec[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        if m == spec.primary:
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = mean_interval(values)
    missing = {m: [run.config.run_id for run in found
                   if math.isnan(float(extra.get(run.config.run_id, {}).get(m, math.nan)))]
               for m in spec.metrics if m in RECORDED_COLUMNS}
    gaps = [f"{m} not in the record of {', '.join(ids)} (measured after training only where the "
            f"weights were at hand; these runs' weights are not)" for m, ids in missing.items() if ids]
    if beyond:
        folds = ", ".join(str(run.config.fold) for run in beyond)
        gaps.append(f"n counts committed fold{'s' if len(beyond) > 1 else ''} {folds} beyond the scale's")
    rec["note"] = "; ".join([row.note] + gaps if row.note else gaps)
    rec["run_ids"] = ";".join(run.config.run_id for run in found)
    return rec


def _value(run: Any, metric: str, spec: TableDefinition, extra: Mapping) -> float:
    value = extra.get(run.config.run_id, {}).get(metric)
    return float(metric_value(run_summary(run), metric, spec.percent) if value is None else value)


def reference_row(labels: Sequence[str]) -> str | None:
    """The table's canonical ABANet row (``"ABANet (ours)"`` or a label ending in ``"(ABANet)"``)."""
    return next((label for label in labels if label == ABANET_ROW or str(label).endswith("(ABANet)")), None)


def _add_paired_to_reference(frame: pd.DataFrame, per_fold: Mapping[str, Mapping[tuple, float]],
                             spec: TableDefinition) -> None:
    """``vs_ref_*`` columns: each row minus the canonical ABANet row on the (fold, seed) pairs both
    have (their means may stand on different folds; this difference does not), with its t interval."""
    p = spec.primary
    ref = reference_row(list(frame.index))
    columns = ("vs_ref_n", "vs_ref_diff", "vs_ref_ci_low", "vs_ref_ci_high")
    for c in columns:
        frame[c] = math.nan
    if ref is None:
        return
    frame.attrs["reference_row"] = ref
    for label in frame.index:
        if label == ref:
            continue
        keys = sorted(set(per_fold.get(label, {})) & set(per_fold.get(ref, {})))
        if not keys:
            continue
        diffs = [per_fold[label][k] - per_fold[ref][k] for k in keys]
        low, high = mean_interval(diffs)
        frame.loc[label, list(columns)] = [len(keys), float(np.mean(diffs)), low, high]


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaNs when fewer than 2 values).

    Example:
        >>> [round(v, 3) for v in mean_interval([80.0, 82.0, 84.0])]
        [77.032, 86.968]
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return float(values.mean()) - half, float(values.mean()) + half


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


def _device_name(prov: dict) -> str:
    dev = prov.get("device")
    if isinstance(dev, dict):
        if dev.get("cuda_name"):
            return str(dev["cuda_name"])
        cpu = dev.get("cpu_model") or "CPU"
        threads = dev.get("torch_threads")
        return f"{cpu} ({threads} threads)" if threads else str(cpu)
    return str(dev) if dev else "unknown device"


def _pretrained_text(configs: Sequence[Any]) -> str:
    flags = {bool(c.pretrained) for c in configs}
    return "yes" if flags == {True} else "no (from scratch)" if flags <= {False} else "per row (see the rows)"


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
        f"planned per row; std needs n >= 2), and the 95 % CI of the row's mean {spec.primary} (Student t "
        f"over its n runs). {len(runs)} runs in this table. Whether two rows differ: the paired "
        f"intervals of the claims ledger (results/claims.md).",
        f"Train: {'; '.join(train_sets)}. Test: {', '.join(test_sets)} (split {scale.split}, "
        f"{scale.n_folds} folds where applicable).",
        f"Image size: {', '.join(f'{s}x{s}' for s in sizes)}. Epochs: {', '.join(map(str, epochs))}. "
        f"ImageNet weights: {_pretrained_text(configs)}.",
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


