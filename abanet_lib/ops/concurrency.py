"""How many independent runs share one device: sized by measured memory, not guessed.

Small runs (a 64-128 px ABANet at batch 8) use a few percent of a GPU's memory and compute, so
the batch runner starts several worker processes per device. This module decides how many:
each run's peak memory is measured once per configuration (a short probe: one training step at
the run's batch and size, ``torch.cuda.max_memory_allocated``) and the device is filled up to
``1 - reserve`` of its memory, capped by ``max_workers`` (host cores feed the workers).

Example:
    >>> workers_per_device(peak_bytes=[2e9, 3e9], device_bytes=80e9)
    18
"""
from __future__ import annotations

import math
import os
from typing import Callable, Iterable

import torch

from abanet_lib.core.config import RunConfig
from abanet_lib.core.devices import resolve_precision, to_memory_format
from abanet_lib.engine.assembly import build_criterion, build_model, build_optimizer

#: Fraction of device memory left free (CUDA context, allocator fragmentation, cuDNN workspaces).
DEFAULT_RESERVE = 0.15
#: Memory a CUDA context takes in each process before any tensor (measured on H100/H200 class
#: devices with torch 2.x: about 0.5 GB); counted once per worker.
CONTEXT_BYTES = 0.6e9


def workers_per_device(peak_bytes: Iterable[float], device_bytes: float, reserve: float = DEFAULT_RESERVE,
                       max_workers: int = 32, context_bytes: float = CONTEXT_BYTES) -> int:
    """Worker processes one device holds when each may run the largest of the given runs.

    Args:
        peak_bytes: measured peak memory of each run configuration to be scheduled.
        device_bytes: total memory of the device.
        reserve: fraction of ``device_bytes`` kept free.
        max_workers: upper bound (host cores, data preparation).
        context_bytes: per-process overhead added to the largest peak.

    Returns:
        at least 1 (a run that does not fit still runs alone and fails loudly), at most
        ``max_workers``.
    """
    peaks = [float(p) for p in peak_bytes]
    if not peaks:
        raise ValueError("peak_bytes is empty: measure at least one run configuration")
    if any(not math.isfinite(p) or p < 0 for p in peaks):
        raise ValueError(f"peak_bytes must be finite and >= 0, got {peaks}")
    if not 0 <= reserve < 1:
        raise ValueError(f"reserve must be in [0, 1), got {reserve}")
    per_worker = max(peaks) + context_bytes
    usable = device_bytes * (1.0 - reserve)
    return int(max(1, min(max_workers, usable // per_worker)))


def measure_peak_bytes(step: Callable[[], object], device: str | torch.device) -> float | None:
    """Peak device memory of one call of ``step`` (None on a device without memory statistics).

    Args:
        step: runs one training step of the configuration (builds nothing outside).
        device: the CUDA device it runs on.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return float(torch.cuda.max_memory_allocated(device))


def probe_step(cfg: RunConfig, device: str | torch.device) -> Callable[[], None]:
    """One training step of ``cfg``'s model on random data of its batch and size (for
    :func:`measure_peak_bytes`): forward, loss, backward, optimizer step, in its precision."""
    device = torch.device(device)
    model = to_memory_format(build_model(cfg).to(device), cfg.channels_last)
    criterion = build_criterion(cfg)
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    precision = resolve_precision(cfg.precision, device)
    images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device)
    masks = (torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, device=device) > 0.5).float()

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = model.training_loss(to_memory_format(images, cfg.channels_last), masks, criterion)
        loss.float().backward()
        optimizer.step()

    step.model = model  # the probed network, for inspection
    return step


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(configs: Iterable[RunConfig], device: str | torch.device, max_workers: int = 32) -> int:
    """Workers for ``configs`` on one CUDA device: the peak memory of each distinct (model, size,
    batch) is measured once and the device is filled by :func:`workers_per_device`.

    On the CPU the cores are the limit: one single-threaded worker per core (capped by
    ``max_workers``). Measured on the 2-core AVX-512 machine (2026-12-06): a 64x64 ABANet run on
    one thread beside a second such run took 34 s an epoch, the same as one run alone on both
    threads (31-34 s, the committed reduced records' history.csv): two single-threaded workers
    finish twice the runs per hour of one two-threaded run."""
    device = torch.device(device)
    if device.type != "cuda":
        return max(1, min(max_workers, cpu_cores()))
    distinct = {(c.model, c.model_kwargs, c.image_size, c.batch_size, c.precision): c for c in configs}
    peaks = [measure_peak_bytes(probe_step(cfg, device), device) for cfg in distinct.values()]
    torch.cuda.empty_cache()
    return workers_per_device(peaks, torch.cuda.get_device_properties(device).total_memory, max_workers=max_workers)
