"""Test-set evaluation at each mask's native size, and inference speed.

The model predicts at the training resolution; each probability map is resized back to
its mask's native size (bilinear) before thresholding at 0.5, so scores are comparable
across input sizes (the paper's Fig. 3 compares 128..512 px inputs on the same masks).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from abanet_lib.data import transforms
from abanet_lib.core.devices import (describe_device, resolve_device, resolve_precision, synchronize,
                                     to_memory_format)
from abanet_lib.engine.metrics import MetricAccumulator
from abanet_lib.models.base import main_output


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, device: torch.device, precision,
                  channels_last: bool = True) -> torch.Tensor:
    """Probabilities (N, 1, S, S) float32 on CPU of the model's main output (eval mode)."""
    model.eval()
    x = to_memory_format(images.to(device, non_blocking=True), channels_last)
    with precision.autocast():
        logits = main_output(model(x))
    return torch.sigmoid(logits.float()).cpu()


def to_native_size(probs: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Probabilities (N, 1, S, S) resized to a mask's native (h, w): (N, h, w), bilinear.

    Scores are computed at the native size; this is the one place that fixes how maps get there.
    """
    return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


def _default_accumulator() -> MetricAccumulator:
    """The accumulator of :func:`evaluate` when none is given (every metric)."""
    return MetricAccumulator()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    refs: Sequence,
    image_size: int,
    device: str | torch.device = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    save_predictions_dir: Path | str | None = None,
    prediction_format: str = "probability",
    *,
    channels_last: bool = True,
    progress: bool = False,
    accumulator_factory: Callable | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Score ``model`` on ``refs`` at each mask's native resolution.

    Args:
        model: a segmentation model (logits (N,1,S,S) in eval mode).
        refs: sample references with ``.load() -> Sample`` (image uint8 (H,W,3), mask bool (H,W)).
        image_size: model input size S (the training resolution).
        device, precision: see :mod:`abanet_lib.core.devices`.
        batch_size: images per forward pass.
        prediction_format: ``"probability"`` (8-bit grey PNG) or ``"binary"`` (1-bit PNG of
            the map thresholded at 0.5; small enough to keep next to a run).
        save_predictions_dir: write each probability map as an 8-bit PNG ``<name>.png``
            (native size, 0..255) there.
        channels_last: input memory format.
        progress: show a tqdm bar.
        accumulator_factory: builds the metric accumulator (default
            :class:`abanet_lib.engine.metrics.MetricAccumulator`; tests inject stand-ins).

    Returns:
        ``(per_image, summary)``: one row per image (``name``, ``source``, then the
        accumulator's metric columns: iou, f1, ..., at native size) and the accumulator's summary plus ``n_images``.
    """
    from tqdm.auto import tqdm

    if len(refs) == 0:
        raise ValueError("evaluate: no samples given (empty test split?)")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev) if isinstance(precision, str) else precision
    model = to_memory_format(model.to(dev), channels_last).eval()
    acc = (accumulator_factory or _default_accumulator)()
    out_dir = Path(save_predictions_dir) if save_predictions_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    names, sources = [], []
    for start in tqdm(range(0, len(refs), batch_size), disable=not progress, desc="evaluate"):
        samples = [ref.load() for ref in refs[start:start + batch_size]]
        batch = transforms.preprocess_batch([s.image for s in samples], image_size)
        probs = predict_proba(model, batch, dev, prec, channels_last)
        # Consecutive samples of one native size are resized and scored together (faster
        # metrics); order is kept, so per-image rows follow ``refs``.
        for idx in _runs_of_equal_size([s.mask.shape[:2] for s in samples]):
            h, w = samples[idx[0]].mask.shape[:2]
            native = to_native_size(probs[idx], h, w)
            gt = torch.from_numpy(np.stack([np.asarray(samples[i].mask, dtype=bool) for i in idx]))
            batch_names = [samples[i].name for i in idx]
            acc.update(native, gt, names=batch_names)
            names += batch_names
            sources += [getattr(samples[i], "source", "") for i in idx]
            if out_dir is not None:
                for i, prob in zip(idx, native):
                    save_probability_png(prob, out_dir / f"{Path(samples[i].name).stem}.png",
                                         binary=prediction_format == "binary")
    per_image = acc.per_image().reset_index(drop=True)
    if len(per_image) != len(names):
        raise RuntimeError(f"evaluate: accumulator returned {len(per_image)} rows for {len(names)} images")
    if "name" not in per_image.columns:
        per_image.insert(0, "name", names)
    per_image.insert(1, "source", sources)
    summary = dict(acc.summary())
    summary["n_images"] = len(names)
    return per_image, summary


def _runs_of_equal_size(shapes: list[tuple[int, int]]) -> list[list[int]]:
    """Group indices into runs of consecutive equal shapes: [(2,2),(2,2),(3,3)] -> [[0,1],[2]]."""
    runs: list[list[int]] = []
    for i, shape in enumerate(shapes):
        if runs and shapes[runs[-1][0]] == shape:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def save_probability_png(prob: torch.Tensor | np.ndarray, path: Path, binary: bool = False) -> Path:
    """Write a probability map (H, W) in [0, 1] as an 8-bit grey PNG (1-bit at 0.5 if ``binary``)."""
    from PIL import Image

    arr = prob.detach().float().cpu().numpy() if isinstance(prob, torch.Tensor) else np.asarray(prob)
    if binary:
        Image.fromarray(arr >= 0.5).convert("1").save(path, optimize=True)
        return path
    arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(arr, mode="L").save(path)
    return path


@torch.no_grad()
def measure_fps(
    model: nn.Module,
    image_size: int,
    device: str | torch.device = "auto",
    batch_sizes: Sequence[int] = (1, 8),
    warmup: int = 3,
    repeats: int = 10,
    precision: str = "auto",
    channels_last: bool = True,
) -> dict:
    """Inference throughput on random inputs, with device sync around the timed loop.

    Returns:
        dict with ``image_size``, ``precision``, ``device`` (see
        :func:`~abanet_lib.core.devices.describe_device`), and per batch size ``fps`` (images/s)
        and ``latency_ms`` (ms per batch), keyed by the batch size as a string.
    """
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = to_memory_format(model.to(dev), channels_last).eval()
    fps, latency = {}, {}
    for bs in batch_sizes:
        x = to_memory_format(torch.randn(bs, 3, image_size, image_size, device=dev), channels_last)
        with prec.autocast():
            for _ in range(warmup):
                model(x)
            synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(repeats):
                model(x)
            synchronize(dev)
        dt = (time.perf_counter() - t0) / repeats
        fps[str(bs)] = bs / dt
        latency[str(bs)] = dt * 1000.0
    return {"image_size": image_size, "precision": prec.name, "warmup": warmup, "repeats": repeats,
            "fps": fps, "latency_ms": latency, "device": describe_device(dev)}
