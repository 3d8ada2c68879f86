"""Run many experiments within a time budget, in parallel worker processes, then pack them.

Made for a borrowed GPU machine with a hard time limit (``scripts/gpu_run.sh``), and usable
on CPU (the smoke test). One GPU that trains small models at 128x128 is launch-bound, so
several worker *processes* sharing it finish more runs per minute than one.

    python -m abanet_lib.ops.batch_runner --scale reduced --tables table5,table2 \\
        --budget-s 480 --workers 4 --out OUT
    python -m abanet_lib.ops.batch_runner merge OUT/runs.tar.gz

What ``run`` does:

1. builds the experiment list of the tables, in priority order (:func:`priority_plan`):
   main ABANet/BASNet rows of the first fold, ablations of the first fold, the other
   Table 2 rows of the first fold, Table 4 trials, then the remaining folds;
2. drops runs already complete in the registry, prepares the data cache once;
3. starts ``--workers`` processes; each walks the list, takes a run by creating its lock file
   (``O_EXCL``: two workers never take the same run), runs it through
   :func:`abanet_lib.paper.runs.run_or_load`, and records the outcome; a run whose estimated
   duration (from finished runs of the same model and size) no longer fits the budget is
   not started; at the budget's end workers still busy are stopped;
4. writes ``OUT/runs.tar.gz`` (every run folder completed in this session, paths relative to
   ``results/runs``), ``OUT/summary.json`` and ``OUT/log.txt``, whatever failed before.

``merge`` unpacks such an archive into ``results/runs/`` and never overwrites a complete run.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import tarfile
import time
import traceback
from pathlib import Path

import torch

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig, Scale, get_scale
from abanet_lib.core.devices import resolve_device
from abanet_lib.core.io import atomic_write, atomic_write_json, try_lock
from abanet_lib.data import prepare_arrays
from abanet_lib.engine import registry
from abanet_lib.engine.assembly import build_split, build_training_data
from abanet_lib.ops.concurrency import plan_workers
from abanet_lib.paper import cost, experiments
from abanet_lib.paper.run_plan import (TIER_ABLATION, TIER_CLAIM_FOLDS, TIER_COMPARISON,  # noqa: F401 (re-exported)
                                       TIER_MAIN, TIER_NAMES, TIER_OTHER_FOLDS, TIER_TRIALS, PlannedRun,
                                       duration_key, priority_plan)

#: Tables run when ``--tables`` is not given or is ``all``: every table of
#: :data:`abanet_lib.paper.experiments.TABLES` (the priority order comes from :func:`priority_plan`).
DEFAULT_TABLES = "all"
METRICS_FILE = "metrics.json"
ARCHIVE_NAME = "runs.tar.gz"
#: What a worker calls with each config (tests substitute a fast stand-in).
DEFAULT_RUNNER = "abanet_lib.paper.runs:run_or_load"

# ---------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------
def parse_tables(text: str) -> list[str]:
    """``"table5,table2"`` -> ``["table5", "table2"]``; ``"all"`` -> every known table."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return list(experiments.TABLES)
    unknown = [t for t in names if t not in experiments.TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; expected some of {list(experiments.TABLES)} or 'all'")
    return names


# ---------------------------------------------------------------------------------------
# Shared state between workers: lock files and status files in a work folder
# ---------------------------------------------------------------------------------------
def _write_json_atomic(path: Path, obj) -> None:
    atomic_write_json(path, obj, indent=2, default=str)


def acquire_lock(work_dir: Path, run_id: str, worker: int) -> bool:
    """Claim ``locks/<run_id>`` for ``worker``; False when another worker has claimed it.

    The claim stays after the worker ends (it marks the run as started), so a claim is never
    taken over, even from a worker that died.
    """
    return try_lock(Path(work_dir) / "locks" / run_id, take_over_stale=False)


def read_statuses(work_dir: Path) -> dict[str, dict]:
    """Outcome records ``status/<run_id>.json`` written by the workers."""
    out = {}
    for path in sorted((Path(work_dir) / "status").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # being replaced right now
    return out


PRIORS_FILE = "priors.json"


def recorded_priors(configs: list[RunConfig], threads: int) -> dict[str, float]:
    """``{duration_key: seconds}``: the slowest committed CPU record of each configuration, epochs
    plus test, from the records that trained on ``threads`` threads (as a worker of this sitting
    will) if the configuration has any, else from its records on other thread counts (measured
    here: one thread beside a second run takes as long as one run alone on both cores, README
    "How the list is trained"). A sitting thus knows from its first minute what a run costs
    (before: estimate 0 until one finished, so the first runs started even when they could not
    end within the budget; and a configuration recorded only on other thread counts was priced
    like any finished run, which let a 17-minute 128x128 run start 4 minutes before the deadline)."""
    same: dict[str, float] = {}
    other: dict[str, float] = {}
    for cfg in configs:
        wall = cost.measured_wall(paths.runs_dir() / cfg.run_id)
        if wall is None:
            continue  # not a CPU record
        info = wall[1].get("provenance", {}).get("device", {}) or {}
        found = same if info.get("torch_threads") == threads else other
        key = duration_key(cfg)
        found[key] = max(found.get(key, 0.0), round(wall[0], 1))
    return {**other, **same}


def estimate_seconds(cfg: RunConfig, statuses: dict[str, dict], priors: dict[str, float] | None = None) -> float:
    """Expected duration of ``cfg``: the slowest run with its key finished in this sitting, else
    its key's committed record (``priors``, see :func:`recorded_priors`), else the slowest finished
    run of its model at its input size, else the slowest finished run of its model at another
    size scaled by the pixel count (a convolutional network's FLOPs grow as the input's area),
    else its configuration's committed record at the nearest other size scaled the same way (a 128x128
    ABANet recorded only on a GPU was priced 0 s, "try it", at a sitting's start), else the
    median finished run, else 0 (nothing known yet: try it)."""
    done = [s for s in statuses.values() if s.get("status") == "done" and s.get("seconds")]
    same_key = [s["seconds"] for s in done if s.get("duration_key") == duration_key(cfg)]
    if same_key:
        return max(same_key)
    if priors and duration_key(cfg) in priors:
        return float(priors[duration_key(cfg)])
    same_model = [s for s in done if s.get("model") == cfg.model]
    same_size = [s["seconds"] for s in same_model if s.get("image_size") == cfg.image_size]
    if same_size:
        return max(same_size)
    sized = [s["seconds"] * (cfg.image_size / s["image_size"]) ** 2 for s in same_model if s.get("image_size")]
    if sized:
        return max(sized)
    recorded = _priors_at_other_sizes(cfg, priors)
    if recorded:  # the nearest size: fixed costs make small inputs scale up into overestimates
        size, seconds = min(recorded, key=lambda r: (abs(math.log(r[0] / cfg.image_size)), -r[1]))
        return seconds * (cfg.image_size / size) ** 2
    return statistics.median(s["seconds"] for s in done) if done else 0.0


def _priors_at_other_sizes(cfg: RunConfig, priors: dict[str, float] | None) -> list[tuple[int, float]]:
    """``(image_size, seconds)`` of the committed records of ``cfg``'s configuration at other input
    sizes: the key's size field is read, then checked by rebuilding the whole key at that size."""
    found = []
    for key, seconds in (priors or {}).items():
        size = key.split("|")[2] if key.count("|") >= 2 else ""
        if size.isdigit() and int(size) != cfg.image_size and \
                duration_key(cfg.replace(image_size=int(size))) == key:
            found.append((int(size), float(seconds)))
    return found


# ---------------------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------------------
def _redirect_output(log_path: Path) -> None:
    """Send this process's stdout/stderr (Python and C level) to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_CREAT | os.O_APPEND | os.O_WRONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def resolve_runner(spec: str):
    """``"package.module:function"`` -> the function (called with one RunConfig)."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"runner {spec!r}: expected 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def worker_main(worker: int, plan: list[dict], work_dir: str, deadline: float, threads: int,
                device: str | None, runner: str = DEFAULT_RUNNER) -> None:
    """Body of one worker process (module level, so ``spawn`` can import it)."""
    work_dir = Path(work_dir)
    _redirect_output(work_dir / "logs" / f"worker-{worker}.log")
    import torch

    torch.set_num_threads(max(1, threads))
    run_or_load = resolve_runner(runner)

    _log(f"worker {worker}: pid {os.getpid()}, {threads} threads, {len(plan)} planned runs")
    priors_path = work_dir / PRIORS_FILE
    priors = json.loads(priors_path.read_text()) if priors_path.is_file() else {}
    for item in map(PlannedRun.from_dict, plan):
        cfg = item.config if device is None else item.config.replace(device=device)
        now = time.time()
        if now >= deadline:
            break
        status_path = work_dir / "status" / f"{cfg.run_id}.json"
        if status_path.exists() or (work_dir / "locks" / cfg.run_id).exists():
            continue  # another worker has it (cheap pre-check before the exclusive create)
        estimate = estimate_seconds(cfg, read_statuses(work_dir), priors)
        if now + estimate > deadline:
            continue  # would not finish in time; a cheaper run further down may still fit
        if not acquire_lock(work_dir, cfg.run_id, worker):
            continue
        record = {"run_id": cfg.run_id, "model": cfg.model, "image_size": cfg.image_size,
                  "tables": list(item.tables), "tier": item.tier, "worker": worker,
                  "duration_key": duration_key(cfg), "started": now, "estimate_s": estimate}
        _log(f"worker {worker}: start {cfg.run_id} ({cfg.model}, tables {','.join(item.tables)}, "
             f"fold {cfg.fold}, seed {cfg.seed}; estimate {estimate:.0f} s)")
        try:
            run = run_or_load(cfg)
            test = (getattr(run, "metrics", None) or {}).get("test", {}) or {}
            record.update(status="done", path=str(getattr(run, "path", "")),
                          metrics={k: test[k] for k in ("iou", "f1", "mae")
                                   if isinstance(test.get(k), (int, float))})
        except Exception as err:  # noqa: BLE001 - one failing run must not stop the others
            record.update(status="failed", error=f"{type(err).__name__}: {err}",
                          traceback=traceback.format_exc()[-4000:])
            _log(f"worker {worker}: FAILED {cfg.run_id}: {type(err).__name__}: {err}")
            traceback.print_exc()
        finally:
            run = None
            gc.collect()  # drop the model and optimiser before the next run
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # also after an out-of-memory error
        record["seconds"] = round(time.time() - now, 2)
        _write_json_atomic(status_path, record)
        _log(f"worker {worker}: {record['status']} {cfg.run_id} in {record['seconds']:.1f} s")
    _log(f"worker {worker}: finished")


# ---------------------------------------------------------------------------------------
# Data preparation (once, before the workers start)
# ---------------------------------------------------------------------------------------
def _data_key(cfg: RunConfig) -> tuple:
    return (cfg.eval_dataset, tuple(cfg.train_datasets), cfg.split, cfg.n_folds, cfg.fold,
            cfg.seed, cfg.val_fraction, cfg.max_train_images, cfg.extra_train_images, cfg.image_size)


def prepare_data(configs: list[RunConfig], log=print) -> int:
    """Fill the prepared-array cache for every distinct data setup of ``configs``.

    Workers then only read the cache (no two processes decode the same images at once).
    Errors are logged, not raised: the run that needs the data reports them itself.

    Returns:
        Number of data setups prepared without error.
    """
    seen, ok = set(), 0
    for cfg in configs:
        key = _data_key(cfg)
        if key in seen or cfg.image_size <= 0:
            continue
        seen.add(key)
        try:
            split = build_split(cfg)
            build_training_data(cfg, split)
            if split.test:
                prepare_arrays(split.test, cfg.image_size)
            ok += 1
        except Exception as err:  # noqa: BLE001
            log(f"data preparation for {cfg.run_id} ({key}) failed: {type(err).__name__}: {err}")
    return ok


# ---------------------------------------------------------------------------------------
# Packing and merging
# ---------------------------------------------------------------------------------------
def is_complete_folder(folder: Path) -> bool:
    """A run folder is complete when its ``metrics.json`` (written last) exists."""
    return (Path(folder) / METRICS_FILE).is_file()


def pack_runs(run_ids: list[str], archive: Path, runs_root: Path | None = None) -> list[str]:
    """Write the complete run folders ``run_ids`` into a gzip tar, paths relative to runs_root.

    Returns:
        The run ids actually packed (incomplete or missing folders are left out).
    """
    runs_root = Path(runs_root or paths.runs_dir())
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    packed = []

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:gz") as tar:
            for run_id in sorted(set(run_ids)):
                folder = runs_root / run_id
                if is_complete_folder(folder):
                    tar.add(folder, arcname=run_id)
                    packed.append(run_id)

    atomic_write(archive, write)
    return packed


def _safe_member(member: tarfile.TarInfo) -> bool:
    name = Path(member.name)
    return (not name.is_absolute() and ".." not in name.parts
            and (member.isfile() or member.isdir()))


def merge_archive(archive: Path, runs_root: Path | None = None) -> dict:
    """Unpack run folders from ``archive`` into ``runs_root`` (default ``results/runs``).

    A run already complete there is kept as is; an incomplete one is replaced; a run folder
    of the archive without ``metrics.json`` is ignored. Members with absolute paths, ``..``
    or links are refused.

    Returns:
        ``{"merged": [...], "kept_existing": [...], "incomplete_in_archive": [...],
        "refused": [...]}``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"merge: archive {archive} does not exist")
    runs_root = Path(runs_root or paths.runs_dir())
    runs_root.mkdir(parents=True, exist_ok=True)
    result = {"merged": [], "kept_existing": [], "incomplete_in_archive": [], "refused": []}
    with tarfile.open(archive, "r:*") as tar:
        by_run: dict[str, list[tarfile.TarInfo]] = {}
        for member in tar.getmembers():
            if not _safe_member(member):
                result["refused"].append(member.name)
                continue
            by_run.setdefault(Path(member.name).parts[0], []).append(member)
        for run_id, members in sorted(by_run.items()):
            names = {m.name for m in members}
            if f"{run_id}/{METRICS_FILE}" not in names:
                result["incomplete_in_archive"].append(run_id)
                continue
            dest = runs_root / run_id
            if is_complete_folder(dest):
                result["kept_existing"].append(run_id)
                continue
            staging = runs_root / f".merge-{run_id}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **kwargs)
            if dest.exists():
                shutil.rmtree(dest)  # an incomplete folder from an interrupted local run
            os.replace(staging / run_id, dest)
            shutil.rmtree(staging, ignore_errors=True)
            result["merged"].append(run_id)
    return result


# ---------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------
class _Logger:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.path, "a") as fh:
            fh.write(line + "\n")


def run_session(tables: list[str], scale_name: str, budget_s: float, workers: int, out: Path,
                work_dir: Path | None = None, max_runs: int | None = None, device: str | None = None,
                models: list[str] | None = None, rows: str | None = None, threads: int | None = None, pack_reserve_s: float | None = None,
                plan: list[PlannedRun] | None = None, runner: str = DEFAULT_RUNNER,
                prepare: bool = True) -> dict:
    """Plan, run in parallel within ``budget_s`` seconds, pack; returns the summary dict.

    Args:
        tables: table names (see :data:`DEFAULT_TABLES`).
        scale_name: ``"smoke"``, ``"reduced"`` or ``"paper"``.
        budget_s: wall-clock seconds for the whole session (planning to packing).
        workers: parallel worker processes.
        out: folder receiving ``runs.tar.gz``, ``summary.json``, ``log.txt``.
        work_dir: lock/status/log folder (default: a fresh folder in the cache).
        max_runs: keep only the first runs of the priority list (after ``models``).
        models: keep only runs of these model names.
        rows: ``"all"`` runs every row even at smoke scale (see ``experiments.experiments``).
        device: override ``cfg.device`` (execution-only, not part of the run id).
        threads: torch threads per worker (default: CPU cores / workers).
        pack_reserve_s: seconds kept free at the end for packing (default 5% of the budget,
            3..30 s).
        plan: a precomputed plan (tests); default :func:`priority_plan`.
        runner: ``"module:function"`` each worker calls with a config (default
            :data:`DEFAULT_RUNNER`); it must leave a complete ``runs_dir()/<run_id>/``.
        prepare: fill the data cache before starting the workers.
    """
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work_dir = Path(work_dir or paths.cache_dir() / "batch" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    work_dir.mkdir(parents=True, exist_ok=True)
    log = _Logger(work_dir / "logs" / "main.log")
    reserve = pack_reserve_s if pack_reserve_s is not None else min(30.0, max(3.0, 0.05 * budget_s))
    deadline = t0 + budget_s - reserve
    summary: dict = {"scale": scale_name, "tables": tables, "budget_s": budget_s, "workers": workers,
                     "done": [], "failed": [], "skipped_complete": [], "not_started": [],
                     "interrupted": [], "errors": []}
    statuses: dict = {}
    try:
        scale = get_scale(scale_name)
        if plan is None:
            plan = priority_plan(tables, scale, rows=rows)
        if models:
            plan = [p for p in plan if p.config.model in models]
        if max_runs is not None:
            plan = plan[:max_runs]
        todo = []
        for item in plan:
            if registry.is_complete(item.config):
                summary["skipped_complete"].append(item.run_id)
            else:
                todo.append(item)
        counts = {TIER_NAMES[t]: sum(i.tier == t for i in todo) for t in sorted(TIER_NAMES)}
        log(f"plan: {len(plan)} runs, {len(summary['skipped_complete'])} already complete, "
            f"{len(todo)} to run; by tier {counts}")
        if todo and prepare:
            n_ok = prepare_data([i.config for i in todo], log=log)
            log(f"data cache prepared for {n_ok} data setups in {time.time() - t0:.1f} s")
        if todo:
            complete = set(summary["skipped_complete"])
            _run_workers(todo, workers, work_dir, deadline, threads, device, runner, log,
                         complete=[i.config for i in plan if i.run_id in complete])
        statuses = read_statuses(work_dir)
        started = set(statuses)
        locked = {p.name for p in (work_dir / "locks").glob("*")} if (work_dir / "locks").exists() else set()
        summary["interrupted"] = sorted(locked - started)
        summary["not_started"] = [i.run_id for i in todo if i.run_id not in locked]
    except Exception as err:  # noqa: BLE001 - the archive must still be written
        summary["errors"].append(f"{type(err).__name__}: {err}\n{traceback.format_exc()[-3000:]}")
        log(f"session error: {type(err).__name__}: {err}")
    finally:
        statuses = statuses or read_statuses(work_dir)
        for run_id, rec in sorted(statuses.items()):
            brief = {k: rec.get(k) for k in ("run_id", "model", "tables", "tier", "seconds",
                                             "worker", "error", "metrics") if rec.get(k) is not None}
            summary["done" if rec.get("status") == "done" else "failed"].append(brief)
        done_ids = [r["run_id"] for r in summary["done"]]
        try:
            summary["packed"] = pack_runs(done_ids, out / ARCHIVE_NAME)
        except Exception as err:  # noqa: BLE001
            summary["errors"].append(f"packing failed: {type(err).__name__}: {err}")
            summary["packed"] = []
        summary["wall_s"] = round(time.time() - t0, 1)
        summary["work_dir"] = str(work_dir)
        log(f"session end: {len(summary['done'])} done, {len(summary['failed'])} failed, "
            f"{len(summary['interrupted'])} interrupted, {len(summary['not_started'])} not started, "
            f"{len(summary['skipped_complete'])} already complete; packed {len(summary['packed'])} "
            f"into {out / ARCHIVE_NAME}; {summary['wall_s']} s")
        _write_json_atomic(out / "summary.json", summary)
        _write_combined_log(work_dir, out / "log.txt")
    return summary


def _run_workers(todo: list[PlannedRun], workers: int, work_dir: Path, deadline: float,
                 threads: int | None, device: str | None, runner: str, log,
                 complete: list[RunConfig] = ()) -> None:
    workers = max(1, min(workers, len(todo)))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    on_cpu = resolve_device(device).type == "cpu"
    priors = recorded_priors(list(complete), threads) if on_cpu else {}  # a GPU run costs a fraction of its CPU record
    if priors:
        _write_json_atomic(work_dir / PRIORS_FILE, priors)
    payload = [i.to_dict() for i in todo]
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    procs = []
    for k in range(workers):
        # Rotate the start so workers begin on different runs instead of racing for the first.
        p = ctx.Process(target=worker_main, args=(k, payload[k:] + payload[:k], str(work_dir),
                                                  deadline, threads, device, runner), daemon=False)
        p.start()
        procs.append(p)
    log(f"started {workers} workers ({threads} threads each), deadline in {deadline - time.time():.0f} s")
    previous = _terminate_on_sigterm()
    try:
        while any(p.is_alive() for p in procs):
            if time.time() >= deadline:
                log(f"budget reached: stopping {sum(p.is_alive() for p in procs)} busy worker(s)")
                break
            time.sleep(0.5)
    finally:
        # Also on Ctrl-C or SIGTERM: a worker left running would go on training its run.
        _stop_workers(procs)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for p in procs:
        p.join(1)
        if p.exitcode not in (0, None, -signal.SIGTERM):
            log(f"worker pid {p.pid} exited with code {p.exitcode}")


def _terminate_on_sigterm():
    """Turn SIGTERM into SystemExit (so ``finally`` blocks stop the workers); returns the old
    handler, or None outside the main thread (where handlers cannot be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def _stop_workers(procs) -> None:
    busy = [p for p in procs if p.is_alive()]
    for p in busy:
        p.terminate()
    for p in busy:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join(5)


def _write_combined_log(work_dir: Path, target: Path) -> None:
    parts = []
    for path in [work_dir / "logs" / "main.log"] + sorted((work_dir / "logs").glob("worker-*.log")):
        if path.is_file():
            parts.append(f"===== {path.name} =====\n{path.read_text(errors='replace')}")
    target.write_text("\n".join(parts))


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m abanet_lib.ops.batch_runner",
                                     description="Run experiments within a time budget, or merge an archive.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run experiments (default command)")
    run.add_argument("--scale", default=None, help="smoke | reduced | gpu | paper (default: ABANET_SCALE or reduced)")
    run.add_argument("--tables", default=DEFAULT_TABLES, help="comma-separated table names, or 'all'")
    run.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget in seconds")
    run.add_argument("--workers", default="1",
                     help="parallel worker processes, or 'auto': as many as the GPU's memory holds for the "
                          "plan's largest run (measured); on CPU one single-threaded worker per core")
    run.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    run.add_argument("--work-dir", type=Path, default=None, help="lock/status folder")
    run.add_argument("--max-runs", type=int, default=None, help="only the first N runs of the plan")
    run.add_argument("--rows", default=None, help="'all' = every row also at smoke scale")
    run.add_argument("--models", default=None, help="comma-separated model names to keep (default: all)")
    run.add_argument("--device", default=None, help="override the runs' device (cpu, cuda)")
    run.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    run.add_argument("--list", action="store_true", help="print the plan and exit")
    run.add_argument("--runner", default=DEFAULT_RUNNER, help="module:function run for each config")
    run.add_argument("--no-prepare", action="store_true", help="skip filling the data cache first")
    merge = sub.add_parser("merge", help="unpack an archive into results/runs without overwriting")
    merge.add_argument("archive", type=Path)
    merge.add_argument("--runs-dir", type=Path, default=None)
    return parser


def _checked_run_options(args: argparse.Namespace) -> tuple[Scale, list[str], torch.device]:
    """The scale, tables and device ``run`` works with, parsed once before any worker starts.

    Raises:
        ValueError: one line naming the first bad option.
    """
    def parsed(option: str, parse, value):
        try:
            return parse(value)
        except ValueError as err:
            raise ValueError(f"{option}: {err}") from None

    scale = parsed("--scale", get_scale, args.scale)
    tables = parsed("--tables", parse_tables, args.tables)
    device = parsed("--device", resolve_device, args.device)
    if not args.budget_s > 0:  # also refuses nan
        raise ValueError(f"--budget-s {args.budget_s}: expected a positive number of seconds")
    for option, value in (("--threads", args.threads), ("--max-runs", args.max_runs)):
        if value is not None and value < 1:
            raise ValueError(f"{option} {value}: expected a positive integer")
    return scale, tables, device


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "merge", "-h", "--help"):
        argv = ["run"] + argv
    args = _parser().parse_args(argv)
    if args.command == "merge":
        result = merge_archive(args.archive, args.runs_dir)
        print(json.dumps({k: len(v) for k, v in result.items()}))
        for key in ("refused", "incomplete_in_archive"):
            if result[key]:
                print(f"{key}: {result[key]}", file=sys.stderr)
        return 0
    try:
        scale, tables, device = _checked_run_options(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.list:
        plan = [p for p in priority_plan(tables, scale, rows=args.rows)
                if not models or p.config.model in models]
        for item in plan[: args.max_runs]:
            print(f"{item.tier} {item.run_id} {','.join(item.tables)} fold={item.config.fold} "
                  f"seed={item.config.seed}")
        return 0
    if args.workers == "auto":
        plan = [p.config for p in priority_plan(tables, scale, rows=args.rows)
                if not models or p.config.model in models][: args.max_runs]
        workers = plan_workers([c.replace(device=device.type) for c in plan], device.type,
                               max_workers=os.cpu_count() or 1)
        print(f"--workers auto: {workers} worker(s) on {device.type}", flush=True)
    elif args.workers.isdigit() and int(args.workers) >= 1:
        workers = int(args.workers)
    else:
        print(f"error: --workers {args.workers}: expected a positive integer or auto", file=sys.stderr)
        return 2
    summary = run_session(tables, scale.name, args.budget_s, workers, args.out,
                          work_dir=args.work_dir, max_runs=args.max_runs, device=args.device, models=models, rows=args.rows,
                          threads=args.threads, runner=args.runner, prepare=not args.no_prepare)
    return 0 if not summary["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
