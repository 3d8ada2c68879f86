"""EU-Net / Enhanced U-Net (Patel, Bur, Wang, CRV 2021) with a ResNet-34 encoder.

Built from the comparison notes (`rucv/Enhanced-U-Net`, not copied). Faithful:

* torchvision ResNet-34 with its full stem: e1 = stem (64 @H/2), e2..e5 = layer1..4
  (64/128/256/512 @H/4..H/32); 1x1 conv+BN+ReLU on every skip (e5: 512 -> 256 for the SFEMs).
* SFEM: adaptive-average-pool to 8x8; three branches (4 patches of 4x4, 16 patches of 2x2, the
  whole map) through non-local blocks (256 ch, inner 128 / 128 / 64, 2x2 max-pooled key/value);
  concat 768 -> SE (r 16) -> 1x1 conv to C_out + ReLU -> pooled back to e5's size; four
  instances (256/128/64/64) for decoder levels 4..1, bilinearly upsampled to each level.
* AGCM (cross non-local): query and value from the previous combined decoder feature, key from
  the encoder skip, softmax over target positions, transposed so each target position gathers
  source values, 1x1 conv + zero-initialised BN, added to the skip.
* Fusion: non-local block (2x2 sub-sampled) on the decoder feature, concat [AGCM, that, SFEM].
* Decoder block conv3x3 C->C/4, conv3x3 ->C_out (BN+ReLU each), bilinear x2 (align_corners);
  widths d5 512 @H/16, d4 256, d3 128, d2 64, d1 64 @H; head conv3x3 64->32, Dropout2d 0.1, 1x1.
* Side heads on d2..d5 (conv3x3 C->C/4 +BN+ReLU, Dropout2d 0.1, 1x1).

Assumptions / departures:

* The released code moves SFEM patches between layouts with raw reshapes (scrambling
  channel/position correspondence); here patches are extracted and folded back in place.
  Each patch branch has its own non-local block; the unused fifth SFEM is not built.
* AGCM inner width = half the skip's channels (not stated in the notes).
* Side outputs are upsampled to the input size (the original halves the ground truth
  instead) so one HybridLoss applies; train mode returns (main, d2, d3, d4, d5).
* EU-Net's own loss (focal gamma 4 + Dice + IoU) and SGD recipe are not part of the model.

Shapes: (N, 3, H, W), H and W multiples of 32 -> logits (N, 1, H, W); input at least 64.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from abanet_lib.models.base import SegmentationModel
from abanet_lib.models.smp_models import pretrained_weights_guard


def load_resnet(depth: int, pretrained: bool, model_name: str) -> nn.Module:
    """torchvision ResNet-34/50, ImageNet weights (IMAGENET1K_V1) when ``pretrained``."""
    from torchvision import models

    builders = {34: (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1),
                50: (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1)}
    if depth not in builders:
        raise ValueError(f"{model_name}: ResNet depth must be 34 or 50, got {depth}")
    build, weights = builders[depth]
    guard = (pretrained_weights_guard(model_name, "download.pytorch.org (torchvision)")
             if pretrained else contextlib.nullcontext())
    with guard:
        return build(weights=weights if pretrained else None)


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU, 'same' padding for odd kernels."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _up_to(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block with 2x2 max-pooled key/value; (N,C,H,W) -> same.

    The output projection's BN starts at zero, so the block starts as the identity.
    """

    def __init__(self, channels: int, inner: int, subsample: bool = True) -> None:
        super().__init__()
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.pool = nn.MaxPool2d(2) if subsample else nn.Identity()
        self.out = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)                      # (N, HW, I)
        kv_in = self.pool(x) if min(h, w) >= 2 else x
        k = self.phi(kv_in).flatten(2)                                    # (N, I, S)
        v = self.g(kv_in).flatten(2).transpose(1, 2)                      # (N, S, I)
        attn = torch.softmax(q @ k, dim=-1)                               # (N, HW, S)
        y = (attn @ v).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.out(y)


class SqueezeExcite(nn.Module):
    """Channel gating (N,C,H,W) -> same, reduction ``r``."""

    def __init__(self, channels: int, r: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // r, 1),
                                nn.ReLU(inplace=True), nn.Conv2d(channels // r, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


def _patchwise(block: nn.Module, x: torch.Tensor, patch: int) -> torch.Tensor:
    """Apply ``block`` to each non-overlapping ``patch`` x ``patch`` window, folded back in place."""
    n, c, h, w = x.shape
    ph, pw = h // patch, w // patch
    windows = x.reshape(n, c, ph, patch, pw, patch).permute(0, 2, 4, 1, 3, 5).reshape(n * ph * pw, c, patch, patch)
    out = block(windows)
    return out.reshape(n, ph, pw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


class SFEM(nn.Module):
    """Semantic Feature Enhancement Module: (N, 256, h, w) -> (N, c_out, h, w)."""

    def __init__(self, c_out: int, channels: int = 256) -> None:
        super().__init__()
        self.nl_4x4 = NonLocalBlock(channels, channels // 2)
        self.nl_2x2 = NonLocalBlock(channels, channels // 2)
        self.nl_global = NonLocalBlock(channels, channels // 4)
        self.se = SqueezeExcite(3 * channels, 16)
        self.project = nn.Sequential(nn.Conv2d(3 * channels, c_out, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, 8)
        branches = [_patchwise(self.nl_4x4, pooled, 4), _patchwise(self.nl_2x2, pooled, 2), self.nl_global(pooled)]
        y = self.project(self.se(torch.cat(branches, dim=1)))
        return F.adaptive_avg_pool2d(y, x.shape[-2:])


class CrossNonLocal(nn.Module):
    """AGCM: every target position gathers source values; (src (N,Cs,hs,ws), tgt (N,Ct,ht,wt)) -> tgt shape."""

    def __init__(self, c_source: int, c_target: int, inner: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(c_source, inner, 1)
        self.value = nn.Conv2d(c_source, inner, 1)
        self.key = nn.Conv2d(c_target, inner, 1)
        self.out = nn.Sequential(nn.Conv2d(inner, c_target, 1), nn.BatchNorm2d(c_target))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n, _, h, w = target.shape
        q = self.query(source).flatten(2)                                 # (N, I, S)
        v = self.value(source).flatten(2)                                 # (N, I, S)
        k = self.key(target).flatten(2)                                   # (N, I, T)
        affinity = torch.softmax(q.transpose(1, 2) @ k, dim=-1)           # (N, S, T), over targets
        gathered = v @ affinity                                           # (N, I, T)
        return target + self.out(gathered.reshape(n, -1, h, w))


class DecoderBlock(nn.Sequential):
    """conv3x3 C->C/4, conv3x3 ->C_out (BN+ReLU each), bilinear x2: (N,C,h,w) -> (N,C_out,2h,2w)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(conv_bn_relu(c_in, c_in // 4), conv_bn_relu(c_in // 4, c_out),
                         nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))


def _side_head(c: int, c_mid: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(c, c_mid), nn.Dropout2d(0.1), nn.Conv2d(c_mid, 1, 1))


class EUNet(SegmentationModel):
    """EU-Net with a ResNet-34 encoder (see the module docstring for fidelity notes).

    Args:
        pretrained: torchvision ImageNet ResNet-34 weights (downloads).
        deep_supervision: return (main, d2, d3, d4, d5) logits in train mode.
    """

    def __init__(self, pretrained: bool = False, deep_supervision: bool = True) -> None:
        super().__init__()
        r = load_resnet(34, pretrained, "eunet")
        self.deep_supervision = deep_supervision
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4 = r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4
        self.skip = nn.ModuleList([conv_bn_relu(c, c, 1) for c in (64, 64, 128, 256)])  # e1..e4
        self.e5_reduce = conv_bn_relu(512, 256, 1)
        self.sfem = nn.ModuleList([SFEM(c) for c in (64, 64, 128, 256)])                # levels 1..4
        self.agcm = nn.ModuleList([CrossNonLocal(s, t, t // 2) for s, t in
                                   ((256, 64), (512, 64), (1024, 128), (512, 256))])     # levels 1..4
        self.nonlocal_dec = nn.ModuleList([NonLocalBlock(c, c // 2) for c in (64, 128, 256, 512)])
        self.block5 = DecoderBlock(512, 512)
        self.block4 = DecoderBlock(1024, 256)
        self.block3 = DecoderBlock(512, 128)
        self.block2 = DecoderBlock(256, 64)
        self.block1 = DecoderBlock(192, 64)
        self.head = _side_head(64, 32)
        self.side = nn.ModuleList([_side_head(c, c // 4) for c in (64, 128, 256, 512)])  # d2..d5

    def forward(self, x: torch.Tensor):
        """(N, 3, H, W) -> logits (N, 1, H, W); train mode with deep supervision: 5-tuple, main first."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"EUNet: input H and W must be multiples of 32, got {tuple(x.shape[-2:])}")
        size = x.shape[-2:]
        s1 = self.stem(x)
        s2 = self.layer1(self.maxpool(s1))
        s3 = self.layer2(s2)
        s4 = self.layer3(s3)
        e5 = self.layer4(s4)
        e1, e2, e3, e4 = (proj(s) for proj, s in zip(self.skip, (s1, s2, s3, s4)))
        ctx5 = self.e5_reduce(e5)
        d5 = self.block5(e5)                                               # 512 @H/16
        decoder, source = [d5], d5
        blocks = (self.block4, self.block3, self.block2, self.block1)
        for level, skip, block in zip((3, 2, 1, 0), (e4, e3, e2, e1), blocks):
            d = decoder[-1]
            context = _up_to(self.sfem[level](ctx5), skip.shape[-2:])
            comb = torch.cat([self.agcm[level](source, skip), self.nonlocal_dec[level](d), context], dim=1)
            decoder.append(block(comb))
            source = comb
        main = self.head(decoder[-1])
        if not (self.training and self.deep_supervision):
            return main
        # decoder = [d5, d4, d3, d2, d1]; side heads on d2..d5
        sides = [_up_to(head(d), size) for head, d in zip(self.side, (decoder[3], decoder[2], decoder[1], decoder[0]))]
        return (main, *sides)
