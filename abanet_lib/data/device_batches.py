"""Training batches built on the device: prepared arrays kept in (GPU) memory, augmented there.

The CPU path (:class:`abanet_lib.data.torch_data.SegmentationDataset` + a DataLoader) decodes,
augments and normalises one crop at a time in worker processes and copies each batch to the
device. On a GPU that costs more than the step itself for the small networks of this paper:
220 crops at 256 px are about 43 MB, so the whole prepared set fits on the device many times
over. :class:`DeviceBatches` keeps it there and builds every batch by index:

* one uint8 upload of ``images (N, 3, S, S)`` and ``masks (N, 1, S, S)`` at construction;
* per batch, all augmentation choices are drawn at once from a device generator
  (``torch.rand(B, 6)``) and applied as one affine warp (``affine_grid`` + ``grid_sample``:
  horizontal flip, scale-up by ``s`` in ``[1, max_scale]`` and a crop back to ``S``), then
  batched colour jitter (brightness, contrast, saturation), the same families and ranges as
  :func:`abanet_lib.data.transforms.augment_pair`;
* shapes never depend on data (the last, smaller batch of an epoch is dropped when
  ``drop_last``), there is no ``.item()`` and no host copy, so a training step that consumes
  these batches can be captured as a CUDA graph (``torch.compile(mode="reduce-overhead")``).

The random stream differs from the CPU path's (one generator per batch instead of one per
crop), so runs trained on device batches are not bit-identical to CPU-loader runs: the run
config says which path was used.

Example:
    >>> arrays = prepare_arrays(refs, 64)                       # doctest: +SKIP
    >>> batches = DeviceBatches(arrays, "cuda", batch_size=16, augment=True, seed=0)
    >>> for images, masks in batches.epoch(0):                # (16, 3, 64, 64), (16, 1, 64, 64)
    ...     loss = model.training_loss(images, masks, criterion)
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import normalize

#: Augmentation ranges, the same as :func:`abanet_lib.data.transforms.augment_pair`'s defaults.
MAX_SCALE = 1.25
JITTER = 0.2


def augment_batch(images: torch.Tensor, masks: torch.Tensor, draws: torch.Tensor, jitter_draws: torch.Tensor,
                  max_scale: float = MAX_SCALE, jitter: float = JITTER) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flip, scale-up + crop and colour jitter of a whole batch, in one warp.

    Args:
        images: (B, 3, S, S) float in [0, 1].
        masks: (B, 1, S, S) float in {0, 1}.
        draws: (B, 4) uniform [0, 1): flip (< 0.5 flips), scale, crop top, crop left.
        jitter_draws: (B, 3) uniform [0, 1): brightness, contrast, saturation factors.
        max_scale: scale-up factor drawn in ``[1, max_scale]``.
        jitter: colour factors drawn in ``[1 - jitter, 1 + jitter]``.

    Returns:
        images (B, 3, S, S) in [0, 1], masks (B, 1, S, S) in {0, 1}.
    """
    b = images.shape[0]
    flip = torch.where(draws[:, 0] < 0.5, -1.0, 1.0).to(images.dtype)
    inv_scale = 1.0 / (1.0 + draws[:, 1].to(images.dtype) * (max_scale - 1.0))
    # The crop window covers 1/s of the scaled image; its centre moves within (1 - 1/s) of it.
    centre_y = (1.0 - inv_scale) * (2.0 * draws[:, 2].to(images.dtype) - 1.0)
    centre_x = (1.0 - inv_scale) * (2.0 * draws[:, 3].to(images.dtype) - 1.0)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = flip * inv_scale
    theta[:, 0, 2] = flip * centre_x
    theta[:, 1, 1] = inv_scale
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    masks = F.grid_sample(masks, grid, mode="nearest", padding_mode="border", align_corners=False)
    if jitter > 0:
        f = (1.0 + (jitter_draws.to(images.dtype) * 2 - 1) * jitter).view(b, 3, 1, 1)
        images = images * f[:, 0:1]  # brightness
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = (images - mean) * f[:, 1:2] + mean  # contrast
        grey = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
        images = (images - grey) * f[:, 2:3] + grey  # saturation
        images = images.clamp(0.0, 1.0)
    return images, masks


class DeviceBatches:
    """Shuffled, augmented, normalised training batches built on ``device`` from prepared arrays.

    Args:
        arrays: an object with ``images (N, S, S, 3) uint8`` and ``masks (N, S, S)`` in {0, 1}
            (:class:`abanet_lib.data.torch_data.PreparedArrays`).
        device: where the arrays live and batches are built.
        batch_size: images per batch.
        augment: apply :func:`augment_batch`.
        seed: seeds the order and augmentation of every epoch (epoch ``e`` uses ``seed + e``).
        drop_last: drop the last incomplete batch, so every batch has the same shape (needed
            for CUDA graphs); with False the last batch is smaller.
        indices: optional subset of rows.

    Attributes:
        images: (N, 3, S, S) uint8 on ``device``; masks: (N, 1, S, S) uint8 on ``device``.
    """

    def __init__(self, arrays, device: str | torch.device, batch_size: int, augment: bool = True,
                 seed: int = 0, drop_last: bool = True, indices=None):
        rows = np.arange(len(arrays.images)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(np.asarray(arrays.images)[rows])).permute(0, 3, 1, 2)
        self.images = self.images.contiguous().to(self.device)
        self.masks = torch.from_numpy(np.ascontiguousarray(np.asarray(arrays.masks)[rows], dtype=np.uint8))
        self.masks = self.masks[:, None].to(self.device)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.seed = int(seed)
        self.drop_last = drop_last
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch: ``(images (B, 3, S, S) float32 normalised, masks (B, 1, S, S)
        float32 in {0, 1})`` on the device, in an order and with augmentations fixed by
        ``(seed, epoch)``."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed + int(epoch))
        order = torch.randperm(self.images.shape[0], generator=gen, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.batch(index, gen)

    def batch(self, index: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of the given rows (augmented with draws from ``gen`` when ``augment``)."""
        images = self.images.index_select(0, index).float().div_(255.0)
        masks = self.masks.index_select(0, index).float()
        if self.augment:
            draws = torch.rand(index.shape[0], 7, generator=gen, device=self.device)
            images, masks = augment_batch(images, masks, draws[:, :4], draws[:, 4:])
        return normalize(images), masks
