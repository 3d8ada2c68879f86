"""GrabCut (Rother et al. 2004) as a segmentation "model": the stand-in for Zhang et al. 2022.

Zhang et al. (AMaskNet) segment the mask area with GrabCut, but how they initialised it is
not established. We use a fixed lower-face rectangle, the simplest rule that needs no landmarks:

* rectangle: x from 10 % to 90 % of the crop width, y from 45 % to 100 % of its height
  (MFSD crops are face-centred, and the mask covers nose-to-chin);
* inside the rectangle: probable foreground; outside: definite background
  (``cv2.GC_INIT_WITH_RECT``); ``iterations`` GrabCut iterations (5 by default).

No training (``trainable = False``); the forward pass runs on the CPU with OpenCV, one image
at a time, whatever the input device.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from abanet_lib.models.base import SegmentationModel

try:  # the data module owns the normalisation constants; fall back while it is being written
    from abanet_lib.data import IMAGENET_MEAN, IMAGENET_STD
except ImportError:  # pragma: no cover - depends on build order
    IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

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


def grabcut_mask(image_rgb: np.ndarray, rect_fraction=LOWER_FACE_RECT, iterations: int = 5) -> np.ndarray:
    """Run GrabCut on one image from a rectangle given in fractions of its size.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        rect_fraction: (x0, y0, x1, y1) in [0, 1]; inside = probable foreground.
        iterations: GrabCut iterations.

    Returns:
        (H, W) bool foreground map.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"grabcut_mask: expected (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
    h, w = image_rgb.shape[:2]
    x0, y0, x1, y1 = rect_fraction
    left, top = int(round(x0 * w)), int(round(y0 * h))
    right, bottom = int(round(x1 * w)), int(round(y1 * h))
    rect = (left, top, max(1, right - left), max(1, bottom - top))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image_rgb[..., ::-1])
    try:
        cv2.grabCut(bgr, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        # degenerate image (e.g. constant colour): GMMs cannot be fitted; keep the rectangle
        mask[:] = cv2.GC_BGD
        mask[top:bottom, left:right] = cv2.GC_PR_FGD
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


class GrabCutSegmenter(SegmentationModel):
    """GrabCut from a lower-face rectangle, returning hard logits.

    Args:
        iterations: GrabCut iterations per image.
        rect_fraction: initial rectangle (x0, y0, x1, y1) as fractions of the crop.
        pretrained: ignored (nothing to load); accepted for a uniform factory signature.

    Shapes: normalised images (N, 3, H, W) -> logits (N, 1, H, W) equal to +10 on the
    foreground and -10 elsewhere, on the input's device.
    """

    trainable = False

    def __init__(self, iterations: int = 5, rect_fraction=LOWER_FACE_RECT, pretrained: bool = False) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"GrabCutSegmenter: iterations must be >= 1, got {iterations}")
        x0, y0, x1, y1 = rect_fraction
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"GrabCutSegmenter: rect_fraction must be 0 <= x0 < x1 <= 1, "
                             f"0 <= y0 < y1 <= 1, got {rect_fraction}")
        self.iterations = int(iterations)
        self.rect_fraction = tuple(float(v) for v in rect_fraction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"GrabCutSegmenter: expected (N, 3, H, W), got {tuple(x.shape)}")
        maps = [grabcut_mask(denormalize_to_uint8(img), self.rect_fraction, self.iterations) for img in x]
        fg = torch.from_numpy(np.stack(maps)).to(x.device).unsqueeze(1)
        return torch.where(fg, HARD_LOGIT, -HARD_LOGIT).to(x.dtype)

    def training_loss(self, images, masks, criterion):
        raise RuntimeError("GrabCutSegmenter has no weights to train (trainable=False); evaluate it directly")
