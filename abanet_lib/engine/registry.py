"""Run registry: the records of finished runs, and the one way to write and read them.

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

Writing a record goes through :func:`record_run` (lock, staging folder, one-step swap);
training a missing run and recording it is :func:`abanet_lib.paper.runs.run_or_load`.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig
from abanet_lib.core.devices import resolve_device
from abanet_lib.core.io import LockBusyError, atomic_write_text, hold_lock
from abanet_lib.data.fingerprint import data_fingerprint, fingerprint_differences
from abanet_lib.engine.assembly import build_model, build_split, seed_everything
from abanet_lib.engine.checkpoints import checkpoint_dir, checkpoint_paths, load_weights, staged_checkpoints

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


def checked_against_data(run: Run, check_data: bool = True) -> Run:
    """A finished record, after warning (one line) when its data no longer matches (:func:`data_changes`)."""
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


def json_problem(path: Path, expect: type = dict) -> str | None:
    """Why ``path`` is not a JSON ``expect`` (None when it is)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path}: missing"
    except (OSError, UnicodeDecodeError) as err:
        return f"{path}: unreadable ({type(err).__name__}: {err})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return f"{path}: not valid JSON ({err})" + (" (the file is empty)" if not text.strip() else "")
    if not isinstance(value, expect):
        return f"{path}: holds a JSON {type(value).__name__}; expected an object"
    return None


def run_folder_problem(folder: Path) -> str | None:
    """What is wrong with a finished run's folder, naming the file (None when it reads fine).

    Checks ``config.json`` (JSON object, a valid RunConfig whose run id is the folder's name),
    ``metrics.json`` (JSON object with a ``test`` object) and the CSV files.
    """
    folder = Path(folder)
    config_path, metrics_path = folder / "config.json", folder / "metrics.json"
    problem = json_problem(config_path)
    if problem:
        return problem
    try:
        cfg = RunConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (TypeError, ValueError) as err:
        return f"{config_path}: not a run configuration ({err})"
    if cfg.run_id != folder.name:
        return (f"{config_path}: describes run {cfg.run_id}, not {folder.name} (the file was edited or "
                "copied from another run)")
    problem = json_problem(metrics_path)
    if problem:
        return problem
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    if not isinstance(metrics.get("test", {}), dict):
        return f"{metrics_path}: 'test' is a {type(metrics['test']).__name__}; expected an object of metrics"
    for name in ("history.csv", "per_image.csv"):
        path = folder / name
        if path.is_file() and path.stat().st_size:
            try:
                pd.read_csv(path)
            except (ValueError, OSError, UnicodeDecodeError) as err:  # pandas parser errors are ValueErrors
                return f"{path}: unreadable CSV ({type(err).__name__}: {' '.join(str(err).split())})"
    return None


DAMAGED_HINT = "the run record is damaged: restore it (git checkout -- <file>) or retrain with --force"


def load_run_record(run_id: str):
    """:func:`load_run` with every damage named by its file: also a record whose config
    describes another run, a ``test`` entry that is not an object, an unreadable CSV.

    Raises:
        FileNotFoundError: no finished run ``run_id``.
        RunRecordError: a damaged ``config.json``/``metrics.json``/CSV (the message names the file).
    """
    error = RunRecordError
    folder = run_dir(run_id)
    try:
        run = load_run(run_id)
    except FileNotFoundError:
        raise
    except error:
        raise
    except Exception as err:  # JSON, RunConfig, CSV errors that do not name the file
        problem = run_folder_problem(folder)
        if problem is None:
            raise
        raise error(f"run {run_id}: {problem}; {DAMAGED_HINT}") from err
    if run.config.run_id != Path(run.path).name:
        raise error(f"run {run_id}: {Path(run.path) / 'config.json'}: describes run {run.config.run_id}, not "
                    f"{Path(run.path).name} (the file was edited or copied from another run); {DAMAGED_HINT}")
    if not isinstance(run.metrics.get("test", {}), dict):
        raise error(f"run {run_id}: {Path(run.path) / 'metrics.json'}: 'test' is not an object of metrics; "
                    f"{DAMAGED_HINT}")
    return run


def scan_runs(model: str | None = None, scale: str | None = None) -> tuple[list, list[str], list[str]]:
    """Every finished run of ``runs_dir()`` matching the filters, without stopping at a damaged one.

    Returns:
        ``(runs, damaged, unfinished)``: the readable runs (sorted by id), one message per
        damaged record (naming its file), and the ids of folders without ``metrics.json``.
    """
    roots = paths.all_runs_dirs()
    folders, seen = [], set()
    for root in roots:  # the committed runs first; an id found twice is the first one
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if folder.name not in seen:
                    seen.add(folder.name)
                    folders.append(folder)
    runs, damaged, unfinished = [], [], []
    for folder in sorted(folders, key=lambda f: f.name):
        if not (folder / "metrics.json").is_file():
            unfinished.append(folder.name)
            continue
        try:
            run = load_run_record(folder.name)
        except (ValueError, OSError) as err:
            damaged.append(str(err))
            continue
        if model is not None and run.config.model != model:
            continue
        if scale is not None and run.config.scale != scale:
            continue
        runs.append(run)
    return runs, damaged, unfinished


def find_runs(**filters: Any) -> list[Run]:
    """Complete runs whose config matches every ``field=value`` filter.

    Values compare against :meth:`RunConfig.to_dict` (tuples and lists are equivalent,
    ``model_kwargs`` compares as a dict). A filter value may also be a callable predicate.

    Example:
        ``find_runs(model="abanet", scale="reduced")``
    """
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


def record_run(cfg: RunConfig, fill: Callable[[Path], None], force: bool = False, progress: bool = True) -> Run:
    """Write ``cfg``'s record: ``fill(staging)`` writes the run's files into its staging folder
    (``metrics.json`` last), which then replaces the record in one step.

    Under the run's lock (:func:`training_lock`): an interrupted swap is finished, a record
    completed meanwhile by another process is returned as it is (unless ``force``), a partial
    folder of an older version is adopted, and the staging folder is prepared
    (:func:`prepare_staging`: an interrupted attempt resumes). Within ``fill`` the run's
    checkpoints go to the staged checkpoint folder; when ``fill`` fails, a staging folder with
    no epoch to resume from is removed. The finished folder replaces the record through
    :func:`swap_in`, so a kill at any moment leaves the previous record as it was.
    """
    folder = run_dir(cfg)
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
                fill(staging)
            except BaseException:
                _drop_empty_staging(cfg, staging)
                raise
        swap_in(cfg, staging, folder)
    return load_run_folder(folder)


def write_metrics(folder: Path, metrics: dict) -> None:
    """``metrics.json`` (strict JSON: NaN/inf become null), written atomically: the record's last file."""
    atomic_write_text(Path(folder) / METRICS_FILE, json.dumps(_jsonable(metrics), indent=2, sort_keys=True))


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


def write_data_record(folder: Path, fingerprint: dict) -> None:
    """Write ``data.json``: the fingerprint of every file a run read (what :func:`data_changes`
    checks the data against later)."""
    atomic_write_text(Path(folder) / DATA_FILE, json.dumps(fingerprint, indent=0, sort_keys=True) + "\n")


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


def load_model(run: Run | str, device: str | torch.device = "cpu", strict: bool = True) -> nn.Module:
    """Rebuild a run's model and load its best checkpoint (eval mode).

    Args:
        run: a :class:`Run` or a run id.
        device: where to put the model.
        strict: raise when a trainable model's checkpoint is missing (it lives in the cache,
            not in git); with False the freshly initialised model is returned with a warning.
    """
    run = load_run(run) if isinstance(run, str) else run
    dev = resolve_device(device)
    seed_everything(run.config.seed)
    model = build_model(run.config)
    # This machine's cache first: the recorded path may be another machine's (a GPU run).
    candidates = [checkpoint_dir(run.config) / "best.pt", run.metrics.get("checkpoint")]
    ckpt = next((Path(c) for c in candidates if c and Path(c).is_file()), run.metrics.get("checkpoint"))
    if ckpt and Path(ckpt).is_file():
        load_weights(model, ckpt)
    elif model.trainable:
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
