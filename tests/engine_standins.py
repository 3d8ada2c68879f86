"""Tiny stand-ins for the engine tests: a 2-layer model, BCE loss, synthetic data.

They follow the contracts of docs/architecture.md, so the engine tests do not depend on the
real models/data/metrics modules (one integration test per file uses those).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from abanet_lib.core.config import RunConfig
from abanet_lib.models.base import SegmentationModel
from abanet_lib.engine.assembly import TrainingData


class TinyNet(SegmentationModel):
    """conv3x3(3->4) - ReLU - conv3x3(4->1); in train mode optionally two outputs."""

    def __init__(self, deep_supervision: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1)
        self.side = nn.Conv2d(4, 1, 1)
        self.deep_supervision = deep_supervision

    def forward(self, x):
        h = F.relu(self.conv1(x))
        out = self.conv2(h)
        if self.training and self.deep_supervision:
            return out, self.side(h)
        return out


class NaNAfter(TinyNet):
    """Returns NaN logits from the ``n``-th training forward call on (1-based)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                return out * float("nan")
        return out


def bce(outputs, masks):
    """Sum of BCE-with-logits over outputs (tensor or tuple)."""
    outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return sum(F.binary_cross_entropy_with_logits(o.float(), masks) for o in outs)


class BlobDataset(Dataset):
    """Bright squares on noise; masks mark the squares. Random flips use the torch RNG."""

    def __init__(self, n: int, size: int = 16, seed: int = 0, augment: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g) * 0.5
        self.masks = torch.zeros(n, 1, size, size)
        for i in range(n):
            y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
            self.masks[i, :, y:y + size // 2, x:x + size // 2] = 1
        self.images = (self.images + self.masks).clamp(0, 1)
        self.augment = augment

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img, mask = self.images[i], self.masks[i]
        if self.augment and torch.rand(()) < 0.5:
            img, mask = img.flip(-1), mask.flip(-1)
        return img, mask


def blob_data(n_train: int = 12, n_val: int = 6, size: int = 16) -> TrainingData:
    return TrainingData(train=BlobDataset(n_train, size, seed=1, augment=True),
                        val=BlobDataset(n_val, size, seed=2))


def tiny_config(**changes) -> RunConfig:
    base = RunConfig(model="tiny-standin", epochs=3, batch_size=4, image_size=16, lr=0.02,
                     precision="fp32", device="cpu", channels_last=False, scale="smoke")
    return base.replace(**changes)


# -- evaluation stand-ins ---------------------------------------------------------------
@dataclass
class FakeSample:
    image: np.ndarray
    mask: np.ndarray
    name: str
    group: str = "g"
    source: str = "fake"


@dataclass
class FakeRef:
    """A lazy reference whose mask is 16 horizontal bands (on/off) of equal height.

    Bands keep the down/up-sampling round trip one-dimensional, where bilinear resizing of a
    binary map thresholded at 0.5 is exact (2-D corners are not).
    """

    name: str
    height: int
    width: int
    block_seed: int

    def load(self) -> FakeSample:
        rng = np.random.default_rng(self.block_seed)
        bands = rng.random(16) > 0.5
        bands[0] = True
        mask = np.repeat(np.repeat(bands, self.height // 16)[:, None], self.width, axis=1)
        image = np.repeat((mask * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        return FakeSample(image=image, mask=mask, name=self.name)


class OracleNet(SegmentationModel):
    """Reads the mask back from the image's red channel: perfect prediction."""

    def forward(self, x):
        # Normalised red of 0 is about -2.1, of 255 about 2.2: threshold in the middle.
        return (x[:, :1] > 0.05).float() * 20 - 10


class AllOnesNet(SegmentationModel):
    def forward(self, x):
        return torch.full_like(x[:, :1], 10.0)


class SimpleAccumulator:
    """MetricAccumulator stand-in: IoU per image at 0.5."""

    def __init__(self):
        self.names, self.ious = [], []

    def update(self, prob, gt, names=None):
        """prob, gt: (N, H, W) or (H, W)."""
        prob, gt = (prob[None], gt[None]) if prob.dim() == 2 else (prob, gt)
        for p, g in zip(prob, gt.bool()):
            pred = p > 0.5
            union = (pred | g).sum().item()
            self.ious.append((pred & g).sum().item() / union if union else 1.0)
            self.shapes = getattr(self, "shapes", []) + [tuple(p.shape)]
        self.names.extend(names or [f"img{len(self.names) + i}" for i in range(len(prob))])

    def per_image(self):
        return pd.DataFrame({"name": self.names, "iou": self.ious})

    def summary(self):
        return {"iou": float(np.mean(self.ious))}
