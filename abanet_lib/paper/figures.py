"""Figures of the reproduction: qualitative grids (Figs. 8, 9), the alpha sweep (Fig. 7), ablation bars.

Every function returns a matplotlib Figure; notebooks save it with
:func:`abanet_lib.paper.plots.save_fig`. Figures are drawn from the run records only (stored test
predictions, :mod:`abanet_lib.paper.artifacts`), never from weights, timings or files written by hand.

Crop choice (stated rule, :func:`hardest_crops`): the ``k`` test images with the lowest mean
IoU across the given runs, over the images every run was tested on; ties broken by name.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from abanet_lib.app import predict
from abanet_lib.core.config import Scale, get_scale
from abanet_lib.engine.registry import PREDICTIONS_DIR, find_runs
from abanet_lib.engine.assembly import build_split
from abanet_lib.paper.artifacts import read_figure_maps
from abanet_lib.paper.definitions import FIGURES, TABLES
from abanet_lib.paper.experiments import canonical_abanet, table_rows
from abanet_lib.paper.model_catalog import plot_attention_and_sides
from abanet_lib.paper.plots import COLOR_GT_CONTOUR, error_overlay

# ---------------------------------------------------------------------------------------
# Choosing crops
# ---------------------------------------------------------------------------------------
def hardest_crops(runs: Sequence[Any], k: int = 6, metric: str = "iou") -> list[str]:
    """Names of the ``k`` hardest test crops: lowest mean ``metric`` across ``runs``.

    Only images present in every run's ``per_image`` table count (same test fold); ties are
    broken by name so the choice is deterministic.

    Raises:
        ValueError: no runs, a run without ``per_image``/``metric``, or no shared images.
    """
    if not runs:
        raise ValueError("hardest_crops: no runs given")
    frames = []
    for run in runs:
        per_image = run.per_image
        if per_image is None or "name" not in per_image.columns or metric not in per_image.columns:
            raise ValueError(f"hardest_crops: run {run.config.run_id} has no per-image {metric!r} "
                             "(per_image needs columns 'name' and the metric)")
        frames.append(per_image.set_index("name")[metric].rename(run.config.run_id))
    table = pd.concat(frames, axis=1, join="inner")
    if table.empty:
        raise ValueError("hardest_crops: the runs share no test image (different folds?)")
    ranked = table.mean(axis=1).rename("score").reset_index().sort_values(["score", "name"])
    return ranked["name"].head(k).tolist()


def load_test_samples(run: Any, names: Sequence[str]) -> list[Any]:
    """Load the named samples of ``run``'s test split, in the order of ``names``."""
    refs = {r.name: r for r in build_split(run.config).test}
    missing = [n for n in names if n not in refs]
    if missing:
        raise ValueError(f"test_samples: {missing} not in the test split of run {run.config.run_id}")
    return [refs[n].load() for n in names]


# ---------------------------------------------------------------------------------------
# Qualitative grid (Figures 8 and 9)
# ---------------------------------------------------------------------------------------
def qualitative_grid(samples: Sequence[Any], predictions: Mapping[str, Sequence[np.ndarray]],
                     threshold: float = 0.5, title: str | None = None):
    """Rows: image, ground truth, then one row per model; one column per sample.

    Model rows show :func:`error_overlay` (false positives red, false negatives blue) with the
    ground-truth boundary drawn in green and the per-image IoU in the corner.

    Args:
        samples: loaded samples (``image`` (H,W,3) uint8, ``mask`` (H,W) bool, ``name``).
        predictions: model label -> probability maps (H, W), one per sample.
        threshold: binarisation threshold of the maps.
        title: figure title.
    """
    labels = list(predictions)
    for label in labels:
        if len(predictions[label]) != len(samples):
            raise ValueError(f"qualitative_grid: {label!r} has {len(predictions[label])} maps for "
                             f"{len(samples)} samples")
    n_rows, n_cols = 2 + len(labels), max(1, len(samples))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols + 1.2, 1.6 * n_rows), squeeze=False)
    row_names = ["image", "ground truth"] + labels
    for j, sample in enumerate(samples):
        gt = np.asarray(sample.mask, bool)
        axes[0, j].imshow(sample.image)
        axes[0, j].set_title(_short(sample.name), fontsize=6)
        axes[1, j].imshow(gt, cmap="gray", vmin=0, vmax=1)
        for i, label in enumerate(labels, start=2):
            pred = np.asarray(predictions[label][j]) >= threshold
            ax = axes[i, j]
            ax.imshow(error_overlay(pred, gt))
            if gt.any() and not gt.all():
                ax.contour(gt.astype(float), levels=[0.5], colors=COLOR_GT_CONTOUR, linewidths=0.6)
            union = (pred | gt).sum()
            iou = (pred & gt).sum() / union if union else 1.0
            ax.text(0.02, 0.98, f"{100 * iou:.1f}", transform=ax.transAxes, va="top", ha="left",
                    fontsize=6, color="yellow")
    for i, name in enumerate(row_names):
        axes[i, 0].set_ylabel(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.text(0.5, 0.005, "white: correct mask, red: false positive, blue: false negative, "
             "green line: ground-truth boundary, number: IoU (%)", ha="center", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def qualitative_figure(runs_by_label: Mapping[str, Any], k: int = 6, device: str = "auto",
                       names: Sequence[str] | None = None, title: str | None = None):
    """Grid for the hardest ``k`` shared test crops of the given runs (same fold).

    Args:
        runs_by_label: model label -> finished run (all on the same test fold).
        k: number of crops (columns).
        names: explicit crop names instead of :func:`hardest_crops`.

    Returns:
        (figure, crop names).
    """
    runs = list(runs_by_label.values())
    if not runs:
        raise ValueError("qualitative_figure: no runs given")
    folds = {(r.config.eval_dataset, r.config.split, r.config.fold, r.config.seed) for r in runs}
    if len(folds) > 1:
        raise ValueError(f"qualitative_figure: runs come from different test splits {sorted(folds)}")
    names = list(names) if names is not None else hardest_crops(runs, k)
    samples = load_test_samples(runs[0], names)
    predictions = {}
    for label, run in runs_by_label.items():
        saved = saved_predictions(run, names)
        if saved is None:  # rendering reads records only, never weights
            print(f"{label}: left out, the record of {run.run_id} has no stored predictions for these crops")
            continue
        predictions[label] = saved
    return qualitative_grid(samples, predictions, title=title), names


def saved_predictions(run: Any, names: Sequence[str]) -> list[np.ndarray] | None:
    """The run's stored test predictions (binary maps at native size) for ``names``, if all exist.

    Every record keeps ``<run>/predictions/<stem>.png`` (1 bit per pixel), so figures need no
    weights.
    """
    folder = Path(run.path) / PREDICTIONS_DIR
    files = [folder / f"{Path(name).stem}.png" for name in names]
    if not all(f.is_file() for f in files):
        return None
    return [np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0 for f in files]


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# ---------------------------------------------------------------------------------------
# Figure 7 and ablation bars
# ---------------------------------------------------------------------------------------
def alpha_sweep_plot(frame: pd.DataFrame, metric: str = "iou", chosen_alpha: float = 0.3):
    """Our ``metric`` (mean +- std) against the focal alpha; rows labelled ``alpha=<a>``.

    The paper's Figure 7 has no numbers in the text, so only its choice (alpha = 0.3) is
    marked.
    """
    alphas, means, stds = [], [], []
    for label, row in frame.iterrows():
        match = re.match(r"alpha=([0-9.]+)", str(label))
        if match is None or math.isnan(row[metric]):
            continue
        alphas.append(float(match.group(1)))
        means.append(row[metric])
        stds.append(0.0 if math.isnan(row[f"{metric}_std"]) else row[f"{metric}_std"])
    order = np.argsort(alphas)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    if alphas:
        a, m, s = (np.asarray(v)[order] for v in (alphas, means, stds))
        ax.errorbar(a, m, yerr=s, marker="o", capsize=3, label="ours (mean ± std)")
    ax.axvline(chosen_alpha, color="grey", linestyle="--", linewidth=1,
               label=f"paper's choice (alpha = {chosen_alpha:g}); no numbers given")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("focal-loss alpha (gamma = 2)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Figure 7: focal-loss alpha")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ablation_bars(frame: pd.DataFrame, metric: str = "iou", title: str = ""):
    """Dot plot, one line per table row (top to bottom in table order): our ``metric`` (mean as a
    dot, std as error bar) and the paper's value (black diamond), with our value printed at
    the right. Horizontal, so a 17-row table reads at a glance; dots rather than bars, so the
    axis can start near the values without exaggerating differences. Rows without a result
    say so."""
    labels = [str(i) for i in frame.index]
    y = np.arange(len(labels))
    means = frame[metric].to_numpy(dtype=float)
    std_col = f"{metric}_std"
    stds = np.nan_to_num(frame[std_col].to_numpy(dtype=float)) if std_col in frame.columns else np.zeros(len(y))
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(labels) + 1.4))
    ok = ~np.isnan(means)
    ax.errorbar(means[ok], y[ok], xerr=stds[ok], fmt="o", color="#4c72b0", ecolor="#4c72b0", capsize=2,
                markersize=5, label="ours (mean ± std)")
    values = list(means[ok] - stds[ok]) + list(means[ok] + stds[ok])
    paper_col = f"paper_{metric}"
    if paper_col in frame.columns and frame[paper_col].notna().any():
        paper = frame[paper_col].to_numpy(dtype=float)
        ax.scatter(paper, y, marker="D", s=22, color="black", zorder=3, label="paper")
        values += [v for v in paper if not math.isnan(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.06 * (hi - lo) if hi > lo else 1.0
    ax.set_xlim(lo - pad, hi + pad)
    for yi, m, s_ in zip(y, means, stds):
        text = "no result" if math.isnan(m) else (f"{m:.2f}" if abs(m) < 1.5 else f"{m:.1f}")
        ax.annotate(text, (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7,
                    color="grey" if math.isnan(m) else "#1f3a66")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(f"{metric} (%)" if hi > 1.5 else metric)
    ax.grid(axis="y", visible=False)
    if title:
        ax.set_title(title, fontsize=9, loc="left", pad=16)
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False,
              borderaxespad=0.2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# Which runs the qualitative figures show
# ---------------------------------------------------------------------------------------
def figure_configs(figure: str, scale, device: str = "auto") -> dict:
    """Label -> the run config a qualitative figure shows (first fold / first trial).

    The rows are the figure's definition (:data:`abanet_lib.paper.definitions.FIGURES`); at smoke
    scale they are the smoke rows of the figure's table, so the figure reuses runs the smoke
    notebooks trained anyway. Rows whose model cannot be built are left out (and printed).
    """
    if figure not in FIGURES:
        raise ValueError(f"figure_configs: unknown figure {figure!r}; expected one of {sorted(FIGURES)}")
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    table, labels = FIGURES[figure].table, FIGURES[figure].rows
    if scale.name == "smoke":
        labels = TABLES[table].smoke_rows
    out = {}
    for row in table_rows(table, scale, rows=labels, device=device):
        if row.not_built is not None or row.skipped is not None:
            print(f"{figure}: leaving out {row.label}: {row.not_built or row.skipped}")
            continue
        out[row.label] = row.configs[0]
    order = {label: i for i, label in enumerate(labels)}
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


# ---------------------------------------------------------------------------------------
# Figures drawn from what the records store (notebooks 02 and 14)
# ---------------------------------------------------------------------------------------
def _canonical_abanet(run: Any, scale: Scale) -> bool:
    """The scale's canonical ABANet (the paper's network, loss, optimizer, size and epochs) on the
    run's fold and seed: not an ablation, nor the learning-curve study's longer runs."""
    return run.run_id == canonical_abanet(scale, fold=run.config.fold, seed=run.config.seed).run_id


def recorded_run(scale: str, artifact: str) -> Any | None:
    """The canonical ABANet run of ``scale`` whose record holds ``artifact`` (a file name of
    :mod:`abanet_lib.paper.artifacts`), lowest (fold, seed, id) first; None when no record has it."""
    scale = scale if isinstance(scale, Scale) else get_scale(str(scale))
    runs = [r for r in find_runs(model="abanet", scale=scale.name)
            if _canonical_abanet(r, scale) and (Path(r.path) / artifact).is_file()]
    runs.sort(key=lambda r: (r.config.fold, r.config.seed, r.run_id))
    return runs[0] if runs else None


def recorded_attention_figure(run: Any):
    """Notebook 02's figure: the crop, its mask, every psi and every side output, from the run's
    ``figure_maps.npz`` (computed with the run's trained weights after its evaluation)."""
    maps = read_figure_maps(run)
    psi = {int(k[4:]): v.astype(np.float32) for k, v in maps.items() if k.startswith("psi_")}
    probs = {k[4:]: v.astype(np.float32) for k, v in maps.items() if k.startswith("out_")}
    return plot_attention_and_sides(maps["image"], maps["mask"], dict(sorted(psi.items())), probs,
                                    f"trained run {run.run_id} - {maps['label']}")


def photo_demo_figures(photos: Mapping[str, np.ndarray], demo: Sequence[Mapping], title: str):
    """Notebook 14's figures 14b (crops and their mask probability) and 14c (overlays of the
    pasted-back mask and of the ground truth), from :func:`abanet_lib.paper.artifacts.unpack_photo_demo`.

    Args:
        photos: photo file name -> (H, W, 3) uint8 RGB (the crops are cut from them).
        demo: one dict per photo (name, faces, crop_prob, mask, truth, iou).
        title: names the model (and whether the figure was recorded or computed now).

    Returns:
        (figure 14b, figure 14c).
    """
    n = len(demo)
    fig_b, axes = plt.subplots(2, n, figsize=(2 * n, 4.2), squeeze=False)
    for i, item in enumerate(demo):
        x1, y1, x2, y2 = item["faces"][0]["crop_box"]
        crop = photos[item["name"]][y1:y2, x1:x2]
        axes[0, i].imshow(predict.thumbnail(crop))
        axes[0, i].set_title(f"crop {crop.shape[1]}x{crop.shape[0]}", fontsize=8)
        axes[1, i].imshow(item["crop_prob"], vmin=0, vmax=1, cmap="magma")
        axes[1, i].set_title("mask probability", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig_b.suptitle(title, fontsize=8)
    fig_c, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.8), squeeze=False)
    for i, item in enumerate(demo):
        photo = photos[item["name"]]
        axes[0, i].imshow(predict.thumbnail(predict.overlay(photo, item["mask"], item["faces"])))
        axes[0, i].set_title(f"prediction, IoU {item['iou']:.2f}", fontsize=8)
        axes[1, i].imshow(predict.thumbnail(predict.overlay(photo, item["truth"])))
        axes[1, i].set_title("ground truth (label 2)", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig_c.suptitle(title, fontsize=8)
    return fig_b, fig_c
