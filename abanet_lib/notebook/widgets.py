"""Interactive viewers for the notebooks (ipywidgets), each with a static fallback.

Two viewers, both reading only what the run records store (so they work on a fresh clone):

* :func:`side_output_viewer` (notebook 02): the recorded figure crop's attention maps psi and
  its eight side outputs (``figure_maps.npz``). These are *probabilities*, so the threshold
  slider really re-thresholds them and shows the IoU against the ground truth at that
  threshold.
* :func:`prediction_browser` (notebooks 03 and 11): a per-crop browser of the stored test
  predictions against the ground truth. Stored predictions are binary (1 bit per pixel), so the
  slider here acts on the *per-image score*: it keeps the crops whose IoU is at most the chosen
  value, worst first, and a second slider steps through them.

Headless (papermill, nbval, the executed copies in ``results/notebooks/``) there is no
frontend to draw a widget, so each viewer draws its default state as an ordinary figure
instead. The mode is :func:`interactive`: ``ABANET_WIDGETS=static`` forces the figure (the
batch reproduction sets it), ``ABANET_WIDGETS=interactive`` forces the widget; by default the
widget is shown inside an IPython kernel.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython import get_ipython
from IPython.display import display

from abanet_lib.paper.figures import load_test_samples, saved_predictions
from abanet_lib.paper.plots import error_overlay

#: environment variable choosing ``static`` | ``interactive`` | ``auto``
MODE_ENV = "ABANET_WIDGETS"


def interactive() -> bool:
    """True when the viewers should build widgets (see the module docstring)."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower()
    if mode == "static":
        return False
    if mode == "interactive":
        return True
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _resize_nearest(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape[:2] == tuple(shape):
        return arr
    ys = (np.arange(shape[0]) * arr.shape[0] / shape[0]).astype(int)
    xs = (np.arange(shape[1]) * arr.shape[1] / shape[1]).astype(int)
    return arr[ys][:, xs]


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    union = (pred | gt).sum()
    return 1.0 if union == 0 else float((pred & gt).sum() / union)


def _show(fig) -> None:
    display(fig)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# Notebook 02: attention maps and side outputs of the recorded figure crop
# ---------------------------------------------------------------------------------------
def split_maps(maps: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, str]:
    """``figure_maps.npz`` arrays -> (name -> probability map, image, mask, label).

    Names are ``psi, paper stage <s>`` for the gates and ``output <name>`` for the outputs.
    """
    layers = {f"psi, paper stage {k[4:]}": np.asarray(v, np.float32) for k, v in sorted(maps.items())
              if k.startswith("psi_")}
    layers.update({f"output {k[4:]}": np.asarray(v, np.float32) for k, v in maps.items() if k.startswith("out_")})
    return layers, np.asarray(maps["image"]), np.asarray(maps["mask"], bool), str(maps.get("label", ""))


def threshold_curves(maps: Mapping[str, np.ndarray], thresholds: Sequence[float] | None = None):
    """IoU against the ground truth of every side output thresholded at each of ``thresholds``.

    Returns:
        DataFrame indexed by threshold, one column per output.
    """
    layers, _, mask, _ = split_maps(maps)
    thresholds = np.round(np.linspace(0.05, 0.95, 19), 2) if thresholds is None else np.asarray(thresholds)
    data = {name: [_iou(_resize_nearest(p, mask.shape) > t, mask) for t in thresholds]
            for name, p in layers.items() if name.startswith("output")}
    return pd.DataFrame(data, index=pd.Index(thresholds, name="threshold"))


def side_output_figure(maps: Mapping[str, np.ndarray], layer: str = "output refined", threshold: float = 0.5):
    """One map of the figure crop: the image, the map, the map above ``threshold`` and its
    errors against the ground truth (white TP, red FP, blue FN), with the IoU in the title."""
    layers, image, mask, label = split_maps(maps)
    if layer not in layers:
        layer = next(iter(layers))
    prob = layers[layer]
    binary = _resize_nearest(prob, mask.shape) > threshold
    fig, axes = plt.subplots(1, 4, figsize=(9.6, 2.7))
    axes[0].imshow(image)
    axes[0].set_title("crop", fontsize=8)
    axes[1].imshow(prob, vmin=0, vmax=1, cmap="magma")
    axes[1].set_title(f"{layer} ({prob.shape[0]}x{prob.shape[1]})", fontsize=8)
    axes[2].imshow(binary, cmap="gray", vmin=0, vmax=1)
    axes[2].set_title(f"> {threshold:.2f}", fontsize=8)
    axes[3].imshow(error_overlay(binary, mask))
    axes[3].set_title(f"vs ground truth: IoU {_iou(binary, mask):.3f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(label, fontsize=8)
    fig.tight_layout()
    return fig


def side_output_viewer(maps: Mapping[str, np.ndarray]):
    """Pick a gate's psi or a side output and a threshold; see the map, the binary map and its
    IoU. Static fallback: the refined output at 0.5. Returns the widget (or the figure)."""
    layers, *_ = split_maps(maps)
    default = "output refined" if "output refined" in layers else next(iter(layers))
    if not interactive():
        fig = side_output_figure(maps, default, 0.5)
        _show(fig)
        return fig
    choose = W.Dropdown(options=list(layers), value=default, description="map")
    thr = W.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="threshold",
                        continuous_update=False, readout_format=".2f")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig = side_output_figure(maps, choose.value, thr.value)
            _show(fig)

    choose.observe(draw, names="value")
    thr.observe(draw, names="value")
    draw()
    box = W.VBox([W.HBox([choose, thr]), out])
    display(box)
    return box


# ---------------------------------------------------------------------------------------
# Notebooks 03 and 11: stored predictions against the ground truth, crop by crop
# ---------------------------------------------------------------------------------------
def _scores(runs: Mapping[str, Any], metric: str):
    frames = [run.per_image.set_index("name")[metric].rename(label) for label, run in runs.items()
              if run.per_image is not None and metric in run.per_image.columns]
    if not frames:
        raise ValueError(f"prediction_browser: no run has per-image {metric!r}")
    table = pd.concat(frames, axis=1, join="inner")
    table["mean"] = table.mean(axis=1)
    return table.sort_values(["mean"]).rename_axis("name")


def crop_figure(runs: Mapping[str, Any], sample: Any, scores: Mapping[str, float] | None = None, metric: str = "iou"):
    """One test crop: image, ground truth, then each run's stored prediction as an error map."""
    gt = np.asarray(sample.mask, bool)
    panels = [("crop", sample.image, None), ("ground truth", gt, "gray")]
    for label, run in runs.items():
        pred = saved_predictions(run, [sample.name])
        if pred is None:
            continue
        pred = _resize_nearest(pred[0] > 0.5, gt.shape)
        score = "" if scores is None or label not in scores else f" {metric} {scores[label]:.3f}"
        panels.append((f"{label}{score}", error_overlay(pred, gt), None))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.7), squeeze=False)
    for ax, (title, arr, cmap) in zip(axes[0], panels):
        ax.imshow(arr, cmap=cmap, **({"vmin": 0, "vmax": 1} if cmap else {}))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{sample.name} (white: correct mask, red: false positive, blue: missed)", fontsize=8)
    fig.tight_layout()
    return fig


def prediction_browser(runs: Mapping[str, Any] | Any, metric: str = "iou", static_count: int = 3):
    """Browse the test crops of ``runs`` (label -> run, same test fold; one run is fine) worst
    first, from their stored predictions; a slider keeps the crops whose mean ``metric`` is at
    most its value. Static fallback: the ``static_count`` worst crops. Returns the widget (or
    the list of figures)."""
    if not isinstance(runs, Mapping):
        runs = {runs.config.model: runs}
    scores = _scores(runs, metric)
    first = next(iter(runs.values()))
    cache: dict[str, Any] = {}

    def sample(name: str):
        if name not in cache:
            cache[name] = load_test_samples(first, [name])[0]
        return cache[name]

    def figure(name: str):
        return crop_figure(runs, sample(name), scores.loc[name].to_dict(), metric)

    if not interactive():
        figs = []
        for name in scores.index[:static_count]:
            fig = figure(name)
            _show(fig)
            figs.append(fig)
        return figs
    cap = W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.01, description=f"{metric} ≤",
                        continuous_update=False, readout_format=".2f")
    pick = W.IntSlider(value=0, min=0, max=max(0, len(scores) - 1), description="crop (worst first)",
                       continuous_update=False, style={"description_width": "initial"})
    info = W.HTML()
    out = W.Output()

    def kept():
        return scores.index[scores["mean"] <= cap.value + 1e-12]

    def draw(*_):
        names = kept()
        pick.max = max(0, len(names) - 1)
        with out:
            out.clear_output(wait=True)
            if len(names) == 0:
                info.value = f"no test crop has mean {metric} ≤ {cap.value:.2f}"
                return
            name = names[min(pick.value, len(names) - 1)]
            info.value = (f"{len(names)} of {len(scores)} test crops have mean {metric} ≤ {cap.value:.2f}; "
                          f"showing <code>{name}</code>")
            _show(figure(name))

    cap.observe(draw, names="value")
    pick.observe(draw, names="value")
    draw()
    box = W.VBox([W.HBox([cap, pick]), info, out])
    display(box)
    return box
