"""Torch side: decode + resize once into a .npy cache, then a light, picklable Dataset.

:func:`prepare_arrays` decodes every sample once, resizes it to S x S (image bilinear, mask
nearest) and stores ``images.npy`` (N, S, S, 3) uint8 and ``masks.npy`` (N, S, S) uint8 in
``cache_dir()/prepared/<sources>-<S>-<key>/``. The key hashes S and the file list (paths,
sizes, modification times), so changed files give a new entry. Later calls open the arrays
with ``mmap_mode="r"`` (no decode, near-zero load time, shared between DataLoader workers).
Native-resolution masks for evaluation stay reachable through ``PreparedArrays.refs[i]``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from abanet_lib.core import paths
from abanet_lib.core.io import atomic_folder

from .samples import DataError, LoadReport, SampleRef, check_on_error
from .transforms import augment_pair, normalize, resize_pair

log = logging.getLogger(__name__)

#: Bump when the preparation changes, so old caches are not reused.
#: 2: images and masks turned upright by EXIF, alpha composited on white, 4-channel mask rule.
PREPARE_VERSION = 2


@dataclass
class PreparedArrays:
    """Resized samples, memory-mapped from the cache.

    Attributes:
        images: (N, S, S, 3) uint8.
        masks: (N, S, S) uint8 in {0, 1}.
        refs: the N SampleRefs (same order) -> native images/masks via ``refs[i].load()``.
        native_sizes: (N, 2) int, original (height, width).
        coverage: (N,) float, mask fraction at native resolution.
        report: what was skipped (``on_error="skip"``) and which masks are empty.
        folder: cache folder, or None when not cached.
    """

    images: np.ndarray
    masks: np.ndarray
    refs: list
    native_sizes: np.ndarray
    coverage: np.ndarray
    report: LoadReport = field(default_factory=LoadReport)
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.refs]

    def subset(self, indices) -> "PreparedArrays":
        """A view on some samples (in-memory copies of the selected rows)."""
        idx = np.asarray(list(indices), dtype=np.int64)
        return PreparedArrays(np.asarray(self.images[idx]), np.asarray(self.masks[idx]),
                              [self.refs[i] for i in idx], self.native_sizes[idx], self.coverage[idx],
                              self.report, None)

    # Pickle the cache location, not the mapped data (fast DataLoader workers with spawn).
    def __getstate__(self):
        state = dict(self.__dict__)
        if self.folder is not None:
            state["images"] = state["masks"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.images is None:
            self.images = np.load(self.folder / "images.npy", mmap_mode="r")
            self.masks = np.load(self.folder / "masks.npy", mmap_mode="r")


def _cache_key(refs, size: int) -> str:
    entries = []
    for r in refs:
        si, sm = Path(r.image_path).stat(), Path(r.mask_path).stat()
        entries.append([r.source, r.name, str(r.image_path), str(r.mask_path), si.st_size, si.st_mtime_ns,
                        sm.st_size, sm.st_mtime_ns, bool(r.resize_mask)])
    payload = json.dumps({"version": PREPARE_VERSION, "size": size, "files": entries}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _decode(ref: SampleRef, size: int):
    try:
        sample = ref.load()
    except DataError as exc:
        return None, str(exc)
    image, mask = resize_pair(sample.image, sample.mask, size)
    return (image, mask, sample.image.shape[:2], float(sample.mask.mean())), None


def prepare_arrays(refs, size: int, on_error: str = "raise", cache: bool = True,
                   workers: int | None = None) -> PreparedArrays:
    """Decode, validate and resize ``refs`` once; cache as .npy (see module docstring).

    Args:
        refs: SampleRef list (unique names per source).
        size: output side S.
        on_error: ``"raise"`` on the first bad file, or ``"skip"`` (left out, listed in
            ``.report.skipped`` and warned about).
        cache: write/read ``cache_dir()/prepared/``; False keeps everything in memory.
        workers: decoding threads (default min(4, CPUs)).

    Returns:
        PreparedArrays with images (N, S, S, 3) uint8 and masks (N, S, S) uint8.

    Raises:
        DataError: a bad file (``on_error="raise"``), or no sample left.
    """
    check_on_error(on_error)
    refs = list(refs)
    if not refs:
        raise DataError("prepare_arrays: empty sample list; expected at least one SampleRef")
    if size < 8:
        raise ValueError(f"prepare_arrays: size={size}; expected >= 8")
    for r in refs:  # missing files are errors in both modes' listing step; report them clearly here
        for p in (r.image_path, r.mask_path):
            if not Path(p).is_file() and on_error == "raise":
                raise DataError(f"{p}: file not found; expected the file listed for sample {r.name!r}")
    sources = "+".join(sorted({r.source for r in refs}))
    key = _cache_key([r for r in refs if Path(r.image_path).is_file() and Path(r.mask_path).is_file()], size)
    folder = paths.cache_dir() / "prepared" / f"{sources}-{size}-{key}"
    if cache and (folder / "meta.json").is_file():
        try:
            arrays = _load_cached(folder, refs)
            arrays.report.warn(f"prepare_arrays({sources}, size={size}) [cached]")
            return arrays
        except (OSError, ValueError, KeyError) as exc:  # corrupt cache entry: rebuild
            log.warning("rebuilding prepared cache %s (%s)", folder, exc)

    report = LoadReport()
    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(n_workers) as pool:
        results = list(pool.map(lambda r: _decode(r, size), refs))
    kept, images, masks, native, coverage = [], [], [], [], []
    for i, (ref, (res, err)) in enumerate(zip(refs, results)):
        if err is not None:
            if on_error == "raise":
                raise DataError(err)
            report.add_skip(ref.image_path, err)
            continue
        image, mask, hw, cov = res
        kept.append(i)
        images.append(image)
        masks.append(mask)
        native.append(hw)
        coverage.append(cov)
        if cov == 0.0:
            report.empty_masks.append(ref.name)
    if not kept:
        raise DataError(f"prepare_arrays: every one of the {len(refs)} samples failed; first: {report.skipped[0]}")
    arrays = PreparedArrays(
        images=np.stack(images).astype(np.uint8),
        masks=np.stack(masks).astype(np.uint8),
        refs=[refs[i] for i in kept],
        native_sizes=np.asarray(native, dtype=np.int64).reshape(-1, 2),
        coverage=np.asarray(coverage, dtype=np.float64),
        report=report,
    )
    report.warn(f"prepare_arrays({sources}, size={size})")
    if cache:
        _write_cache(folder, arrays, kept)
        arrays = _load_cached(folder, refs)
    return arrays


def _write_cache(folder: Path, arrays: PreparedArrays, kept: list[int]) -> None:
    def fill(tmp: Path) -> None:
        tmp.mkdir()
        np.save(tmp / "images.npy", arrays.images)
        np.save(tmp / "masks.npy", arrays.masks)
        meta = {
            "version": PREPARE_VERSION, "kept": kept, "names": arrays.names,
            "native_sizes": arrays.native_sizes.tolist(), "coverage": arrays.coverage.tolist(),
            "skipped": arrays.report.skipped, "empty_masks": arrays.report.empty_masks,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))

    atomic_folder(folder, fill)


def _load_cached(folder: Path, refs: list) -> PreparedArrays:
    meta = json.loads((folder / "meta.json").read_text())
    kept = meta["kept"]
    kept_refs = [refs[i] for i in kept]
    if [r.name for r in kept_refs] != meta["names"]:
        raise ValueError("cached names differ from the requested refs")
    report = LoadReport([tuple(s) for s in meta["skipped"]], list(meta["empty_masks"]))
    return PreparedArrays(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=np.load(folder / "masks.npy", mmap_mode="r"),
        refs=kept_refs,
        native_sizes=np.asarray(meta["native_sizes"], dtype=np.int64).reshape(-1, 2),
        coverage=np.asarray(meta["coverage"], dtype=np.float64),
        report=report,
        folder=folder,
    )


class SegmentationDataset(Dataset):
    """(image, mask) pairs from :class:`PreparedArrays`, optionally augmented.

    Augmentation randomness: with :meth:`set_epoch` called, item ``i`` of epoch ``e`` uses a
    generator seeded by ``(seed, e, i)`` (fully reproducible, independent of workers). Without
    it, a per-item seed is drawn from torch's global RNG, which the trainer seeds and the
    DataLoader reseeds per worker and epoch, so epochs still differ.

    Args:
        arrays: prepared arrays.
        augment: apply :func:`augment_pair` (flip, scale/crop, colour jitter).
        seed: augmentation seed.
        indices: optional subset of rows.

    Returns per item:
        image float32 (3, S, S) ImageNet-normalised, mask float32 (1, S, S) in {0, 1}.
    """

    def __init__(self, arrays: PreparedArrays, augment: bool = False, seed: int = 0, indices=None):
        self.arrays = arrays
        self.augment = augment
        self.seed = int(seed)
        self.indices = list(range(len(arrays))) if indices is None else [int(i) for i in indices]
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.indices[i]
        image = torch.from_numpy(np.array(self.arrays.images[row])).permute(2, 0, 1).float().div_(255.0)
        mask = torch.from_numpy(np.array(self.arrays.masks[row], dtype=np.float32))[None]
        if self.augment:
            if self.epoch is not None:
                item_seed = hash((self.seed, self.epoch, row)) & 0x7FFF_FFFF_FFFF
            else:
                item_seed = (int(torch.randint(0, 2**62, (1,))) + self.seed) & 0x7FFF_FFFF_FFFF
            gen = torch.Generator().manual_seed(item_seed)
            image, mask = augment_pair(image, mask, gen)
        return normalize(image).float().contiguous(), mask.contiguous()
