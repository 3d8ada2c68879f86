"""Deterministic synthetic "masked faces" for tests (never for reported results)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .loaders import list_folder_pairs
from .samples import RefList, Sample


def synthetic_samples(n: int, size: int = 64, seed: int = 0) -> list[Sample]:
    """Fake masked faces: a skin-coloured ellipse with a random-colour mask polygon on its lower half.

    Args:
        n: number of samples.
        size: image side S.
        seed: the same seed gives the same samples.

    Returns:
        ``n`` Samples: image (S, S, 3) uint8, mask (S, S) bool (the polygon), name
        ``synthetic_000``..., group ``person_<i // 2>`` (two samples per fake identity),
        source ``"synthetic"``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        skin = tuple(int(v) for v in (rng.integers(170, 240), rng.integers(120, 190), rng.integers(90, 160)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        img = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(img)
        cx, cy = size * (0.5 + rng.uniform(-0.08, 0.08)), size * (0.5 + rng.uniform(-0.08, 0.08))
        rx, ry = size * rng.uniform(0.25, 0.35), size * rng.uniform(0.32, 0.42)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
        # mask: a polygon over the lower half of the face (nose to chin)
        top = cy + ry * rng.uniform(-0.1, 0.15)
        poly = [
            (cx - rx * 0.95, top), (cx, top - ry * 0.12), (cx + rx * 0.95, top),
            (cx + rx * 0.75, cy + ry * 0.75), (cx, cy + ry * 0.95), (cx - rx * 0.75, cy + ry * 0.75),
        ]
        mask_img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask_img).polygon(poly, fill=255)
        draw.polygon(poly, fill=colour)
        image = np.asarray(img).copy()
        noise = rng.normal(0, 4, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        out.append(Sample(image=image, mask=np.asarray(mask_img) > 127, name=f"synthetic_{i:03d}",
                          group=f"person_{i // 2}", source="synthetic"))
    return out


def write_sample_folder(samples: list[Sample], root: Path, image_ext: str = ".png",
                        mask_suffix: str = "") -> tuple[Path, Path]:
    """Write samples as ``root/images/NAME<ext>`` and ``root/masks/NAME<mask_suffix>.png`` (0/255).

    Returns:
        (images_dir, masks_dir).
    """
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    for s in samples:
        Image.fromarray(s.image).save(images_dir / f"{s.name}{image_ext}")
        Image.fromarray(s.mask.astype(np.uint8) * 255).save(masks_dir / f"{s.name}{mask_suffix}.png")
    return images_dir, masks_dir


def synthetic_refs(root: Path, n: int, size: int = 64, seed: int = 0) -> RefList:
    """Write :func:`synthetic_samples` to ``root`` and list them (for engine/notebook tests).

    Returns:
        RefList of SampleRef with source ``"synthetic"``; groups as in :func:`synthetic_samples`.
    """
    samples = synthetic_samples(n, size, seed)
    images_dir, masks_dir = write_sample_folder(samples, root)
    group_of = {s.name: s.group for s in samples}
    return list_folder_pairs(images_dir, masks_dir, source="synthetic", group_fn=lambda stem: group_of.get(stem, stem))
