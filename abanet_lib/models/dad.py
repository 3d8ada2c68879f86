"""DAD v1, Difference-Aware Decoder (Li, He, Zhang, arXiv 2210.15156), ResNet-50 encoder.

Built from the comparison notes (early inference-only release of `Henryjiepanli/DAD`, the
version ABANet cites; not copied). Faithful:

* torchvision ResNet-50, layer1..4 = 256/512/1024/2048 ch at H/4..H/32.
* FEM (C_in -> C): {1x1 CBR}, {1x1 CBR, 3x3 CBRs dilation 4, 8, 16, 32},
  {1x1 CBR, 3x3 CBRs dilation 2, 4, 8, 16}; concat -> 3x3 CBR to C; + 1x1-CBR residual; ReLU.
* Stage A (guide map G @H/4): FEM(2048 -> 256) on layer4 -> DANet-style dual attention head
  (two 3x3 CBRs 256 -> 64, position attention (C/8 query/key, gamma from 0) and channel
  attention (gamma from 0), a 3x3 CBR after each, summed, Dropout 0.5); layer1 -> 1x1 conv
  256 -> 48 +BN+ReLU (the release's 64-input bug fixed as in its ResNeXt variant); concat 112
  -> 3x3 256 +BN+ReLU +Dropout 0.5 -> 3x3 256 +BN+ReLU +Dropout 0.1 -> 1x1 -> 1.
* Stage B (F, 96 ch @H/8): layer3 -> 1x1 CBR 1024 -> 128 -> FEM(128 -> 32), upsampled;
  layer2 -> 1x1 CBR 512 -> 128 -> FEM; layer1 -> 3x3 stride-2 CBR 256 -> 128 -> FEM; concat.
* Stage C: two difference-aware extractors, R1 = DAE1(F, G), R2 = DAE2(F, R1): F upsampled to
  the map's size; channel-affinity "difference guidance" with the map replicated over channels
  (gamma from 0; as in the release this reduces to adding gamma x the channel mean);
  fg = F * sigmoid(map) * alpha, bg = F * (1 - sigmoid(map)) * beta (alpha, beta from 1), each
  -> BN -> ReLU; (fg - bg) -> 3x3 conv 96 -> 96 -> 3x3 conv 96 -> 1.
* Outputs G, R1, R2 upsampled bilinearly to the input; R2 is the prediction.

Assumptions / departures: BN momentum is PyTorch's default 0.1 (the release's 0.999 makes the
running statistics follow only the latest batch); the v1 loss and recipe are not established
(the later trainer's structure loss is not part of the model; the project's common loss is
applied to every output). Train mode returns (R2, R1, G), main first.

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


class FEM(nn.Module):
    """Field expansion module: (N, C_in, h, w) -> (N, C, h, w)."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.branch0 = conv_bn_relu(c_in, c, 1)
        self.branch1 = nn.Sequential(conv_bn_relu(c_in, c, 1), *[conv_bn_relu(c, c, 3, dilation=d) for d in (4, 8, 16, 32)])
        self.branch2 = nn.Sequential(conv_bn_relu(c_in, c, 1), *[conv_bn_relu(c, c, 3, dilation=d) for d in (2, 4, 8, 16)])
        self.fuse = conv_bn_relu(3 * c, c, 3)
        self.residual = conv_bn_relu(c_in, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fuse(torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], dim=1))
        return F.relu(y + self.residual(x))


class PositionAttention(nn.Module):
    """DANet position attention, gamma from 0: (N, C, h, w) -> same."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.query, self.key = nn.Conv2d(c, c // 8, 1), nn.Conv2d(c, c // 8, 1)
        self.value = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)                      # (N, HW, C/8)
        attn = torch.softmax(q @ self.key(x).flatten(2), dim=-1)          # (N, HW, HW)
        y = (self.value(x).flatten(2) @ attn.transpose(1, 2)).reshape(n, c, h, w)
        return self.gamma * y + x


class ChannelAttention(nn.Module):
    """DANet channel attention, gamma from 0: (N, C, h, w) -> same."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.flatten(2)                                               # (N, C, HW)
        energy = flat @ flat.transpose(1, 2)                              # (N, C, C)
        energy = energy.amax(dim=-1, keepdim=True) - energy               # DANet's max-subtracted form
        y = (torch.softmax(energy, dim=-1) @ flat).reshape(n, c, h, w)
        return self.gamma * y + x


class DualAttentionHead(nn.Module):
    """(N, 256, h, w) -> (N, 64, h, w): position and channel attention paths, summed."""

    def __init__(self, c_in: int = 256, c: int = 64) -> None:
        super().__init__()
        self.pos = nn.Sequential(conv_bn_relu(c_in, c), PositionAttention(c), conv_bn_relu(c, c))
        self.chan = nn.Sequential(conv_bn_relu(c_in, c), ChannelAttention(), conv_bn_relu(c, c))
        self.drop = nn.Dropout2d(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pos(x) + self.chan(x))


class DifferenceAwareExtractor(nn.Module):
    """DAE: refine a map with features; (F (N,C,h,w), map (N,1,H',W')) -> logits (N,1,H',W')."""

    def __init__(self, c: int = 96) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.alpha = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.ones(1))
        self.fg_post = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.bg_post = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.out = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        feat = _up_to(feat, prior.shape[-2:])
        n, c, h, w = feat.shape
        # difference guidance: channel affinity between F and the map replicated over channels
        flat = feat.flatten(2)                                            # (N, C, HW)
        guide = prior.flatten(2).expand(n, c, h * w)                      # (N, C, HW)
        affinity = torch.softmax(flat @ guide.transpose(1, 2), dim=-1)    # (N, C, C), rows constant
        feat = self.gamma * (affinity @ flat).reshape(n, c, h, w) + feat
        p = torch.sigmoid(prior)
        fg = self.fg_post(feat * p * self.alpha)
        bg = self.bg_post(feat * (1 - p) * self.beta)
        return self.out(fg - bg)


class DAD(SegmentationModel):
    """DAD v1 with a ResNet-50 encoder (see the module docstring for fidelity notes).

    Args:
        pretrained: torchvision ImageNet ResNet-50 weights (downloads).
        deep_supervision: return (R2, R1, G) in train mode.
    """

    def __init__(self, pretrained: bool = False, deep_supervision: bool = True) -> None:
        super().__init__()
        r = load_resnet(50, pretrained, "dad")
        self.deep_supervision = deep_supervision
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        # stage A: guide map
        self.fem4 = FEM(2048, 256)
        self.dual_head = DualAttentionHead(256, 64)
        self.low_reduce = conv_bn_relu(256, 48, 1)
        self.guide_head = nn.Sequential(conv_bn_relu(112, 256), nn.Dropout(0.5),
                                        conv_bn_relu(256, 256), nn.Dropout(0.1), nn.Conv2d(256, 1, 1))
        nn.init.kaiming_normal_(self.guide_head[-1].weight)
        # stage B: middle features
        self.mid3 = nn.Sequential(conv_bn_relu(1024, 128, 1), FEM(128, 32))
        self.mid2 = nn.Sequential(conv_bn_relu(512, 128, 1), FEM(128, 32))
        self.mid1 = nn.Sequential(conv_bn_relu(256, 128, 3, stride=2), FEM(128, 32))
        # stage C: cascade of difference-aware extractors
        self.dae1 = DifferenceAwareExtractor(96)
        self.dae2 = DifferenceAwareExtractor(96)

    def forward(self, x: torch.Tensor):
        """(N, 3, H, W) -> logits (N, 1, H, W); train mode with deep supervision: (R2, R1, G)."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"DAD: input H and W must be multiples of 32, got {tuple(x.shape[-2:])}")
        size = x.shape[-2:]
        l1 = self.layer1(self.stem(x))
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        head = _up_to(self.dual_head(self.fem4(l4)), l1.shape[-2:])
        guide = self.guide_head(torch.cat([head, self.low_reduce(l1)], dim=1))       # (N,1,H/4,W/4)
        mid = torch.cat([_up_to(self.mid3(l3), l2.shape[-2:]), self.mid2(l2), self.mid1(l1)], dim=1)
        r1 = self.dae1(mid, guide)
        r2 = self.dae2(mid, r1)
        main = _up_to(r2, size)
        if not (self.training and self.deep_supervision):
            return main
        return main, _up_to(r1, size), _up_to(guide, size)
