"""The one interface every segmentation model of the project follows."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def main_output(outputs: torch.Tensor | tuple | list) -> torch.Tensor:
    """Return the main prediction (logits, (N,1,H,W)) of a model's forward output."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


class SegmentationModel(nn.Module):
    """Mixin-style base class: logits in, one training entry point.

    Contract:
        * ``forward(x)`` with ``x`` of shape (N, 3, H, W) returns logits (N, 1, H, W) in eval
          mode. In train mode a deep-supervised model may return a tuple of logits tensors,
          main output first, each (N, 1, H, W).
        * ``training_loss(images, masks, criterion)`` returns a scalar loss; the trainer calls
          nothing else. Models with their own training protocol (Mask R-CNN) override it.
        * ``trainable`` is False for methods without learned weights (GrabCut).
        * ``needs_fit`` is True for a model fitted on the training masks before use (GrabCut's
          fitted rectangle); :meth:`fitted_params` says what was fitted (recorded with the run).
    """

    trainable: bool = True
    needs_fit: bool = False

    def fitted_params(self) -> dict | None:
        """What was fitted on training data (see ``needs_fit``); None for a model without fitting."""
        return None

    def training_loss(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        criterion: Callable[[torch.Tensor | tuple, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Loss of one batch: ``criterion(self(images), masks)``.

        Args:
            images: (N, 3, H, W) normalised images.
            masks: (N, 1, H, W) float targets in {0, 1}.
            criterion: called with the forward output (tensor or tuple) and the masks.
        """
        return criterion(self(images), masks)

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, 1, H, W) of the main output, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(main_output(self(images)).float())
        finally:
            self.train(was_training)
