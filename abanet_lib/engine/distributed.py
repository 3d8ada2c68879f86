"""Multi-process training with DistributedDataParallel (torchrun), same RunConfig and registry.

    torchrun --nproc_per_node 2 -m abanet_lib.engine.distributed --scale smoke [--model NAME] [--set key=value ...]

Design: the engine's :func:`abanet_lib.engine.train.train` has no sampler/model-wrapper hooks, so
this module runs its own epoch loop but reuses the engine's pieces (``build_model``,
``build_criterion``, ``build_training_data``, ``build_optimizer``, ``build_scheduler``,
``validate``, precision/devices) and writes the engine's checkpoint format:

* **Same batches as one process.** Every rank draws the global batch order from a
  ``DataLoader(shuffle=True)`` over indices with the engine's generator (seed ``cfg.seed``),
  exactly the order of a 1-process :func:`train`, and takes its contiguous share of each
  global batch of ``cfg.batch_size`` images (so ``batch_size`` stays the *global* batch).
  Each rank's loss is scaled by ``world_size * n_rank / n_global`` so DDP's gradient average
  equals the gradient of the 1-process batch mean, also for an uneven last batch. The loss
  must therefore be a mean over images (the project's losses are).
* **BatchNorm.** On CUDA, BatchNorm layers become SyncBatchNorm (global-batch statistics,
  ``sync_bn=True``). PyTorch's SyncBatchNorm does not run on CPU, so CPU/gloo runs keep
  per-process BN statistics: they match a 1-process run exactly only for BN-free models.
* **Outputs.** Rank 0 writes ``history.csv`` and the engine-format checkpoints
  ``cache_dir()/checkpoints/<run_id>/{last,best}.pt`` (a DDP run resumes from them, and a
  1-process ``train`` resumes from them too). :func:`run_or_load_distributed` then lets the
  registry "resume" after the last epoch on rank 0, which evaluates the test split and writes
  ``results/runs/<run_id>/metrics.json`` as for any run (plus a ``distributed`` entry).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from abanet_lib.core.config import RunConfig
from abanet_lib.engine.train import (LoopState, NonFiniteLossError, TrainingData, TrainResult, _rng_state,
                              build_criterion, build_model, build_optimizer, build_scheduler,
                              build_training_data, build_val_loader, checkpoint_paths,
                              epoch_row, finish_training, guard_finite_epoch, load_last_checkpoint,
                              optimizer_step,
                              print_epoch, seed_everything, staged_checkpoints, validate_or_nan,
                              write_epoch_outputs)


class _IndexDataset(Dataset):
    """0..n-1; a DataLoader over it yields the engine's shuffled batch order as index tensors."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _LossModule(nn.Module):
    """Wraps ``model.training_loss`` as a forward, so DDP sees every model's own protocol."""

    def __init__(self, model: nn.Module, criterion: Callable):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.model.training_loss(images, masks, self.criterion)


def rank_share(n_global: int, rank: int, world_size: int) -> slice:
    """Contiguous share of a global batch of ``n_global`` items for ``rank`` (sizes differ by <= 1)."""
    base, extra = divmod(n_global, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def init_process_group(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...).

    Returns:
        ``(rank, world_size, device)``; without torchrun variables: ``(0, 1, cpu/cuda)`` and no group.
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
    return rank, world_size, device


def _stack(dataset: Dataset, indices: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in indices]
    images = torch.stack([im for im, _ in items]).to(device, non_blocking=True)
    masks = torch.stack([m for _, m in items]).to(device, non_blocking=True)
    return images, masks


def train_distributed(
    cfg: RunConfig,
    run_dir: Path | str,
    *,
    model: nn.Module | None = None,
    criterion: Callable | None = None,
    data: TrainingData | None = None,
    backend: str | None = None,
    sync_bn: bool = True,
    find_unused_parameters: bool | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train ``cfg`` on every process of the group (launch with torchrun, or call per rank).

    Args:
        cfg: the run; ``cfg.batch_size`` is the global batch (split over processes).
        run_dir: receives ``history.csv`` (rank 0).
        model, criterion, data: injected pieces, as for :func:`abanet_lib.engine.train.train`.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA); default by device.
        sync_bn: convert BatchNorm to SyncBatchNorm on CUDA (ignored on CPU, see module doc).
        find_unused_parameters: for models with parameters outside the loss graph (default:
            True for ``abanet_official``, whose released graph leaves ~3 M parameters unused).
        resume: continue from ``last.pt`` when present for this run id.
        progress: one line per epoch on rank 0.

    Returns:
        :class:`~abanet_lib.engine.train.TrainResult` on every rank (the unwrapped model with the best
        epoch's weights, eval mode); ``extra`` has ``world_size`` and ``backend``.
    """
    from abanet_lib.core.devices import configure_backends, resolve_precision, to_memory_format

    start = time.perf_counter()
    if cfg.device == "cpu" and backend is None:
        backend = "gloo"  # a CPU run on a CUDA machine
    rank, world_size, device = init_process_group(backend)
    precision = resolve_precision(cfg.precision, device)
    configure_backends(device, False)
    seed_everything(cfg.seed)
    if model is None:
        model = build_model(cfg)
    model = to_memory_format(model.to(device), cfg.channels_last)
    if criterion is None:
        criterion = build_criterion(cfg)
    if data is None:
        data = build_training_data(cfg)
    if sync_bn and device.type == "cuda" and world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if find_unused_parameters is None:
        find_unused_parameters = cfg.model == "abanet_official"

    loss_module = _LossModule(model, criterion)
    if world_size > 1:
        ddp = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)
    else:
        ddp = loss_module
    loader_gen = torch.Generator().manual_seed(cfg.seed)
    order = DataLoader(_IndexDataset(len(data.train)), batch_size=cfg.batch_size, shuffle=True,
                       generator=loader_gen)
    val_loader = build_val_loader(data, cfg)
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    scheduler = build_scheduler(cfg, optimizer)
    scaler = precision.grad_scaler()

    last_path, _ = checkpoint_paths(cfg)
    loop = LoopState()
    if resume and last_path.is_file():
        loop, state = load_last_checkpoint(cfg, last_path, device, model, optimizer, scheduler)
        loader_gen.set_state(state["rng"]["loader"])
    backend_name = dist.get_backend() if world_size > 1 else None

    throughput = []
    for epoch in range(loop.start_epoch + 1, cfg.epochs + 1):
        if loop.stopped_early:
            break
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(epoch)
        ddp.train()
        t0 = time.perf_counter()
        totals = torch.zeros(2, dtype=torch.float64)  # (sum of loss * images, images) of this rank
        for batch_idx, indices in enumerate(order, start=1):
            n_global = len(indices)
            share = indices[rank_share(n_global, rank, world_size)].tolist()
            weight = world_size * len(share) / n_global
            if not share:  # fewer images than ranks: join the all-reduce with a zero-weight item
                share, weight = indices[:1].tolist(), 0.0
            images, masks = _stack(data.train, share, device)
            images = to_memory_format(images, cfg.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                loss = ddp(images, masks)
            loss = loss.float()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"run {cfg.run_id} rank {rank}: loss is {float(loss)} at epoch "
                                         f"{epoch}, batch {batch_idx}; training stopped")
            optimizer_step(loss * weight, model, optimizer, scaler, cfg.grad_clip)
            totals += torch.tensor([float(loss.detach()) * len(share) * (weight > 0), len(share) * (weight > 0)],
                                   dtype=torch.float64)
        if world_size > 1:
            dist.all_reduce(totals)
        train_seconds = time.perf_counter() - t0
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        # Every rank validates the full split: identical weights give identical scores, so
        # early stopping and best-epoch decisions agree without communication.
        val_iou, val_loss = validate_or_nan(model, val_loader, criterion, device, precision, cfg)
        # every rank checks (a rank-0-only raise would leave the others waiting at the barrier)
        guard_finite_epoch(cfg, model, epoch, val_loss if val_loader is not None else None)
        n_images = float(totals[1])
        row = epoch_row(epoch, float(totals[0]) / max(1.0, n_images), {}, val_loss=val_loss, val_iou=val_iou,
                        lr=lr, seconds=time.perf_counter() - t0, img_per_s=n_images / max(train_seconds, 1e-9))
        improved = loop.record(row, cfg)
        throughput.append(row["img_per_s"])
        if rank == 0:
            write_epoch_outputs(cfg, Path(run_dir), epoch, val_iou, improved, model, optimizer, scheduler, scaler,
                                _rng_state(loader_gen, include_cuda=False), loop,
                                extra={"distributed": {"world_size": world_size, "backend": backend_name}})
            if progress:
                print_epoch(cfg, row, note=f", {world_size} processes")
        if world_size > 1:
            dist.barrier()  # rank 0's checkpoint is on disk before anyone reads it
    return finish_training(cfg, model, loop, device, precision, start, throughput,
                           extra={"world_size": world_size, "backend": backend_name})


def run_or_load_distributed(cfg: RunConfig, force: bool = False, progress: bool = True, **kwargs):
    """DDP-train ``cfg`` if its run is missing, then let rank 0 finish it through the registry.

    Rank 0 calls :func:`abanet_lib.engine.registry.run_or_load`, which resumes from the final
    checkpoint (no epochs left), evaluates the test split and writes the run folder; the
    ``distributed`` entry (world size, backend) is then added to ``metrics.json``.

    Returns:
        The :class:`~abanet_lib.engine.registry.Run` on rank 0, ``None`` on other ranks.
    """
    from abanet_lib.engine import registry

    rank, world_size, _ = init_process_group(kwargs.get("backend"))
    if force or not registry.is_complete(cfg):
        staging = registry.staging_dir(cfg)
        with staged_checkpoints(cfg):  # the finished record stays untouched until the swap
            if rank == 0:
                registry.prepare_staging(cfg, staging, force=force, progress=progress)
            if world_size > 1:
                dist.barrier()
            result = train_distributed(cfg, staging, progress=progress, **kwargs)
        if rank == 0:
            # resumes the staged checkpoint (no epoch left), evaluates and swaps the record in
            registry.run_or_load(cfg, progress=progress, extra_metrics={"distributed": {
                **result.extra, "train_seconds": result.seconds, "train_img_per_s": result.img_per_s}})
    if world_size > 1:
        dist.barrier()
    return registry.load_run(cfg.run_id) if rank == 0 else None


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node N -m abanet_lib.engine.distributed --scale smoke [--model M] [--set k=v]``."""
    from abanet_lib.core.config import get_scale

    parser = argparse.ArgumentParser(prog="torchrun ... -m abanet_lib.engine.distributed",
                                     description="train one RunConfig with DistributedDataParallel")
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
        changes[key] = _parse_value(value)
    if changes:
        cfg = cfg.replace(**changes)
    run = run_or_load_distributed(cfg, force=args.force, backend=args.backend)
    if run is not None:
        print(f"run {cfg.run_id}: test iou {run.test.get('iou')}; folder {run.path}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
