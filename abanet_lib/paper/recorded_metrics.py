"""What a run record says, in a table's units: its test summary, provenance, and the columns
stored beside the scores (FPS of Table 4 in ``speed.json``, cross-domain scores of the synthetic
table in ``cross_domain.json``), read from the records only, never re-measured.
"""
from __future__ import annotations

import math
from typing import Any, Collection, Iterable, Mapping

from abanet_lib.core.config import Scale, get_scale
from abanet_lib.paper.artifacts import read_cross_domain, read_speed
from abanet_lib.paper.definitions import MASKEDFACENET, PERCENT

#: Our column name -> key in a run's metrics summary (the one place to adapt if
#: :class:`abanet_lib.engine.metrics.MetricAccumulator` renames a key).
SUMMARY_KEYS = {
    "iou": "iou", "f1": "f1", "precision": "precision", "recall": "recall",
    "accuracy": "accuracy", "mae": "mae", "fbeta": "maxf", "s_measure": "s_measure",
    "fps": "fps",
}

#: Cross-domain columns of the synthetic table -> (data set, metric).
CROSS_COLUMNS = {"iou@mfsd": ("mfsd", "iou"), "f1@mfsd": ("mfsd", "f1"),
                 "iou@maskedfacenet": (MASKEDFACENET, "iou"), "f1@maskedfacenet": (MASKEDFACENET, "f1")}


def run_summary(run: Any) -> dict:
    """The metrics summary dict of a run (tolerates ``metrics.json`` nesting it)."""
    metrics = run.metrics or {}
    for key in ("summary", "test"):
        if isinstance(metrics.get(key), dict):
            return metrics[key]
    return metrics


def run_provenance(run: Any) -> dict:
    metrics = run.metrics or {}
    prov = metrics.get("provenance")
    return prov if isinstance(prov, dict) else {}


def metric_value(summary: Mapping, column: str, percent: Collection[str]) -> float:
    """One of our metric columns from a summary, in the table's units (NaN when absent)."""
    key = SUMMARY_KEYS.get(column, column)
    value = summary.get(key)
    if value is None or isinstance(value, (dict, list, str)):
        return math.nan
    value = float(value)
    return value * 100.0 if column in percent else value


def recorded_fps(runs: Iterable[Any]) -> dict[str, dict[str, float]]:
    """FPS of each run from its record's ``speed.json`` (batch 1, measured once after its
    evaluation; see :mod:`abanet_lib.paper.artifacts`). Runs without one are left out (empty cell).
    Re-measuring speed is :mod:`benchmarks.bench_speed`'s job and never feeds a table."""
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
