"""Training loop: seeded, resumable, guarded against NaN, with per-epoch history.

One call, :func:`train`, trains the model of a :class:`~abanet_lib.core.config.RunConfig`
(its pieces come from :mod:`abanet_lib.engine.assembly`, its checkpoints are
:mod:`abanet_lib.engine.checkpoints`):

* data: :func:`~abanet_lib.engine.assembly.build_split` (identity-disjoint split of ``cfg.eval_dataset`` plus any extra
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
  is :mod:`abanet_lib.paper.runs`::

      torchrun --nproc_per_node 2 -m abanet_lib.paper.runs --scale smoke [--model NAME] [--set key=value ...]
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from tqdm.auto import tqdm

from abanet_lib.core.config import RunConfig
from abanet_lib.core.devices import (Precision, configure_backends, resolve_device, resolve_precision,
                                     synchronize, to_memory_format)
from abanet_lib.data.device_batches import DeviceBatches
from abanet_lib.engine.assembly import (TrainingData, build_criterion, build_model, build_optimizer,
                                        build_scheduler, build_training_data, seed_everything)
from abanet_lib.engine.checkpoints import (LoopState, NonFiniteLossError, checkpoint_paths, last_good_checkpoint,
                                           listed_names, load_last_checkpoint, load_weights, nonfinite_tensors, rng_state,
                                           set_rng_state, write_epoch_outputs)
from abanet_lib.models.base import main_output


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


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch and random per worker but not numpy; augmentations may use it.
    np.random.seed(torch.initial_seed() % 2**32)


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


def _components(criterion: Callable) -> dict | None:
    """Per-component losses of the last call, if the criterion records them."""
    comps = getattr(criterion, "last_components", None)
    if not comps:
        return None
    return {k: float(v) for k, v in comps.items()}


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
        load_weights(model, best_path, device)
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
    if cfg.batches_on_device and group.world_size > 1:
        raise ValueError(f"run {cfg.run_id}: batches_on_device is for single-process runs; "
                         "distributed runs share batches through the loader")
    precision = resolve_precision(cfg.precision, device)
    configure_backends(device, deterministic)
    seed_everything(cfg.seed)
    if model is None:
        model = build_model(cfg)
    model = to_memory_format(model.to(device), cfg.channels_last)

    if not model.trainable:
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
    if cfg.batches_on_device:
        # Crops live on the device; epoch e's order and augmentation follow (seed, e), so a
        # resumed run continues with the batches it would have had.
        train_loader = DeviceBatches(data.train.arrays, device, cfg.batch_size, augment=data.train.augment,
                                     seed=cfg.seed, drop_last=True, indices=data.train.indices)
    else:
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
        epoch_batches = train_loader.epoch(epoch) if cfg.batches_on_device else train_loader
        for batch_idx, (images, masks) in enumerate(epoch_batches, start=1):
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
        raise NonFiniteLossError(f"run {cfg.run_id}: non-finite values in {listed_names(bad)} after epoch {epoch} "
                                 f"(the training loss stayed finite); training stopped. "
                                 f"{last_good_checkpoint(cfg, epoch)} {hint}")
    if val_loss is not None and not math.isfinite(val_loss):
        raise NonFiniteLossError(f"run {cfg.run_id}: validation loss is {val_loss} after epoch {epoch}; "
                                 f"training stopped. {last_good_checkpoint(cfg, epoch)} {hint}")
