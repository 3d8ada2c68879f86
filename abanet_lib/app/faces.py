"""Offline face detection for the whole-photo pipeline, and crop-box geometry.

Detectors come from installed packages only, never from a download at run time:

* ``haar:<cascade>``: OpenCV's bundled Haar cascades (``cv2.data.haarcascades``), e.g.
  ``haar:frontalface_default``, ``haar:frontalface_alt2``, ``haar:profileface``.
* ``mtcnn``: MTCNN from ``facenet-pytorch``, whose wheel bundles its weights (2 MB). The
  package pins an old torch, so it is optional: install it with
  ``pip install --no-deps facenet-pytorch``. (OpenCV's YuNet needs an ONNX file that
  opencv-python does not bundle; MediaPipe's face detector needs a downloaded ``.tflite``.)
* ``auto``: the best detector of ``results/benchmarks/face_detection.md`` that is available
  (``mtcnn``, else ``haar:frontalface_default``).

Boxes are ``FaceBox`` in full-image pixel coordinates, ``x2``/``y2`` exclusive.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from abanet_lib.data.loaders import FaceBox, read_mfsd_boxes

#: Detector preference for ``auto``, best first (see benchmarks/bench_face_detection.py).
AUTO_ORDER = ("mtcnn", "haar:frontalface_default")

#: Crop margin around a face box (fraction of its side): predict's default, and the margin the
#: shipped photo model's training crops were cut with (:mod:`abanet_lib.app.photo_crops`).
DEFAULT_MARGIN = 0.25

HAAR_CASCADES = ("frontalface_default", "frontalface_alt", "frontalface_alt2",
                 "frontalface_alt_tree", "profileface")


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces of ``image`` ((H, W, 3) uint8 RGB), largest first."""


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch CPU threads, then restore the previous count.

    Small CPU models (MTCNN, the shipped photo model at batch 1) run far faster on one thread
    when the cores are shared: measured on the 2-core machine for issue 13, the photo model's
    forward took 0.035 s on 1 thread and 1.5-2.4 s on 2 while other processes loaded the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resize_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; returns (image, scale factor)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    return image, scale


def _boxes_back(raw: list[tuple[float, float, float, float, float]], scale: float,
                shape: tuple[int, int], source: str, min_size: int = 2) -> list[FaceBox]:
    """Scale detector boxes back to full resolution, clip, drop tiny ones, sort by area."""
    h, w = shape
    out = []
    for x1, y1, x2, y2, score in raw:
        box = FaceBox(int(max(0, math.floor(x1 / scale))), int(max(0, math.floor(y1 / scale))),
                      int(min(w, math.ceil(x2 / scale))), int(min(h, math.ceil(y2 / scale))),
                      float(score), source)
        if box.width >= min_size and box.height >= min_size:
            out.append(box)
    return sorted(out, key=lambda b: (-b.area, b.x1, b.y1))


class HaarDetector:
    """OpenCV Haar cascade (bundled with opencv-python).

    Args:
        cascade: one of :data:`HAAR_CASCADES` (file ``haarcascade_<cascade>.xml``).
        max_side: detection runs on a copy downscaled to this longer side (speed).
        scale_factor, min_neighbors: ``detectMultiScale`` settings.
        min_size_fraction: smallest face side as a fraction of the shorter image side.
    """

    def __init__(self, cascade: str = "frontalface_default", max_side: int = 640,
                 scale_factor: float = 1.1, min_neighbors: int = 4,
                 min_size_fraction: float = 0.05):
        import cv2

        path = Path(cv2.data.haarcascades) / f"haarcascade_{cascade}.xml"
        if not path.is_file():
            raise ValueError(f"Haar cascade {cascade!r} not found at {path}; "
                             f"expected one of {HAAR_CASCADES}")
        self._classifier = cv2.CascadeClassifier(str(path))
        self.name = f"haar:{cascade}"
        self.max_side, self.scale_factor, self.min_neighbors = max_side, scale_factor, min_neighbors
        self.min_size_fraction = min_size_fraction

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        import cv2

        small, scale = _resize_for_detection(image, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        side = max(12, int(self.min_size_fraction * min(gray.shape)))
        found = self._classifier.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                                  minNeighbors=self.min_neighbors,
                                                  minSize=(side, side))
        raw = [(x, y, x + w, y + h, 1.0) for x, y, w, h in (found if len(found) else [])]
        return _boxes_back(raw, scale, image.shape[:2], self.name)


class MTCNNDetector:
    """MTCNN from facenet-pytorch (weights bundled in the wheel; CPU by default).

    Args:
        max_side: detection runs on a copy downscaled to this longer side.
        min_score: drop boxes below this face probability.
        device: torch device string.
    """

    def __init__(self, max_side: int = 640, min_score: float = 0.9, device: str = "cpu"):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as err:
            raise ImportError("detector 'mtcnn' needs facenet-pytorch "
                              "(pip install --no-deps facenet-pytorch)") from err
        self._mtcnn = MTCNN(keep_all=True, device=device, post_process=False)
        self.name, self.max_side, self.min_score = "mtcnn", max_side, min_score

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        small, scale = _resize_for_detection(image, self.max_side)
        # MTCNN runs dozens of tiny convolutions: one thread is 5-15x faster than two on a
        # shared 2-core machine (thread hand-off dominates; measured for issue 13)
        with torch_threads(1):
            boxes, probs = self._mtcnn.detect(np.ascontiguousarray(small))
        if boxes is None:
            return []
        raw = [(*b, p) for b, p in zip(boxes, probs) if p is not None and p >= self.min_score]
        return _boxes_back(raw, scale, image.shape[:2], self.name)


def available_detectors() -> list[str]:
    """Names accepted by :func:`create_detector` that work in this environment."""
    names = [f"haar:{c}" for c in HAAR_CASCADES]
    try:
        import facenet_pytorch  # noqa: F401

        names.insert(0, "mtcnn")
    except ImportError:
        pass
    return names


def create_detector(name: str = "auto", **kwargs) -> FaceDetector:
    """Build a detector by name (``auto``, ``mtcnn``, ``haar:<cascade>``)."""
    if name == "auto":
        available = available_detectors()
        name = next(n for n in AUTO_ORDER if n in available)
    if name == "mtcnn":
        return MTCNNDetector(**kwargs)
    if name.startswith("haar:"):
        return HaarDetector(name.split(":", 1)[1], **kwargs)
    raise ValueError(f"unknown face detector {name!r}; choose 'auto' or one of {available_detectors()}")


# ---------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------
def expand_box(box: FaceBox, margin: float, shape: tuple[int, int], square: bool = True) -> FaceBox:
    """Grow a face box by ``margin`` (fraction of its side) on every side, clipped to the image.

    Args:
        box: detected face.
        margin: 0.2 adds 20% of the width left and right and 20% of the height above/below.
        shape: (H, W) of the photo.
        square: first make the box square around its centre (the model was trained on
            square crops, so a square crop keeps the aspect ratio after resizing).
    """
    h, w = shape
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    bw, bh = box.width, box.height
    if square:
        bw = bh = max(bw, bh)
    bw, bh = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
    x1, y1 = max(0, int(round(cx - bw / 2))), max(0, int(round(cy - bh / 2)))
    x2, y2 = min(w, int(round(cx + bw / 2))), min(h, int(round(cy + bh / 2)))
    return FaceBox(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1), box.score, box.source)


def crop_box_for(box: FaceBox, shape: tuple[int, int], margin: float = DEFAULT_MARGIN) -> FaceBox:
    """The crop the segmenter sees for one face: the square box grown by ``margin``, clipped
    (:func:`expand_box`); a ``"whole"`` box (no face found) is kept as it is.

    The one crop rule: ``predict`` and the photo model's training crops
    (:mod:`abanet_lib.app.photo_crops`) both call it.
    """
    return box if box.source == "whole" else expand_box(box, margin, shape)


def whole_image_box(shape: tuple[int, int]) -> FaceBox:
    """The whole photo as one crop (fallback when no face is found)."""
    return FaceBox(0, 0, shape[1], shape[0], 0.0, "whole")


def box_iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    ix = max(0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def mask_bbox(mask: np.ndarray) -> FaceBox | None:
    """Bounding box of the True pixels of a (H, W) mask, or None when empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return FaceBox(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, 1.0, "mask")


def load_boxes_csv(path: str | os.PathLike) -> dict[str, list[FaceBox]]:
    """Read MFSD's ``dataset.csv`` (``filename,x1,y1,x2,y2[,with_mask]``) into boxes per file.

    Rows with ``with_mask`` FALSE are kept (the model decides); names are the bare file
    names, so a photo is matched by ``Path(photo).name``. The lenient mode of
    :func:`abanet_lib.data.loaders.read_mfsd_boxes`.

    Raises:
        ValueError: (a ``DataError``) the file lacks the expected columns or has a
            non-numeric coordinate.
    """
    return read_mfsd_boxes(Path(path), strict=False)
