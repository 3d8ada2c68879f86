"""A plain training and inference step the way the authors' released code runs it.

The speed baseline of :mod:`benchmarks.bench_speed`. What the release does (see
``shared/notes/official-code.md``), re-implemented here without copying it:

* network: the released graph (:class:`abanet_lib.models.official.ABANetOfficial`), every one of
  its eight outputs passed through a sigmoid inside the network; fp32, default (NCHW) memory
  format; no autocast, no compilation;
* loss, per output, summed over the eight outputs: ``(1 - SSIM) + IoU + focal`` with
  BASNet-style helpers: SSIM with a fixed 11x11 Gaussian window and zero padding, the IoU loss
  as a Python loop over the images of the batch, the focal loss applying a second sigmoid to
  the probabilities; the BCE term is computed and not used;
* optimiser: ``torch.optim.Adam`` with its defaults (no fused/foreach choice);
* inference: all eight outputs computed under ``torch.no_grad()``, the refined map min-max
  normalised per image (as the release's test script does).

:func:`released_hybrid_loss` equals ``HybridLoss(variant="official")`` of our library on the
same logits (checked in ``tests/test_bench_speed.py``); it is written out here so that the
baseline pays the cost of the released code's plain implementation, not of ours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RELEASED_ALPHA = 0.25
RELEASED_GAMMA = 2.0
RELEASED_CLAMP = 1e-6


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(1, 1, size, size) normalised Gaussian window."""
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] @ g[None, :])[None, None]


class ReleasedSSIM(nn.Module):
    """SSIM of (N, 1, H, W) maps, zero-padded 11x11 Gaussian window, C1 = 0.01^2, C2 = 0.03^2."""

    def __init__(self, window_size: int = 11):
        super().__init__()
        self.window_size = window_size
        self.register_buffer("window", gaussian_window(window_size), persistent=False)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        window = self.window.to(img1.device, img1.dtype)
        pad = self.window_size // 2
        mu1 = F.conv2d(img1, window, padding=pad, groups=1)
        mu2 = F.conv2d(img2, window, padding=pad, groups=1)
        mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
        sigma1_sq = F.conv2d(img1 * img1, window, padding=pad) - mu1_sq
        sigma2_sq = F.conv2d(img2 * img2, window, padding=pad) - mu2_sq
        sigma12 = F.conv2d(img1 * img2, window, padding=pad) - mu1_mu2
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
        return ssim_map.mean()


def released_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft IoU loss, one image at a time as released, averaged over the batch (no epsilon)."""
    loss = 0.0
    for i in range(pred.shape[0]):
        inter = torch.sum(target[i] * pred[i])
        union = torch.sum(target[i]) + torch.sum(pred[i]) - inter
        loss = loss + (1 - inter / union)
    return loss / pred.shape[0]


def released_focal(prob: torch.Tensor, target: torch.Tensor, alpha: float = RELEASED_ALPHA,
                   gamma: float = RELEASED_GAMMA) -> torch.Tensor:
    """The released focal loss on probabilities: a second sigmoid, alpha on negatives only,
    detached modulating factors, labels other than exactly 0/1 ignored, mean over pixels."""
    q = torch.sigmoid(prob).clamp(RELEASED_CLAMP, 1 - RELEASED_CLAMP)
    pos = (target == 1).float()
    neg = (target == 0).float()
    pos_w = (pos * (1 - q) ** gamma).detach()
    neg_w = (neg * q ** gamma).detach()
    loss = -pos_w * torch.log(q) - alpha * neg_w * F.logsigmoid(-prob)
    return loss.mean()


class ReleasedLoss(nn.Module):
    """Sum over outputs of ``(1 - SSIM) + IoU + focal``; BCE computed, not added."""

    def __init__(self):
        super().__init__()
        self.ssim = ReleasedSSIM()
        self.bce = nn.BCELoss()
        self.last_bce = None

    def one(self, prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.last_bce = self.bce(prob, target)  # computed but unused, as released
        return (1 - self.ssim(prob, target)) + released_iou(prob, target) + released_focal(prob, target)

    def forward(self, probs, target: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for prob in probs:
            total = total + self.one(prob, target)
        return total


def released_hybrid_loss(probs, target: torch.Tensor) -> torch.Tensor:
    """Functional form of :class:`ReleasedLoss` (probabilities in, one per output)."""
    return ReleasedLoss().to(target.device)(probs, target)


class ReleasedStep:
    """The released training step and inference call on one device.

    Args:
        device: torch device.
        lr: Adam learning rate (the cost of a step does not depend on it).
        seed: weight initialisation seed.
    """

    name = "released (ABANetOfficial, fp32, NCHW, plain loss, Adam)"

    def __init__(self, device: torch.device, lr: float = 1e-4, seed: int = 0):
        from abanet_lib.models.official import ABANetOfficial

        torch.manual_seed(seed)
        self.device = device
        self.model = ABANetOfficial(return_probabilities=True).to(device)
        self.criterion = ReleasedLoss().to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a batch; returns the loss (detached)."""
        self.model.train()
        self.optimizer.zero_grad()
        probs = self.model(images)
        loss = self.criterion(probs, masks)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Refined probability map (N, 1, H, W), min-max normalised per image."""
        self.model.eval()
        with torch.no_grad():
            outputs = self.model(images, return_all=True)
            pred = outputs[0]
            lo = pred.amin(dim=(1, 2, 3), keepdim=True)
            hi = pred.amax(dim=(1, 2, 3), keepdim=True)
            return (pred - lo) / (hi - lo + 1e-12)
