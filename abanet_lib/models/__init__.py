"""Model factory: one naming scheme for ABANet and every baseline.

Names understood by :func:`create_model` (see :func:`list_models` for the full list):

* ``"abanet"``: the paper's network (kw ``attention_stages``, ``attention``, ``refine``,
  ``pretrained``, ``deep_supervision``), ``"abanet_official"``: the released-code graph,
  ``"basnet"``: BASNet (Qin et al. 2019).
* ``"smp:<Arch>:<encoder>"``: a segmentation_models_pytorch model, e.g. ``"smp:Unet:resnet50"``
  (archs :data:`SMP_ARCHS`, encoders :data:`SMP_ENCODERS`).
* ``"unet_plain"`` (Ronneberger 2015), ``"unet_din"`` and ``"unet_geng"`` (U-Net stand-ins for
  Din et al. 2020 and Geng et al. 2020), ``"grabcut"`` (OpenCV, no training),
  ``"maskrcnn"`` (torchvision Mask R-CNN, stand-in for Sola & Gera 2023).
* ``"photonet"``: the compact EfficientNet-Lite0 U-Net that ``predict`` ships (issue 13).
* ``"eunet"`` (EU-Net, ResNet-34), ``"dad"`` (DAD v1, ResNet-50), ``"einet"`` (a labelled
  stand-in on ResNet-50: EINet's architecture is not established).

Every model maps (N, 3, H, W) normalised images to logits (N, 1, H, W) in eval mode.
:data:`MODELS` maps each name to the class or builder function that :func:`create_model` calls.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from abanet_lib.models.abanet import ABANet
from abanet_lib.models.base import SegmentationModel, main_output
from abanet_lib.models.basnet import BASNet
from abanet_lib.models.dad import DAD
from abanet_lib.models.einet import EINetStandIn
from abanet_lib.models.eunet import EUNet
from abanet_lib.models.grabcut import GrabCutSegmenter
from abanet_lib.models.maskrcnn import MaskRCNNSegmenter
from abanet_lib.models.official import ABANetOfficial
from abanet_lib.models.photo_net import PhotoNet
from abanet_lib.models.smp_models import SmpSegmentationModel
from abanet_lib.models.unet_plain import build_unet_din, build_unet_geng, build_unet_plain

#: smp architectures offered (canonical spelling as in smp's class names).
SMP_ARCHS = ("Unet", "UnetPlusPlus", "MAnet", "Linknet", "DeepLabV3Plus", "PAN", "FPN", "PSPNet")
#: smp encoders offered (the paper's three backbones plus ResNet-34 for cheap runs).
SMP_ENCODERS = ("vgg19", "resnet50", "efficientnet-b7", "resnet34")

#: Factory name -> the class or function that builds it (called with the factory's keywords).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "abanet": ABANet,
    "abanet_official": ABANetOfficial,
    "basnet": BASNet,
    "unet_plain": build_unet_plain,
    "unet_din": build_unet_din,
    "unet_geng": build_unet_geng,
    "grabcut": GrabCutSegmenter,
    "maskrcnn": MaskRCNNSegmenter,
    "eunet": EUNet,
    "dad": DAD,
    "einet": EINetStandIn,
    "photonet": PhotoNet,
}

#: Factory name -> one-line description (same keys and order as :data:`MODELS`).
DESCRIPTIONS: dict[str, str] = {
    "abanet": "ABANet as described in the paper: BASNet-style ResNet-34 encoder, attention gates "
              "on decoder stages 4-6, residual refinement, 8 deep-supervised outputs",
    "abanet_official": "ABANet as in the authors' released code (gates on the 3 finest skips, "
                       "gated skips replace the decoder path, ~3.1 M unused parameters)",
    "basnet": "BASNet (Qin et al. 2019): ResNet-34 encoder, 6-stage decoder, residual refinement, "
              "8 deep-supervised outputs",
    "unet_plain": "U-Net (Ronneberger 2015): 4 down/4 up, 64..1024 ch, conv-BN-ReLU x2, "
                  "transposed-conv up, padded convs",
    "unet_din": "stand-in for Din et al. 2020 (stage-1 net not published): 5-level U-Net 32..1024 ch, "
                "InstanceNorm, LeakyReLU 0.2, after an unofficial re-implementation",
    "unet_geng": "stand-in for Geng et al. 2020 (segmentation net not published): plain U-Net "
                 "(Ronneberger 2015)",
    "grabcut": "GrabCut (OpenCV, no training; stand-in for Zhang et al. 2022) initialised from a "
               "lower-face rectangle (fixed, or fitted on training masks)",
    "maskrcnn": "Mask R-CNN ResNet-50-FPN (torchvision; stand-in for Sola & Gera 2023), best "
                "instance's mask as the map",
    "eunet": "EU-Net (Patel et al. 2021), ResNet-34: SFEM + AGCM decoder, 5 deep-supervised outputs",
    "dad": "DAD v1 (Li et al. 2022), ResNet-50: guide map, FEM middle features, two "
           "difference-aware extractors",
    "einet": "STAND-IN for EINet (architecture not established): ResNet-50 + edge-guided "
             "top-down decoder, 4 deep-supervised outputs",
    "photonet": "PhotoNet: EfficientNet-Lite0 encoder + light U-Net decoder (3.6 M parameters), "
                "the compact model predict ships for whole photos (issue 13)",
}

#: (arch, encoder) pairs that smp cannot build, with the reason.
SMP_INVALID = {
    ("DeepLabV3Plus", "vgg19"): "vgg has no dilated variant (max-pooling), so DeepLabV3Plus "
                                "cannot reach output stride 16 with it; use a resnet or efficientnet",
}


def list_models() -> list[str]:
    """Every valid factory name, in a stable order (named models, then smp arch x encoder)."""
    names = list(MODELS)
    for arch in SMP_ARCHS:
        for enc in SMP_ENCODERS:
            if (arch, enc) not in SMP_INVALID:
                names.append(f"smp:{arch}:{enc}")
    return names


def parse_smp_name(name: str) -> tuple[str, str]:
    """Split ``"smp:<Arch>:<encoder>"`` into the canonical (arch, encoder); clear error if bad."""
    parts = name.split(":")
    if len(parts) != 3 or parts[0] != "smp":
        raise ValueError(f"model name {name!r}: expected 'smp:<Arch>:<encoder>', e.g. 'smp:Unet:resnet34'")
    arch_in, enc = parts[1], parts[2].lower()
    arch = {a.lower(): a for a in SMP_ARCHS}.get(arch_in.lower().replace("+", "plus"))
    if arch is None:
        raise ValueError(f"model name {name!r}: unknown smp architecture {arch_in!r}; "
                         f"valid ones: {', '.join(SMP_ARCHS)}")
    if enc not in SMP_ENCODERS:
        raise ValueError(f"model name {name!r}: unknown encoder {parts[2]!r}; "
                         f"valid ones: {', '.join(SMP_ENCODERS)}")
    if (arch, enc) in SMP_INVALID:
        raise ValueError(f"model name {name!r}: {SMP_INVALID[(arch, enc)]}")
    return arch, enc


def create_model(name: str, **kw: Any) -> nn.Module:
    """Build a model by factory name.

    Args:
        name: one of :func:`list_models` (smp names are matched case-insensitively on the arch).
        **kw: passed to the model's constructor (e.g. ``pretrained=True``,
            ``attention_stages=(4, 5, 6)``, ``base_channels=32``, ``iterations=5``).

    Returns:
        An ``nn.Module`` following :class:`~abanet_lib.models.base.SegmentationModel`.

    Raises:
        ValueError: unknown name or invalid arch/encoder combination (message lists valid ones).
        RuntimeError: ``pretrained=True`` while the weights cannot be downloaded (offline).
    """
    if not isinstance(name, str):
        raise TypeError(f"create_model: name must be a string, got {type(name).__name__}")
    if name.startswith("smp:"):
        arch, enc = parse_smp_name(name)
        return SmpSegmentationModel(arch, enc, **kw)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}, "
                         f"or 'smp:<Arch>:<encoder>' with Arch in {SMP_ARCHS} and encoder in {SMP_ENCODERS}")
    return MODELS[name](**kw)


def describe_model(name: str) -> str:
    """One-line description of a factory name."""
    if name.startswith("smp:"):
        arch, enc = parse_smp_name(name)
        extra = " (encoder_output_stride=32: vgg cannot dilate)" if (arch, enc) == ("PAN", "vgg19") else ""
        return f"segmentation_models_pytorch {arch} with a {enc} encoder, 1 output class{extra}"
    if name not in DESCRIPTIONS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models()[:len(MODELS)])}, smp:*")
    return DESCRIPTIONS[name]


__all__ = [
    "DESCRIPTIONS", "MODELS", "SMP_ARCHS", "SMP_ENCODERS", "SMP_INVALID", "SegmentationModel",
    "create_model", "describe_model", "list_models", "main_output", "parse_smp_name",
]
