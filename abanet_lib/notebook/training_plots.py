"""Figures of one training run: learning curves, per-image scores, example predictions."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from abanet_lib.paper.figures import saved_predictions
from abanet_lib.paper.plots import error_overlay, set_style


def plot_history(history: pd.DataFrame, title: str | None = None):
    """Loss curves (left) and validation IoU (right) per epoch.

    Args:
        history: a run's ``history.csv`` (columns ``epoch``, ``train_loss``, optional
            ``loss_<component>``, ``val_loss``, ``val_iou``).
        title: figure title.

    Returns:
        A matplotlib Figure (empty panels with a note when the run was not trained).
    """
    set_style()
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.6))
    if history is None or history.empty:
        for ax in (ax_loss, ax_iou):
            ax.text(0.5, 0.5, "no training history\n(method without training)", ha="center", va="center",
                    transform=ax.transAxes)
        return fig
    epochs = history["epoch"]
    marker = "o" if len(history) <= 30 else None
    ax_loss.plot(epochs, history["train_loss"], marker=marker, label="train (all outputs)")
    if "val_loss" in history and history["val_loss"].notna().any():
        ax_loss.plot(epochs, history["val_loss"], marker=marker, label="validation (main output)")
    for col in [c for c in history.columns if c.startswith("loss_") and c != "loss_bce_unused"]:
        ax_loss.plot(epochs, history[col], linestyle="--", linewidth=1, label=f"train {col[5:]}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend(fontsize=7)
    if "val_iou" in history and history["val_iou"].notna().any():
        ax_iou.plot(epochs, history["val_iou"], marker=marker, color="C2")
        best = history.loc[history["val_iou"].idxmax()]
        ax_iou.scatter([best["epoch"]], [best["val_iou"]], s=80, facecolors="none", edgecolors="C3",
                       label=f"best: epoch {int(best['epoch'])}, IoU {best['val_iou']:.3f}", zorder=3)
        ax_iou.legend(fontsize=8)
    ax_iou.set(xlabel="epoch", ylabel="IoU @ 0.5", title="validation IoU (training resolution)")
    if len(epochs) == 1:
        for ax in (ax_loss, ax_iou):
            ax.set_xticks([int(epochs.iloc[0])])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_per_image(per_image: pd.DataFrame, metric: str = "iou", title: str | None = None):
    """Histogram of one per-image test metric, with its mean.

    Args:
        per_image: a run's ``per_image.csv``.
        metric: column to show (``iou``, ``f1``, ``boundary_f`` ...).
    """
    if metric not in per_image.columns:
        raise ValueError(f"plot_per_image: no column {metric!r}; have {sorted(per_image.columns)}")
    set_style()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    values = per_image[metric].dropna()
    ax.hist(values, bins=np.linspace(0, 1, 21), color="C0", alpha=0.8)
    ax.axvline(values.mean(), color="C3", linestyle="--", label=f"mean {values.mean():.3f} (n={len(values)})")
    ax.set(xlabel=f"{metric} per test image", ylabel="images", title=title or f"test {metric} per image")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_run_predictions(run, refs: Sequence, device: str = "cpu", threshold: float = 0.5):
    """:func:`prediction_rows` from the run's stored test predictions (binary maps at native size,
    :func:`abanet_lib.paper.figures.saved_predictions`): the figure is a function of the record, the
    same on every machine, with or without the weights. ``device`` is kept for callers.

    Raises:
        FileNotFoundError: the record holds no stored prediction for one of ``refs``.
    """
    samples = [r.load() for r in refs]
    stored = saved_predictions(run, [s.name for s in samples])
    if stored is None:
        raise FileNotFoundError(f"run {run.run_id}: its record has no stored test predictions for "
                                f"{[s.name for s in samples]} (retrain it to record them)")
    fig = prediction_rows(samples, stored, threshold, probability_label="stored prediction")
    fig.suptitle(f"run {run.run_id}: stored test predictions (binary, at each mask's native size)", fontsize=9)
    fig.tight_layout()
    return fig


def prediction_rows(samples: Sequence, probs: Sequence[np.ndarray], threshold: float = 0.5,
                    probability_label: str = "probability"):
    """One row per sample: image | ground truth | probability | errors (:func:`abanet_lib.paper.plots.error_overlay`:
    white correct mask pixels, red false positives, blue misses)."""
    set_style()
    fig, axes = plt.subplots(len(samples), 4, figsize=(10, 2.6 * len(samples)), squeeze=False)
    for row, sample, prob in zip(axes, samples, probs):
        pred, gt = prob > threshold, sample.mask.astype(bool)
        union = (pred | gt).sum()
        iou = (pred & gt).sum() / union if union else 1.0
        errors = error_overlay(pred, gt)
        panels = [(sample.image, sample.name[:28]), (gt, "ground truth"),
                  (prob, probability_label), (errors, f"errors (IoU {iou:.3f})")]
        for ax, (img, label) in zip(row, panels):
            if img.ndim == 2:
                ax.imshow(img.astype(np.float32), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img)
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig
