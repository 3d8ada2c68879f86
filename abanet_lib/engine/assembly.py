"""Run assembly: everything a run needs before its first epoch, built from its RunConfig.

The identity-disjoint :func:`build_split` (plus extra training sets and seeded caps), the model
(:func:`build_model`, fitted on the training split when it needs to be), the loss, the prepared
datasets (:class:`TrainingData`), the optimizer and the learning-rate schedule. The loop that
consumes them is :func:`abanet_lib.engine.train.train`.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from abanet_lib.core.config import RunConfig
from abanet_lib.data import SegmentationDataset, Split, list_samples, prepare_arrays, split_samples
from abanet_lib.engine.losses import build_loss
from abanet_lib.models import create_model

OPTIMIZERS = ("adam", "adamax", "rmsprop", "sgd")


SCHEDULES = ("none", "cosine", "step")


@dataclass
class TrainingData:
    """What the trainer consumes.

    Attributes:
        train: dataset of ``(image float32 (3,S,S), mask float32 (1,S,S))`` with augmentation.
        val: same without augmentation, or ``None`` (then the last epoch counts as best).
    """

    train: Dataset
    val: Dataset | None = None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(cfg: RunConfig, split: Split | None = None) -> nn.Module:
    """The model named by ``cfg`` (seed the RNGs first for reproducible weights).

    ``pretrained`` is passed only when True, so factories without that option still build
    at the offline scales. A model that fits on training data (``needs_fit``, e.g. GrabCut's
    rectangle) is fitted on ``split.train``; ``split`` defaults to :func:`build_split` of ``cfg``.
    """
    kwargs = cfg.model_kwargs_dict
    model = build_network(cfg.model, kwargs, pretrained=True if cfg.pretrained and "pretrained" not in kwargs else None)
    if model.needs_fit:  # e.g. GrabCut's rectangle: fitted on this run's training masks
        split = split if split is not None else build_split(cfg)
        model.fit_to_training_masks(ref.load().mask for ref in split.train)
    return model


def build_network(name: str, kwargs: dict | None = None, pretrained: bool | None = None) -> nn.Module:
    """The architecture ``name`` built with ``kwargs``, not fitted (:func:`build_model` fits).

    Args:
        pretrained: None passes ``kwargs`` as they are; True asks for ImageNet encoder weights;
            False drops any ``pretrained`` entry, so no weights are downloaded (every factory's
            default is False, and factories without that option still build).
    """
    kwargs = dict(kwargs or {})
    if pretrained is False:
        kwargs.pop("pretrained", None)
    elif pretrained:
        kwargs["pretrained"] = True
    return create_model(name, **kwargs)


def build_criterion(cfg: RunConfig) -> Callable:
    """The loss of ``cfg`` (:func:`abanet_lib.engine.losses.build_loss`)."""
    return build_loss(cfg)


def build_split(cfg: RunConfig) -> Split:
    """Split ``cfg.eval_dataset`` and add extra training sets.

    The test and validation parts always come from ``cfg.eval_dataset`` (scheme
    ``cfg.split``, fold ``cfg.fold``, seed ``cfg.seed``). Training uses that data set's
    training part when it is listed in ``cfg.train_datasets``, plus every sample of the other
    listed data sets outside their own "testing" subset (a seeded subset of
    ``cfg.extra_train_images`` of those when set). ``cfg.max_train_images`` keeps a
    seeded random subset of the training references; ``cfg.max_eval_images`` caps the
    validation and test parts the same way (smoke scale).
    """
    refs = list_samples(cfg.eval_dataset)
    split = split_samples(refs, scheme=cfg.split, n_folds=cfg.n_folds, fold=cfg.fold,
                          seed=cfg.seed, val_fraction=cfg.val_fraction)
    train = list(split.train) if cfg.eval_dataset in cfg.train_datasets else []
    extra = []
    for name in cfg.train_datasets:
        if name != cfg.eval_dataset:
            extra += [r for r in list_samples(name) if r.subset != "testing"]
    train += seeded_subset(extra, cfg.extra_train_images, cfg.seed)
    if not train:
        raise ValueError(f"run {cfg.run_id}: no training images (train_datasets={cfg.train_datasets}, "
                         f"eval_dataset={cfg.eval_dataset!r})")
    return Split(train=seeded_subset(train, cfg.max_train_images, cfg.seed),
                    val=seeded_subset(list(split.val), cfg.max_eval_images, cfg.seed),
                    test=seeded_subset(list(split.test), cfg.max_eval_images, cfg.seed))


def seeded_subset(refs: list, cap: int | None, seed: int) -> list:
    """A seeded random subset of at most ``cap`` references, in their original order."""
    if cap is None or len(refs) <= cap:
        return refs
    keep = np.random.default_rng(seed).permutation(len(refs))[:cap]
    return [refs[i] for i in sorted(keep)]


def build_training_data(cfg: RunConfig, split: Split | None = None) -> TrainingData:
    """Prepared uint8 arrays (cached on disk) wrapped as train/val datasets."""
    split = split or build_split(cfg)
    train_arrays = prepare_arrays(split.train, cfg.image_size)
    train_ds = SegmentationDataset(train_arrays, augment=cfg.augment, seed=cfg.seed)
    val_ds = None
    if split.val:
        val_ds = SegmentationDataset(prepare_arrays(split.val, cfg.image_size), augment=False, seed=cfg.seed)
    return TrainingData(train=train_ds, val=val_ds)


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """Adam, Adamax, RMSprop or SGD (Table 8) with ``cfg.lr``/``weight_decay``/``momentum``."""
    name = cfg.optimizer.lower()
    if not (math.isfinite(cfg.lr) and cfg.lr >= 0):  # 0 freezes the weights (tests use it)
        raise ValueError(f"run {cfg.run_id}: lr={cfg.lr}; expected a finite learning rate >= 0")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ValueError(f"run {cfg.run_id}: weight_decay={cfg.weight_decay}; expected a finite value >= 0")
    common = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = list(params)
    # One fused kernel per step instead of one per parameter tensor on CUDA; on CPU the plain
    # implementation keeps CPU runs bit-identical to the committed ones.
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    if name == "adam":
        return torch.optim.Adam(params, **common, **fused)
    if name == "adamax":
        return torch.optim.Adamax(params, **common)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=cfg.momentum, **common)
    if name == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **common, **fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected one of {OPTIMIZERS}")


def build_scheduler(cfg: RunConfig, optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: none, cosine (to 0 over ``epochs``), step (x0.1 every third)."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {SCHEDULES}")
