"""Segment the mask region on whole photos: detect faces, crop, segment, paste back.

Pipeline for one photo (see notebook 14 for it step by step)::

    load (EXIF-rotate, RGB, downscale huge images) -> detect faces (or --boxes CSV)
    -> square crop around each face with a margin (faces.crop_box_for) -> the project's one
    preprocessing (data.transforms.preprocess: Pillow bilinear resize, ImageNet-normalise) -> model -> sigmoid -> resize back to the crop -> paste into a
    full-resolution probability map (max over overlapping faces) -> threshold

Command line (wired by ``abanet_lib.cli`` as the ``predict`` subcommand)::

    python -m abanet_lib predict photos/ img.jpg "more/*.png" --run RUN --out DIR

Without ``--run`` the shipped photo model is used: a compact EfficientNet-Lite0 U-Net whose fp16
weights (7 MB) are committed with its training record in ``results/runs/<SHIPPED_RUN>/shipped/``,
trained on crops cut exactly as here (:mod:`abanet_lib.app.photo_crops`, :mod:`abanet_lib.paper.photo_model`),
so a fresh clone segments photos with nothing trained. ``--run`` takes a run id of
``results/runs`` (weights from the registry, e.g. an ABANet run), a folder written
by :func:`abanet_lib.app.export.save_pretrained`, or ``untrained:<model name>`` (random weights,
for trying the plumbing; the outputs say so). Per photo it writes ``<stem>_mask.png``
(0/255, full resolution), ``<stem>_overlay.png`` and one line of ``predictions.jsonl``
(status, faces, boxes, mask area per face, timings, and where the weights come from:
``weights``, ``model``, ``scale``, ``train_datasets``, ``trained``, plus ``warning`` when the
weights are random or of a smoke-scale run, which is also said on the console). A file that
fails (not an image, decompression bomb, truncated) gets a message and a ``failed`` line; the
batch goes on and a summary (ok / no-face / failed) ends the run.

An ``--out`` folder that already holds results keeps them: new photos are **appended** to
``predictions.jsonl``; a photo predicted again (same resolved path) replaces its earlier record
and files, except that a failed retry keeps the earlier result; output names never overwrite
another photo's outputs or files that are not ours (``<stem>_2_mask.png``, ...). Lines are
appended as photos finish (a killed call loses nothing that was there), and at the end the
file is rewritten de-duplicated, atomically (one line per photo, the latest result).
A ``predictions.jsonl`` that cannot be read is refused, naming its bad line.

Photos are decoded by :func:`abanet_lib.data.decode_image`, the same path as training and
evaluation data (EXIF orientation, alpha composited on white, 16-bit divided by 257).

``--no-face`` decides what happens when no face is found: ``whole`` (default: segment the
whole image as one crop, which is right for photos that already are face crops, where
detectors often fail because the face fills the frame) or ``skip`` (write an empty mask).
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from abanet_lib.app import faces as facelib
from abanet_lib.app.options import (CliParser, device_option, file_option, float_option, folder_option,
                                    int_option, is_deliberate, nonempty_option, one_line)
from abanet_lib.app.export import build_model, from_pretrained, is_pretrained_folder
from abanet_lib.core import paths
from abanet_lib.core.devices import resolve_device
from abanet_lib.core.io import atomic_write_text
from abanet_lib.core.provenance import utc_now
from abanet_lib.data import transforms
from abanet_lib.engine import registry
from abanet_lib.engine.checkpoints import checkpoint_dir
from abanet_lib.engine.evaluate import to_native_size
from abanet_lib.data.samples import BOMB_PIXELS, DataError, decode_image
from abanet_lib.models.base import main_output

#: Photos above this many pixels are downscaled before processing (with a message).
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MARGIN = facelib.DEFAULT_MARGIN
#: The run whose ``shipped/`` folder is predict's default model (abanet_lib.paper.photo_model picked it
#: on validation; tests/test_predict_photo_model.py checks it is that module's choice).
SHIPPED_RUN = "photonet-0c39abbe685b"
#: The ``--run`` value naming the shipped model explicitly.
SHIPPED = "shipped"
NO_FACE_CHOICES = ("whole", "skip")


class PhotoError(DataError):
    """A photo that cannot be processed; the message names the file and the reason."""


class OutputFolderError(ValueError):
    """The ``--out`` folder cannot take the results (unreadable ``predictions.jsonl``, a file)."""


# ---------------------------------------------------------------------------------------
# Loading photos
# ---------------------------------------------------------------------------------------
def load_photo(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               bomb_pixels: int = BOMB_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Read a photo as upright RGB uint8, downscaling huge ones.

    Decoding is :func:`abanet_lib.data.decode_image`, the one path shared with training and
    evaluation data (EXIF orientation applied, alpha composited on white, 16-bit / 257).

    Args:
        path: image file (anything Pillow reads: JPEG, PNG, TIFF, WebP, ...).
        max_pixels: above this many pixels the photo is downscaled to fit (aspect kept).
        bomb_pixels: above this the file is refused (decompression-bomb guard; the size is
            read from the header, before decoding).

    Returns:
        ``(image (H, W, 3) uint8 RGB, notes)``; notes say what was converted/rotated/downscaled.

    Raises:
        PhotoError: not an image, truncated, or too large.
    """
    try:
        image, notes = decode_image(Path(path), max_pixels=max_pixels, bomb_pixels=bomb_pixels)
    except DataError as err:
        raise PhotoError(str(err)) from None
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 8:
        raise PhotoError(f"{path}: decoded to shape {image.shape}; expected (H, W, 3) with H, W >= 8")
    return image, notes


# ---------------------------------------------------------------------------------------
# The model side
# ---------------------------------------------------------------------------------------
@dataclass
class Segmenter:
    """A model plus what it needs to segment face crops.

    Attributes:
        model: eval-mode model, normalised (N, 3, S, S) -> logits (N, 1, S, S).
        image_size: S.
        device: where it runs.
        label: where the weights come from (run id, folder, or ``untrained:<name>``).
        trained: False for random weights (outputs are then meaningless, and labelled so).
        model_name: the model's factory name (``"abanet"``, ``"smp:Unet:resnet34"``, ...).
        scale: the scale of the run the weights come from (``"smoke"``, ``"reduced"``, ...),
            None when unknown.
        train_datasets: the data sets those weights were trained on.
        warning: why the masks should not be trusted (random or smoke-scale weights), or None.
    """

    model: nn.Module
    image_size: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    label: str = ""
    trained: bool = True
    model_name: str = ""
    scale: str | None = None
    train_datasets: tuple = ()
    warning: str | None = None

    def __post_init__(self):
        if self.warning is None:
            self.warning = weights_warning(self.label, self.trained, self.scale)

    def record_fields(self) -> dict:
        """What every line of ``predictions.jsonl`` says about the weights."""
        fields = {"weights": self.label, "model": self.model_name or None, "scale": self.scale,
                  "train_datasets": list(self.train_datasets), "trained": self.trained}
        if self.warning:
            fields["warning"] = self.warning
        return fields

    def preprocess(self, crops: list[np.ndarray]) -> torch.Tensor:
        """Crops (h, w, 3) uint8 RGB -> normalised batch (N, 3, S, S) float32: the project's one
        preprocessing (:func:`abanet_lib.data.transforms.preprocess_batch`), as in training."""
        return transforms.preprocess_batch(crops, self.image_size)

    @torch.no_grad()
    def predict_crops(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Probability maps of the mask, each at its crop's own size (on CPU the forward runs on
        one thread: :func:`abanet_lib.app.faces.torch_threads` says why).

        Args:
            crops: list of (h_i, w_i, 3) uint8 RGB crops.

        Returns:
            list of (h_i, w_i) float32 probabilities in [0, 1].
        """
        if not crops:
            return []
        x = self.preprocess(crops).to(self.device)
        self.model.eval()
        with facelib.torch_threads(1) if self.device.type == "cpu" else contextlib.nullcontext():
            probs = torch.sigmoid(main_output(self.model(x)).float()).cpu()
        # back to each crop's size the way evaluation brings maps to a mask's native size
        return [to_native_size(probs[i:i + 1], c.shape[0], c.shape[1])[0].numpy() for i, c in enumerate(crops)]


def weights_warning(label: str, trained: bool, scale: str | None) -> str | None:
    """The warning for random or smoke-scale weights (None for others)."""
    if not trained:
        return f"{label} has random weights: masks are meaningless (plumbing check only)"
    if scale == "smoke":
        return (f"{label} holds weights of a smoke-scale run (1 epoch on 16 images, a plumbing check): "
                "its masks are not meaningful; use a reduced- or paper-scale run")
    return None


def shipped_model_path() -> Path:
    """The folder of the shipped photo model (committed: ``results/runs/<SHIPPED_RUN>/shipped``)."""
    return paths.PROJECT_ROOT / "results" / "runs" / SHIPPED_RUN / "shipped"


def load_segmenter(run: str | None = None, device: str | torch.device = "auto") -> Segmenter:
    """Build a :class:`Segmenter` from a run id, a saved folder, or ``untrained:<model>``.

    Args:
        run: ``None`` or ``"shipped"`` (the shipped photo model, :func:`shipped_model_path`),
            a ``results/runs`` run id (or its folder path), a :func:`save_pretrained` folder,
            or ``untrained:<model name>[@<image size>]`` (e.g. ``untrained:smp:Unet:resnet34@128``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.

    Raises:
        ValueError: nothing matches ``run``, or its record/weights cannot be read (named).
    """
    device = resolve_device(device)
    if run is None or run == SHIPPED:
        folder = shipped_model_path()
        if not is_pretrained_folder(folder):
            raise ValueError(f"the shipped photo model {folder} is missing (expected config.json + "
                             "model.safetensors from git); restore it with git checkout, or pass --run")
        try:
            model, cfg = from_pretrained(folder, device)
        except (ValueError, KeyError, TypeError, OSError, json.JSONDecodeError) as err:
            raise ValueError(f"the shipped photo model {folder} cannot be loaded ({type(err).__name__}: {err})") from err
        return Segmenter(model, cfg.image_size, device, f"shipped:{SHIPPED_RUN}", trained=True, model_name=cfg.model,
                         scale=cfg.scale, train_datasets=tuple(cfg.train_datasets))
    if run.startswith("untrained:"):
        spec = run.split(":", 1)[1]
        name, _, size = spec.partition("@")
        if not name:
            raise ValueError(f"--run {run!r}: expected untrained:<model name>[@<image size>]")
        try:
            image_size = int(size or 128)
        except ValueError:
            raise ValueError(f"--run {run!r}: image size {size!r} after '@' is not an integer") from None
        if image_size < 32 or image_size % 32:
            raise ValueError(f"--run {run!r}: image size {image_size}; expected a multiple of 32, >= 32")
        torch.manual_seed(0)
        model = build_model(name, {})
        return Segmenter(model.to(device).eval(), image_size, device, run, trained=False, model_name=name)
    path = Path(run)
    if is_pretrained_folder(path):
        try:
            model, cfg = from_pretrained(path, device)
        except json.JSONDecodeError as err:
            raise ValueError(f"--run {run!r}: {path / 'config.json'} is not valid JSON ({err}); expected the "
                             "config.json written by save_pretrained") from err
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise ValueError(f"--run {run!r}: cannot load the save_pretrained folder {path} "
                             f"({type(err).__name__}: {err})") from err
        return Segmenter(model, cfg.image_size, device, str(path), trained=True, model_name=cfg.model,
                         scale=cfg.scale, train_datasets=tuple(cfg.train_datasets))
    run_id = path.name if path.is_dir() else run
    try:
        record = registry.load_run_record(run_id)
    except FileNotFoundError as err:
        raise ValueError(f"--run {run!r}: not a save_pretrained folder (config.json + model.safetensors) "
                         f"nor a finished run of results/runs ({err})") from None
    # The record is readable; what can fail now are its weights (missing, or not fitting).
    try:
        model = registry.load_model(record)
    except (FileNotFoundError, RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"--run {run!r}: cannot load the weights of run {run_id} "
                         f"({type(err).__name__}: {err})") from err
    cfg = record.config
    return Segmenter(model.to(device).eval(), cfg.image_size, device, run_id, trained=True, model_name=cfg.model,
                     scale=cfg.scale, train_datasets=tuple(cfg.train_datasets))


def find_trained_run(prefer_dataset: str | None = "maskedfacenet-seg500") -> str | None:
    """Run id of the best finished, trained run whose checkpoint is in the cache, or None.

    Runs of a real scale come before smoke-scale runs, then runs trained on ``prefer_dataset``,
    then the highest test IoU.
    """
    runs, damaged, _ = registry.scan_runs()
    for message in damaged:  # listed, not dropped silently
        warnings.warn(f"find_trained_run: skipped a damaged run record: {message}", stacklevel=2)
    candidates = []
    for run in runs:
        ckpt = run.metrics.get("checkpoint")
        local = checkpoint_dir(run.config) / "best.pt"
        if not run.metrics.get("trained") or not (local.is_file() or (ckpt and Path(ckpt).is_file())):
            continue
        preferred = prefer_dataset in run.config.train_datasets if prefer_dataset else False
        # smoke-scale weights (a plumbing check) only when nothing else is there
        candidates.append((run.config.scale != "smoke", preferred, run.test.get("iou") or 0.0, run.run_id))
    return max(candidates)[-1] if candidates else None


# ---------------------------------------------------------------------------------------
# One photo
# ---------------------------------------------------------------------------------------
def paste_mask(canvas: np.ndarray, crop_prob: np.ndarray, box: facelib.FaceBox) -> np.ndarray:
    """Paste a crop's probability map into the full-resolution map (max where faces overlap).

    Args:
        canvas: (H, W) float32 full-photo map, modified in place and returned.
        crop_prob: (box.height, box.width) probabilities.
        box: where the crop was taken from (pixel coordinates, x2/y2 exclusive).
    """
    if crop_prob.shape != (box.height, box.width):
        raise ValueError(f"paste_mask: crop map shape {crop_prob.shape} does not match box "
                         f"{box.width}x{box.height} (expected (height, width))")
    region = canvas[box.y1:box.y2, box.x1:box.x2]
    np.maximum(region, crop_prob, out=region)
    return canvas


@dataclass
class PhotoPrediction:
    """Result of :func:`predict_photo`.

    Attributes:
        prob: (H, W) float32 mask probability at the photo's (processed) resolution.
        faces: one dict per crop: face box, crop box, detector score, mask area.
        status: ``"ok"`` or ``"no-face"`` (no face found; see ``no_face``).
        timings: seconds for ``detect`` and ``segment``.
    """

    prob: np.ndarray
    faces: list[dict]
    status: str
    timings: dict

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        return self.prob > threshold


def predict_photo(image: np.ndarray, segmenter: Segmenter, detector=None,
                  boxes: list[facelib.FaceBox] | None = None, margin: float = DEFAULT_MARGIN,
                  no_face: str = "whole", threshold: float = 0.5) -> PhotoPrediction:
    """Detect, crop, segment and paste back one photo.

    Args:
        image: (H, W, 3) uint8 RGB.
        segmenter: the model.
        detector: a :mod:`abanet_lib.app.faces` detector (ignored when ``boxes`` is given).
        boxes: known face boxes (e.g. MFSD dataset.csv), full-image pixels.
        margin: crop margin around each face (fraction of its side).
        no_face: ``"whole"`` (segment the whole image) or ``"skip"`` (empty mask).
        threshold: probability threshold used for the reported mask areas.
    """
    if no_face not in NO_FACE_CHOICES:
        raise ValueError(f"no_face={no_face!r}; expected one of {NO_FACE_CHOICES}")
    shape = image.shape[:2]
    start = time.perf_counter()
    if boxes is None:
        if detector is None:
            raise ValueError("predict_photo: give a detector or boxes")
        boxes = detector.detect(image)
    detect_s = time.perf_counter() - start
    status = "ok"
    if not boxes:
        status = "no-face"
        boxes = [facelib.whole_image_box(shape)] if no_face == "whole" else []
    crops = []
    for box in boxes:
        crops.append(facelib.crop_box_for(box, shape, margin))
    start = time.perf_counter()
    probs = segmenter.predict_crops([image[c.y1:c.y2, c.x1:c.x2] for c in crops])
    canvas = np.zeros(shape, dtype=np.float32)
    records = []
    for box, crop_box, prob in zip(boxes, crops, probs):
        paste_mask(canvas, prob, crop_box)
        area = int((prob > threshold).sum())
        records.append({"face_box": [box.x1, box.y1, box.x2, box.y2], "score": round(box.score, 4),
                        "source": box.source, "crop_box": [crop_box.x1, crop_box.y1, crop_box.x2, crop_box.y2],
                        "mask_area_px": area, "mask_fraction_of_crop": round(area / max(1, crop_box.area), 4)})
    segment_s = time.perf_counter() - start
    return PhotoPrediction(canvas, records, status, {"detect_s": detect_s, "segment_s": segment_s})


FACE_COLOR = (40, 220, 40)
CROP_COLOR = (240, 220, 40)
MASK_COLOR = (255, 40, 40)


def overlay(image: np.ndarray, mask: np.ndarray, faces: list[dict] | None = None,
            color: tuple[int, int, int] = MASK_COLOR, alpha: float = 0.5, legend: bool = False) -> np.ndarray:
    """Photo with the mask tinted and the face (green) / crop (yellow) boxes drawn, and a legend.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool.
        faces: records of :class:`PhotoPrediction` (boxes to draw).
        legend: draw the key (top-left: mask, face box, crop box) on the image.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    import cv2

    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, dtype=np.float32)
    out = out.clip(0, 255).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces or []:
        if face["source"] != "whole":
            cv2.rectangle(out, tuple(face["face_box"][:2]), (face["face_box"][2] - 1, face["face_box"][3] - 1),
                          FACE_COLOR, thickness)
        cv2.rectangle(out, tuple(face["crop_box"][:2]), (face["crop_box"][2] - 1, face["crop_box"][3] - 1),
                      CROP_COLOR, thickness)
    if legend:
        draw_legend(out, [(color, "mask (predicted)"), (FACE_COLOR, "face (detector)"),
                          (CROP_COLOR, "crop (model input)")])
    return out


def draw_legend(image: np.ndarray, entries: list[tuple[tuple[int, int, int], str]]) -> np.ndarray:
    """Draw a key in the top-left corner of ``image`` (in place): a swatch and a label per entry,
    on a dark box, sized to the image."""
    import cv2

    scale = max(0.35, min(image.shape[:2]) / 900)
    thick = max(1, round(scale * 1.5))
    (_, text_h), _ = cv2.getTextSize("Mg", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad, line = max(3, text_h // 2), int(text_h * 1.8)
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for _, t in entries)
    x2, y2 = min(image.shape[1] - 1, 3 * pad + text_h + width), min(image.shape[0] - 1, pad + line * len(entries))
    image[:y2, :x2] = (image[:y2, :x2].astype(np.float32) * 0.35).astype(np.uint8)
    for k, (swatch, text) in enumerate(entries):
        y = pad + k * line
        cv2.rectangle(image, (pad, y), (pad + text_h, y + text_h), tuple(int(c) for c in swatch), -1)
        cv2.putText(image, text, (2 * pad + text_h, y + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return image


def thumbnail(image: np.ndarray, max_side: int = 256) -> np.ndarray:
    """Downscaled copy for figures (keeps files small); (H, W[, 3]) -> longer side <= max_side."""
    import cv2

    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------
# Many photos
# ---------------------------------------------------------------------------------------
def collect_inputs(items: list[str], recursive: bool = False) -> list[Path]:
    """Expand files, folders (every non-hidden file in it) and glob patterns, sorted, unique.

    Raises:
        PhotoError: an item matches nothing.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith("."))
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not matches:
                raise PhotoError(f"{item}: no such file, folder or matching glob pattern")
            found += matches
    unique, seen = [], set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


PREDICTIONS_FILE = "predictions.jsonl"


def _file_key(record: dict) -> str:
    """Identity of the photo of a record: its resolved path (older records: their ``file``)."""
    return record.get("path") or str(Path(record.get("file", "")).expanduser().resolve())


def _record_stem(record: dict) -> str | None:
    mask = record.get("mask")
    return mask[: -len("_mask.png")] if isinstance(mask, str) and mask.endswith("_mask.png") else None


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The records of a ``predictions.jsonl`` (empty list when the file does not exist).

    Raises:
        OutputFolderError: a line is not a JSON object (message names file and line).
    """
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise OutputFolderError(f"{path}: not a file; expected the predictions.jsonl of earlier results")
    records = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            reason = "expected a JSON object with a 'file' key"
        except json.JSONDecodeError as err:
            record, reason = None, str(err)
        if not isinstance(record, dict) or "file" not in record:
            raise OutputFolderError(f"{path}:{line_no}: unreadable record ({reason}); fix or move that file, "
                                    "or choose another --out: earlier results are never overwritten")
        records.append(record)
    return records


def _merge_records(previous: list[dict], new: list[dict]) -> list[dict]:
    """One record per photo: the latest, except that a failure never replaces a result."""
    merged: dict[str, dict] = {}
    for record in previous + new:
        key = _file_key(record)
        old = merged.get(key)
        if old is not None and record.get("status") == "failed" and old.get("status") != "failed":
            old = dict(old)
            old["last_error"] = record.get("error")
            merged[key] = old
        else:
            merged[key] = record  # an existing key keeps its place in the file
    return list(merged.values())


class _Stems:
    """Output names: a photo predicted again keeps its stem; others never collide."""

    def __init__(self, out_dir: Path, previous: list[dict]):
        self.out_dir = out_dir
        self.by_key = {}
        self.used = set()
        for record in previous:
            stem = _record_stem(record)
            if stem:
                self.used.add(stem)
                if record.get("status") != "failed":
                    self.by_key[_file_key(record)] = stem

    def stem(self, path: Path, key: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        stem, k = path.stem, 1
        while stem in self.used or (self.out_dir / f"{stem}_mask.png").exists() \
                or (self.out_dir / f"{stem}_overlay.png").exists():
            k += 1
            stem = f"{path.stem}_{k}"
        self.used.add(stem)
        self.by_key[key] = stem
        return stem


def predict_paths(paths: list[Path], segmenter: Segmenter, out_dir: str | os.PathLike,
                  detector=None, boxes_by_name: dict | None = None, margin: float = DEFAULT_MARGIN,
                  no_face: str = "whole", threshold: float = 0.5,
                  max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True) -> dict:
    """Run the pipeline on every photo; write masks, overlays and predictions.jsonl.

    An ``out_dir`` with earlier results keeps them (see the module docstring: append, one
    record per photo, the latest result; a failed retry keeps the earlier result).

    Returns:
        Summary dict: ``ok``, ``no_face``, ``failed``, ``total``, ``seconds``, ``photos_per_s``,
        ``out_dir``, ``failures`` (list of messages), ``kept`` (earlier records kept),
        ``replaced`` (earlier records replaced by this call), ``records`` (lines now in the file).

    Raises:
        OutputFolderError: ``out_dir`` is a file, or its predictions.jsonl is unreadable
            (nothing is written then).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"--out {out_dir}: is a file; expected a folder (new or with earlier results)")
    jsonl_path = out_dir / PREDICTIONS_FILE
    previous = read_predictions(jsonl_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = _Stems(out_dir, previous)
    counts = {"ok": 0, "no-face": 0, "failed": 0}
    failures: list[str] = []
    new_records: list[dict] = []
    start_all = time.perf_counter()
    say = tqdm.write if progress else (lambda msg: print(msg, file=sys.stderr))
    if segmenter.warning:
        say(f"WARNING: {segmenter.warning}")
    if previous:
        say(f"{jsonl_path}: {len(previous)} earlier record(s) kept; new results are appended "
            "(a photo predicted again replaces its earlier result)")
    weights = segmenter.record_fields()
    with jsonl_path.open("a", encoding="utf-8") as jsonl:
        for path in tqdm(paths, desc="predict", unit="photo", disable=not progress):
            key = str(Path(path).expanduser().resolve())
            record = {"file": str(path), "path": key, **weights, "time_utc": utc_now()}
            t0 = time.perf_counter()
            try:
                image, notes = load_photo(path, max_pixels=max_pixels)
                load_s = time.perf_counter() - t0
                known = (boxes_by_name or {}).get(path.name)
                result = predict_photo(image, segmenter, detector, boxes=known, margin=margin,
                                       no_face=no_face, threshold=threshold)
                t1 = time.perf_counter()
                stem = stems.stem(path, key)
                mask = result.mask(threshold)
                Image.fromarray((mask * 255).astype(np.uint8)).save(out_dir / f"{stem}_mask.png")
                Image.fromarray(overlay(image, mask, result.faces, legend=True)).save(out_dir / f"{stem}_overlay.png")
                record.update(status=result.status, size=[int(image.shape[1]), int(image.shape[0])],
                              notes=notes, boxes_from="csv" if known else (detector.name if detector else None),
                              n_faces=sum(f["source"] != "whole" for f in result.faces), faces=result.faces,
                              mask_area_px=int(mask.sum()), mask=f"{stem}_mask.png", overlay=f"{stem}_overlay.png",
                              timings={"load_s": round(load_s, 4),
                                       **{k: round(v, 4) for k, v in result.timings.items()},
                                       "write_s": round(time.perf_counter() - t1, 4)})
                counts[result.status] += 1
                for note in notes:
                    say(f"{path}: {note}")
                if result.status == "no-face":
                    say(f"{path}: no face found; " + ("segmented the whole image" if no_face == "whole"
                                                      else "skipped (empty mask)"))
            except PhotoError as err:
                counts["failed"] += 1
                failures.append(str(err))
                record.update(status="failed", error=str(err))
                say(f"FAILED {err}")
            new_records.append(record)
            jsonl.write(json.dumps(record) + "\n")
            jsonl.flush()
    merged = _merge_records(previous, new_records)
    atomic_write_text(jsonl_path, "".join(json.dumps(r) + "\n" for r in merged))
    new_keys = {_file_key(r) for r in new_records}
    replaced = sum(1 for r in previous if _file_key(r) in new_keys)
    seconds = time.perf_counter() - start_all
    summary = {"total": len(paths), "ok": counts["ok"], "no_face": counts["no-face"],
               "failed": counts["failed"], "seconds": round(seconds, 3),
               "photos_per_s": round(len(paths) / seconds, 3) if seconds > 0 else None,
               "out_dir": str(out_dir), "failures": failures, "kept": len(previous) - replaced,
               "replaced": replaced, "records": len(merged), "warning": segmenter.warning}
    return summary


def format_summary(summary: dict) -> str:
    earlier = ""
    if summary.get("kept") or summary.get("replaced"):
        earlier = (f"; {summary['records']} record(s) in {PREDICTIONS_FILE} ({summary.get('kept', 0)} earlier kept, "
                   f"{summary.get('replaced', 0)} replaced)")
    warning = f"\nWARNING: {summary['warning']}" if summary.get("warning") else ""
    return (f"{summary['total']} file(s): {summary['ok']} ok, {summary['no_face']} no-face, "
            f"{summary['failed']} failed in {summary['seconds']:.1f} s "
            f"({summary['photos_per_s'] or 0:.2f} photos/s); outputs in {summary['out_dir']}{earlier}{warning}")


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``predict`` options to ``parser`` (used by ``abanet_lib.cli``); every value is
    checked when parsed (one-line errors naming the option)."""
    parser.add_argument("paths", nargs="+", help="photo files, folders or glob patterns")
    parser.add_argument("--run", default=None, type=nonempty_option,
                        help="model: the shipped photo model when left out (or 'shipped'); a run id of "
                             "results/runs (e.g. an ABANet run), a save_pretrained folder, or "
                             "untrained:<model>[@size]")
    parser.add_argument("--out", required=True, type=folder_option(),
                        help="output folder (masks, overlays, predictions.jsonl); earlier results in it "
                             "are kept: new records are appended, one per photo (a photo predicted again "
                             "replaces its earlier result, a failed retry keeps it)")
    detectors = ["auto", *facelib.available_detectors()]
    parser.add_argument("--detector", default="auto", choices=detectors,
                        help=f"face detector: auto (best installed, see faces.py) or one of {detectors[1:]}")
    parser.add_argument("--boxes", default=None, type=file_option,
                        help="CSV of known face boxes (MFSD dataset.csv: filename,x1,y1,x2,y2,...); "
                             "used instead of detection for the photos it lists")
    parser.add_argument("--margin", type=float_option(0.0, 5.0), default=DEFAULT_MARGIN,
                        help="crop margin around a face, fraction of its side, 0 to 5 (default %(default)s)")
    parser.add_argument("--no-face", choices=NO_FACE_CHOICES, default="whole",
                        help="no face found: segment the whole image (default) or skip it")
    parser.add_argument("--threshold", type=float_option(0.0, 1.0, min_open=True, max_open=True), default=0.5,
                        help="mask probability threshold, strictly between 0 and 1")
    parser.add_argument("--max-pixels", type=int_option(64 * 64), default=DEFAULT_MAX_PIXELS,
                        help="downscale photos above this many pixels (default %(default)s, at least 4096)")
    parser.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    parser.add_argument("--device", default="auto", type=device_option, help="auto, cpu or cuda[:N]")
    return parser


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    """Run the ``predict`` command; returns 0 when at least one photo succeeded (or none given),
    1 when every photo failed, 2 on bad input (one line on stderr)."""
    if not isinstance(args, argparse.Namespace):
        args = add_arguments(CliParser(prog="python -m abanet_lib predict",
                                       description="segment the face-mask region on photos")).parse_args(args)
    try:
        paths = collect_inputs(args.paths, recursive=args.recursive)
        segmenter = load_segmenter(args.run, args.device)
        boxes = facelib.load_boxes_csv(args.boxes) if args.boxes else None
        detector = facelib.create_detector(args.detector)
        summary = predict_paths(paths, segmenter, args.out, detector=detector, boxes_by_name=boxes,
                                margin=args.margin, no_face=args.no_face, threshold=args.threshold,
                                max_pixels=args.max_pixels)
    except (PhotoError, OutputFolderError, ValueError, ImportError, FileNotFoundError) as err:
        if not is_deliberate(err):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0 if summary["failed"] < summary["total"] or summary["total"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
