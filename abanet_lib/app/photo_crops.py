"""Training crops that look like the crops ``predict`` feeds its segmenter (issue 13).

``predict`` detects faces on a whole photo, cuts :func:`abanet_lib.app.faces.crop_box_for` (a square
box grown by the margin, clipped to the photo) and resizes it with the project's one
preprocessing (:func:`abanet_lib.data.transforms.preprocess`). The shipped photo model is
trained on the same thing:

* **MaskedFace-Net whole photos** (maskedfacenet-seg500, training subset only): the same face
  detector (``predict``'s default, MTCNN) and the same margin, the same crop rule; the mask
  crop is cut with the same box (label 2). Photos where the detector finds no face are left out
  (counted). Detections are cached (``cache_dir()/photo_crops/``), keyed by the files and the
  detector settings.
* **Real MFSD crops** (mfsd-sample) are tight face crops, framed unlike detector crops. Their
  framing is *measured*: the detector runs on every crop, and where it finds the face the
  detector crop (``crop_box_for`` without clipping) is expressed in the crop's frame: side
  ``scale`` (as a fraction of the crop side) and centre shift ``(dx, dy)``. Each MFSD training
  crop then enters three times: as it is, re-framed with its own measured framing (or a draw from
  the measured ones when the detector missed it), and re-framed with a random draw. Re-framing
  cuts that square from the crop at native resolution; what lies outside the crop is the
  ImageNet mean colour in the image and background in the mask.

Every crop is then resized by :func:`abanet_lib.data.transforms.resize_pair` (the image with
:func:`~abanet_lib.data.transforms.resize_image`, the very resize of ``preprocess``), so a
training crop of a photo equals, pixel for pixel, what ``predict`` resizes for that photo
(``tests/test_predict_photo_model.py`` checks it).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abanet_lib.app import faces
from abanet_lib.core import paths
from abanet_lib.data.samples import decode_image
from abanet_lib.data.torch_data import PreparedArrays
from abanet_lib.data.transforms import IMAGENET_MEAN, resize_pair

#: Bump when the crops change, so cached arrays are rebuilt.
CROPS_VERSION = 1
MFN = "maskedfacenet-seg500"
MFSD = "mfsd-sample"
#: What fills a re-framed MFSD crop outside the original crop (the ImageNet mean colour,
#: which the normalisation maps to zero).
FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)


@dataclass(frozen=True)
class CropRef:
    """Name of one training crop (what :class:`PreparedArrays` needs from a ref)."""

    name: str
    source: str
    kind: str  # "detector", "original", "reframed-own", "reframed-drawn"


@dataclass
class Framing:
    """A detector crop in the frame of a face crop: side ``scale`` (fraction of the crop side),
    centre shift ``dx``, ``dy`` (fractions of the crop width / height)."""

    scale: float
    dx: float
    dy: float

    def to_list(self) -> list[float]:
        return [round(self.scale, 4), round(self.dx, 4), round(self.dy, 4)]


# ---------------------------------------------------------------------------------------
# Detection (cached)
# ---------------------------------------------------------------------------------------
def _detector_key(detector) -> dict:
    return {"name": detector.name, **{k: getattr(detector, k) for k in ("max_side", "min_score")
                                      if hasattr(detector, k)}}


def detect_all(refs, detector, progress: bool = False) -> dict[str, list[faces.FaceBox]]:
    """Face boxes of every ref's image (``ref.name`` -> boxes, largest first), cached on disk.

    The image is decoded by :func:`abanet_lib.data.decode_image`, as ``predict.load_photo``.
    """
    entries = [[r.source, r.name, str(r.image_path), os.stat(r.image_path).st_size] for r in refs]
    key = hashlib.sha256(json.dumps({"v": CROPS_VERSION, "detector": _detector_key(detector),
                                     "files": entries}, sort_keys=True).encode()).hexdigest()[:16]
    path = paths.cache_dir() / "photo_crops" / f"detections-{detector.name.replace(':', '_')}-{key}.json"
    if path.is_file():
        raw = json.loads(path.read_text())
        return {name: [faces.FaceBox(*b) for b in boxes] for name, boxes in raw.items()}
    from tqdm.auto import tqdm

    found = {}
    for ref in tqdm(refs, desc=f"detect ({detector.name})", disable=not progress):
        image, _ = decode_image(Path(ref.image_path))
        found[ref.name] = detector.detect(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({n: [[b.x1, b.y1, b.x2, b.y2, b.score, b.source] for b in boxes]
                               for n, boxes in found.items()}))
    os.replace(tmp, path)
    return found


# ---------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------
def photo_crops(image: np.ndarray, mask: np.ndarray | None, boxes: list[faces.FaceBox],
                margin: float = faces.DEFAULT_MARGIN) -> list[tuple[np.ndarray, np.ndarray | None, faces.FaceBox]]:
    """The crops of one photo, as ``predict`` cuts them: ``(image crop, mask crop, crop box)``
    per face box (:func:`abanet_lib.app.faces.crop_box_for`)."""
    out = []
    for box in boxes:
        c = faces.crop_box_for(box, image.shape[:2], margin)
        out.append((image[c.y1:c.y2, c.x1:c.x2], None if mask is None else mask[c.y1:c.y2, c.x1:c.x2], c))
    return out


def measure_framing(box: faces.FaceBox, shape: tuple[int, int], margin: float = faces.DEFAULT_MARGIN) -> Framing:
    """The detector crop of ``box`` (square, grown by ``margin``, not clipped) in the frame of an
    image of ``shape``."""
    h, w = shape
    side = max(box.width, box.height) * (1 + 2 * margin)
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    return Framing(side / max(h, w), (cx - w / 2) / w, (cy - h / 2) / h)


def reframe(image: np.ndarray, mask: np.ndarray, framing: Framing,
            fill: tuple[int, int, int] = FILL) -> tuple[np.ndarray, np.ndarray]:
    """Cut the square of ``framing`` from a face crop at native resolution; outside the crop the
    image is ``fill`` and the mask is background."""
    h, w = image.shape[:2]
    side = max(8, int(round(framing.scale * max(h, w))))
    cx, cy = w / 2 + framing.dx * w, h / 2 + framing.dy * h
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    out_img = np.empty((side, side, 3), dtype=np.uint8)
    out_img[:] = np.asarray(fill, dtype=np.uint8)
    out_mask = np.zeros((side, side), dtype=mask.dtype)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
    if sx2 > sx1 and sy2 > sy1:
        out_img[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out_mask[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = mask[sy1:sy2, sx1:sx2]
    return out_img, out_mask


@dataclass
class CropSet:
    """Resized training crops and what was done to build them."""

    arrays: PreparedArrays
    info: dict = field(default_factory=dict)


def _arrays(images: list, masks: list, refs: list, native: list, coverage: list) -> PreparedArrays:
    return PreparedArrays(images=np.stack(images).astype(np.uint8), masks=np.stack(masks).astype(np.uint8),
                          refs=refs, native_sizes=np.asarray(native, dtype=np.int64).reshape(-1, 2),
                          coverage=np.asarray(coverage, dtype=np.float64))


def build_crops(mfn_refs, mfsd_refs, size: int, detector, margin: float = faces.DEFAULT_MARGIN,
                framings: list[Framing] | None = None, seed: int = 0, mfsd_copies: bool = True,
                progress: bool = False) -> CropSet:
    """Detector crops of MaskedFace-Net photos + MFSD crops with detector framing, resized to S.

    Args:
        mfn_refs: MaskedFace-Net whole photos (never the testing subset for training).
        mfsd_refs: MFSD face crops.
        size: S.
        detector: the face detector ``predict`` uses.
        margin: the crop margin ``predict`` uses.
        framings: measured MFSD framings to draw from (default: measured on ``mfsd_refs``).
        seed: draws of the re-framings.
        mfsd_copies: add the two re-framed copies of each MFSD crop (else the originals only).

    Returns:
        :class:`CropSet` (arrays + ``info``: counts, photos without a detected face, framing
        statistics).
    """
    images, masks, refs, native, coverage = [], [], [], [], []

    def add(img, m, ref):
        ri, rm = resize_pair(img, m, size)
        images.append(ri)
        masks.append(rm)
        refs.append(ref)
        native.append(img.shape[:2])
        coverage.append(float(np.asarray(m, dtype=bool).mean()))

    info: dict = {"detector": detector.name, "margin": margin, "size": size, "seed": seed}
    missed = []
    if mfn_refs:
        boxes = detect_all(mfn_refs, detector, progress)
        for ref in mfn_refs:
            if not boxes[ref.name]:
                missed.append(ref.name)
                continue
            sample = ref.load()
            for k, (img, m, _) in enumerate(photo_crops(sample.image, sample.mask, boxes[ref.name], margin)):
                add(img, m, CropRef(f"{ref.name}#face{k}", ref.source, "detector"))
    info[MFN] = {"photos": len(mfn_refs), "no_face": missed, "crops": sum(r.source == MFN for r in refs)}
    if mfsd_refs:
        mfsd_boxes = detect_all(mfsd_refs, detector, progress)
        own = {}
        for ref in mfsd_refs:
            if mfsd_boxes[ref.name]:
                shape = decode_image(Path(ref.image_path))[0].shape[:2]
                own[ref.name] = measure_framing(mfsd_boxes[ref.name][0], shape, margin)
        pool = framings if framings is not None else list(own.values())
        if not pool:
            raise ValueError("build_crops: the detector found no face on any MFSD crop; no framing to draw from")
        rng = np.random.default_rng(seed)
        for ref in mfsd_refs:
            sample = ref.load()
            add(sample.image, sample.mask, CropRef(ref.name, ref.source, "original"))
            if not mfsd_copies:
                continue
            mine = own.get(ref.name) or pool[int(rng.integers(len(pool)))]
            img, m = reframe(sample.image, sample.mask, mine)
            add(img, m, CropRef(f"{ref.name}#own", ref.source, "reframed-own"))
            img, m = reframe(sample.image, sample.mask, pool[int(rng.integers(len(pool)))])
            add(img, m, CropRef(f"{ref.name}#drawn", ref.source, "reframed-drawn"))
        info[MFSD] = {"crops_in": len(mfsd_refs), "face_found": len(own), "crops": sum(r.source == MFSD for r in refs),
                      "framing": framing_summary(list(own.values()))}
    if not refs:
        raise ValueError("build_crops: no crop (no photo with a detected face and no MFSD crop)")
    return CropSet(_arrays(images, masks, refs, native, coverage), info)


def framing_summary(framings: list[Framing]) -> dict:
    """Quantiles of measured framings (recorded in the run's metrics)."""
    if not framings:
        return {"n": 0}
    arr = np.array([[f.scale, f.dx, f.dy] for f in framings])
    q = np.quantile(arr, [0.05, 0.5, 0.95], axis=0)
    return {"n": len(framings), **{name: {"p05": round(float(q[0, i]), 4), "median": round(float(q[1, i]), 4),
                                          "p95": round(float(q[2, i]), 4)}
                                   for i, name in enumerate(("scale", "dx", "dy"))}}


def measured_framings(mfsd_refs, detector, margin: float = faces.DEFAULT_MARGIN) -> list[Framing]:
    """The framing of every MFSD crop on which the detector finds a face."""
    boxes = detect_all(mfsd_refs, detector)
    out = []
    for ref in mfsd_refs:
        if boxes[ref.name]:
            shape = decode_image(Path(ref.image_path))[0].shape[:2]
            out.append(measure_framing(boxes[ref.name][0], shape, margin))
    return out
