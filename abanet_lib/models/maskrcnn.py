"""Mask R-CNN as a binary segmenter: the stand-in for Sola & Gera 2023 (Table 4).

ABANet attributes a Mask R-CNN stage to Sola & Gera, but their repository reads precomputed
maps, so backbone, pretraining and fine-tuning are not established. We use torchvision's
``maskrcnn_resnet50_fpn`` (2 classes: background, face mask), an assumption.

* Training (:meth:`MaskRCNNSegmenter.training_loss`): each image's mask becomes one instance
  (its bounding box + the mask); images with an empty mask get no instance. The loss is the
  sum of torchvision's loss dict (RPN objectness + box, classifier, box regression, mask);
  the project's segmentation criterion is not used.
* Prediction (``forward``): the mask probability of the highest-scoring detection, turned
  into logits; no detection gives -20 everywhere (sigmoid ~ 2e-9).
* Only the best detection is used, so ``box_detections_per_img`` defaults to 1 (torchvision:
  100): the kept detection is the same (detections are sorted by score after NMS), and the
  mask head no longer runs on 99 discarded boxes (evaluation: 52 -> ~2 GFLOP per 64x64 image,
  counted with ``torch.utils.flop_counter``).
* Table 4 trains with ``box_batch_size_per_image=64`` (torchvision: 512, sized for COCO's many
  objects per 800-px image): each crop holds one instance, and the mask head runs on every
  positive sampled RoI (a quarter of them), so 512 made training 4x the cost of ABANet's.
* The internal transform neither rescales (min/max size follow each batch's input size) nor
  re-normalises (inputs are already ImageNet-normalised, which is what torchvision's weights
  expect after its own normalisation).
"""
from __future__ import annotations

import contextlib

import torch

from abanet_lib.models.base import SegmentationModel
from abanet_lib.models.smp_models import pretrained_weights_guard

#: logit used where nothing was detected
NO_DETECTION_LOGIT = -20.0


def masks_to_targets(masks: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """One instance per non-empty mask.

    Args:
        masks: (N, 1, H, W) float in {0, 1}.

    Returns:
        N dicts with ``boxes`` (K, 4) float xyxy, ``labels`` (K,) int64 (1 = face mask) and
        ``masks`` (K, H, W) uint8, K = 1 for a non-empty mask, 0 otherwise.
    """
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks_to_targets: expected masks (N, 1, H, W), got {tuple(masks.shape)}")
    targets = []
    h, w = masks.shape[-2:]
    for m in masks[:, 0] > 0.5:
        if m.any():
            ys, xs = torch.nonzero(m, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None]
            targets.append({"boxes": box, "labels": torch.ones(1, dtype=torch.int64, device=m.device),
                            "masks": m[None].to(torch.uint8)})
        else:
            targets.append({"boxes": torch.zeros(0, 4, device=m.device),
                            "labels": torch.zeros(0, dtype=torch.int64, device=m.device),
                            "masks": torch.zeros(0, h, w, dtype=torch.uint8, device=m.device)})
    return targets


class MaskRCNNSegmenter(SegmentationModel):
    """torchvision Mask R-CNN (ResNet-50-FPN) with the project's interface.

    Args:
        pretrained: load the ImageNet backbone (``ResNet50_Weights.IMAGENET1K_V1``, from
            download.pytorch.org), like the other baselines; COCO detection weights are not
            used (their head has 91 classes).
        **kwargs: passed to ``maskrcnn_resnet50_fpn`` (e.g. ``box_batch_size_per_image``);
            ``box_detections_per_img`` defaults to 1 (only the best detection is used).

    Shapes: normalised images (N, 3, H, W) -> logits (N, 1, H, W).
    """

    def __init__(self, pretrained: bool = False, **kwargs) -> None:
        super().__init__()
        from torchvision.models import ResNet50_Weights
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        kwargs.setdefault("box_detections_per_img", 1)
        backbone_weights = ResNet50_Weights.IMAGENET1K_V1 if pretrained else None
        guard = (pretrained_weights_guard("maskrcnn", "download.pytorch.org (torchvision)")
                 if pretrained else contextlib.nullcontext())
        with guard:
            self.net = maskrcnn_resnet50_fpn(weights=None, weights_backbone=backbone_weights,
                                             num_classes=2, image_mean=[0.0, 0.0, 0.0],
                                             image_std=[1.0, 1.0, 1.0], **kwargs)

    def _fit_transform_to(self, images: torch.Tensor) -> None:
        """No rescaling: the transform's size range is set to this batch's size."""
        h, w = images.shape[-2:]
        self.net.transform.min_size = (min(h, w),)
        self.net.transform.max_size = max(h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, H, W) of the best detection's mask; inference even in train mode."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"MaskRCNNSegmenter: expected (N, 3, H, W), got {tuple(x.shape)}")
        self._fit_transform_to(x)
        was_training = self.net.training
        self.net.eval()  # torchvision's train mode needs targets; prediction never has them
        try:
            detections = self.net(list(x))
        finally:
            self.net.train(was_training)
        out = torch.full((x.shape[0], 1, *x.shape[-2:]), NO_DETECTION_LOGIT, device=x.device, dtype=x.dtype)
        for i, det in enumerate(detections):
            if len(det["scores"]):
                best = int(torch.argmax(det["scores"]))
                prob = det["masks"][best, 0].clamp(1e-6, 1 - 1e-6)
                out[i, 0] = torch.logit(prob).to(x.dtype)
        return out

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, criterion=None) -> torch.Tensor:
        """Sum of Mask R-CNN's own losses on ``images`` (N, 3, H, W) with ``masks`` (N, 1, H, W).

        ``criterion`` is accepted for the common interface and ignored.
        """
        if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"MaskRCNNSegmenter.training_loss: images {tuple(images.shape)} and masks "
                             f"{tuple(masks.shape)} differ in batch or size")
        self._fit_transform_to(images)
        was_training = self.net.training
        self.net.train()
        try:
            losses = self.net(list(images), masks_to_targets(masks))
        finally:
            self.net.train(was_training)
        return sum(losses.values())
