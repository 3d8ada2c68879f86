"""The sample types, image/mask decoding with validation, and identity parsing.

Decoding rules (documented once, applied everywhere: :meth:`SampleRef.load` for training and
evaluation, :func:`abanet_lib.app.predict.load_photo` for whole photos, both through
:func:`decode_image`):

Every file is first turned upright by its EXIF orientation tag (as photo viewers show it), so
the same file gives the same pixels in training, evaluation and prediction, and a mask drawn
on the upright image pairs with it. Masks are turned by their own EXIF tag, if any.

Images are returned as ``(H, W, 3) uint8`` RGB:
    * grayscale (``L``, ``1``) is replicated to three channels;
    * an alpha channel (``RGBA``, ``LA``, palette with transparency) is composited on white
      (what a viewer shows; transparent pixels' colour values are meaningless);
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

4-channel masks (``RGBA``, ``LA``; :func:`binarize_mask_with_alpha`). None of the registered
data sets ships one (MFSD: 8-bit JPEG, MaskedFace-Net: palette PNG), so the rule is the one of
generic folders, and it refuses what it cannot decide:
    * alpha constant (fully opaque, or one value everywhere): alpha carries nothing, the
      colour channels are read by the data set's rule above;
    * colour constant and alpha varying (a label painted into the alpha channel, e.g. white
      on transparent): the mask is ``alpha > 127``; for label-image data sets
      (``maskedfacenet-seg500``) this is refused: their labels are values, not opacity;
    * both vary: used when colour and alpha give the same mask, otherwise refused as
      ambiguous (:class:`DataError` naming the file: save the mask as a single-channel image).

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

#: File extensions treated as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

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
                    f"{self.image_path.name} is {image.shape[1]}x{image.shape[0]} (after EXIF rotation); "
                    "expected the same size: re-save the mask at its image's size, or have masks resized "
                    "with nearest neighbour (train option --resize-masks true; in Python "
                    "list_samples(..., resize_mismatched_masks=True))"
                )
            resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
                (image.shape[1], image.shape[0]), Image.NEAREST
            )
            mask = np.asarray(resized) > 127
        return Sample(image=image, mask=mask, name=self.name, group=self.group, source=self.source)

    def load_mask(self) -> np.ndarray:
        """Native-resolution binary mask (H, W) bool (for evaluation at the original size)."""
        return self.load().mask


#: Images above this many pixels are refused as possible decompression bombs (the size is read
#: from the file header, before decoding). Pillow's own guard (twice ``Image.MAX_IMAGE_PIXELS``,
#: about 179 M pixels by default) refuses earlier; both give a :class:`DataError`.
BOMB_PIXELS = 250_000_000

#: Valid EXIF orientation values other than 1 (upright).
_ROTATED = (2, 3, 4, 5, 6, 7, 8)


def open_image(path: Path, max_pixels: int | None = None, bomb_pixels: int = BOMB_PIXELS,
               notes: list | None = None) -> Image.Image:
    """Open and fully decode an image file, turned upright by its EXIF orientation.

    The one decoding entry point of the project (training, evaluation, prediction).

    Args:
        path: the file.
        max_pixels: when set, a JPEG above this many pixels is decoded at a reduced size
            (``draft``); :func:`decode_image` finishes the downscale.
        bomb_pixels: above this many pixels (header) the file is refused.
        notes: when given, receives one line per conversion done here (rotation).

    Raises:
        DataError: missing, not an image, truncated/corrupt, or too large (message names the file).
    """
    return _open_upright(path, max_pixels, bomb_pixels, notes)[0]


def _open_upright(path, max_pixels, bomb_pixels, notes) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`open_image`, plus the upright (width, height) of the file before any downscale."""
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected an image file")
    try:
        if max_pixels is None:  # data sets: no filter juggling (prepare_arrays decodes in threads)
            img = Image.open(path)
        else:
            with warnings.catch_warnings():  # photos: the limits are checked here, more clearly
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)
        width, height = img.size
        if width * height > bomb_pixels:
            raise DataError(f"{path}: {width}x{height} = {width * height:,} pixels is above the "
                            f"decompression-bomb limit of {bomb_pixels:,}; refused")
        if max_pixels is not None and width * height > max_pixels:
            scale = (max_pixels / (width * height)) ** 0.5
            img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))  # JPEG only
        img.load()  # forces a full decode so truncated files fail here, not later
        orientation = img.getexif().get(0x0112, 1)  # EXIF Orientation tag
        if orientation in _ROTATED:
            img = ImageOps.exif_transpose(img)
            if orientation >= 5:  # 5-8 swap width and height
                width, height = height, width
            if notes is not None:
                notes.append(f"rotated upright by its EXIF orientation ({orientation})")
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{path}: unreadable: not an image (Pillow cannot identify the format); "
                        "expected a JPEG, PNG, BMP, TIFF or WebP file") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(
            f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc}); the file may be "
            "truncated or corrupt; expected a complete JPEG/PNG/BMP/TIFF file"
        ) from None
    return img, (width, height)


def _to_uint8_range(arr: np.ndarray) -> np.ndarray:
    """Map 16/32-bit integer or float arrays onto 0..255 uint8 (documented: divide by 257)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.rint(np.nan_to_num(arr) / hi * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any Pillow mode, by the module's rules."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = _to_uint8_range(np.asarray(img))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))  # palette/L/1/CMYK/YCbCr -> RGB


def decode_image(path: Path, max_pixels: int | None = None,
                 bomb_pixels: int = BOMB_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Decode an image file as upright RGB uint8 by the module's rules, saying what it did.

    Args:
        path: the file.
        max_pixels: downscale (aspect kept) to at most this many pixels; None keeps the size.
        bomb_pixels: refuse files above this many pixels.

    Returns:
        ``(image (H, W, 3) uint8, notes)``; notes say what was rotated/converted/downscaled.

    Raises:
        DataError: see :func:`open_image`.
    """
    notes: list[str] = []
    img, (width, height) = _open_upright(path, max_pixels, bomb_pixels, notes)
    if img.mode != "RGB":
        notes.append(f"converted from mode {img.mode} to RGB")
    arr = _to_rgb_array(img)
    if max_pixels is not None and width * height > max_pixels:
        scale = (max_pixels / (width * height)) ** 0.5
        target = (max(1, int(width * scale)), max(1, int(height * scale)))
        if (arr.shape[1], arr.shape[0]) != target:  # JPEG draft decodes near, not at, the target
            arr = np.asarray(Image.fromarray(arr).resize(target, Image.LANCZOS))
        notes.insert(0, f"downscaled from {width}x{height} (above --max-pixels {max_pixels:,}) "
                        f"to {arr.shape[1]}x{arr.shape[0]}")
    return np.ascontiguousarray(arr, dtype=np.uint8), notes


def read_image(path: Path) -> np.ndarray:
    """Read an image file as upright RGB uint8 (H, W, 3), applying the module's conversion rules.

    Raises:
        DataError: unreadable/truncated file or a side below :data:`MIN_IMAGE_SIZE`.
    """
    arr, _ = decode_image(path)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_IMAGE_SIZE:
        raise DataError(f"{path}: image is {w}x{h} (WxH); expected at least {MIN_IMAGE_SIZE} px on each side")
    return arr


def read_mask_raw(path: Path) -> tuple[np.ndarray, bool]:
    """Read a mask file (upright by its EXIF orientation) as its raw values.

    Returns:
        ``(values, is_palette)``: values (H, W) or (H, W, C); palette images give indices;
        4-channel masks keep their alpha as the last channel ((H, W, 4) RGBA, (H, W, 2) LA).
    """
    img = open_image(path)
    if img.mode == "P":
        return np.asarray(img), True  # palette indices are the labels (transparency ignored)
    if img.mode in ("PA", "RGBa"):
        img = img.convert("RGBA")
    elif img.mode == "La":
        img = img.convert("LA")
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


def binarize_mask_with_alpha(colour: np.ndarray, alpha: np.ndarray, source: str) -> np.ndarray:
    """Binary mask of a 4-channel (or grey + alpha) mask by the module's rule.

    Args:
        colour: (H, W) or (H, W, C) colour/grey values.
        alpha: (H, W) alpha values.
        source: data set name.

    Raises:
        DataError: label-image data set with a varying alpha, or colour and alpha that
            give different masks (ambiguous).
    """
    colour = np.asarray(colour)
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[:, :, 0]
    alpha8 = _to_uint8_range(np.asarray(alpha))
    if alpha8.size == 0 or alpha8.min() == alpha8.max():
        return binarize_mask(colour, source)  # alpha carries nothing
    if source in LABEL2_SOURCES:
        raise DataError(f"mask has a varying alpha channel, but {source} masks are label images "
                        "(0 background, 1 skin, 2 mask); expected a single-channel or palette PNG")
    by_alpha = alpha8 > 127
    flat = colour.reshape(colour.shape[0], colour.shape[1], -1)
    if (flat == flat[:1, :1]).all():
        return by_alpha  # one colour everywhere: the label is the opacity
    by_colour = binarize_mask(colour, source)
    if np.array_equal(by_colour, by_alpha):
        return by_colour
    differ = int((by_colour != by_alpha).sum())
    raise DataError(f"ambiguous 4-channel mask: its colour and its alpha channel give different masks "
                    f"({differ:,} of {by_alpha.size:,} pixels differ); expected the label in one place: "
                    "save the mask as a single-channel (grey or palette) image")


def binarize_mask(array: np.ndarray, source: str, palette: bool = False) -> np.ndarray:
    """Binary mask from a raw mask array, with the rule of data set ``source``.

    Args:
        array: (H, W) or (H, W, C) raw mask values (uint8, uint16, bool or float); 2 or 4
            channels are grey/colour + alpha (:func:`binarize_mask_with_alpha`).
        source: data set name; ``maskedfacenet-seg500`` uses ``label == 2``, all others
            ``> 127`` (or ``== 1`` for 0/1 label images, ``!= 0`` for palette indices).
        palette: the values are palette indices (labels), not grey levels.

    Returns:
        (H, W) bool.
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] in (2, 4) and not palette:  # grey + alpha, RGBA
        return binarize_mask_with_alpha(arr[:, :, :-1], arr[:, :, -1], source)
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
