"""Plain U-Net (Ronneberger et al. 2015) and the two U-Net stand-ins of Table 4.

Faithful to Ronneberger: 4 down / 4 up steps, 64..1024 channels, two 3x3 convs per level,
2x2 max-pool down, 2x2 transposed-conv up, skip concatenation, 1x1 head.
Departures (standard modern practice): padded convs (output size = input size, no
cropping), BatchNorm after each conv, one logit channel instead of a 2-class softmax.

Table 4 stand-ins (the comparison notes say neither segmentation network is published):

* ``unet_din`` (Din et al. 2020): after the *unofficial* re-implementation
  ``daviddirethucus/Face-Mask_Inpainting``: 5 down steps, 32..1024 channels, InstanceNorm,
  LeakyReLU 0.2, transposed-conv up. Its tanh output and adversarial training are replaced by
  logits and the project's common loss. Input sides must be multiples of 32, at least 64.
* ``unet_geng`` (Geng et al. 2020): the plain U-Net above ("a U-Net-based segmentation network").
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from abanet_lib.models.base import SegmentationModel


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"UNet: norm must be 'batch' or 'instance', got {kind!r}")


def _act(negative_slope: float) -> nn.Module:
    return nn.LeakyReLU(negative_slope, inplace=True) if negative_slope > 0 else nn.ReLU(inplace=True)


class DoubleConv(nn.Sequential):
    """Two (3x3 conv, padding 1) -> norm -> activation; (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch", negative_slope: float = 0.0) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _norm(norm, c_out), _act(negative_slope),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out), _act(negative_slope),
        )


class UNet(SegmentationModel):
    """Encoder-decoder U-Net with ``depth`` pooling steps.

    Args:
        base_channels: channels of the first level (64 in Ronneberger); level i has
            ``base_channels * 2**i`` channels, the bottleneck ``base_channels * 2**depth``.
        depth: number of 2x2 max-pool steps (4 in Ronneberger); input sides must be
            multiples of ``2**depth``.
        norm: ``"batch"`` or ``"instance"``.
        negative_slope: 0 for ReLU, > 0 for LeakyReLU.
        pretrained: accepted for a uniform factory signature; there are no pretrained weights,
            so True only warns and the network starts from scratch (as Ronneberger's did).

    Shapes: (N, 3, H, W) -> logits (N, 1, H, W).
    """

    def __init__(self, base_channels: int = 64, depth: int = 4, norm: str = "batch",
                 negative_slope: float = 0.0, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:  # the paper scale asks every model for ImageNet weights; none exist here
            warnings.warn("UNet: there are no pretrained weights for this U-Net (Ronneberger and the "
                          "Table 4 stand-ins train from scratch); building it from scratch", stacklevel=2)
        if base_channels < 1 or depth < 1:
            raise ValueError(f"UNet: base_channels and depth must be >= 1, got {base_channels}, {depth}")
        self.depth = depth
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = 3
        for w in widths[:-1]:
            self.down.append(DoubleConv(c_in, w, norm, negative_slope))
            c_in = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1], norm, negative_slope)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w_deep, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_deep, w, kernel_size=2, stride=2))
            self.up_conv.append(DoubleConv(2 * w, w, norm, negative_slope))
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) with H, W multiples of ``2**depth`` -> logits (N, 1, H, W)."""
        step = 2 ** self.depth
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"UNet(depth={self.depth}): input H and W must be multiples of {step}, "
                             f"got {tuple(x.shape[-2:])}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips)):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def build_unet_plain(base_channels: int = 64, pretrained: bool = False) -> UNet:
    """Ronneberger U-Net (4 down / 4 up, 64..1024 ch); ``base_channels`` shrinks it."""
    return UNet(base_channels=base_channels, depth=4, norm="batch", pretrained=pretrained)


def build_unet_din(base_channels: int = 32, pretrained: bool = False) -> UNet:
    """Stand-in for Din et al. 2020: 5 down steps, 32..1024 ch, InstanceNorm, LeakyReLU 0.2."""
    return UNet(base_channels=base_channels, depth=5, norm="instance", negative_slope=0.2,
                pretrained=pretrained)


def build_unet_geng(base_channels: int = 64, pretrained: bool = False) -> UNet:
    """Stand-in for Geng et al. 2020: the plain Ronneberger U-Net."""
    return build_unet_plain(base_channels=base_channels, pretrained=pretrained)
