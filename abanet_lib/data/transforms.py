"""Resizing, ImageNet normalisation and training augmentations (numpy / torch only).

The one preprocessing of the project is :func:`preprocess` (one image) / :func:`preprocess_batch`:
:func:`resize_image` (Pillow bilinear, antialiased when shrinking) then :func:`image_to_tensor`
(``/255`` and ImageNet normalisation). Training data (:func:`resize_pair` when the arrays are
prepared, :func:`normalize` after augmentation), evaluation (:func:`abanet_lib.engine.evaluate.evaluate`),
``predict`` (``Segmenter.preprocess``) and export (``export.IMAGENET_MEAN``) all use these
functions and constants. Masks are resized nearest neighbour, so a resized mask stays binary. Augmentations run on prepared (S, S) tensors in the data set:
horizontal flip, random scale-up and crop back to S, colour jitter (brightness, contrast,
saturation). They change geometry identically for image and mask.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (bilinear) and its mask (nearest) to ``size``.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) bool or uint8.
        size: S (square) or (height, width).

    Returns:
        image (S_h, S_w, 3) uint8, mask (S_h, S_w) bool.
    """
    h, w = (size, size) if isinstance(size, int) else size
    img = resize_image(image, (h, w))
    m = np.asarray(mask)
    binary = m if m.dtype == bool else m > (127 if m.size and m.max() > 1 else 0)
    resized = Image.fromarray(binary.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
    return img, np.asarray(resized) > 127


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 image to S or (height, width)."""
    h, w = (size, size) if isinstance(size, int) else size
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def preprocess(image: np.ndarray, size: int | tuple[int, int]) -> torch.Tensor:
    """THE preprocessing: RGB uint8 (H, W, 3) -> normalised float32 (3, S, S).

    :func:`resize_image` (Pillow bilinear, as the prepared training arrays) then
    :func:`image_to_tensor` (``/255``, ImageNet mean/std).

    Raises:
        ValueError: not an (H, W, 3) uint8 image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"preprocess: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image_to_tensor(resize_image(image, size))


def preprocess_batch(images, size: int | tuple[int, int]) -> torch.Tensor:
    """:func:`preprocess` of each image, stacked: list of (H_i, W_i, 3) uint8 -> (N, 3, S, S)."""
    return torch.stack([preprocess(image, size) for image in images]).contiguous()


def _stats(x, like):
    shape = (3, 1, 1)
    if isinstance(like, torch.Tensor):
        mean = torch.tensor(IMAGENET_MEAN, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(IMAGENET_STD, dtype=like.dtype, device=like.device).view(shape)
    else:
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(shape)
        std = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(shape)
    return mean, std


def normalize(image_float):
    """ImageNet normalisation of channel-first images in [0, 1].

    Args:
        image_float: (3, H, W) or (N, 3, H, W) float tensor or ndarray in [0, 1].

    Returns:
        the same shape, ``(x - mean) / std`` per channel.
    """
    mean, std = _stats(None, image_float)
    return (image_float - mean) / std


def denormalize(image_norm):
    """Inverse of :func:`normalize` (for plotting)."""
    mean, std = _stats(None, image_norm)
    return image_norm * std + mean


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> normalised float32 tensor (3, H, W)."""
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div_(255.0)
    return normalize(x)


def augment_pair(image: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                 max_scale: float = 1.25, jitter: float = 0.2, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training augmentation of one prepared pair.

    Args:
        image: (3, S, S) float in [0, 1] (not yet normalised).
        mask: (1, S, S) float in {0, 1}.
        gen: torch random generator (determines every choice).
        max_scale: random scale-up factor in [1, max_scale], then a random S x S crop.
        jitter: brightness/contrast/saturation factors drawn in [1 - jitter, 1 + jitter].
        flip: horizontal flip with probability 0.5.

    Returns:
        (image (3, S, S) in [0, 1], mask (1, S, S) in {0, 1}).
    """
    size = image.shape[-1]
    r = torch.rand(6, generator=gen)
    if flip and r[0] < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    scale = 1.0 + float(r[1]) * (max_scale - 1.0)
    new = int(round(size * scale))
    if new > size:
        image = F.interpolate(image[None], size=(new, new), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None], size=(new, new), mode="nearest")[0]
        top = int(r[2] * (new - size + 1))
        left = int(r[3] * (new - size + 1))
        top, left = min(top, new - size), min(left, new - size)
        image = image[:, top:top + size, left:left + size]
        mask = mask[:, top:top + size, left:left + size]
    if jitter > 0:
        f = 1.0 + (torch.rand(3, generator=gen) * 2 - 1) * jitter
        image = image * f[0]  # brightness
        mean = image.mean()
        image = (image - mean) * f[1] + mean  # contrast
        grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
        image = (image - grey) * f[2] + grey  # saturation
        image = image.clamp_(0.0, 1.0)
    return image.contiguous(), mask.contiguous()
