"""GrabCut (Rother et al. 2004) as a segmentation "model": the stand-in for Zhang et al. 2022.

Zhang et al. (AMaskNet) segment the mask area with GrabCut, but how they initialised it is
not established. GrabCut needs a rectangle: inside it is probable foreground, outside definite
background (``cv2.GC_INIT_WITH_RECT``), then ``iterations`` GrabCut iterations (5 by default).

* ``rect_fraction=LOWER_FACE_RECT`` (the default): a fixed lower-face guess, x 10-90 %,
  y 45-100 % of the crop.
* ``rect_fraction="fit"``: the rectangle is fitted on the run's *training* masks
  (:meth:`GrabCutSegmenter.fit_to_training_masks`: 10th percentile of the masks' left and top
  edges, 90th percentile of their right and bottom edges), so it holds nearly every mask
  pixel. :func:`abanet_lib.engine.assembly.build_model` fits it, so every code path that builds the run's
  model gets the same rectangle. Table 4 uses this rule.

Why: on the 150 training crops of fold 0 the fixed guess leaves 13 % of the mask outside the
rectangle (67 % of MFSD masks reach the crop's left edge) and GrabCut on 64x64 inputs collapses
on half the crops (IoU 0.38); the fitted rectangle gives 0.72 on the same training crops
(``benchmarks/grabcut_rect.py``, ``results/benchmarks/grabcut_rect.md``). No test crop chose it.

GrabCut draws random numbers (k-means initialisation of its colour models) from OpenCV's global
generator; :func:`grabcut_mask` reseeds it before every image, so a crop's mask does not depend
on which crops came before it. No weights (``trainable = False``); the forward pass runs on the
CPU with OpenCV, one image at a time, whatever the input device.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from abanet_lib.models.base import SegmentationModel

from abanet_lib.data import IMAGENET_MEAN, IMAGENET_STD

#: logit magnitude of the hard map: sigmoid(10) = 0.99995
HARD_LOGIT = 10.0
#: default initial rectangle as fractions (x0, y0, x1, y1) of the crop
LOWER_FACE_RECT = (0.10, 0.45, 0.90, 1.00)


def _constants(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(3)
    return arr / 255.0 if arr.max() > 1.0 else arr  # accept 0..255 or 0..1 constants


def denormalize_to_uint8(image: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation: (3, H, W) float tensor -> (H, W, 3) uint8 RGB."""
    mean, std = _constants(IMAGENET_MEAN), _constants(IMAGENET_STD)
    rgb = image.detach().float().cpu().numpy().transpose(1, 2, 0) * std + mean
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def mask_box_fraction(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Bounding box of a mask's foreground as fractions ``(x0, y0, x1, y1)`` of its size (None if empty).

    ``x1``/``y1`` are exclusive edges: a mask filling its last column gives ``x1 = 1``.
    """
    mask = np.asarray(mask).astype(bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    h, w = mask.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h


def fit_rect_fraction(masks, low: float = 10.0, high: float = 90.0) -> tuple[float, float, float, float]:
    """The rectangle holding most masks: ``low`` percentile of left/top edges, ``high`` of right/bottom.

    Args:
        masks: iterable of (H, W) masks (any sizes; boxes are taken as fractions).
        low, high: percentiles.

    Raises:
        ValueError: when no mask has a foreground pixel.
    """
    boxes = [b for b in (mask_box_fraction(m) for m in masks) if b is not None]
    if not boxes:
        raise ValueError("fit_rect_fraction: no training mask has a foreground pixel")
    rect = rect_from_boxes(boxes, low, high)
    if not (rect[0] < rect[2] and rect[1] < rect[3]):  # degenerate (e.g. one-pixel masks): whole crop
        return (0.0, 0.0, 1.0, 1.0)
    return rect


def rect_from_boxes(boxes, low: float = 10.0, high: float = 90.0,
                    decimals: int = 4) -> tuple[float, float, float, float]:
    """``(p_low x0, p_low y0, p_high x1, p_high y1)`` of (N, 4) fractional boxes, rounded, in [0, 1]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0 = np.percentile(b[:, 0], low), np.percentile(b[:, 1], low)
    x1, y1 = np.percentile(b[:, 2], high), np.percentile(b[:, 3], high)
    return tuple(float(np.clip(round(float(v), decimals), 0.0, 1.0)) for v in (x0, y0, x1, y1))


def rect_pixels(rect_fraction, h: int, w: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` pixel bounds (right/bottom exclusive) of a fractional rectangle."""
    x0, y0, x1, y1 = rect_fraction
    return int(round(x0 * w)), int(round(y0 * h)), int(round(x1 * w)), int(round(y1 * h))


def grabcut_mask(image_rgb: np.ndarray, rect_fraction=LOWER_FACE_RECT, iterations: int = 5,
                 seed: int = 0) -> np.ndarray:
    """Run GrabCut on one image from a rectangle given in fractions of its size.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        rect_fraction: (x0, y0, x1, y1) in [0, 1]; inside = probable foreground.
        iterations: GrabCut iterations.
        seed: OpenCV's generator is reset to it first (same image, same mask, whatever ran before).

    Returns:
        (H, W) bool foreground map.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"grabcut_mask: expected (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
    h, w = image_rgb.shape[:2]
    left, top, right, bottom = rect_pixels(rect_fraction, h, w)
    rect = (left, top, max(1, right - left), max(1, bottom - top))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image_rgb[..., ::-1])
    cv2.setRNGSeed(int(seed))
    try:
        cv2.grabCut(bgr, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        # degenerate image (e.g. constant colour): GMMs cannot be fitted; keep the rectangle
        mask[:] = cv2.GC_BGD
        mask[top:bottom, left:right] = cv2.GC_PR_FGD
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


class GrabCutSegmenter(SegmentationModel):
    """GrabCut from a lower-face rectangle (fixed, or fitted on training masks), returning hard logits.

    Args:
        iterations: GrabCut iterations per image.
        rect_fraction: initial rectangle (x0, y0, x1, y1) as fractions of the crop, or ``"fit"``:
            fitted on the training masks by :meth:`fit_to_training_masks` before use.
        pretrained: ignored (nothing to load); accepted for a uniform factory signature.

    Shapes: normalised images (N, 3, H, W) -> logits (N, 1, H, W) equal to +10 on the
    foreground and -10 elsewhere, on the input's device.
    """

    trainable = False

    def __init__(self, iterations: int = 5, rect_fraction=LOWER_FACE_RECT, pretrained: bool = False) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"GrabCutSegmenter: iterations must be >= 1, got {iterations}")
        self.needs_fit = isinstance(rect_fraction, str)
        if self.needs_fit and rect_fraction != "fit":
            raise ValueError(f"GrabCutSegmenter: rect_fraction must be 4 fractions or 'fit', got {rect_fraction!r}")
        x0, y0, x1, y1 = (0.0, 0.0, 1.0, 1.0) if self.needs_fit else rect_fraction
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"GrabCutSegmenter: rect_fraction must be 0 <= x0 < x1 <= 1, "
                             f"0 <= y0 < y1 <= 1, got {rect_fraction}")
        self.iterations = int(iterations)
        self.rect_fraction = None if self.needs_fit else tuple(float(v) for v in rect_fraction)

    def fitted_params(self) -> dict | None:
        """What was fitted on training data (recorded in the run's metrics.json); None for a fixed rectangle."""
        if not self.needs_fit:
            return None
        return {"rect_fraction": list(self.rect_fraction) if self.rect_fraction else None}

    def fit_to_training_masks(self, masks) -> tuple[float, float, float, float]:
        """Set the rectangle from training masks (:func:`fit_rect_fraction`) and return it."""
        self.rect_fraction = fit_rect_fraction(masks)
        return self.rect_fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"GrabCutSegmenter: expected (N, 3, H, W), got {tuple(x.shape)}")
        if self.rect_fraction is None:
            raise RuntimeError("GrabCutSegmenter(rect_fraction='fit'): call fit_to_training_masks() first "
                               "(abanet_lib.engine.assembly.build_model does it for a run)")
        maps = [grabcut_mask(denormalize_to_uint8(img), self.rect_fraction, self.iterations) for img in x]
        fg = torch.from_numpy(np.stack(maps)).to(x.device).unsqueeze(1)
        return torch.where(fg, HARD_LOGIT, -HARD_LOGIT).to(x.dtype)

    def training_loss(self, images, masks, criterion):
        raise RuntimeError("GrabCutSegmenter has no weights to train (trainable=False); evaluate it directly")
