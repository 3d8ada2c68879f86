"""Checkpoints of a training run: where they live, what they hold, and how a run resumes.

``cache_dir()/checkpoints/<run_id>/last.pt`` holds everything needed to resume (weights,
optimizer, scheduler, scaler, RNG states, the loop's bookkeeping :class:`LoopState`, the
history); ``best.pt`` the best epoch's weights. Both are written atomically after each epoch
(:func:`write_epoch_outputs`) and only ever hold finite values: a non-finite state raises
:class:`NonFiniteLossError` first, naming the last good checkpoint (:func:`last_good_checkpoint`).
While a run is (re)trained into a staging folder its checkpoints go to ``<run_id>.staging/``
(:func:`staged_checkpoints`).
"""
from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig
from abanet_lib.core.io import atomic_csv, atomic_save

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The training or validation loss, or a weight/buffer, became NaN or inf; the message names
    the epoch (and batch or tensor) and the last finite checkpoint, if one exists."""


#: Run ids whose checkpoints currently go to the staging folder (a retrain in progress): the
#: finished record's ``best.pt`` stays untouched until the new record replaces it.
_STAGED_RUNS: set[str] = set()


def checkpoint_dir(cfg: RunConfig, staged: bool | None = None) -> Path:
    """``cache_dir()/checkpoints/<run_id>/`` (git-ignored); ``<run_id>.staging/`` while the run
    is being (re)trained into a staging folder (see :func:`staged_checkpoints`).

    Args:
        staged: force the staging (True) or final (False) folder; None = as currently staged.
    """
    staged = cfg.run_id in _STAGED_RUNS if staged is None else staged
    return paths.cache_dir() / "checkpoints" / (cfg.run_id + (".staging" if staged else ""))


@contextlib.contextmanager
def staged_checkpoints(cfg: RunConfig):
    """Within the block, every checkpoint of ``cfg`` is read and written in the staging folder."""
    _STAGED_RUNS.add(cfg.run_id)
    try:
        yield checkpoint_dir(cfg)
    finally:
        _STAGED_RUNS.discard(cfg.run_id)


def checkpoint_paths(cfg: RunConfig) -> tuple[Path, Path]:
    """``(last.pt, best.pt)`` in :func:`checkpoint_dir`."""
    ckpt_dir = checkpoint_dir(cfg)
    return ckpt_dir / "last.pt", ckpt_dir / "best.pt"


def load_weights(model: nn.Module, path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load the ``"model"`` weights of a checkpoint (``best.pt`` or ``last.pt``) into ``model``."""
    model.load_state_dict(torch.load(path, map_location=device, weights_only=False)["model"])
    return model


def rng_state(loader_gen: torch.Generator, include_cuda: bool = True) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "loader": loader_gen.get_state(),
    }
    if include_cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    loader_gen.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LoopState:
    """Resumable bookkeeping of the epoch loop (stored in ``last.pt``).

    Attributes:
        history: one row per finished epoch (see :func:`epoch_row`).
        best_score: best validation IoU so far (the epoch number without validation data).
        best_epoch: 1-based epoch of ``best_score`` (0 before the first epoch).
        stale: epochs since the last improvement (early stopping counter).
        start_epoch: last finished epoch when the loop (re)started.
        stopped_early: early stopping has ended the run.
    """

    history: list = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    stale: int = 0
    start_epoch: int = 0
    stopped_early: bool = False

    def record(self, row: dict, cfg: RunConfig) -> bool:
        """Append an epoch's row and update best epoch and early stopping.

        Returns:
            True when the epoch improved on the best score (its weights become ``best.pt``).
        """
        self.history.append(row)
        epoch, val_iou = row["epoch"], row["val_iou"]
        score = val_iou if not math.isnan(val_iou) else float(epoch)  # no val data: last is best
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
        else:
            self.stale += 1
        self.stopped_early = cfg.early_stopping is not None and self.stale >= cfg.early_stopping
        return improved


def load_last_checkpoint(cfg: RunConfig, last_path: Path, device: torch.device, model: nn.Module,
                         optimizer: torch.optim.Optimizer, scheduler) -> tuple[LoopState, dict]:
    """Restore model, optimizer and scheduler from ``last_path``.

    Returns:
        The loop bookkeeping and the raw checkpoint (for scaler and RNG states, which the
        callers restore as they need).

    Raises:
        RuntimeError: the checkpoint was written for another configuration.
    """
    state = torch.load(last_path, map_location=device, weights_only=False)
    if state.get("config") != cfg.canonical_json():
        raise RuntimeError(f"checkpoint {last_path} belongs to another configuration; "
                           f"delete it or train with resume=False")
    model.load_state_dict(state["model"])
    bad = nonfinite_tensors(model)
    if bad:  # written before the state guard existed
        raise NonFiniteLossError(f"run {cfg.run_id}: checkpoint {last_path} (epoch {state.get('epoch')}) holds "
                                 f"non-finite values in {listed_names(bad)}; it cannot be resumed: delete it "
                                 "or retrain with --force")
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    loop = LoopState(history=list(state["history"]), best_score=state["best_score"],
                     best_epoch=state["best_epoch"], stale=state["stale"], start_epoch=state["epoch"],
                     stopped_early=state.get("stopped_early", False))
    return loop, state


def write_epoch_outputs(cfg: RunConfig, run_dir: Path, epoch: int, val_iou: float, improved: bool,
                        model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler,
                        rng: dict, loop: LoopState, extra: dict | None = None) -> None:
    """Write ``best.pt`` (when ``improved``), ``last.pt`` and ``run_dir/history.csv`` atomically.

    ``extra`` adds entries to ``last.pt`` (the distributed run records its world size).
    """
    last_path, best_path = checkpoint_paths(cfg)
    if improved:
        atomic_save({"format": CHECKPOINT_FORMAT, "run_id": cfg.run_id, "epoch": epoch,
                     "val_iou": val_iou, "model": model.state_dict()}, best_path)
    atomic_save({
        "format": CHECKPOINT_FORMAT, "run_id": cfg.run_id, "config": cfg.canonical_json(),
        "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": rng, "best_score": loop.best_score, "best_epoch": loop.best_epoch,
        "stale": loop.stale, "stopped_early": loop.stopped_early, "history": loop.history,
        **(extra or {}),
    }, last_path)
    atomic_csv(pd.DataFrame(loop.history), run_dir / "history.csv")


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf."""
    bad = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def listed_names(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def last_good_checkpoint(cfg: RunConfig, epoch: int) -> str:
    """The sentence naming the last finite checkpoint; only a file that exists is named.

    Checkpoints are written after an epoch passed :func:`guard_finite_epoch`, so ``last.pt``
    (when present) holds epoch ``epoch - 1`` and only finite values.
    """
    last, best = checkpoint_paths(cfg)
    if last.is_file():
        return (f"The last good checkpoint is {last} (after epoch {epoch - 1}; training again resumes "
                "from it)" + (f"; best so far: {best}" if best.is_file() else "") + ".")
    if best.is_file():
        return f"No resume state was kept; the best finite weights so far are in {best}."
    return "No checkpoint was written (this happened before the first epoch ended)."
