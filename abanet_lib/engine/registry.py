"""Run registry: train what is missing, load what exists.

Each run lives in ``results/runs/<run_id>/``:

* ``config.json``: the :class:`~abanet_lib.core.config.RunConfig` (written first);
* ``history.csv``: one row per epoch (written by the trainer after each epoch);
* ``per_image.csv``: test-split scores, one row per image;
* ``metrics.json``: test summary, training facts, best-checkpoint path and provenance.
  Written LAST and atomically (temporary file + ``os.replace``): a run is complete exactly
  when this file exists, so an interrupted run is simply trained (resumed) again.

Checkpoints stay in the git-ignored cache (``cache_dir()/checkpoints/<run_id>/``). Once a run
is complete its resume state ``last.pt`` (weights + optimizer moments: about 1 GB for ABANet)
is deleted, keeping ``best.pt``; set ``ABANET_KEEP_RESUME_STATE=1`` to keep it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from abanet_lib.paper import artifacts
from abanet_lib.core import paths, provenance
from abanet_lib.core.config import RunConfig, get_scale
from abanet_lib.data.fingerprint import data_fingerprint, fingerprint_differences
from abanet_lib.engine.evaluate import evaluate
from abanet_lib.core.io import atomic_csv, atomic_write_text, hold_lock, LockBusyError
from abanet_lib.engine.assembly import TrainingData, build_model, build_split, build_training_data, seed_everything
from abanet_lib.engine.checkpoints import checkpoint_dir, checkpoint_paths, staged_checkpoints
from abanet_lib.engine.train import join_process_group, train

METRICS_FILE = "metrics.json"
KEEP_RESUME_STATE_ENV = "ABANET_KEEP_RESUME_STATE"
#: The fingerprint (names, sizes, SHA256) of every sample a run read, written in its record.
DATA_FILE = "data.json"
#: Each record's test predictions, 1-bit PNGs at the masks' native size (figures read them).
PREDICTIONS_DIR = "predictions"


@dataclass
class Run:
    """A finished run, as stored on disk.

    Attributes:
        config: the run's configuration.
        metrics: contents of ``metrics.json`` (test summary under ``"test"``).
        history: per-epoch training history (empty for untrained methods).
        per_image: per-image test scores.
        path: the run folder.
    """

    config: RunConfig
    metrics: dict
    history: pd.DataFrame
    per_image: pd.DataFrame
    path: Path

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def test(self) -> dict:
        """Test-split summary metrics (e.g. ``run.test["iou"]``)."""
        return self.metrics.get("test", {})

    def __repr__(self) -> str:
        iou = self.test.get("iou")
        iou_s = f"{iou:.4f}" if isinstance(iou, (int, float)) else "?"
        return f"Run({self.run_id}, model={self.config.model!r}, scale={self.config.scale!r}, test iou={iou_s})"


class RunFailedError(RuntimeError):
    """One or more runs of :func:`run_many` failed (details in the message and logs)."""


class RunRecordError(ValueError):
    """A run record on disk cannot be read (the message names the file)."""


def run_dir(cfg_or_id: RunConfig | str) -> Path:
    """``runs_dir(scale)/<run_id>``: a config's scale picks the folder (smoke runs live under the
    git-ignored ``.cache/results-smoke/``); a bare id is looked up in every runs folder."""
    if isinstance(cfg_or_id, RunConfig):
        return paths.runs_dir(cfg_or_id.scale) / cfg_or_id.run_id
    run_id = str(cfg_or_id)
    for root in paths.all_runs_dirs():
        if (root / run_id).is_dir():
            return root / run_id
    return paths.runs_dir() / run_id


def _loaded(run: Run, check_data: bool) -> Run:
    """A finished record, after warning (one line) when its data no longer matches."""
    if check_data:
        try:
            changes = data_changes(run)
        except (OSError, ValueError) as err:
            changes = [str(err)]
        if changes:
            warnings.warn(f"run {run.run_id} ({run.path}): the data differs from the data it was trained "
                          f"on: {'; '.join(changes)}; its scores describe the old data (retrain with "
                          "force=True / --force)", stacklevel=3)
    return run


def staging_dir(cfg: RunConfig) -> Path:
    """Where ``cfg`` is (re)trained until its record is complete: ``<runs>/.staging/<run_id>``
    (git-ignored, same file system as the record so the swap is one rename)."""
    return paths.runs_dir(cfg.scale) / STAGING_DIR / cfg.run_id


def lock_dir(cfg: RunConfig) -> Path:
    """The folder holding ``cfg``'s training lock while a process trains it."""
    return paths.runs_dir(cfg.scale) / STAGING_DIR / LOCKS_DIR / cfg.run_id


def is_complete(cfg: RunConfig | str) -> bool:
    """True once the run's ``metrics.json`` exists."""
    return (run_dir(cfg) / METRICS_FILE).is_file()


def load_run(run_id: str) -> Run:
    """Load a complete run by id.

    Raises:
        FileNotFoundError: no complete run with this id (message says where it looked).
        RunRecordError: ``config.json`` or ``metrics.json`` is unreadable (names the file).
    """
    folder = run_dir(run_id)
    metrics_path = folder / METRICS_FILE
    if not metrics_path.is_file():
        started = [root / STAGING_DIR / run_id for root in paths.all_runs_dirs()
                   if (root / STAGING_DIR / run_id).is_dir()]
        hint = f" (the run started but did not finish: {started[0]})" if started else ""
        raise FileNotFoundError(f"no complete run {run_id!r}: {metrics_path} is missing{hint}")
    return load_run_folder(folder)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunRecordError(f"{path}: missing from the run record") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunRecordError(f"{path}: not a readable JSON record ({type(err).__name__}: {err})") from None
    if not isinstance(value, dict):
        raise RunRecordError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def broken_runs() -> dict[str, str]:
    """Run folders whose record cannot be read: folder -> one-line reason (see :func:`find_runs`)."""
    broken = {}
    for root in paths.all_runs_dirs():
        for metrics_path in sorted(root.glob(f"*/{METRICS_FILE}")):
            try:
                load_run_folder(metrics_path.parent)
            except (RunRecordError, ValueError, TypeError) as err:
                broken[str(metrics_path.parent)] = str(err)
    return broken


def load_run_folder(folder: Path) -> Run:
    """:func:`load_run` for a given folder (any runs root)."""
    folder = Path(folder)
    config = RunConfig.from_dict(_read_json(folder / "config.json"))
    metrics = _read_json(folder / METRICS_FILE)
    return Run(config=config, metrics=metrics, history=_read_csv(folder / "history.csv"),
               per_image=_read_csv(folder / "per_image.csv"), path=folder)


def find_runs(**filters: Any) -> list[Run]:
    """Complete runs whose config matches every ``field=value`` filter.

    Values compare against :meth:`RunConfig.to_dict` (tuples and lists are equivalent,
    ``model_kwargs`` compares as a dict). A filter value may also be a callable predicate.

    Example:
        ``find_runs(model="abanet", scale="reduced")``
    """
    from dataclasses import fields

    known = {f.name for f in fields(RunConfig)}
    unknown = set(filters) - known
    if unknown:
        raise ValueError(f"find_runs: unknown config field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    runs, seen = [], set()
    for root in paths.all_runs_dirs():
        for metrics_path in sorted(root.glob(f"*/{METRICS_FILE}")):
            folder = metrics_path.parent
            if folder.name in seen:
                continue
            try:
                run = load_run_folder(folder)
            except (RunRecordError, ValueError, TypeError) as err:
                # Reported, not dropped silently: the other runs still load.
                warnings.warn(f"skipping unreadable run record {folder}: {err}", stacklevel=2)
                continue
            seen.add(folder.name)
            if all(_matches(run.config.to_dict().get(k), v) for k, v in filters.items()):
                runs.append(run)
    return runs


def _matches(actual: Any, wanted: Any) -> bool:
    if callable(wanted):
        return bool(wanted(actual))
    if isinstance(wanted, tuple):
        wanted = list(wanted)
    if isinstance(wanted, RunConfig):
        wanted = wanted.to_dict()
    return _normalise(actual) == _normalise(wanted)


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def run_or_load(
    cfg: RunConfig,
    force: bool = False,
    progress: bool = True,
    *,
    model: nn.Module | None = None,
    criterion: Callable | None = None,
    data: TrainingData | None = None,
    test_refs: Sequence | None = None,
    max_batches: int | None = None,
    callbacks: Sequence = (),
    accumulator_factory: Callable | None = None,
    extra_metrics: dict | None = None,
) -> Run:
    """Return the finished run of ``cfg``, training and evaluating it first if needed.

    Args:
        cfg: the run.
        force: retrain from scratch (drops checkpoints and the old metrics).
        progress: progress bars / per-epoch lines.
        model, criterion, data, test_refs: injected pieces (tests, custom experiments);
            by default built from ``cfg`` (split from :func:`abanet_lib.engine.assembly.build_split`).
        max_batches: cap on training batches per epoch (smoke checks).
        callbacks: passed to :func:`abanet_lib.engine.train.train`.
        accumulator_factory: metric accumulator for :func:`abanet_lib.engine.evaluate.evaluate`.
        extra_metrics: entries added to ``metrics.json`` (the distributed run's world size).

    Training happens in :func:`staging_dir` (checkpoints in the staged checkpoint folder); the
    finished folder replaces the record in one step (:func:`swap_in`), so a kill at any moment
    leaves the previous record as it was, and running again resumes the interrupted attempt.
    """
    folder = run_dir(cfg)
    if not force and is_complete(cfg):
        return _loaded(load_run_folder(folder), check_data=model is None and data is None)
    staging = staging_dir(cfg)
    lock_folder = lock_dir(cfg)
    lock_folder.mkdir(parents=True, exist_ok=True)
    with training_lock(lock_folder, cfg.run_id):
        _finish_interrupted_swap(cfg)
        if not force and is_complete(cfg):  # finished by another process while we waited
            return load_run_folder(folder)
        _adopt_partial_folder(cfg, folder, staging)
        with staged_checkpoints(cfg):
            prepare_staging(cfg, staging, force, progress)
            try:
                _train_and_evaluate(cfg, staging, progress, model, criterion, data, test_refs,
                                    max_batches, callbacks, accumulator_factory, extra_metrics)
            except BaseException:
                _drop_empty_staging(cfg, staging)
                raise
        swap_in(cfg, staging, folder)
    return load_run_folder(folder)


#: Sub-folder of a runs folder holding runs being trained (git-ignored).
STAGING_DIR = ".staging"
#: Inside the staging folder: one lock folder per run id.
LOCKS_DIR = ".locks"
#: Suffix of the previous record while a swap without an atomic exchange is under way.
PREVIOUS_SUFFIX = ".previous"


def prepare_staging(cfg: RunConfig, staging: Path, force: bool = False, progress: bool = True) -> None:
    """Make ``staging`` ready: resume a staging folder of this config (an interrupted (re)train),
    else start one from scratch, with no checkpoint left from an earlier attempt."""
    config_path = staging / "config.json"
    resumable = False
    if config_path.is_file():
        try:
            resumable = RunConfig.from_dict(json.loads(config_path.read_text())).run_id == cfg.run_id
        except (OSError, ValueError, TypeError):
            resumable = False
    last, _ = checkpoint_paths(cfg)
    if resumable and last.is_file():
        if progress:
            what = "forced retrain" if force else "run"
            print(f"[{cfg.run_id}] resuming the interrupted {what} in {staging}", flush=True)
        return
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(checkpoint_dir(cfg), ignore_errors=True)
    staging.mkdir(parents=True)
    atomic_write_text(config_path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True))


def _drop_empty_staging(cfg: RunConfig, staging: Path) -> None:
    """After a failure: a staging folder with no epoch to resume from is removed (a failed
    model construction leaves no half-made folder behind); one with progress is kept."""
    last, _ = checkpoint_paths(cfg)
    if not last.is_file():
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(checkpoint_dir(cfg), ignore_errors=True)


def _adopt_partial_folder(cfg: RunConfig, folder: Path, staging: Path) -> None:
    """A run folder without ``metrics.json`` (interrupted by an older version, which trained in
    place) moves to staging with its checkpoints, so it resumes there."""
    if not folder.is_dir() or (folder / METRICS_FILE).exists() or staging.exists():
        return
    staging.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, staging)
    (staging / LOCK_FILE).unlink(missing_ok=True)
    old, new = checkpoint_dir(cfg, staged=False), checkpoint_dir(cfg, staged=True)
    if old.is_dir() and not new.exists():
        os.rename(old, new)


def swap_in(cfg: RunConfig, staging: Path, folder: Path) -> None:
    """Replace the record ``folder`` by the complete ``staging`` folder in one step.

    On Linux both folders are exchanged atomically (``renameat2(RENAME_EXCHANGE)``), so at every
    instant ``folder`` is either the old record or the new one. Elsewhere the old record is
    first renamed to ``<id>.previous`` (restored by :func:`_finish_interrupted_swap` if a kill
    falls between the two renames). The staged ``best.pt`` then replaces the old one.
    """
    if not (staging / METRICS_FILE).is_file():
        raise RuntimeError(f"refusing to swap in {staging}: its {METRICS_FILE} is missing")
    if folder.exists():
        if _exchange(staging, folder):
            shutil.rmtree(staging)  # now holds the previous record
        else:
            previous = staging.with_name(staging.name + PREVIOUS_SUFFIX)
            shutil.rmtree(previous, ignore_errors=True)
            os.rename(folder, previous)
            os.rename(staging, folder)
            shutil.rmtree(previous)
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, folder)
    staged, final = checkpoint_dir(cfg, staged=True), checkpoint_dir(cfg, staged=False)
    if (staged / "best.pt").is_file():
        final.mkdir(parents=True, exist_ok=True)
        os.replace(staged / "best.pt", final / "best.pt")
        (final / "last.pt").unlink(missing_ok=True)
        if os.environ.get(KEEP_RESUME_STATE_ENV, "") not in ("", "0") and (staged / "last.pt").is_file():
            os.replace(staged / "last.pt", final / "last.pt")
    shutil.rmtree(staged, ignore_errors=True)


def _finish_interrupted_swap(cfg: RunConfig) -> None:
    """Restore ``<id>.previous`` when a non-atomic swap was killed between its two renames."""
    staging = staging_dir(cfg)
    previous = staging.with_name(staging.name + PREVIOUS_SUFFIX)
    folder = paths.runs_dir(cfg.scale) / cfg.run_id
    if previous.is_dir() and not folder.exists():
        os.rename(previous, folder)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, f"exchanging {a} and {b}: {os.strerror(err)}")


class RunBusyError(LockBusyError):
    """Another live process is training this run into the same folder."""


#: Lock file inside a run folder while a process trains it (removed when it ends).
LOCK_FILE = ".training.lock"


def training_lock(folder: Path, run_id: str):
    """Hold ``folder/.training.lock`` while training (:func:`abanet_lib.core.io.hold_lock`): two
    processes training one run would interleave their checkpoints and history. A lock left by a
    dead process (same host) is taken over; one held by a live process raises :class:`RunBusyError`."""
    lock = Path(folder) / LOCK_FILE
    return hold_lock(lock, busy=lambda pid, host: (
        f"run {run_id} is being trained by process {pid} on {host} (lock file {lock}); wait for it, "
        "or delete the lock if that process is gone"), error=RunBusyError)


def _train_and_evaluate(cfg, folder, progress, model, criterion, data, test_refs, max_batches,
                        callbacks, accumulator_factory, extra_metrics=None) -> None:
    """Train (resuming from the staged checkpoint if any) and evaluate into ``folder`` (the
    staging folder); ``metrics.json`` is written last."""
    start = time.perf_counter()
    split = None
    if test_refs is None or (data is None and model is None):
        split = build_split(cfg)
    if test_refs is None:
        test_refs = split.test
    if model is None:
        seed_everything(cfg.seed)  # same order as train(): identical initial weights
        model = build_model(cfg, split)
    trainable = getattr(model, "trainable", True)
    if data is None and trainable:
        data = build_training_data(cfg, split if split is not None else build_split(cfg))

    result = train(cfg, folder, model=model, criterion=criterion, data=data, progress=progress,
                   max_batches=max_batches, resume=True, callbacks=callbacks)
    t_eval = time.perf_counter()
    # Every record keeps its test predictions as 1-bit PNGs: figures need no weights.
    per_image, summary = evaluate(result.model, test_refs, cfg.image_size, device=result.device,
                                  precision=result.precision, batch_size=max(cfg.batch_size, 8),
                                  channels_last=cfg.channels_last, progress=False,
                                  accumulator_factory=accumulator_factory,
                                  save_predictions_dir=folder / PREDICTIONS_DIR,
                                  prediction_format="binary")
    eval_seconds = time.perf_counter() - t_eval
    if result.trained:
        atomic_csv(result.history, folder / "history.csv")
    else:
        atomic_csv(pd.DataFrame(columns=["epoch", "train_loss", "val_loss", "val_iou", "lr", "seconds",
                                          "img_per_s"]), folder / "history.csv")
    atomic_csv(per_image, folder / "per_image.csv")
    artifacts.record_artifacts(folder, cfg, result.model, result.device, trained=result.trained)
    data_sha256 = None
    if split is not None:  # built from cfg (not injected): record the bytes it read
        fingerprint = data_fingerprint([*split.train, *split.val, *split.test])
        atomic_write_text(folder / DATA_FILE, json.dumps(fingerprint, indent=0, sort_keys=True) + "\n")
        data_sha256 = fingerprint["sha256"]

    n_train = len(data.train) if data is not None else 0
    n_val = len(data.val) if data is not None and data.val is not None else 0
    final_best = checkpoint_dir(cfg, staged=False) / "best.pt"
    metrics = {
        "run_id": cfg.run_id,
        "model": cfg.model,
        "scale": cfg.scale,
        "test": summary,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": len(test_refs),
        "trained": result.trained,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "train_seconds": result.seconds,
        "train_img_per_s": result.img_per_s,
        "eval_seconds": eval_seconds,
        "precision": result.precision,
        "data_sha256": data_sha256,
        # where best.pt lands once the record is swapped in
        "checkpoint": str(final_best) if result.best_checkpoint else None,
        # what an untrained model fitted on the training split (GrabCut's rectangle), if anything
        "fitted": result.model.fitted_params() if hasattr(result.model, "fitted_params") else None,
        "provenance": provenance.collect(result.device, wall_seconds=time.perf_counter() - start,
                                         scale=cfg.scale),
        **(extra_metrics or {}),
    }
    atomic_write_text(folder / METRICS_FILE, json.dumps(_jsonable(metrics), indent=2, sort_keys=True))


def data_changes(run: Run) -> list[str]:
    """How the data of ``run``'s split differs now from what it was trained and tested on
    (its record's ``data.json``), in words; empty when it matches or the record predates
    fingerprints.

    Raises:
        DataError: a file of the split is missing or unreadable now.
    """
    path = Path(run.path) / DATA_FILE
    if not path.is_file():
        return []
    recorded = _read_json(path)
    split = build_split(run.config)
    return fingerprint_differences(recorded, data_fingerprint([*split.train, *split.val, *split.test]))


def drop_resume_state(cfg: RunConfig) -> bool:
    """Delete a complete run's ``last.pt`` unless ``ABANET_KEEP_RESUME_STATE`` is set.

    ``last.pt`` only serves to resume an interrupted run; once ``metrics.json`` exists nothing
    reads it, and keeping it tripled the disk use of a run (ABANet: 1.0 GB of resume state
    next to a 0.35 GB ``best.pt``), which filled a CI disk. Returns True when a file was removed.
    """
    if os.environ.get(KEEP_RESUME_STATE_ENV, "") not in ("", "0"):
        return False
    last, _ = checkpoint_paths(cfg)
    if not last.is_file():
        return False
    last.unlink()
    return True


def run_many(cfgs: Iterable[RunConfig], force: bool = False, progress: bool = True,
             raise_on_failure: bool = True, train_missing: bool = True, **kwargs: Any) -> list[Run]:
    """Run (or load) several configurations, one progress line each.

    Only missing runs train. A failing run is logged to
    ``cache_dir()/failures/<run_id>.log`` (traceback) and the loop goes on; at the end
    :class:`RunFailedError` lists every failure (unless ``raise_on_failure`` is False).
    With ``train_missing=False`` nothing trains: complete runs load, missing ones are
    reported as "not run" and left out (tables then mark their rows "not run").

    Returns:
        The runs that completed, in input order.
    """
    cfgs = list(cfgs)
    runs, failures = [], []
    for i, cfg in enumerate(cfgs, start=1):
        tag = f"[{i}/{len(cfgs)}] {cfg.run_id} ({cfg.model}, fold {cfg.fold}, seed {cfg.seed})"
        if not force and is_complete(cfg):
            try:
                runs.append(load_run(cfg.run_id))
            except RunRecordError as err:  # reported and left out; the record is never retrained over
                message = f"{tag}: BROKEN RECORD, left out: {err}"
                print(message, flush=True)
                warnings.warn(message, stacklevel=2)
                if train_missing:
                    failures.append(f"{cfg.run_id} ({cfg.model}): broken record: {err}")
                continue
            if progress:
                print(f"{tag}: cached", flush=True)
            continue
        if not train_missing:
            if progress:
                print(f"{tag}: not run (train_missing=False)", flush=True)
            continue
        if progress:
            print(f"{tag}: training ...", flush=True)
        t0 = time.perf_counter()
        try:
            run = run_or_load(cfg, force=force, progress=progress, **kwargs)
        except Exception as err:  # keep going; report all failures at the end
            log = paths.cache_dir() / "failures" / f"{cfg.run_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n\n" + traceback.format_exc())
            failures.append(f"{cfg.run_id} ({cfg.model}): {type(err).__name__}: {err} [log: {log}]")
            if progress:
                print(f"{tag}: FAILED after {time.perf_counter() - t0:.0f}s: {type(err).__name__}: {err}",
                      flush=True)
            continue
        runs.append(run)
        if progress:
            iou = run.test.get("iou")
            print(f"{tag}: done in {time.perf_counter() - t0:.0f}s, test iou "
                  f"{iou if iou is None else round(iou, 4)}", flush=True)
    if failures and raise_on_failure:
        raise RunFailedError(f"{len(failures)} of {len(cfgs)} runs failed:\n  " + "\n  ".join(failures))
    return runs


def run_labelled(cfgs: dict[str, RunConfig], **kwargs: Any) -> dict[str, Run]:
    """:func:`run_many` over ``{label: config}``; returns ``{label: run}`` of the completed runs."""
    by_id = {run.config.run_id: run for run in run_many(list(cfgs.values()), **kwargs)}
    return {label: by_id[cfg.run_id] for label, cfg in cfgs.items() if cfg.run_id in by_id}


def load_model(run: Run | str, device: str | torch.device = "cpu", strict: bool = True) -> nn.Module:
    """Rebuild a run's model and load its best checkpoint (eval mode).

    Args:
        run: a :class:`Run` or a run id.
        device: where to put the model.
        strict: raise when a trainable model's checkpoint is missing (it lives in the cache,
            not in git); with False the freshly initialised model is returned with a warning.
    """
    import warnings

    from abanet_lib.core.devices import resolve_device

    run = load_run(run) if isinstance(run, str) else run
    dev = resolve_device(device)
    seed_everything(run.config.seed)
    model = build_model(run.config)
    # This machine's cache first: the recorded path may be another machine's (a GPU run).
    candidates = [checkpoint_dir(run.config) / "best.pt", run.metrics.get("checkpoint")]
    ckpt = next((Path(c) for c in candidates if c and Path(c).is_file()), run.metrics.get("checkpoint"))
    if ckpt and Path(ckpt).is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    elif getattr(model, "trainable", True):
        msg = (f"run {run.run_id}: best checkpoint {ckpt} not found (checkpoints live in the "
               f"cache, not in git); retrain with run_or_load(cfg, force=True)")
        if strict:
            raise FileNotFoundError(msg)
        warnings.warn(msg + "; returning untrained weights", stacklevel=2)
    return model.to(dev).eval()


# ---------------------------------------------------------------------------------------
# File helpers
# ---------------------------------------------------------------------------------------
def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN/inf become None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------------------
# Distributed runs (torchrun)
# ---------------------------------------------------------------------------------------
def run_or_load_distributed(cfg: RunConfig, force: bool = False, progress: bool = True, **train_options: Any):
    """DDP-train ``cfg`` (``train(distributed=True)``) if its run is missing, then let rank 0 finish it.

    Every rank trains into the staging folder; rank 0 then calls :func:`run_or_load`, which
    resumes from the final checkpoint (no epochs left), evaluates the test split and swaps the
    record in; ``metrics.json`` gets a ``distributed`` entry (world size, backend).

    Args:
        train_options: ``backend``, ``sync_bn``, ``find_unused_parameters`` of :func:`train`.

    Returns:
        The :class:`Run` on rank 0, ``None`` on other ranks.
    """
    group, _ = join_process_group(train_options.get("backend"))
    if force or not is_complete(cfg):
        staging = staging_dir(cfg)
        with staged_checkpoints(cfg):  # the finished record stays untouched until the swap
            if group.is_main:
                prepare_staging(cfg, staging, force=force, progress=progress)
            group.barrier()
            result = train(cfg, staging, progress=progress, distributed=True, **train_options)
        if group.is_main:
            run_or_load(cfg, progress=progress, extra_metrics={"distributed": {
                **result.extra, "train_seconds": result.seconds, "train_img_per_s": result.img_per_s}})
    group.barrier()
    return load_run(cfg.run_id) if group.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node N -m abanet_lib.engine.registry --scale smoke [--model M] [--set k=v]``."""
    parser = argparse.ArgumentParser(prog="torchrun ... -m abanet_lib.engine.registry",
                                     description="train one RunConfig with DistributedDataParallel and record it")
    parser.add_argument("--scale", default=None, help="smoke, reduced or paper (default: ABANET_SCALE)")
    parser.add_argument("--model", default=None, help="factory name (default: the scale's abanet)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a RunConfig field (JSON values), e.g. --set epochs=2")
    parser.add_argument("--backend", default=None, choices=["gloo", "nccl"])
    parser.add_argument("--force", action="store_true", help="retrain even if the run exists")
    args = parser.parse_args(argv)
    cfg = get_scale(args.scale).base_config()
    if args.model:
        cfg = cfg.with_model(args.model)
    changes = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    if changes:
        cfg = cfg.replace(**changes)
    run = run_or_load_distributed(cfg, force=args.force, backend=args.backend)
    if run is not None:
        print(f"run {cfg.run_id}: test iou {run.test.get('iou')}; folder {run.path}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
