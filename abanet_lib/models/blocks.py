"""Building blocks shared by ABANet, its released-code variant and BASNet.

Everything here follows BASNet's released layer definitions (Qin et al., CVPR 2019) and the
attention gate of the ABANet paper (Figure 6), so that the three networks differ only in how
the blocks are wired together.

Shapes use N = batch, C = channels, H x W = input size (a multiple of 32).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet34
from torchvision.models.resnet import BasicBlock

#: The network downsamples five times (stages 2, 3, 4 stride 2, stages 5 and 6 max-pool), so
#: inputs must be multiples of 2**5.
SIZE_MULTIPLE = 32

#: BASNet's decoder channel table: encoder stage -> (input channels after the concat,
#: conv1 out, conv_m out, conv2 out, dilation of conv_m/conv2). Decoder stage "kd" combines
#: the upsampled output of stage (k+1)d (the bridge for 6d) with encoder skip h_k.
DECODER_CHANNELS: dict[int, tuple[int, int, int, int, int]] = {
    6: (1024, 512, 512, 512, 2),
    5: (1024, 512, 512, 512, 1),
    4: (1024, 512, 512, 256, 1),
    3: (512, 256, 256, 128, 1),
    2: (256, 128, 128, 64, 1),
    1: (128, 64, 64, 64, 1),
}

#: Channels of the encoder skips h_1..h_6.
ENCODER_CHANNELS: dict[int, int] = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512, 6: 512}


def upsample_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` (N, C, h, w) to the spatial size of ``reference``."""
    if x.shape[-2:] == reference.shape[-2:]:
        return x
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """3x3 conv (with bias, as in BASNet) + BatchNorm + ReLU; keeps the spatial size.

    Shapes: (N, in_channels, h, w) -> (N, out_channels, h, w).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderStage(nn.Module):
    """Three conv-BN-ReLU layers of one BASNet decoder stage (``conv1``, ``conv_m``, ``conv2``).

    Shapes: (N, in_channels, h, w) -> (N, out_channels, h, w). ``forward_mid`` also returns the
    output of the middle conv, which the released ABANet code uses as the gating signal.
    """

    def __init__(self, in_channels: int, mid1: int, mid2: int, out_channels: int,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, mid1)
        self.conv_m = ConvBNReLU(mid1, mid2, dilation)
        self.conv2 = ConvBNReLU(mid2, out_channels, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv_m(self.conv1(x)))


class AttentionGate(nn.Module):
    """Additive attention gate of ABANet (paper Figure 6).

    ``W_g`` (1x1, stride 1, + BN) on the decoder signal g, ``W_x`` (1x1, stride 2, + BN) on the
    skip x, ReLU of the sum, ``psi`` = 1x1 conv to one channel + BN + sigmoid, psi upsampled
    bilinearly to x's size, output ``x * psi``.

    Args:
        gating_channels: channels of g.
        skip_channels: channels of x.
        inter_channels: channels of W_g g and W_x x.

    Shapes:
        g: (N, gating_channels, h, w); x: (N, skip_channels, 2h, 2w) (any size whose stride-2
        subsampling equals (h, w)). Returns (gated x (N, skip_channels, 2h, 2w),
        psi (N, 1, 2h, 2w)).
    """

    def __init__(self, gating_channels: int, skip_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(gating_channels, inter_channels, 1),
                                 nn.BatchNorm2d(inter_channels))
        self.W_x = nn.Sequential(nn.Conv2d(skip_channels, inter_channels, 1, stride=2),
                                 nn.BatchNorm2d(inter_channels))
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wx = self.W_x(x)
        if wx.shape[-2:] != g.shape[-2:]:
            raise ValueError(
                f"AttentionGate: W_x(x) has size {tuple(wx.shape[-2:])} but g has "
                f"{tuple(g.shape[-2:])}; expected g at half the resolution of x"
            )
        psi = self.psi(F.relu(self.W_g(g) + wx))
        psi = upsample_like(psi, x)
        return x * psi, psi


class SideHead(nn.Module):
    """Deep-supervision head: 3x3 conv to one channel, bilinear upsampling to the input size.

    Shapes: (N, C, h, w) -> (N, 1, H, W) logits.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        y = self.conv(x)
        if y.shape[-2:] != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


class RefinementModule(nn.Module):
    """BASNet's residual refinement module (RRM).

    conv 1->64 (no BN); four encoder levels of conv3x3 64 + BN + ReLU, each followed by a
    2x2 max-pool (ceil mode); a bottom conv-BN-ReLU; four decoder levels (upsample x2, concat
    the same-level encoder feature, conv 128->64 + BN + ReLU); conv 64->1 gives a residual that
    is ADDED to the input logits.

    Shapes: (N, 1, H, W) coarse logits -> (N, 1, H, W) refined logits.
    """

    def __init__(self, in_channels: int = 1, width: int = 64, levels: int = 4) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = nn.ModuleList(ConvBNReLU(width, width) for _ in range(levels))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.bottom = ConvBNReLU(width, width)
        self.decoder = nn.ModuleList(ConvBNReLU(2 * width, width) for _ in range(levels))
        self.conv_out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, coarse_logits: torch.Tensor) -> torch.Tensor:
        hx = self.conv0(coarse_logits)
        skips = []
        for i, level in enumerate(self.encoder):
            hx = level(hx)
            skips.append(hx)
            hx = self.pool(hx)
        hx = self.bottom(hx)
        for level, skip in zip(self.decoder, reversed(skips)):
            hx = level(torch.cat((upsample_like(hx, skip), skip), dim=1))
        return coarse_logits + self.conv_out(hx)


class Encoder(nn.Module):
    """BASNet/ABANet encoder: 3x3 stem (no max-pool), ResNet-34 layer1-4, two extra stages.

    Stage k output h_k has ENCODER_CHANNELS[k] channels at resolution H / 2**(k-1).

    Shapes: (N, 3, H, W) -> list [h_1 (N,64,H,W), h_2 (N,128,H/2,W/2), h_3 (N,256,H/4,W/4),
    h_4 (N,512,H/8,W/8), h_5 (N,512,H/16,W/16), h_6 (N,512,H/32,W/32)].
    """

    def __init__(self) -> None:
        super().__init__()
        resnet = resnet34(weights=None)
        self.stem = ConvBNReLU(3, 64)
        self.stage1 = resnet.layer1
        self.stage2 = resnet.layer2
        self.stage3 = resnet.layer3
        self.stage4 = resnet.layer4
        self.stage5 = self._extra_stage()
        self.stage6 = self._extra_stage()

    @staticmethod
    def _extra_stage() -> nn.Sequential:
        return nn.Sequential(nn.MaxPool2d(2, 2, ceil_mode=True),
                             *(BasicBlock(512, 512) for _ in range(3)))

    def stages(self) -> list[nn.Module]:
        """The six stages in order (the stem is applied before stage 1)."""
        return [self.stage1, self.stage2, self.stage3, self.stage4, self.stage5, self.stage6]

    def resnet_layers(self) -> dict[str, nn.Module]:
        """The parts that carry torchvision ResNet-34 weights, by torchvision name."""
        return {"layer1": self.stage1, "layer2": self.stage2,
                "layer3": self.stage3, "layer4": self.stage4}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hx = self.stem(x)
        features = []
        for stage in self.stages():
            hx = stage(hx)
            features.append(hx)
        return features


class Bridge(nn.Sequential):
    """Three dilated (d=2) 3x3 conv-BN-ReLU layers of 512 channels.

    Shapes: (N, 512, H/32, W/32) -> (N, 512, H/32, W/32).
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__(*(ConvBNReLU(channels, channels, dilation=2) for _ in range(3)))


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE
                    ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (bottom/right) ``x`` (N, C, H, W) to the next multiple of ``multiple``.

    Returns the padded tensor and the original (H, W) for :func:`crop_to`. Reflection needs the
    padding to be smaller than the side; for very small inputs replicate padding is used.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop (N, C, H', W') to the top-left (N, C, size[0], size[1])."""
    return x[..., : size[0], : size[1]]


def crop_attention(attention: dict[int, torch.Tensor], size: tuple[int, int], full: torch.Size
                   ) -> dict[int, torch.Tensor]:
    """Detached attention maps cropped like the outputs.

    Args:
        attention: paper stage -> psi (N, 1, h_k, w_k) computed on the padded input.
        size: (H, W) of the unpadded input.
        full: (H', W') of the padded input.

    Returns:
        paper stage -> psi cropped to the share of (h_k, w_k) that covers the unpadded input.
    """
    return {s: crop_to(psi.detach(), _scaled(size, psi.shape[-2:], full)) for s, psi in attention.items()}


def _scaled(size: tuple[int, int], feature_size: torch.Size, full: torch.Size
            ) -> tuple[int, int]:
    """Crop size of a feature map of ``feature_size`` when the padded input is ``full``."""
    sh, sw = full[0] // feature_size[0], full[1] // feature_size[1]
    return (-(-size[0] // sh), -(-size[1] // sw))


def build_decoder() -> nn.ModuleDict:
    """Decoder stages ``stage6d`` .. ``stage1d`` (channels of :data:`DECODER_CHANNELS`), built 6d first."""
    return nn.ModuleDict({f"stage{k}d": DecoderStage(*DECODER_CHANNELS[k]) for k in range(6, 0, -1)})


def check_input(x: torch.Tensor, name: str) -> None:
    """Raise a clear error unless ``x`` is a float (N, 3, H, W) tensor."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected input of shape (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point image tensor, got {x.dtype}")
