"""ImageNet weights for the ResNet-34 part of the BASNet/ABANet encoder.

The weights are torchvision's ``ResNet34_Weights.IMAGENET1K_V1`` (file ``resnet34-b627a593.pth``).
They are read from the torch hub cache (``torch.hub.get_dir()/checkpoints``; set ``TORCH_HOME``
to move it). When the file is missing they are downloaded only if ``allow_download`` is True
(or the environment variable ``ABANET_ALLOW_DOWNLOAD=1``); otherwise a clear error names the
file path and URL so that the file can be placed there by hand.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

RESNET34_FILENAME = "resnet34-b627a593.pth"
RESNET34_URL = f"https://download.pytorch.org/models/{RESNET34_FILENAME}"
#: torchvision ResNet-34 parts that the encoder reuses.
RESNET34_PARTS = ("layer1", "layer2", "layer3", "layer4")


class PretrainedWeightsError(FileNotFoundError):
    """The ImageNet checkpoint is not in the cache and downloading is not allowed/possible."""


def resnet34_checkpoint_path() -> Path:
    """Where torch hub keeps the ResNet-34 checkpoint (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET34_FILENAME


def _download_allowed(allow_download: bool | None) -> bool:
    if allow_download is not None:
        return allow_download
    return os.environ.get("ABANET_ALLOW_DOWNLOAD", "0") == "1"


def resnet34_state_dict(allow_download: bool | None = None) -> dict[str, torch.Tensor]:
    """torchvision ResNet-34 IMAGENET1K_V1 state dict from the hub cache (or the internet).

    Raises:
        PretrainedWeightsError: file missing and download not allowed or failed.
    """
    path = resnet34_checkpoint_path()
    if not path.is_file():
        if not _download_allowed(allow_download):
            raise PretrainedWeightsError(
                f"ResNet-34 ImageNet weights not found at {path}. Download {RESNET34_URL} "
                f"into that file, or allow downloading (allow_download=True or "
                f"ABANET_ALLOW_DOWNLOAD=1), or use pretrained=False."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(RESNET34_URL, str(path), progress=False)
        except Exception as exc:  # network errors come in many types
            raise PretrainedWeightsError(
                f"could not download {RESNET34_URL} to {path}: {exc}"
            ) from exc
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "layer1.0.conv1.weight" not in state:
        raise PretrainedWeightsError(
            f"{path} is not a torchvision ResNet-34 state dict (no 'layer1.0.conv1.weight')"
        )
    return state


def load_resnet34_imagenet(model_part: nn.Module, allow_download: bool | None = None) -> int:
    """Copy ResNet-34 ImageNet weights into ``model_part``.

    Args:
        model_part: an ``blocks.Encoder`` (anything with ``resnet_layers()`` returning
            {"layer1": module, ...}) or a module whose children are named layer1..layer4
            (e.g. a torchvision ResNet-34).
        allow_download: see module docstring; None reads ``ABANET_ALLOW_DOWNLOAD``.

    Returns:
        Number of tensors loaded (parameters and BN buffers).

    Raises:
        PretrainedWeightsError: checkpoint unavailable.
        ValueError: ``model_part`` has no ResNet-34 layers or shapes do not match.
    """
    state = resnet34_state_dict(allow_download)
    if hasattr(model_part, "resnet_layers"):
        layers = model_part.resnet_layers()
    else:
        layers = {n: m for n, m in model_part.named_children() if n in RESNET34_PARTS}
    if not layers:
        raise ValueError(
            f"load_resnet34_imagenet: {type(model_part).__name__} has none of {RESNET34_PARTS}"
        )
    loaded = 0
    for name, module in layers.items():
        prefix = name + "."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"ResNet-34 {name} weights do not fit the model: {exc}") from exc
        loaded += len(part)
    return loaded
