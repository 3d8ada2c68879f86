"""Training loop: seeded, resumable, guarded against NaN, with per-epoch history.

One call, :func:`train`, trains the model of a :class:`~abanet_lib.core.config.RunConfig`:

* data: :func:`build_split` (identity-disjoint split of ``cfg.eval_dataset`` plus any extra
  training sets), arrays prepared once (uint8 cache), a seeded ``DataLoader``;
* loss: only ever ``model.training_loss(images, masks, criterion)``, so deep supervision and
  special protocols (Mask R-CNN) live in the model, never here;
* validation every epoch (IoU at 0.5 on the validation split, training resolution); the best
  epoch's weights are kept in ``best.pt``, early stopping is optional;
* checkpoints ``cache_dir()/checkpoints/<run_id>/last.pt`` (everything needed to resume:
  weights, optimizer, scheduler, scaler, RNG states, best score, history) and ``best.pt``,
  both written atomically each epoch. A killed run restarts from ``last.pt``; on CPU in
  fp32 it ends with exactly the weights and metrics of an uninterrupted run.
* a NaN/inf training loss, a NaN/inf validation loss, or a non-finite weight or buffer
  (BatchNorm running statistics) after an epoch stops the run with :class:`NonFiniteLossError`
  naming epoch (and batch or tensor) before that epoch's checkpoints are written: ``last.pt`` /
  ``best.pt`` only ever hold finite values, and the message names ``last.pt`` only when it exists.
* distributed training is an option of the same loop (``train(..., distributed=True)``, one
  call per process under torchrun): every rank draws the 1-process global batch order and
  trains on its contiguous share of each global batch of ``cfg.batch_size`` images
  (:class:`RankShareBatches`); each rank's loss is scaled by ``world_size * n_rank / n_global``
  so DDP's gradient average equals the gradient of the 1-process batch mean, also for an uneven
  last batch (the loss must be a mean over images; the project's losses are). On CUDA,
  BatchNorm becomes SyncBatchNorm; PyTorch's SyncBatchNorm does not run on CPU, so CPU/gloo
  runs keep per-process BN statistics and match a 1-process run exactly only for BN-free
  models. Rank 0 writes ``history.csv`` and the checkpoints (a DDP run resumes from them, and
  so does a 1-process run). The command line that trains, evaluates and records a run this way
  is :mod:`abanet_lib.engine.registry`::

      torchrun --nproc_per_node 2 -m abanet_lib.engine.registry --scale smoke [--model NAME] [--set key=value ...]
"""
from __future__ import annotations

import contextlib

import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler
from tqdm.auto import tqdm

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig
from abanet_lib.core.devices import (Precision, configure_backends, resolve_device, resolve_precision,
                                synchronize, to_memory_format)

OPTIMIZERS = ("adam", "adamax", "rmsprop", "sgd")
SCHEDULES = ("none", "cosine", "step")
CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The training or validation loss, or a weight/buffer, became NaN or inf; the message names
    the epoch (and batch or tensor) and the last finite checkpoint, if one exists."""


@dataclass
class TrainingData:
    """What the trainer consumes.

    Attributes:
        train: dataset of ``(image float32 (3,S,S), mask float32 (1,S,S))`` with augmentation.
        val: same without augmentation, or ``None`` (then the last epoch counts as best).
    """

    train: Dataset
    val: Dataset | None = None


@dataclass
class EpochInfo:
    """Passed to callbacks after each epoch's checkpoint is on disk."""

    epoch: int
    epochs: int
    row: dict
    model: nn.Module


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        model: the model with the best epoch's weights loaded, in eval mode.
        history: one row per epoch (see :func:`train`).
        best_epoch: 1-based epoch of the best validation IoU (0 when not trained).
        best_val_iou: that IoU (NaN without validation data or training).
        epochs_run: epochs completed (over all resumptions).
        stopped_early: early stopping ended the run.
        trained: False for models without learned weights (``model.trainable`` False).
        resumed_from: epoch the run resumed after (0 = fresh start).
        seconds: wall time of this call.
        img_per_s: mean training throughput over the epochs run in this call.
        device, precision: what the run executed with.
        best_checkpoint, last_checkpoint: cache paths (None when not trained).
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int = 0
    best_val_iou: float = float("nan")
    epochs_run: int = 0
    stopped_early: bool = False
    trained: bool = True
    resumed_from: int = 0
    seconds: float = 0.0
    img_per_s: float = float("nan")
    device: str = "cpu"
    precision: str = "fp32"
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def build_model(cfg: RunConfig, split: RunSplit | None = None) -> nn.Module:
    """The model named by ``cfg`` (seed the RNGs first for reproducible weights).

    ``pretrained`` is passed only when True, so factories without that option still build
    at the offline scales. A model that fits on training data (``needs_fit``, e.g. GrabCut's
    rectangle) is fitted on ``split.train``; ``split`` defaults to :func:`build_split` of ``cfg``.
    """
    from abanet_lib.models import create_model

    kwargs = cfg.model_kwargs_dict
    if cfg.pretrained and "pretrained" not in kwargs:
        kwargs["pretrained"] = True
    model = create_model(cfg.model, **kwargs)
    if getattr(model, "needs_fit", False):  # e.g. GrabCut's rectangle: fitted on this run's training masks
        split = split if split is not None else build_split(cfg)
        model.fit_to_training_masks(ref.load().mask for ref in split.train)
    return model


def build_criterion(cfg: RunConfig) -> Callable:
    """The loss of ``cfg`` (:func:`abanet_lib.engine.losses.build_loss`)."""
    from abanet_lib.engine.losses import build_loss

    return build_loss(cfg)


@dataclass
class RunSplit:
    """Sample references of one run: ``train`` (after the cap), ``val``, ``test``."""

    train: list
    val: list
    test: list


def build_split(cfg: RunConfig) -> RunSplit:
    """Split ``cfg.eval_dataset`` and add extra training sets.

    The test and validation parts always come from ``cfg.eval_dataset`` (scheme
    ``cfg.split``, fold ``cfg.fold``, seed ``cfg.seed``). Training uses that data set's
    training part when it is listed in ``cfg.train_datasets``, plus every sample of the other
    listed data sets outside their own "testing" subset (a seeded subset of
    ``cfg.extra_train_images`` of those when set). ``cfg.max_train_images`` keeps a
    seeded random subset of the training references; ``cfg.max_eval_images`` caps the
    validation and test parts the same way (smoke scale).
    """
    from abanet_lib.data import list_samples, split_samples

    refs = list_samples(cfg.eval_dataset)
    split = split_samples(refs, scheme=cfg.split, n_folds=cfg.n_folds, fold=cfg.fold,
                          seed=cfg.seed, val_fraction=cfg.val_fraction)
    train = list(split.train) if cfg.eval_dataset in cfg.train_datasets else []
    extra = []
    for name in cfg.train_datasets:
        if name != cfg.eval_dataset:
            extra += [r for r in list_samples(name) if getattr(r, "subset", "") != "testing"]
    train += seeded_subset(extra, cfg.extra_train_images, cfg.seed)
    if not train:
        raise ValueError(f"run {cfg.run_id}: no training images (train_datasets={cfg.train_datasets}, "
                         f"eval_dataset={cfg.eval_dataset!r})")
    return RunSplit(train=seeded_subset(train, cfg.max_train_images, cfg.seed),
                    val=seeded_subset(list(split.val), cfg.max_eval_images, cfg.seed),
                    test=seeded_subset(list(split.test), cfg.max_eval_images, cfg.seed))


def seeded_subset(refs: list, cap: int | None, seed: int) -> list:
    """A seeded random subset of at most ``cap`` references, in their original order."""
    if cap is None or len(refs) <= cap:
        return refs
    keep = np.random.default_rng(seed).permutation(len(refs))[:cap]
    return [refs[i] for i in sorted(keep)]


def build_training_data(cfg: RunConfig, split: RunSplit | None = None) -> TrainingData:
    """Prepared uint8 arrays (cached on disk) wrapped as train/val datasets."""
    from abanet_lib.data import SegmentationDataset, prepare_arrays

    split = split or build_split(cfg)
    train_arrays = prepare_arrays(split.train, cfg.image_size)
    train_ds = SegmentationDataset(train_arrays, augment=cfg.augment, seed=cfg.seed)
    val_ds = None
    if split.val:
        val_ds = SegmentationDataset(prepare_arrays(split.val, cfg.image_size), augment=False, seed=cfg.seed)
    return TrainingData(train=train_ds, val=val_ds)


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """Adam, Adamax, RMSprop or SGD (Table 8) with ``cfg.lr``/``weight_decay``/``momentum``."""
    name = cfg.optimizer.lower()
    if not (math.isfinite(cfg.lr) and cfg.lr >= 0):  # 0 freezes the weights (tests use it)
        raise ValueError(f"run {cfg.run_id}: lr={cfg.lr}; expected a finite learning rate >= 0")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ValueError(f"run {cfg.run_id}: weight_decay={cfg.weight_decay}; expected a finite value >= 0")
    common = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, **common)
    if name == "adamax":
        return torch.optim.Adamax(params, **common)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=cfg.momentum, **common)
    if name == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **common)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected one of {OPTIMIZERS}")


def build_scheduler(cfg: RunConfig, optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: none, cosine (to 0 over ``epochs``), step (x0.1 every third)."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {SCHEDULES}")


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch and random per worker but not numpy; augmentations may use it.
    np.random.seed(torch.initial_seed() % 2**32)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``.

    Readers never see a half-written file; a crash leaves the old file (or none) in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)  # a partial file only eats the space that is short
        free = shutil.disk_usage(path.parent).free
        # torch.save reports a full disk as "unexpected pos ..." (a RuntimeError), PIL as a bare OSError
        raise OSError(f"could not write {path}: {err} ({free / 2**30:.2f} GiB free on that disk; "
                      f"an ABANet run needs about 1.5 GiB for its checkpoints while it trains)") from err
    os.replace(tmp, path)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` written atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_csv(df: pd.DataFrame, path: Path) -> None:
    """A data frame as CSV without index, written atomically."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def atomic_write_text(path: Path, text: str) -> None:
    """A text file written atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _show_progress(progress: bool) -> bool:
    """Bars in a terminal, and in Jupyter (tqdm.auto draws them as widgets there); never in logs."""
    return bool(progress) and (sys.stderr.isatty() or "ipykernel" in sys.modules)


def batch_iou(prob: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-image IoU of thresholded probabilities (N,1,H,W) vs masks (N,1,H,W) -> (N,).

    Two empty maps count as IoU 1.
    """
    pred = prob > threshold
    gt = masks > 0.5
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, criterion: Callable | None, device: torch.device,
             precision: Precision, channels_last: bool) -> tuple[float, float]:
    """Mean per-image IoU at 0.5 and mean main-output loss on ``loader`` (eval mode)."""
    from abanet_lib.models.base import main_output

    model.eval()
    ious, losses, weights = [], [], []
    for images, masks in loader:
        images = to_memory_format(images.to(device, non_blocking=True), channels_last)
        masks = masks.to(device, non_blocking=True)
        with precision.autocast():
            logits = main_output(model(images))
        logits = logits.float()
        ious.append(batch_iou(torch.sigmoid(logits), masks).cpu())
        if criterion is not None:
            losses.append(float(criterion(logits, masks)))
            weights.append(len(images))
    iou = float(torch.cat(ious).mean()) if ious else float("nan")
    loss = float(np.average(losses, weights=weights)) if losses else float("nan")
    return iou, loss


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


def _components(criterion: Callable) -> dict | None:
    """Per-component losses of the last call, if the criterion records them."""
    comps = getattr(criterion, "last_components", None)
    if not comps:
        return None
    return {k: float(v) for k, v in comps.items()}


# ---------------------------------------------------------------------------------------
# Pieces of the epoch loop
# ---------------------------------------------------------------------------------------
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


def checkpoint_paths(cfg: RunConfig) -> tuple[Path, Path]:
    """``(last.pt, best.pt)`` in :func:`checkpoint_dir`."""
    ckpt_dir = checkpoint_dir(cfg)
    return ckpt_dir / "last.pt", ckpt_dir / "best.pt"


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
                                 f"non-finite values in {_listed(bad)}; it cannot be resumed: delete it "
                                 "or retrain with --force")
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    loop = LoopState(history=list(state["history"]), best_score=state["best_score"],
                     best_epoch=state["best_epoch"], stale=state["stale"], start_epoch=state["epoch"],
                     stopped_early=state.get("stopped_early", False))
    return loop, state


def build_val_loader(data: TrainingData, cfg: RunConfig, num_workers: int = 0,
                     pin_memory: bool = False) -> DataLoader | None:
    """Unshuffled loader over ``data.val`` (batch ``max(batch_size, 16)``), or None without it."""
    if data.val is None or len(data.val) == 0:
        return None
    return DataLoader(data.val, batch_size=max(cfg.batch_size, 16), shuffle=False,
                      num_workers=num_workers, pin_memory=pin_memory)


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, scaler,
                   grad_clip: float | None) -> None:
    """Backward of ``loss`` (through the grad scaler), optional norm clipping, one step."""
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def validate_or_nan(model: nn.Module, val_loader: DataLoader | None, criterion: Callable,
                    device: torch.device, precision: Precision, cfg: RunConfig) -> tuple[float, float]:
    """:func:`validate` (IoU, loss), or ``(nan, nan)`` without validation data."""
    if val_loader is None:
        return float("nan"), float("nan")
    return validate(model, val_loader, criterion, device, precision, cfg.channels_last)


def epoch_row(epoch: int, train_loss: float, components: dict, val_loss: float, val_iou: float,
              lr: float, seconds: float, img_per_s: float) -> dict:
    """One history row: ``epoch, train_loss, [loss_<part>...], val_loss, val_iou, lr, seconds, img_per_s``."""
    row = {"epoch": epoch, "train_loss": train_loss}
    for k, v in components.items():
        row[f"loss_{k}"] = v
    row.update(val_loss=val_loss, val_iou=val_iou, lr=lr, seconds=seconds, img_per_s=img_per_s)
    return row


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


def print_epoch(cfg: RunConfig, row: dict, note: str = "") -> None:
    """The one-line epoch summary (``note`` is appended inside the parentheses)."""
    print(f"[{cfg.run_id}] epoch {row['epoch']}/{cfg.epochs} loss {row['train_loss']:.4f} "
          f"val_iou {row['val_iou']:.4f} ({row['seconds']:.1f}s, {row['img_per_s']:.1f} img/s{note})", flush=True)


def finish_training(cfg: RunConfig, model: nn.Module, loop: LoopState, device: torch.device,
                    precision: Precision, start: float, throughput: list[float],
                    extra: dict | None = None) -> TrainResult:
    """Load ``best.pt`` into ``model`` (eval mode) and summarise the run as a :class:`TrainResult`."""
    last_path, best_path = checkpoint_paths(cfg)
    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=False)["model"])
    model.eval()
    history = loop.history
    best_val = (loop.best_score if loop.best_epoch and history
                and not math.isnan(history[loop.best_epoch - 1]["val_iou"]) else float("nan"))
    return TrainResult(
        model=model, history=pd.DataFrame(history), best_epoch=loop.best_epoch, best_val_iou=float(best_val),
        epochs_run=len(history), stopped_early=loop.stopped_early, trained=True,
        resumed_from=loop.start_epoch, seconds=time.perf_counter() - start,
        img_per_s=float(np.mean(throughput)) if throughput else float("nan"),
        device=str(device), precision=precision.name,
        best_checkpoint=best_path if best_path.is_file() else None,
        last_checkpoint=last_path if last_path.is_file() else None,
        extra=dict(extra or {}),
    )


# ---------------------------------------------------------------------------------------
# Processes: one, or several under torchrun (DistributedDataParallel)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the training run.

    Attributes:
        rank: 0 for the process that writes checkpoints, history and progress lines.
        world_size: number of training processes (1 = a plain run).
        backend: ``"gloo"`` / ``"nccl"`` of a joined group; None for a plain run.
        distributed: trained through :func:`train`'s ``distributed=True`` (records
            ``world_size`` and ``backend`` even for a group of one).
    """

    rank: int = 0
    world_size: int = 1
    backend: str | None = None
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op for a single process)."""
        if self.world_size > 1:
            dist.barrier()


def join_process_group(backend: str | None = None) -> tuple[ProcessGroup, torch.device]:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Returns:
        The :class:`ProcessGroup` and this process's device (``cuda:<LOCAL_RANK>``, or the CPU
        for ``backend="gloo"`` or without CUDA); without torchrun variables a group of one.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    joined = dist.get_backend() if world_size > 1 else None
    return ProcessGroup(rank=rank, world_size=world_size, backend=joined, distributed=True), device


def rank_share(n_global: int, rank: int, world_size: int) -> slice:
    """Contiguous share of a global batch of ``n_global`` items for ``rank`` (sizes differ by <= 1)."""
    base, extra = divmod(n_global, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class RankShareBatches(Sampler):
    """The batches of one process: the seeded global batch order, cut to this rank's share.

    Every rank draws the same global order (``RandomSampler`` with the loop's generator, global
    batches of ``batch_size``: exactly the batches of a 1-process run) and keeps its contiguous
    :func:`rank_share` of each. A rank whose share is empty (fewer images than ranks) gets the
    batch's first item with loss weight 0, so it still joins the gradient all-reduce.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, group: ProcessGroup):
        self.n, self.batch_size, self.group = n, batch_size, group
        self.batches = BatchSampler(RandomSampler(range(n), generator=generator), batch_size, drop_last=False)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for indices in self.batches:
            share = indices[rank_share(len(indices), self.group.rank, self.group.world_size)]
            yield share or indices[:1]

    def loss_weight(self, batch_idx: int) -> float:
        """Factor on batch ``batch_idx``'s (1-based) mean loss so that DDP's gradient average is the
        gradient of the global batch mean: ``world_size * n_rank / n_global`` (1 for one process)."""
        n_global = min(self.batch_size, self.n - (batch_idx - 1) * self.batch_size)
        sl = rank_share(n_global, self.group.rank, self.group.world_size)
        return self.group.world_size * (sl.stop - sl.start) / n_global


class TrainingLoss(nn.Module):
    """``model.training_loss`` as a forward, so DDP wraps every model's own training protocol."""

    def __init__(self, model: nn.Module, criterion: Callable):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.model.training_loss(images, masks, self.criterion)


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------
def train(
    cfg: RunConfig,
    run_dir: Path | str,
    *,
    model: nn.Module | None = None,
    criterion: Callable | None = None,
    data: TrainingData | None = None,
    progress: bool = True,
    max_batches: int | None = None,
    resume: bool = True,
    callbacks: Sequence[Callable[[EpochInfo], None]] = (),
    deterministic: bool = False,
    distributed: bool = False,
    backend: str | None = None,
    sync_bn: bool = True,
    find_unused_parameters: bool | None = None,
) -> TrainResult:
    """Train ``cfg``'s model; resume from ``last.pt`` when present.

    Args:
        cfg: the run.
        run_dir: folder receiving ``history.csv`` (rewritten after each epoch).
        model: a prepared model (default: :func:`build_model` after seeding).
        criterion: loss callable ``(outputs, masks) -> scalar`` (default: ``build_loss(cfg)``).
        data: datasets (default: :func:`build_training_data`).
        progress: tqdm bars when stderr is a terminal, plus one line per epoch.
        max_batches: cap on training batches per epoch (speed checks, smoke tests).
        resume: continue from ``last.pt`` if it exists for this run id; False starts over.
        callbacks: called with :class:`EpochInfo` after each epoch's checkpoint is written
            (a callback raising ``KeyboardInterrupt`` simulates a kill).
        deterministic: on CUDA, disable cuDNN autotuning and TF32.
        distributed: train as one process of a torchrun group (see the module docstring);
            ``cfg.batch_size`` is then the global batch, split over the processes.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA) for ``distributed``; default by device.
        sync_bn: with ``distributed`` on CUDA, BatchNorm becomes SyncBatchNorm.
        find_unused_parameters: DDP's option, for models with parameters outside the loss graph
            (default: True for ``abanet_official``, whose released graph leaves ~3 M unused).

    Returns:
        :class:`TrainResult`; ``history`` has columns ``epoch, train_loss, [loss_<part>...],
        val_loss, val_iou, lr, seconds, img_per_s``. ``train_loss`` is the mean over images of
        the full training loss (all side outputs); ``loss_<part>`` are the criterion's
        ``last_components`` (every batch on CPU; on CUDA every 20th batch, to avoid a device
        sync per batch; single-process runs only); ``val_loss`` is the criterion on the main
        output only; ``img_per_s`` counts training images per second of the training loop
        (validation excluded). A ``distributed`` run's ``extra`` holds ``world_size`` and
        ``backend``; every rank returns the unwrapped model.

    Performance notes: on CUDA set ``cfg.num_workers`` (execution-only, e.g. 4-8) so the
    augmentation runs in worker processes; the prepared uint8 arrays are memory-mapped, so
    workers start cheaply.

    Raises:
        NonFiniteLossError: a NaN/inf loss (message names epoch and batch).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if distributed:
        if cfg.device == "cpu" and backend is None:
            backend = "gloo"  # a CPU run on a CUDA machine
        group, device = join_process_group(backend)
    else:
        group, device = ProcessGroup(), resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    configure_backends(device, deterministic)
    seed_everything(cfg.seed)
    if model is None:
        model = build_model(cfg)
    model = to_memory_format(model.to(device), cfg.channels_last)

    if not getattr(model, "trainable", True):
        model.eval()
        return TrainResult(model=model, history=pd.DataFrame(), trained=False,
                           seconds=time.perf_counter() - start, device=str(device), precision=precision.name)

    if cfg.epochs < 1:  # would record random weights as a finished, "trained" run
        raise ValueError(f"run {cfg.run_id}: epochs={cfg.epochs}; expected at least 1")
    if criterion is None:
        criterion = build_criterion(cfg)
    if data is None:
        data = build_training_data(cfg)
    if sync_bn and device.type == "cuda" and group.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    training_loss: nn.Module = TrainingLoss(model, criterion)
    if group.world_size > 1:
        if find_unused_parameters is None:
            find_unused_parameters = cfg.model == "abanet_official"
        training_loss = nn.parallel.DistributedDataParallel(
            training_loss, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)

    loader_gen = torch.Generator().manual_seed(cfg.seed)
    pin = device.type == "cuda"
    batches = RankShareBatches(len(data.train), cfg.batch_size, loader_gen, group)
    train_loader = DataLoader(data.train, batch_sampler=batches, generator=loader_gen,
                              num_workers=cfg.num_workers, pin_memory=pin,
                              worker_init_fn=_seed_worker, persistent_workers=False)
    val_loader = build_val_loader(data, cfg, num_workers=cfg.num_workers, pin_memory=pin)

    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    scheduler = build_scheduler(cfg, optimizer)
    scaler = precision.grad_scaler()

    last_path, best_path = checkpoint_paths(cfg)
    loop = LoopState()
    if not resume:
        for p in (last_path, best_path):
            p.unlink(missing_ok=True)
    elif last_path.is_file():
        loop, state = load_last_checkpoint(cfg, last_path, device, model, optimizer, scheduler)
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], loader_gen)
        if progress and group.is_main:
            print(f"[{cfg.run_id}] resuming after epoch {loop.start_epoch}/{cfg.epochs}", flush=True)

    # Decide once: check every batch on CPU (free), every few batches on CUDA (a sync each).
    check_every = 1 if device.type == "cpu" else 20
    who = f"run {cfg.run_id}" + (f" rank {group.rank}" if group.world_size > 1 else "")
    throughput = []
    for epoch in range(loop.start_epoch + 1, cfg.epochs + 1):
        if loop.stopped_early:
            break
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(epoch)
        training_loss.train()
        t0 = time.perf_counter()
        n_images, loss_sum, pending = 0, torch.zeros((), device=device), []
        comp_sums: dict[str, float] = {}
        comp_n = 0
        n_batches = len(train_loader) if max_batches is None else min(max_batches, len(train_loader))
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not (_show_progress(progress) and group.is_main))
        for batch_idx, (images, masks) in enumerate(train_loader, start=1):
            if max_batches is not None and batch_idx > max_batches:
                break
            images = to_memory_format(images.to(device, non_blocking=True), cfg.channels_last)
            masks = masks.to(device, non_blocking=True)
            weight = batches.loss_weight(batch_idx)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                loss = training_loss(images, masks)
            loss = loss.float()
            pending.append((batch_idx, loss.detach()))
            if len(pending) >= check_every:
                _check_finite(pending, epoch, cfg, who)
                pending = []
            optimizer_step(loss if weight == 1.0 else loss * weight, model, optimizer, scaler, cfg.grad_clip)
            if weight > 0:  # a zero-weight stand-in item is not a training image
                loss_sum += loss.detach() * len(images)
                n_images += len(images)
            # Reading components syncs the GPU: every batch on CPU, sampled on CUDA.
            comps = _components(criterion) if batch_idx % check_every == 0 and group.world_size == 1 else None
            if comps:
                for k, v in comps.items():
                    comp_sums[k] = comp_sums.get(k, 0.0) + v * len(images)
                comp_n += len(images)
            bar.update(1)
        bar.close()
        if pending:
            _check_finite(pending, epoch, cfg, who)
        synchronize(device)
        mean_loss = float(loss_sum) / max(1, n_images)
        if group.world_size > 1:  # the global mean over every rank's images
            totals = torch.tensor([float(loss_sum), n_images], dtype=torch.float64)
            dist.all_reduce(totals)
            n_images = int(totals[1])
            mean_loss = float(totals[0]) / max(1, n_images)
        train_seconds = time.perf_counter() - t0
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()

        # Every rank validates the full split: identical weights give identical scores, so early
        # stopping and best-epoch decisions agree without communication; every rank checks
        # finiteness (a rank-0-only raise would leave the others waiting at the barrier).
        val_iou, val_loss = validate_or_nan(model, val_loader, criterion, device, precision, cfg)
        guard_finite_epoch(cfg, model, epoch, val_loss if val_loader is not None else None)
        row = epoch_row(epoch, mean_loss, {k: v / max(1, comp_n) for k, v in comp_sums.items() if k != "total"},
                        val_loss=val_loss, val_iou=val_iou, lr=lr, seconds=time.perf_counter() - t0,
                        img_per_s=n_images / max(train_seconds, 1e-9))
        improved = loop.record(row, cfg)
        throughput.append(row["img_per_s"])
        if group.is_main:
            write_epoch_outputs(cfg, run_dir, epoch, val_iou, improved, model, optimizer, scheduler, scaler,
                                rng_state(loader_gen, include_cuda=not group.distributed), loop,
                                extra=_group_entry(group, "distributed"))
            if progress:
                print_epoch(cfg, row, note=f", {group.world_size} processes" if group.distributed else "")
        group.barrier()  # rank 0's checkpoint is on disk before anyone reads it
        for callback in callbacks:
            callback(EpochInfo(epoch=epoch, epochs=cfg.epochs, row=row, model=model))
        if loop.stopped_early:
            if progress and group.is_main:
                print(f"[{cfg.run_id}] early stop: no val IoU gain for {loop.stale} epochs", flush=True)
            break

    return finish_training(cfg, model, loop, device, precision, start, throughput, extra=_group_entry(group))


def _group_entry(group: ProcessGroup, key: str | None = None) -> dict:
    """``{world_size, backend}`` of a distributed run (under ``key`` when given); empty otherwise."""
    if not group.distributed:
        return {}
    entry = {"world_size": group.world_size, "backend": group.backend}
    return {key: entry} if key else entry


def _check_finite(pending: list[tuple[int, torch.Tensor]], epoch: int, cfg: RunConfig, who: str) -> None:
    """Raise NonFiniteLossError at the first non-finite loss of ``(batch index, loss)`` pairs."""
    values = torch.stack([loss for _, loss in pending])
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise NonFiniteLossError(
            f"{who}: training loss is {float(values[i])} at epoch {epoch}, batch {pending[i][0]}; "
            f"training stopped. {last_good_checkpoint(cfg, epoch)} "
            f"(try a lower lr={cfg.lr}, grad_clip, or precision='fp32')")


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf."""
    bad = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def _listed(names: list[str], limit: int = 3) -> str:
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


def guard_finite_epoch(cfg: RunConfig, model: nn.Module, epoch: int, val_loss: float | None) -> None:
    """Refuse an epoch whose validation loss (when validated) or weights/buffers are not finite.

    Called after validation and before the epoch's checkpoints are written, so a non-finite
    state never reaches ``last.pt``/``best.pt`` and the test step never sees NaN maps.

    Raises:
        NonFiniteLossError: naming the epoch, the tensors and the last good checkpoint.
    """
    hint = f"(try a lower lr={cfg.lr}, grad_clip, or precision='fp32')"
    bad = nonfinite_tensors(model)
    if bad:
        raise NonFiniteLossError(f"run {cfg.run_id}: non-finite values in {_listed(bad)} after epoch {epoch} "
                                 f"(the training loss stayed finite); training stopped. "
                                 f"{last_good_checkpoint(cfg, epoch)} {hint}")
    if val_loss is not None and not math.isfinite(val_loss):
        raise NonFiniteLossError(f"run {cfg.run_id}: validation loss is {val_loss} after epoch {epoch}; "
                                 f"training stopped. {last_good_checkpoint(cfg, epoch)} {hint}")
