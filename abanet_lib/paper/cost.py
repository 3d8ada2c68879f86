"""What the experiment list of a scale costs: measured where runs exist, estimated elsewhere.

The FLOP estimate (:func:`estimate_run_seconds`, :func:`budget`) ignores how badly small models use
the cores, so it misses by up to 20x (EfficientNet-b7 at 64x64: 25 s estimated, 630 s measured).
This module replaces it run by run with what the registry measured on this kind of machine:

* a finished CPU run costs the sum of its epoch times (``history.csv``, across resumes) plus its
  test evaluation, times the share of the machine's cores it used (``torch_threads / cpu_count``
  of its record, at most 1): "CPU-hours" are hours of the whole machine, so a run on one thread
  of a 2-core machine, beside a second worker (``make runs``), counts half its wall time;
* a missing run, or one trained on a GPU, is priced as ``make runs`` trains it, one thread per
  core: the median wall time of finished CPU runs with the same duration key (model, model
  options, size, epochs, batch, training data) divided by their machine's cores (measured for
  ABANet at 64x64: 34 s an epoch on one thread beside a second run, 31-34 s alone on two), else
  the FLOP estimate scaled by what that model measured against its estimate (median ratio; covers
  other sizes and training-set sizes), else the FLOP estimate alone.

Medians, because a run that shared the cores with other work is slower than one alone. For the
same reason the verdict against the budget uses each run's *typical* cost: a finished run whose
configuration was measured at least :data:`TYPICAL_MIN_RUNS` times counts at that median (two
Geng U-Net trials that ran beside a benchmark took 12 min instead of 5); the report gives the
as-measured total beside it.
"""
from __future__ import annotations

import csv
import functools
import json
import statistics
from pathlib import Path

import pandas as pd

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig, Scale, get_scale
from abanet_lib.models import create_model
from abanet_lib.models.inspect import count_flops
from abanet_lib.paper.definitions import TABLE_ORDER
from abanet_lib.paper.experiments import experiments
from abanet_lib.paper.run_plan import duration_key, priority_plan

#: The reduced list's target on a 2-core machine: the 8 CPU-hours of the list before issue 15
#: (one fold per ablation) plus the about 12 CPU-hours issue 15 allows for the claims' folds.
BUDGET_CPU_HOURS = 20.0

#: How each cost was obtained, best first.
BASES = ("measured", "same config", "same model, FLOP-scaled", "FLOP estimate")

#: A configuration measured this many times or more gives its median as the typical cost.
TYPICAL_MIN_RUNS = 3


# ---------------------------------------------------------------------------------------
# FLOP estimate (where no run of a configuration was measured)
# ---------------------------------------------------------------------------------------
#: Forward GFLOP per 64x64 image, counted with ``torch.utils.flop_counter`` (training costs
#: about 3x the forward pass). Other models are counted on first use (:func:`forward_gflop`).
FORWARD_GFLOP_AT_64 = {"abanet": 15.9, "basnet": 15.87, "smp:Unet:resnet50": 1.33, "unet_din": 1.87,
                       "grabcut": 0.0}
#: Sustained GFLOP/s of training on the development machine's 2 idle CPU cores: ABANet at 64x64,
#: batch 8, bf16 autocast + channels_last trained at 5.2 img/s = 5.2 * 3 * 15.9 GFLOP/s
#: (forward + backward ~ 3 forwards). Smaller models use the cores less well (underestimated).
CPU_GFLOPS = 248.0
#: Approximate data set sizes used by the estimate (images).
DATASET_IMAGES = {"mfsd-sample": 220, "maskedfacenet-seg500": 450, "mfsd": 8500}


@functools.lru_cache(maxsize=None)
def forward_gflop(model: str, model_kwargs: tuple = ()) -> float:
    """Forward GFLOP of one 64x64 image: the table value, else counted by
    :func:`abanet_lib.models.inspect.count_flops` on a fresh build (GrabCut: no network, 0 with
    any options)."""
    if model in FORWARD_GFLOP_AT_64 and (not model_kwargs or model == "grabcut"):
        return FORWARD_GFLOP_AT_64[model]
    net = create_model(model, **RunConfig().with_model(model, **dict(model_kwargs)).model_kwargs_dict)
    return count_flops(net, 64) / 1e9


def estimate_run_seconds(cfg: RunConfig, gflops: float = CPU_GFLOPS,
                         flop_table: dict | None = None) -> tuple[int, float]:
    """FLOP-based estimate of one run (see :func:`budget`); returns ``(n_train, seconds)``."""
    flops = flop_table or {}
    n_eval_set = DATASET_IMAGES.get(cfg.eval_dataset, 220)
    n_test = n_eval_set / cfg.n_folds if cfg.split == "groupkfold" else 0.1 * n_eval_set
    n = sum(DATASET_IMAGES.get(d, 220) for d in cfg.train_datasets if d != cfg.eval_dataset)
    if cfg.extra_train_images is not None:  # one cap over all extra sets, as in train.build_split
        n = min(n, cfg.extra_train_images)
    if cfg.eval_dataset in cfg.train_datasets:
        n += n_eval_set - n_test
    n_val = n * cfg.val_fraction
    n -= n_val
    if cfg.max_train_images is not None:
        n = min(n, cfg.max_train_images)
    if cfg.model in flops:
        f = flops[cfg.model]
    elif cfg.model in FORWARD_GFLOP_AT_64 and not cfg.model_kwargs:
        f = FORWARD_GFLOP_AT_64[cfg.model]
    elif cfg.model == "abanet":
        f = FORWARD_GFLOP_AT_64["abanet"]  # the variants differ by a few percent
    else:
        f = forward_gflop(cfg.model, cfg.model_kwargs)
    f *= (cfg.image_size / 64) ** 2
    trainable = cfg.model != "grabcut"
    total = (3 * f * cfg.epochs * n + f * cfg.epochs * n_val if trainable else 0.0) + f * n_test
    return int(n), round(total / gflops, 1)


def budget(table: str, scale: Scale | str | None = None, rows=None, gflops: float = CPU_GFLOPS,
           flop_table: dict | None = None):
    """Rough time estimate (seconds) of the runs of ``table`` at ``scale`` on a given compute rate.

    Per run: training ``3 * F * epochs * n_train`` plus validation ``F * epochs * n_val`` plus the
    test ``F * n_test`` GFLOP, divided by ``gflops``, where ``F`` is the forward GFLOP of one
    image, scaled by ``(size / 64)^2``. Data loading and Python overhead are ignored, so small
    models are underestimated.

    Args:
        gflops: sustained GFLOP/s of the machine (default: the 2-core development machine).
        flop_table: model name -> forward GFLOP at 64x64, overriding the defaults.

    Returns:
        DataFrame with one row per run: ``run_id``, ``model``, ``image_size``, ``n_train``,
        ``seconds``; ``attrs["total_s"]`` holds the sum.
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    records = []
    for cfg in experiments(table, scale, rows=rows):
        n_train, seconds = estimate_run_seconds(cfg, gflops, flop_table)
        records.append({"run_id": cfg.run_id, "model": cfg.model, "image_size": cfg.image_size,
                        "n_train": n_train, "seconds": seconds})
    frame = pd.DataFrame(records)
    frame.attrs["total_s"] = float(frame["seconds"].sum()) if len(frame) else 0.0
    return frame


# ---------------------------------------------------------------------------------------
# Measured cost
# ---------------------------------------------------------------------------------------
def measured_cpu_seconds(run_dir: Path) -> float | None:
    """Training (all epochs, across resumes) plus test seconds of a finished CPU run, times the
    share of the machine's cores the run used (see the module docstring), else None."""
    wall = measured_wall(run_dir)
    return None if wall is None else wall[0] * core_share(wall[1])


def price_per_core(run_dir: Path) -> float | None:
    """What a run of this configuration costs when ``make runs`` trains it on one thread per core:
    its wall seconds divided by its machine's cores (None: not a CPU run)."""
    wall = measured_wall(run_dir)
    return None if wall is None else _per_core(*wall)


def _per_core(seconds: float, metrics: dict) -> float:
    cores = (metrics.get("provenance", {}).get("device", {}) or {}).get("cpu_count")
    return seconds / float(cores) if cores else seconds


def measured_wall(run_dir: Path) -> tuple[float, dict] | None:
    """``(seconds, metrics)`` of a finished CPU run: its epoch times plus its test time, with its
    ``metrics.json`` as read (None: no record, or not trained on a CPU)."""
    metrics_path = Path(run_dir) / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    device = (metrics.get("provenance", {}).get("device", {}) or {}).get("device", "")
    if not str(device).startswith("cpu"):
        return None
    seconds = float(metrics.get("eval_seconds") or 0.0)
    history = Path(run_dir) / "history.csv"
    if history.is_file():
        with history.open() as fh:
            seconds += sum(float(row["seconds"]) for row in csv.DictReader(fh) if row.get("seconds"))
    elif metrics.get("train_seconds"):
        seconds += float(metrics["train_seconds"])
    return seconds, metrics


def core_share(metrics: dict) -> float:
    """Share of the machine's cores a run used: ``torch_threads / cpu_count`` of its record, at most
    1 (1 where the record does not say)."""
    info = metrics.get("provenance", {}).get("device", {}) or {}
    threads, cores = info.get("torch_threads"), info.get("cpu_count")
    if not threads or not cores:
        return 1.0
    return min(1.0, float(threads) / float(cores))


def measured_machine(run: Path | dict) -> str:
    """The machine a run was measured on, as its record says (CPU model, cores, torch).

    Args:
        run: the run's folder, or its ``metrics.json`` already read.
    """
    metrics = run if isinstance(run, dict) else json.loads((Path(run) / "metrics.json").read_text())
    info = metrics.get("provenance", {}).get("device", {}) or {}
    return (f"{info.get('cpu_model', '?')}, {info.get('cpu_count', '?')} cores, "
            f"torch {info.get('torch_version', '?')}")


def cost_table(scale: Scale | str | None = None, runs_root: Path | None = None) -> pd.DataFrame:
    """One row per run of the scale's experiment list with its measured or estimated CPU cost.

    Args:
        scale: a scale or its name (default: ``ABANET_SCALE`` or reduced).
        runs_root: run registry folder (default ``results/runs``).

    Returns:
        DataFrame with ``run_id, model, tables, fold, status`` (``done (cpu)``, ``done (gpu)`` or
        ``missing``), ``cpu_seconds`` (as measured, else priced), ``typical_seconds`` (see the
        module docstring) and ``basis`` (one of :data:`BASES`).
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    runs_root = Path(runs_root) if runs_root is not None else paths.runs_dir()
    plan = priority_plan(list(TABLE_ORDER), scale)
    records = []
    for item in plan:
        cfg = item.config
        folder = runs_root / cfg.run_id
        done = (folder / "metrics.json").is_file()
        wall = measured_wall(folder) if done else None  # metrics.json and history.csv read once per run
        measured = None if wall is None else wall[0] * core_share(wall[1])
        records.append({"run_id": cfg.run_id, "model": cfg.model, "tables": ",".join(item.tables),
                        "fold": cfg.fold, "key": duration_key(cfg),
                        "status": ("done (cpu)" if measured is not None else "done (gpu)") if done else "missing",
                        "measured": measured, "price": None if wall is None else _per_core(*wall),
                        "config": cfg, "machine": measured_machine(wall[1]) if measured is not None else ""})
    by_key: dict[str, list[float]] = {}  # machine seconds of finished runs (typical cost)
    price_by_key: dict[str, list[float]] = {}  # one-thread-per-core prices (missing runs)
    for r in records:
        if r["measured"] is not None:
            by_key.setdefault(r["key"], []).append(r["measured"])
            price_by_key.setdefault(r["key"], []).append(r["price"])
    # Only models with a run that no same-config measurement prices need their FLOPs counted.
    unpriced = {r["model"] for r in records if r["measured"] is None and r["key"] not in by_key}
    ratios = _measured_to_estimate_ratios([r for r in records if r["model"] in unpriced])
    for r in records:
        if r["measured"] is not None:
            r["cpu_seconds"], r["basis"] = r["measured"], BASES[0]
        elif r["key"] in price_by_key:
            r["cpu_seconds"], r["basis"] = statistics.median(price_by_key[r["key"]]), BASES[1]
        else:  # the FLOP estimate, scaled when the model was measured (counting FLOPs may build it once)
            estimate = estimate_run_seconds(r["config"])[1]
            if r["model"] in ratios:
                r["cpu_seconds"], r["basis"] = ratios[r["model"]] * estimate, BASES[2]
            else:
                r["cpu_seconds"], r["basis"] = estimate, BASES[3]
        group = by_key.get(r["key"], [])
        r["typical_seconds"] = (statistics.median(group) if r["measured"] is not None
                                and len(group) >= TYPICAL_MIN_RUNS else r["cpu_seconds"])
    frame = pd.DataFrame(records)
    return frame[["run_id", "model", "tables", "fold", "status", "cpu_seconds", "typical_seconds", "basis",
                  "machine"]]


def _measured_to_estimate_ratios(records: list[dict]) -> dict[str, float]:
    """Per model: median of measured seconds / FLOP-estimated seconds over its measured runs."""
    ratios: dict[str, list[float]] = {}
    for r in records:
        if r["measured"] is not None:
            estimate = estimate_run_seconds(r["config"])[1]
            if estimate > 0:
                ratios.setdefault(r["model"], []).append(r["measured"] / estimate)
    return {model: statistics.median(values) for model, values in ratios.items()}


def summary(frame: pd.DataFrame) -> dict:
    """Totals of :func:`cost_table` in hours and counts."""
    hours = lambda s: round(float(s.sum()) / 3600, 2)  # noqa: E731
    missing = frame["status"] == "missing"
    return {"runs": len(frame), "done": int((~missing).sum()), "missing": int(missing.sum()),
            "total_cpu_hours": hours(frame["cpu_seconds"]),
            "typical_cpu_hours": hours(frame["typical_seconds"]),
            "measured_cpu_hours": hours(frame.loc[frame["basis"] == BASES[0], "cpu_seconds"]),
            "remaining_cpu_hours": hours(frame.loc[missing, "cpu_seconds"]),
            "flop_estimated_runs": int((frame["basis"] == BASES[3]).sum())}


def headline(totals: dict, budget_hours: float = BUDGET_CPU_HOURS) -> str:
    """One Markdown sentence from :func:`summary`: runs done, CPU-hours, and the budget verdict.

    The verdict uses the typical total (see the module docstring); the as-measured one stands beside it.
    """
    typical = totals["typical_cpu_hours"]
    verdict = (f"within the {budget_hours:g} CPU-hour budget" if typical <= budget_hours
               else f"{typical - budget_hours:.2f} h over the {budget_hours:g} CPU-hour budget")
    return (f"**{totals['done']} of {totals['runs']} runs done; whole list about {typical} CPU-hours at "
            f"typical cost ({totals['total_cpu_hours']} h as measured, {totals['measured_cpu_hours']} h of it "
            f"measured on CPU runs), {totals['remaining_cpu_hours']} h left; {verdict}** "
            f"({totals['flop_estimated_runs']} runs priced by the FLOP estimate only).")


def write_cost_report(scale: Scale | str | None = None, folder: Path | None = None,
                      frame: pd.DataFrame | None = None) -> Path:
    """Write ``results/cost_<scale>.csv`` and ``.md`` (per model, then totals); returns the .md path."""
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    frame = cost_table(scale) if frame is None else frame
    folder = Path(folder) if folder is not None else paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    frame.drop(columns="machine").to_csv(folder / f"cost_{scale.name}.csv", index=False)
    per_model = (frame.assign(done=frame["status"] != "missing")
                 .groupby("model").agg(runs=("run_id", "count"), done=("done", "sum"),
                                       median_min=("cpu_seconds", lambda s: s.median() / 60),
                                       total_h=("cpu_seconds", lambda s: s.sum() / 3600),
                                       typical_h=("typical_seconds", lambda s: s.sum() / 3600),
                                       basis=("basis", lambda s: ", ".join(sorted(set(s)))))
                 .sort_values("typical_h", ascending=False))
    totals = summary(frame)
    # The machines come from the measured runs' records, never from the machine rendering this.
    machines = frame.loc[frame["machine"] != "", "machine"].value_counts()
    machine_text = (machines.index[0] if len(machines) == 1 else
                    "; ".join(f"{name} ({count} runs)" for name, count in sorted(machines.items())))
    lines = [f"# Cost of the `{scale.name}` experiment list on a CPU", "",
             "Generated by `abanet_lib.paper.cost.write_cost_report()`; do not edit by hand.", "",
             f"Machine{'s' if len(machines) > 1 else ''} of the measured runs: {machine_text}. Cost of a run = its epoch times plus its test evaluation "
             "(measured on CPU runs); missing and GPU-trained runs take the median of measured CPU runs "
             "of the same configuration, else the FLOP estimate scaled by the model's measured/estimated "
             f"ratio, else the FLOP estimate. Typical cost: a configuration measured {TYPICAL_MIN_RUNS}+ "
             "times counts each of its runs at the median (runs that shared the cores are slower).", "",
             headline(totals), "",
             "| model | runs | done | median min/run | total h (as measured) | total h (typical) | basis |",
             "|---|---|---|---|---|---|---|"]
    for model, row in per_model.iterrows():
        lines.append(f"| {model} | {row.runs} | {int(row.done)} | {row.median_min:.1f} | {row.total_h:.2f} | {row.typical_h:.2f} | {row.basis} |")
    out = folder / f"cost_{scale.name}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
