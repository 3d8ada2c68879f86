"""The sample types, image/mask decoding with validation, and identity parsing.

Decoding rules (documented once, applied everywhere through :meth:`SampleRef.load`):

Images are returned as ``(H, W, 3) uint8`` RGB:
    * grayscale (``L``, ``1``) is replicated to three channels;
    * an alpha channel (``RGBA``, ``LA``, palette with transparency) is dropped, not composited;
    * palette (``P``) and ``CMYK`` images are converted to RGB by Pillow;
    * 16-bit / 32-bit grayscale (``I;16``, ``I``) is mapped to 8 bit by dividing by 257
      (full 16-bit range onto 0..255), then replicated.

Masks are returned as ``(H, W) bool`` by :func:`binarize_mask`, per data set:
    * ``maskedfacenet-seg500``: label image (0 background, 1 skin, 2 mask); target = label 2;
    * every other source (MFSD JPEG masks, generic folders): grey value ``> 127``; a mask whose
      maximum value is 1 is a 0/1 label image and is read as ``== 1``; colour masks use the
      maximum over channels (so a pure red annotation counts); 16-bit masks are first mapped
      to 8 bit like images; palette masks use their palette *indices* (labels), positive
      where the index is not 0.

Validation (each failure raises :class:`DataError` naming the file):
    * unreadable or truncated file;
    * image smaller than :data:`MIN_IMAGE_SIZE` pixels on a side;
    * mask size different from its image (unless the ref has ``resize_mask=True``, then the
      mask is resized to the image with nearest-neighbour interpolation).
An empty mask is allowed (a face crop without a visible mask is a valid negative); callers
that load many samples count them and warn.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: Smallest accepted image side in pixels.
MIN_IMAGE_SIZE = 32

#: Data sets whose masks are label images with the mask as label 2.
LABEL2_SOURCES = ("maskedfacenet-seg500",)


class DataError(ValueError):
    """Every bad-input error of the data layer; the message names the file and the expectation."""


@dataclass
class Sample:
    """One decoded sample.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True on the face mask.
        name: unique name within its data set (file stem, prefixed with the category where
            needed, e.g. ``"CWM_00002"``).
        group: identity used by group splits (one group never on both sides).
        source: data set name (``"mfsd"``, ``"mfsd-sample"``, ``"maskedfacenet-seg500"``, ...).
    """

    image: np.ndarray
    mask: np.ndarray
    name: str
    group: str
    source: str

    @property
    def coverage(self) -> float:
        """Fraction of pixels on the mask."""
        return float(self.mask.mean())


@dataclass(frozen=True)
class SampleRef:
    """A lazy sample: paths and labels; :meth:`load` decodes and validates.

    Attributes:
        image_path: the image file.
        mask_path: the mask file.
        name: unique name within the data set.
        group: identity for group splits.
        source: data set name; selects the mask binarisation rule.
        subset: ``"training"``/``"testing"`` for data sets that ship a split, else ``""``.
        category: extra label (``"CWM"``/``"IWM"`` for MaskedFace-Net), else ``""``.
        resize_mask: if True a mask whose size differs from the image is resized (nearest)
            instead of raising.
    """

    image_path: Path
    mask_path: Path
    name: str
    group: str
    source: str
    subset: str = ""
    category: str = ""
    resize_mask: bool = False

    def load(self) -> Sample:
        """Decode, convert and validate; see the module docstring for the rules.

        Returns:
            Sample with image (H, W, 3) uint8 and mask (H, W) bool.

        Raises:
            DataError: unreadable/truncated file, image too small, mask size mismatch.
        """
        image = read_image(self.image_path)
        mask = read_mask(self.mask_path, self.source)
        if mask.shape != image.shape[:2]:
            if not self.resize_mask:
                raise DataError(
                    f"{self.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                    f"{self.image_path.name} is {image.shape[1]}x{image.shape[0]}; expected the same size "
                    "(pass resize_mismatched_masks=True to resize masks with nearest neighbour)"
                )
            resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
                (image.shape[1], image.shape[0]), Image.NEAREST
            )
            mask = np.asarray(resized) > 127
        return Sample(image=image, mask=mask, name=self.name, group=self.group, source=self.source)

    def load_mask(self) -> np.ndarray:
        """Native-resolution binary mask (H, W) bool (for evaluation at the original size)."""
        return self.load().mask


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected an image file")
    try:
        img = Image.open(path)
        img.load()  # forces a full decode so truncated files fail here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc}); "
            "expected a complete JPEG/PNG/BMP/TIFF file"
        ) from None
    return img


def _to_uint8_range(arr: np.ndarray) -> np.ndarray:
    """Map 16/32-bit integer or float arrays onto 0..255 uint8 (documented: divide by 257)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.rint(arr / hi * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), applying the module's conversion rules.

    Raises:
        DataError: unreadable/truncated file or a side below :data:`MIN_IMAGE_SIZE`.
    """
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = _to_uint8_range(np.asarray(img))
        arr = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        arr = np.asarray(img.convert("RGB"))  # drops alpha; palette/L/CMYK -> RGB
    h, w = arr.shape[:2]
    if min(h, w) < MIN_IMAGE_SIZE:
        raise DataError(f"{path}: image is {w}x{h} (WxH); expected at least {MIN_IMAGE_SIZE} px on each side")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def read_mask_raw(path: Path) -> tuple[np.ndarray, bool]:
    """Read a mask file as its raw values.

    Returns:
        ``(values, is_palette)``: values (H, W) or (H, W, C); palette images give indices.
    """
    img = _open(path)
    if img.mode == "P":
        return np.asarray(img), True  # palette indices are the labels
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    if img.mode in ("CMYK", "YCbCr", "HSV", "LAB"):
        img = img.convert("RGB")
    if img.mode == "1":
        return np.asarray(img).astype(np.uint8), False
    return np.asarray(img), False


def read_mask(path: Path, source: str) -> np.ndarray:
    """Read and binarise a mask file for data set ``source``: (H, W) bool."""
    raw, palette = read_mask_raw(path)
    try:
        return binarize_mask(raw, source, palette=palette)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def binarize_mask(array: np.ndarray, source: str, palette: bool = False) -> np.ndarray:
    """Binary mask from a raw mask array, with the rule of data set ``source``.

    Args:
        array: (H, W) or (H, W, C) raw mask values (uint8, uint16, bool or float).
        source: data set name; ``maskedfacenet-seg500`` uses ``label == 2``, all others
            ``> 127`` (or ``== 1`` for 0/1 label images, ``!= 0`` for palette indices).
        palette: the values are palette indices (labels), not grey levels.

    Returns:
        (H, W) bool.
    """
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[:, :, :3].max(axis=2)  # colour annotation: any bright channel counts
    if arr.ndim != 2:
        raise DataError(f"mask has shape {np.asarray(array).shape}; expected (H, W) or (H, W, C)")
    if arr.dtype == bool:
        return arr.copy()
    if source in LABEL2_SOURCES:
        return arr == 2
    if palette:
        return arr != 0
    if arr.size and arr.max() <= 1:
        return arr == 1
    return _to_uint8_range(arr) > 127


# ---------------------------------------------------------------------------------------
# Identity (group) parsing
# ---------------------------------------------------------------------------------------
_MFSD_PERSON = re.compile(r"^facemsak_([^_]+)_(.*)$", re.IGNORECASE)
_MFSD_CROP = re.compile(r"^(\d+)_(\d+)$")
_BATCH_TOKEN = re.compile(r"^t\d+$", re.IGNORECASE)


def group_from_name(stem: str) -> str:
    """Identity group parsed from a file stem.

    Rules, in order:
        * ``faceMsak_<person>_...`` / ``facemsak_<person>_...`` (case-insensitive) -> ``person``
          in lower case, so both spellings of one person share a group;
        * the crawl-batch token ``t1`` is not a person: ``faceMsak_t1_<Name>_0002`` -> the name
          (``"carrielam"``) when it is alphabetic, otherwise (``faceMsak_t1_5905_1_2``) the stem;
        * full MFSD crops ``NNNNNN_K`` -> the photo id ``NNNNNN`` (faces of one photo together);
        * anything else -> the stem itself (its own group).
    """
    m = _MFSD_PERSON.match(stem)
    if m:
        person, rest = m.groups()
        if _BATCH_TOKEN.match(person):
            nxt = rest.split("_")[0]
            return nxt.lower() if nxt.isalpha() else stem
        return person.lower()
    m = _MFSD_CROP.match(stem)
    if m:
        return m.group(1)
    return stem


# ---------------------------------------------------------------------------------------
# Reports of skipped / suspicious items
# ---------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What a listing or loading step skipped or flagged (nothing is dropped silently).

    Attributes:
        skipped: ``(path, reason)`` for each item left out (``on_error="skip"``).
        empty_masks: names whose mask has no positive pixel (allowed, reported).
    """

    skipped: list = field(default_factory=list)
    empty_masks: list = field(default_factory=list)

    def add_skip(self, path, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def merge(self, other: "LoadReport") -> None:
        self.skipped.extend(other.skipped)
        self.empty_masks.extend(other.empty_masks)

    def warn(self, what: str) -> None:
        """Emit one warning summarising the report (no-op when clean)."""
        parts = []
        if self.skipped:
            listed = "; ".join(f"{p} ({r})" for p, r in self.skipped[:20])
            more = f" and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else ""
            parts.append(f"skipped {len(self.skipped)} item(s): {listed}{more}")
        if self.empty_masks:
            parts.append(f"{len(self.empty_masks)} empty mask(s): {', '.join(self.empty_masks[:20])}")
        if parts:
            warnings.warn(f"{what}: " + " | ".join(parts), DataWarning, stacklevel=3)

    def __bool__(self) -> bool:
        return bool(self.skipped or self.empty_masks)


class DataWarning(UserWarning):
    """Warnings about skipped items and empty masks."""


class RefList(list):
    """A ``list[SampleRef]`` that carries the :class:`LoadReport` of its listing in ``.report``."""

    def __init__(self, items=(), report: LoadReport | None = None):
        super().__init__(items)
        self.report = report if report is not None else LoadReport()


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
