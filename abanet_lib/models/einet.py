"""STAND-IN for EINet (Li & Jiao, J. Electronic Imaging 2022): its architecture is not established.

The comparison notes found no code, full text or secondary description of EINet; only its
title (camouflaged-object detection on a Pyramid Vision Transformer) and ABANet's Table 2
(backbone ResNet50) are known. This module is therefore NOT EINet. It is a generic,
clearly-labelled stand-in of the same family, so that a Table 2 row can be filled with
*something* on the stated backbone:

* torchvision ResNet-50 encoder (layer1..4, 256/512/1024/2048 ch at H/4..H/32);
* every level reduced to 64 channels (1x1 CBR + 3x3 CBR);
* an "edge" branch on layer1 (3x3 CBRs) whose features gate every decoder level
  (x * (1 + sigmoid(edge-attention))), the "edge-guided" ingredient common to camouflaged-
  object detectors; no edge supervision (there are no edge labels in the data);
* top-down decoder: d4 = r4, d_k = CBR(r_k + up(d_{k+1})) gated by the edge features;
  fused d1 at H/4, logits upsampled to the input.

Train mode returns (main, side_2, side_3, side_4), all upsampled to the input size.
Shapes: (N, 3, H, W), H and W multiples of 32 -> logits (N, 1, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from abanet_lib.models.base import SegmentationModel
from abanet_lib.models.eunet import conv_bn_relu, load_resnet


def _up_to(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class EINetStandIn(SegmentationModel):
    """Edge-guided top-down decoder on ResNet-50: a labelled stand-in, not EINet.

    Args:
        pretrained: torchvision ImageNet ResNet-50 weights (downloads).
        deep_supervision: return (main, side_2, side_3, side_4) in train mode.
        channels: decoder width.
    """

    def __init__(self, pretrained: bool = False, deep_supervision: bool = True, channels: int = 64) -> None:
        super().__init__()
        r = load_resnet(50, pretrained, "einet")
        self.deep_supervision = deep_supervision
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layers = nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])
        c = channels
        self.reduce = nn.ModuleList([nn.Sequential(conv_bn_relu(ci, c, 1), conv_bn_relu(c, c))
                                     for ci in (256, 512, 1024, 2048)])
        self.edge = nn.Sequential(conv_bn_relu(256, c), conv_bn_relu(c, c))
        self.edge_gate = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for _ in range(4)])
        self.fuse = nn.ModuleList([conv_bn_relu(c, c) for _ in range(3)])      # levels 1..3
        self.heads = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for _ in range(4)])

    def forward(self, x: torch.Tensor):
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"EINetStandIn: input H and W must be multiples of 32, got {tuple(x.shape[-2:])}")
        size = x.shape[-2:]
        feats, y = [], self.stem(x)
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        reduced = [red(f) for red, f in zip(self.reduce, feats)]
        edge = self.edge(feats[0])

        def gated(level: int, d: torch.Tensor) -> torch.Tensor:
            attention = torch.sigmoid(self.edge_gate[level](_up_to(edge, d.shape[-2:])))
            return d * (1 + attention)

        decoded = [gated(3, reduced[3])]                                   # d4 @H/32
        for level in (2, 1, 0):
            d = self.fuse[level](reduced[level] + _up_to(decoded[-1], reduced[level].shape[-2:]))
            decoded.append(gated(level, d))
        # decoded = [d4, d3, d2, d1]
        main = _up_to(self.heads[0](decoded[3]), size)
        if not (self.training and self.deep_supervision):
            return main
        sides = [_up_to(self.heads[k](decoded[3 - k]), size) for k in (1, 2, 3)]
        return (main, *sides)
