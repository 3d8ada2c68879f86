"""BASNet (Qin et al., CVPR 2019): ABANet's segmentation + refinement network without gates.

The graph equals ``ABANet(attention=False, refine=True)``: BASNet's encoder (3x3 stem,
ResNet-34 layer1-4, two extra stages of three BasicBlocks), dilated bridge, six decoder stages
that concatenate the upsampled decoder output with the encoder skip, eight side outputs and the
residual refinement module. Parameter count: 87,060,360 (refinement 482,177), matching the
87.06 M / 0.48 M of the comparison-model notes.

Released-code quirk: BASNet's stage 6d applies stage 5d's last BatchNorm (``bn5d_2``) after its
own last conv, so its own BN (1,024 parameters) is built but never used and the 5d BN is shared
by two stages. ``share_stage6_bn=True`` reproduces this; the default (False) uses each stage's
own BN, which has the same parameter count and is what the BASNet paper describes.

Outputs are logits (the released code returns sigmoid probabilities).
"""
from __future__ import annotations

import torch

from abanet_lib.models.abanet import ABANet


class BASNet(ABANet):
    """BASNet: ABANet without attention gates, with the refinement module.

    Args:
        pretrained: load torchvision's ResNet-34 ImageNet weights into encoder stages 1-4.
        share_stage6_bn: reproduce the released code's BN sharing between stages 6d and 5d.
        deep_supervision: return all eight outputs in train mode.
    """

    def __init__(self, pretrained: bool = False, share_stage6_bn: bool = False,
                 deep_supervision: bool = True) -> None:
        super().__init__(attention_stages=(), attention=False, refine=True,
                         pretrained=pretrained, deep_supervision=deep_supervision)
        self.share_stage6_bn = share_stage6_bn

    def _decoder_stage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        if k == 6 and self.share_stage6_bn:
            return stage6d_with_shared_bn(self.decoder, x)
        return super()._decoder_stage(k, x)


def stage6d_with_shared_bn(decoder, x: torch.Tensor) -> torch.Tensor:
    """Stage 6d as in BASNet's code: its last conv is followed by stage 5d's last BN + ReLU.

    Args:
        decoder: ModuleDict with ``stage6d`` and ``stage5d`` (``DecoderStage`` instances).
        x: (N, 1024, H/32, W/32) concatenated bridge and h6.

    Returns:
        (N, 512, H/32, W/32).
    """
    s6, s5 = decoder["stage6d"], decoder["stage5d"]
    hx = s6.conv_m(s6.conv1(x))
    conv, _unused_bn, relu = s6.conv2
    return relu(s5.conv2[1](conv(hx)))
