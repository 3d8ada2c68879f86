"""segmentation_models_pytorch baselines behind the project's model interface.

The paper trains Unet, Unet++, MAnet, Linknet, DeepLabV3+ and PAN from smp with VGG19,
ResNet-50 and EfficientNet-b7 encoders (Table 2); FPN, PSPNet and ResNet-34 are offered too.
Weights: smp downloads ImageNet encoder weights from the Hugging Face Hub, so ``pretrained``
is False by default (offline scales) and ``pretrained=True`` without a cached copy fails with
a clear message (:func:`pretrained_weights_guard`).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from abanet_lib.models.base import SegmentationModel


@contextlib.contextmanager
def pretrained_weights_guard(model_name: str, source: str) -> Iterator[None]:
    """Turn a failed weight download into a RuntimeError that says what to do.

    Args:
        model_name: factory name, for the message.
        source: where the weights come from (e.g. "the Hugging Face Hub (smp-hub)").
    """
    try:
        yield
    except Exception as err:  # network, cache and hub errors all look different
        raise RuntimeError(
            f"{model_name}: pretrained=True needs ImageNet weights from {source}, but loading them "
            f"failed ({type(err).__name__}: {err}). This machine is probably offline: fill the "
            f"weight cache on a machine with internet (HF_HOME / TORCH_HOME) or use pretrained=False."
        ) from err


class SmpSegmentationModel(SegmentationModel):
    """A segmentation_models_pytorch model with one output channel (logits).

    Args:
        arch: canonical smp architecture (``"Unet"``, ``"UnetPlusPlus"``, ``"MAnet"``,
            ``"Linknet"``, ``"DeepLabV3Plus"``, ``"PAN"``, ``"FPN"``, ``"PSPNet"``).
        encoder: ``"vgg19"``, ``"resnet50"``, ``"efficientnet-b7"`` or ``"resnet34"``.
        pretrained: load smp's ImageNet encoder weights (downloads; see module docstring).
        **smp_kwargs: passed to ``smp.create_model`` (e.g. ``decoder_channels``).

    Input H and W must be multiples of 32 (smp checks this). PAN with vgg19 is built with
    ``encoder_output_stride=32`` because vgg cannot be dilated. PAN's feature-pyramid attention
    pools its deepest map three more times, so it needs sides >= 8 x output stride (128 at
    stride 16, 256 at stride 32); smaller inputs (smoke scale) are zero-padded (the mean colour
    after normalisation) up to that size and the logits cropped back: a small-input convenience,
    not part of PAN.
    """

    def __init__(self, arch: str, encoder: str, pretrained: bool = False, **smp_kwargs) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        if arch == "DeepLabV3Plus" and encoder.startswith("vgg"):
            raise ValueError(f"smp:{arch}:{encoder}: vgg has no dilated variant (max-pooling), so "
                             "DeepLabV3Plus cannot reach output stride 16 with it; use a resnet or efficientnet")
        if arch == "PAN" and encoder.startswith("vgg"):
            smp_kwargs.setdefault("encoder_output_stride", 32)
        self.arch, self.encoder_name, self.pretrained = arch, encoder, bool(pretrained)
        name = f"smp:{arch}:{encoder}"
        weights = "imagenet" if pretrained else None
        guard = (pretrained_weights_guard(name, "the Hugging Face Hub (smp-hub)")
                 if pretrained else contextlib.nullcontext())
        with guard:
            self.net = smp.create_model(arch, encoder_name=encoder, encoder_weights=weights,
                                        in_channels=3, classes=1, **smp_kwargs)
        # smallest side the network accepts (PAN's pyramid attention pools 3 more times)
        self.min_side = 8 * smp_kwargs.get("encoder_output_stride", 16) if arch == "PAN" else 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, 3, H, W), H and W multiples of 32, to logits (N, 1, H, W)."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"smp:{self.arch}:{self.encoder_name}: input H and W must be multiples "
                             f"of 32, got {tuple(x.shape[-2:])}")
        h, w = x.shape[-2:]
        if h >= self.min_side and w >= self.min_side:
            return self.net(x)
        padded = nn.functional.pad(x, (0, max(0, self.min_side - w), 0, max(0, self.min_side - h)))
        return self.net(padded)[..., :h, :w]
