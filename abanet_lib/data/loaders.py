"""Listing functions: one per data-set layout, plus a generic folder pair.

Listing only pairs files and parses names (fast, no decoding); decoding and validation happen
in :meth:`SampleRef.load` / :func:`abanet_lib.data.prepare_arrays`. Every function takes
``on_error="raise"|"skip"``; skipped items are kept in the returned list's ``.report`` and
announced with one :class:`DataWarning`.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from .registry import MFSD_LAYOUT, fetch
from .samples import (IMAGE_EXTENSIONS, DataError, LoadReport, RefList, SampleRef, check_on_error,
                      group_from_name)

#: Suffixes a mask stem may carry after the image stem (``00002_gt.png`` for ``00002.jpg``).
MASK_SUFFIXES = ("_gt", "_mask", "-mask", "_label", "_seg", "_segmentation", "_m")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _require_dir(folder: Path, what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected {what}")
    return folder


def list_folder_pairs(
    images_dir: Path,
    masks_dir: Path,
    source: str = "folder",
    on_error: str = "raise",
    mask_suffixes: tuple = MASK_SUFFIXES,
    group_fn=group_from_name,
    subset: str = "",
    category: str = "",
    name_prefix: str = "",
    resize_mismatched_masks: bool = False,
) -> RefList:
    """Pair images and masks of two folders by file stem.

    Matching rule: the mask of ``images_dir/STEM.ext`` is the file in ``masks_dir`` whose stem
    is ``STEM`` exactly, or ``STEM`` followed by one of ``mask_suffixes`` (compared
    case-insensitively, e.g. ``STEM_gt.png``, ``STEM_mask.png``). Extensions may differ
    (``.jpg`` image, ``.png`` mask). Two candidate masks for one image is an error
    (ambiguous). Hidden files and non-image files are ignored.

    Args:
        images_dir: folder of images.
        masks_dir: folder of masks.
        source: data set name stored on each ref (selects the binarisation rule).
        on_error: ``"raise"`` on an image without mask / mask without image / ambiguous pair,
            or ``"skip"`` (the item is listed in ``.report.skipped`` and warned about). A folder
            without images, or one where every pair was skipped, raises in both modes.
        mask_suffixes: accepted mask-stem suffixes.
        group_fn: ``stem -> group``; default :func:`group_from_name`.
        subset, category: stored on each ref.
        name_prefix: prefix of each ref's name (keeps names unique across sub-folders).
        resize_mismatched_masks: store ``resize_mask=True`` on the refs (nearest resize
            instead of an error when a mask's size differs from its image).

    Returns:
        RefList of SampleRef sorted by name, with ``.report``.
    """
    check_on_error(on_error)
    images_dir = _require_dir(images_dir, "a folder of images")
    masks_dir = _require_dir(masks_dir, "a folder of masks")
    report = LoadReport()

    def fail(path, reason):
        if on_error == "raise":
            raise DataError(f"{path}: {reason}")
        report.add_skip(path, reason)

    images = _image_files(images_dir)
    masks = _image_files(masks_dir)
    if not images:
        others = sum(1 for p in images_dir.iterdir() if not p.name.startswith("."))
        raise DataError(f"{images_dir}: no image files ({' '.join(IMAGE_EXTENSIONS)})"
                        + (f" among its {others} entries" if others else " (the folder is empty)")
                        + "; expected the data set's images here (is the data set unpacked?)")
    by_stem: dict[str, list[Path]] = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            fail(paths[1], f"two images share the stem {stem!r} ({', '.join(p.name for p in paths)}); expected one")

    suffixes = tuple(s.lower() for s in mask_suffixes)
    mask_of: dict[str, list[Path]] = {}
    orphan_masks = []
    for mask in masks:
        stem = mask.stem
        candidates = [stem] + [stem[: -len(s)] for s in suffixes if stem.lower().endswith(s) and len(stem) > len(s)]
        target = next((c for c in candidates if c in by_stem), None)
        if target is None:
            orphan_masks.append(mask)
        else:
            mask_of.setdefault(target, []).append(mask)

    refs = []
    for stem, paths in sorted(by_stem.items()):
        found = mask_of.get(stem, [])
        if not found:
            fail(paths[0], f"image without mask; expected a mask named {stem}.<ext> or {stem}<suffix>.<ext> "
                           f"(suffixes {', '.join(mask_suffixes)}) in {masks_dir}")
            continue
        if len(found) > 1:
            fail(paths[0], f"ambiguous: several masks match ({', '.join(m.name for m in found)}); expected one")
            continue
        refs.append(SampleRef(
            image_path=paths[0], mask_path=found[0], name=f"{name_prefix}{stem}",
            group=group_fn(stem), source=source, subset=subset, category=category,
            resize_mask=resize_mismatched_masks,
        ))
    for mask in orphan_masks:
        fail(mask, f"mask without image; expected an image with stem {mask.stem!r} (or without its suffix) "
                   f"in {images_dir}")
    if not refs:  # on_error="skip" left nothing: say why here, not as an empty split later
        first = report.skipped[0] if report.skipped else ("", "")
        raise DataError(f"{images_dir}: no usable image/mask pair ({len(report.skipped)} item(s) skipped, "
                        f"first: {first[0]}: {first[1]})")
    out = RefList(sorted(refs, key=lambda r: r.name), report)
    report.warn(f"list_folder_pairs({images_dir})")
    return out


def list_mfsd_sample(root: Path, on_error: str = "raise", resize_mismatched_masks: bool = False) -> RefList:
    """The 220 published MFSD test crops: ``root/image/NAME.jpg`` + ``root/mask/NAME.jpg``.

    Masks are 8-bit JPEG (binarised ``> 127``); group = identity parsed from the name.
    """
    root = _require_dir(root, "the mfsd-sample folder with image/ and mask/")
    return list_folder_pairs(root / "image", root / "mask", source="mfsd-sample", on_error=on_error,
                             resize_mismatched_masks=resize_mismatched_masks)


def list_maskedfacenet(root: Path, on_error: str = "raise", resize_mismatched_masks: bool = False) -> RefList:
    """MaskedFace-Net seg500: ``root/{training,testing}/{CWM,IWM}/images/NNNNN.jpg`` and
    ``.../masks/NNNNN_gt.png`` (labels 0/1/2; target = label 2).

    Each ref has ``subset`` (training/testing), ``category`` (CWM/IWM), name ``CWM_NNNNN`` and
    group = the image id ``NNNNN``.
    """
    root = _require_dir(root, "the maskedfacenet-seg500 folder with training/ and testing/")
    report = LoadReport()
    refs = []
    found_any = False
    for subset in ("training", "testing"):
        for category in ("CWM", "IWM"):
            folder = root / subset / category
            if not folder.is_dir():
                continue
            found_any = True
            part = list_folder_pairs(
                folder / "images", folder / "masks", source="maskedfacenet-seg500", on_error=on_error,
                group_fn=lambda stem: stem, subset=subset, category=category, name_prefix=f"{category}_",
                resize_mismatched_masks=resize_mismatched_masks,
            )
            refs.extend(part)
            report.merge(part.report)
    if not found_any:
        raise DataError(f"{root}: no {{training,testing}}/{{CWM,IWM}} folders; expected the maskedfacenet-seg500 layout")
    return RefList(sorted(refs, key=lambda r: (r.subset, r.name)), report)


def mfsd_dir(root: Path) -> Path:
    """Locate the labelled part ``MSFD/1`` of a full MFSD download under ``root``."""
    root = Path(root)
    for cand in (root / "MSFD" / "1", root / "1", root):
        if (cand / "face_crop").is_dir():
            return cand
    raise DataError(f"{root}: no MSFD/1/face_crop folder; expected the full MFSD layout\n{MFSD_LAYOUT}")


def list_mfsd(root: Path, on_error: str = "raise", resize_mismatched_masks: bool = False) -> RefList:
    """Full MFSD crops: ``MSFD/1/face_crop/NNNNNN_K.jpg`` + ``face_crop_segmentation/`` same name.

    Group = the photo id ``NNNNNN`` (all faces of a photo stay on one side of a split).
    """
    base = mfsd_dir(root)
    return list_folder_pairs(base / "face_crop", base / "face_crop_segmentation", source="mfsd",
                             on_error=on_error, resize_mismatched_masks=resize_mismatched_masks)


@dataclass(frozen=True)
class FaceBox:
    """One face box in pixel coordinates of the full photo (``x2``, ``y2`` exclusive).

    Shared by the data layer (MFSD's ``dataset.csv``) and the whole-photo pipeline
    (:mod:`abanet_lib.app.faces`: detectors, crop geometry).

    Attributes:
        x1, y1, x2, y2: corners, integers.
        score: detector confidence (1.0 when unknown or given by a CSV).
        source: who produced it (detector name, ``"csv"``, ``"whole"`` or ``"mask"``).
        with_mask: the ``with_mask`` flag of MFSD's dataset.csv (None when not given).
    """

    x1: int
    y1: int
    x2: int
    y2: int
    score: float = 1.0
    source: str = ""
    with_mask: bool | None = None

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def to_dict(self) -> dict:
        return asdict(self)


_MASK_FLAGS = {"TRUE": True, "1": True, "FALSE": False, "0": False}


def read_mfsd_boxes(path: Path, strict: bool = True) -> dict[str, list[FaceBox]]:
    """Face boxes per photo from MFSD's ``dataset.csv`` (``filename,x1,y1,x2,y2,with_mask``).

    Args:
        path: the csv file, or a folder containing ``MSFD/1/dataset.csv``.
        strict: True (the data set itself): exactly that header, integer corners and
            ``with_mask`` TRUE/FALSE/1/0, file names as written. False (boxes handed to the
            whole-photo pipeline): only ``filename,x1,y1,x2,y2`` are needed, corners may be
            any numbers (truncated, swapped corners put in order), ``with_mask`` is optional
            and names are reduced to the bare file name (a photo matches by ``Path(photo).name``).

    Returns:
        ``{photo filename: [FaceBox, ...]}`` in file order (``source="csv"``).

    Raises:
        DataError: missing file, missing columns, or a bad row (named by line number).
    """
    path = Path(path)
    if path.is_dir():
        path = mfsd_dir(path) / "dataset.csv"
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected MFSD's dataset.csv")
    corners = ("x1", "y1", "x2", "y2")
    expected = ["filename", *corners, "with_mask"]
    boxes: dict[str, list[FaceBox]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if (fields[:6] != expected) if strict else not set(expected[:5]) <= set(fields):
            raise DataError(f"{path}: expected a CSV header with columns {','.join(expected)}, "
                            f"got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                if strict:
                    x1, y1, x2, y2 = (int(row[k]) for k in corners)
                    flag = row["with_mask"].strip().upper()
                    if flag not in _MASK_FLAGS:
                        raise ValueError(f"with_mask={row['with_mask']!r}")
                    name = row["filename"].strip()
                else:
                    x1, y1, x2, y2 = (int(float(row[k])) for k in corners)
                    x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
                    flag = (row.get("with_mask") or "").strip().upper()
                    name = Path(row["filename"]).name
            except (TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"{path}:{line}: bad row {row} ({exc}); expected numeric corners "
                                "and with_mask TRUE/FALSE") from None
            boxes.setdefault(name, []).append(FaceBox(x1, y1, x2, y2, 1.0, "csv", _MASK_FLAGS.get(flag)))
    return boxes


#: Listing function per registered data-set name.
LISTERS = {
    "mfsd": list_mfsd,
    "mfsd-sample": list_mfsd_sample,
    "maskedfacenet-seg500": list_maskedfacenet,
}


def list_samples(name: str, root: Path | None = None, on_error: str = "raise",
                 resize_mismatched_masks: bool = False) -> RefList:
    """List the samples of a registered data set.

    Args:
        name: ``"mfsd"``, ``"mfsd-sample"`` or ``"maskedfacenet-seg500"``.
        root: the data set's folder; ``None`` calls :func:`fetch` (local copy, verified,
            copied from the mirror or downloaded when missing).
        on_error: ``"raise"`` or ``"skip"`` (see :func:`list_folder_pairs`).
        resize_mismatched_masks: see :func:`list_folder_pairs`.

    Returns:
        RefList of SampleRef (``.report`` lists anything skipped).
    """
    if name not in LISTERS:
        raise DataError(f"unknown data set {name!r}; expected one of {sorted(LISTERS)} "
                        "(use list_folder_pairs for other folders)")
    if root is None:
        root = fetch(name)
    return LISTERS[name](Path(root), on_error=on_error, resize_mismatched_masks=resize_mismatched_masks)
