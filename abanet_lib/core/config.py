"""One config object for every run, and the named scales.

A :class:`RunConfig` fully describes one training + evaluation run. Its canonical JSON
(sorted keys, no execution-only fields) hashes to a stable run id, which names the run
folder ``results/runs/<run_id>/`` (see :mod:`abanet_lib.engine.registry`).

Execution-only fields (``device``, ``num_workers``) are excluded from the hash: they
change where a run executes, not what it is; the device actually used is recorded in the
run's provenance. ``precision`` *is* hashed ("auto" means bf16 autocast where supported).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

#: Fields that do not change the experiment's definition, only where/how fast it runs.
EXECUTION_ONLY_FIELDS = ("device", "num_workers")

#: Fields added after runs were committed, with their defaults: left out of the run id while
#: at the default, so every earlier run keeps its id.
LATER_FIELDS = {"extra_train_images": None, "resize_masks": False, "batches_on_device": False,
                "train_crops": None}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run.

    Attributes:
        model: model factory name: abanet, abanet_official, basnet, unet_plain, grabcut,
            maskrcnn, smp:<Arch>:<encoder> (e.g. smp:Unet:resnet50), ... (see
            :func:`abanet_lib.models.create_model`).
        model_kwargs: extra keyword arguments of the factory, as sorted ``(key, value)`` pairs
            (use :meth:`with_model` to build them from a dict).
        loss: loss components summed over every side output: focal, ssim, iou, bce.
        loss_variant: paper (eq. 3-5 of the paper) or official (as in the released code).
        focal_alpha: focal-loss alpha (weight of positives, eq. 3).
        focal_gamma: focal-loss gamma.
        optimizer: adam, adamax, rmsprop or sgd (Table 8).
        lr: learning rate.
        weight_decay: weight decay (L2).
        momentum: momentum for SGD and RMSprop.
        schedule: learning-rate schedule per epoch: none, cosine, step (x0.1 every third of
            the epochs).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        batch_size: training batch size.
        image_size: square input size in pixels (training and test).
        epochs: training epochs.
        train_datasets: training data sets (mfsd, mfsd-sample, maskedfacenet-seg500; see
            :mod:`abanet_lib.data`).
        eval_dataset: data set the validation and test splits come from.
        split: split scheme: groupkfold (identity-disjoint folds), paper (8500/2500/1758
            proportions), given (the data set's own train/test folders).
        n_folds: number of folds of the groupkfold split (the split seed is ``seed``).
        fold: test fold (0-based).
        val_fraction: fraction of training identities held out for validation (model
            selection).
        max_train_images: cap on the number of training images (seeded subset; None: all).
        max_eval_images: cap on the number of validation and test images each (seeded
            subset; None: all).
        extra_train_images: cap on the images taken from the training data sets other than
            ``eval_dataset`` (seeded subset; None: all), e.g. a 1:1 real/synthetic mix.
        resize_masks: resize a mask whose size differs from its image (nearest neighbour)
            instead of refusing it.
        train_crops: how the training crops were built when they are not the data sets' own
            images (None); e.g. the shipped photo model's detector crops
            (:mod:`abanet_lib.paper.photo_model`): detector, margin, MFSD re-framing, validation share.
        augment: training augmentation: flips, scale/crop, colour jitter.
        pretrained: ImageNet encoder weights (needs a local weight cache offline).
        seed: seed of weights, data order and split.
        precision: auto (bf16 where supported), bf16, fp16 (CUDA, with GradScaler) or fp32
            (exact).
        channels_last: channels_last memory format.
        early_stopping: stop after this many epochs without validation-IoU gain (None: off).
        batches_on_device: keep the prepared training crops on the device and build augmented
            batches there (:class:`abanet_lib.data.device_batches.DeviceBatches`: no loader
            workers, no host copies; the augmentation draws differ from the loader's, hence
            part of the run id when on).
        scale: the scale preset this run belongs to (recorded, and part of the id).
        device: auto (CUDA if present), cpu, cuda or cuda:N; not part of the run id.
        num_workers: DataLoader worker processes; not part of the run id.
    """

    model: str = "abanet"
    model_kwargs: tuple = ()
    loss: tuple = ("focal", "ssim", "iou")
    loss_variant: str = "paper"
    focal_alpha: float = 0.3
    focal_gamma: float = 2.0
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "none"
    grad_clip: float | None = None
    batch_size: int = 8
    image_size: int = 256
    epochs: int = 30
    train_datasets: tuple = ("mfsd-sample",)
    eval_dataset: str = "mfsd-sample"
    split: str = "groupkfold"
    n_folds: int = 5
    fold: int = 0
    val_fraction: float = 0.15
    max_train_images: int | None = None
    max_eval_images: int | None = None
    extra_train_images: int | None = None
    resize_masks: bool = False
    train_crops: str | None = None
    augment: bool = True
    pretrained: bool = False
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = True
    early_stopping: int | None = None
    batches_on_device: bool = False
    scale: str = "custom"
    device: str = "auto"
    num_workers: int = 0

    # -- construction helpers -------------------------------------------------------
    def with_model(self, model: str | None = None, **kwargs: Any) -> "RunConfig":
        """Return a copy with another model and/or extra model kwargs (merged, sorted)."""
        merged = dict(self.model_kwargs)
        merged.update(kwargs)
        return replace(self, model=model or self.model, model_kwargs=_freeze(merged))

    def replace(self, **changes: Any) -> "RunConfig":
        if "model_kwargs" in changes and isinstance(changes["model_kwargs"], dict):
            changes["model_kwargs"] = _freeze(changes["model_kwargs"])
        for key in ("loss", "train_datasets"):
            if key in changes and isinstance(changes[key], (list, str)):
                value = changes[key]
                changes[key] = (value,) if isinstance(value, str) else tuple(value)
        return replace(self, **changes)

    @property
    def model_kwargs_dict(self) -> dict:
        return {k: _thaw(v) for k, v in self.model_kwargs}

    # -- identity ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_kwargs"] = self.model_kwargs_dict
        d["loss"] = list(self.loss)
        d["train_datasets"] = list(self.train_datasets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"RunConfig: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
        d = dict(d)
        d["model_kwargs"] = _freeze(d.get("model_kwargs") or {})
        for key in ("loss", "train_datasets"):
            if key in d:
                d[key] = tuple(d[key]) if not isinstance(d[key], str) else (d[key],)
        return cls(**d)

    def canonical_json(self) -> str:
        d = self.to_dict()
        for k in EXECUTION_ONLY_FIELDS:
            d.pop(k, None)
        for k, default in LATER_FIELDS.items():
            if d.get(k) == default:
                d.pop(k, None)
        return json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)

    @property
    def run_id(self) -> str:
        """Stable id: ``<model-slug>-<12 hex of sha256(canonical json)>``."""
        digest = hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]
        slug = "".join(c if c.isalnum() else "-" for c in self.model.lower()).strip("-")
        return f"{slug}-{digest}"


def _freeze(obj: Any) -> Any:
    if isinstance(obj, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(v) for v in obj)
    return obj


def _thaw(obj: Any) -> Any:
    if isinstance(obj, tuple):
        if obj and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in obj):
            return {k: _thaw(v) for k, v in obj}
        return [_thaw(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------
# Scales
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """A named preset of run sizes that every notebook and the CLI accept.

    Attributes:
        name: ``"smoke"``, ``"reduced"``, ``"paper"`` or ``"gpu"``.
        image_size: training/test input size (square).
        epochs: training epochs.
        batch_size: training batch.
        max_train_images: cap on training images (``None`` = all).
        max_eval_images: cap on validation and test images each (``None`` = all).
        folds: test folds run for the main rows (mean +- std over them).
        ablation_folds: test folds run for ablation rows (cheaper).
        comparison_folds: test folds of the secondary rows: the smp architecture/encoder
            rows of Tables 2-3 that no claim compares and notebook 13's synthetic-data runs.
        claim_folds: test folds of every row the claims ledger compares
            (:data:`abanet_lib.paper.claims.CLAIMS`; ``RowDefinition.per == "claim"``): the
            ledger pairs rows by fold, so these rows share one fold list (issue 15: >= 5).
        trials: seeds/splits for Table 4 (the paper used five).
        eval_dataset: data set the test split comes from.
        split: split scheme (see :class:`RunConfig`).
        pretrained: ImageNet encoders (paper) or from scratch (offline scales).
        description: one line for captions and the README.
        run_skipped_rows: also run the rows that the table definitions
            (:mod:`abanet_lib.paper.definitions`) leave out at this scale on purpose (cost).
    """

    name: str
    image_size: int
    epochs: int
    batch_size: int
    max_train_images: int | None
    max_eval_images: int | None
    folds: tuple
    ablation_folds: tuple
    comparison_folds: tuple
    claim_folds: tuple
    trials: int
    eval_dataset: str
    split: str
    n_folds: int
    pretrained: bool
    description: str
    run_skipped_rows: bool = False

    def base_config(self, **changes: Any) -> RunConfig:
        """The RunConfig every experiment of this scale starts from."""
        cfg = RunConfig(
            image_size=self.image_size,
            epochs=self.epochs,
            batch_size=self.batch_size,
            max_train_images=self.max_train_images,
            max_eval_images=self.max_eval_images,
            eval_dataset=self.eval_dataset,
            train_datasets=(self.eval_dataset,),
            split=self.split,
            n_folds=self.n_folds,
            pretrained=self.pretrained,
            scale=self.name,
        )
        return cfg.replace(**changes) if changes else cfg


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke", image_size=64, epochs=1, batch_size=4, max_train_images=16, max_eval_images=8,
        folds=(0,), ablation_folds=(0,), comparison_folds=(0,), claim_folds=(0,), trials=2,
        eval_dataset="mfsd-sample",
        split="groupkfold", n_folds=5, pretrained=False,
        description="smoke: 64x64, 1 epoch, 16 training images; checks the plumbing, numbers mean nothing",
    ),
    "reduced": Scale(
        name="reduced", image_size=64, epochs=15, batch_size=8, max_train_images=None, max_eval_images=None,
        folds=(0, 1, 2), ablation_folds=(0,), comparison_folds=(0,), claim_folds=(0, 1, 2, 3, 4), trials=5,
        eval_dataset="mfsd-sample",
        split="groupkfold", n_folds=5, pretrained=False,
        description=("reduced: mfsd-sample (220 real MFSD crops), identity-disjoint 5-fold split (the rows the "
                     "claims ledger compares on all 5 folds), 64x64, 15 epochs, batch 8, from scratch (no ImageNet "
                     "weights offline)"),
    ),
    "paper": Scale(
        name="paper", image_size=256, epochs=100, batch_size=8, max_train_images=None, max_eval_images=None,
        folds=(0,), ablation_folds=(0,), comparison_folds=(0,), claim_folds=(0,), trials=5, eval_dataset="mfsd",
        split="paper", n_folds=5, pretrained=True,
        description="paper: full MFSD 8500/2500/1758, 256x256, batch 8, Adam 1e-4, ImageNet encoders (GPU)",
    ),
    # Issue 15: the scale whose paired folds can resolve the paper's claims (abanet_lib.paper.claims).
    # Every row on all 5 identity-disjoint folds (the ledger pairs rows by fold: 5 pairs, the
    # issue's minimum); 128x128, the low end of the 128-256 px, where issue 15 reports a
    # 40-epoch U-Net/ResNet-34 well above every 64x64 row (resolution costs more than the row
    # gaps); 40 epochs: the learning-curve study (results/learning_curve.md) finds the canonical
    # ABANet still gaining validation IoU from epoch 15 to 40 at 64x64 and 96x96; batch 16 (twice reduced's: a GPU is launch-bound at batch 8). Its rows read
    # "not run" until the batch runner executes it on a GPU.
    "gpu": Scale(
        name="gpu", image_size=128, epochs=40, batch_size=16, max_train_images=None, max_eval_images=None,
        folds=(0, 1, 2, 3, 4), ablation_folds=(0, 1, 2, 3, 4), comparison_folds=(0, 1, 2, 3, 4),
        claim_folds=(0, 1, 2, 3, 4), trials=5,
        eval_dataset="mfsd-sample", split="groupkfold", n_folds=5, pretrained=False,
        description=("gpu: mfsd-sample (220 real MFSD crops), identity-disjoint 5-fold split, every row "
                     "on all 5 folds (paired folds for the claims ledger), 128x128 (64x64 costs more "
                     "IoU than the gaps between rows, issue 15), 40 epochs, batch 16, from scratch "
                     "(no ImageNet weights offline); run on a GPU"),
    ),
}


def get_scale(name: str | None = None) -> Scale:
    """Return a scale by name; ``None`` reads ``ABANET_SCALE`` (default ``"reduced"``)."""
    name = name or os.environ.get("ABANET_SCALE", "reduced")
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None


def field_help() -> dict[str, str]:
    """One line of help per :class:`RunConfig` field, read from its docstring (the one place
    fields are described; the command line's ``--help`` shows these lines).

    Example:
        >>> field_help()["lr"]
        'learning rate.'
    """
    doc = inspect.cleandoc(RunConfig.__doc__ or "")
    block = doc.split("Attributes:", 1)[1]
    helps: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            name, text = entry.groups()
            helps[name] = text
        elif name and line.startswith("        "):
            helps[name] += " " + line.strip()
    return {k: re.sub(r":\w+:`([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), v) for k, v in helps.items()}
