"""Plot style, the one colour scheme of mask pictures, and the one helper that saves every figure.

Colour scheme (:func:`error_overlay` and every figure, widget and photo overlay that shows a
mask): correct mask pixels white, false positives red, false negatives blue, the ground-truth
boundary green; a predicted mask laid over a photo is tinted :data:`MASK_TINT_RGB` with the face
box :data:`FACE_BOX_RGB` and the crop box :data:`CROP_BOX_RGB`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns

from abanet_lib.core import paths
from abanet_lib.core.config import Scale


#: Colours of the error overlay (RGB in [0, 1]).
COLOR_TP = (1.0, 1.0, 1.0)
COLOR_FP = (0.90, 0.10, 0.10)  # predicted mask where there is none: red
COLOR_FN = (0.15, 0.35, 0.95)  # missed mask pixels: blue
COLOR_GT_CONTOUR = "#00d060"
#: Photo overlays (uint8 RGB): the predicted mask's tint and its opacity, the face and crop boxes.
MASK_TINT_RGB = (255, 40, 40)
MASK_TINT_ALPHA = 0.5
FACE_BOX_RGB = (40, 220, 40)
CROP_BOX_RGB = (240, 220, 40)


def error_overlay(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """RGB image (H, W, 3) in [0, 1]: TP white, FP red, FN blue, TN black.

    Args:
        pred: predicted mask (H, W) bool.
        gt: ground-truth mask (H, W) bool.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"error_overlay: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    rgb = np.zeros(pred.shape + (3,), dtype=np.float32)
    rgb[pred & gt] = COLOR_TP
    rgb[pred & ~gt] = COLOR_FP
    rgb[~pred & gt] = COLOR_FN
    return rgb


def set_style() -> None:
    """The project's fixed plot style (called by :func:`save_fig` and notebooks)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"})


#: Scale names a figure's file name may end with (``<stem>_<scale>.png``).
_SCALE_SUFFIXES = ("smoke", "reduced", "paper", "gpu")


def save_fig(fig, name: str, scale: str | None = None, folder: Path | None = None, pdf: bool = False) -> Path:
    """Save ``fig`` as ``<figures of scale>/<name>_<scale>.png`` (and PDF if asked); return the path.

    Every figure is named by its scale, and a non-committed scale (smoke) writes under the
    git-ignored ``.cache/results-<scale>/`` (:func:`abanet_lib.core.paths.figures_dir`), so a notebook
    run by hand at smoke scale never overwrites a committed figure. The PNG is written without
    variable metadata, so the same figure rendered twice gives the same bytes.

    Args:
        fig: a matplotlib Figure.
        name: file stem without extension, e.g. ``"fig03_image_sizes"``; may already end with
            ``_<scale>``.
        scale: the scale the figure shows; ``None`` takes it from the name's ``_<scale>`` suffix.
        folder: override of the figures folder (tests).
        pdf: also write a PDF next to the PNG.

    Raises:
        ValueError: the name has an extension, or no scale is given or found in the name.

    Example:
        ``save_fig(fig, "model_costs", scale="reduced")`` -> ``results/figures/model_costs_reduced.png``
    """
    if Path(name).suffix:
        raise ValueError(f"save_fig: give a file stem without extension, got {name!r}")
    suffix = next((s for s in _SCALE_SUFFIXES if name.endswith(f"_{s}")), None)
    if scale is None:
        if suffix is None:
            raise ValueError(f"save_fig: figure {name!r} names no scale; pass scale= (one of "
                             f"{', '.join(_SCALE_SUFFIXES)}) so smoke outputs never replace committed ones")
        scale = suffix
    scale = scale.name if isinstance(scale, Scale) else str(scale)
    if suffix is None:
        name = f"{name}_{scale}"
    elif suffix != scale:
        raise ValueError(f"save_fig: figure {name!r} ends with scale {suffix!r} but scale={scale!r}")
    folder = Path(folder) if folder is not None else paths.figures_dir(scale)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.png"
    # No "Software"/date entries: identical records give identical bytes.
    fig.savefig(out, metadata={"Software": None})
    if pdf:
        fig.savefig(folder / f"{name}.pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return out
