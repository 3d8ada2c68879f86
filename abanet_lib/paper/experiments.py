"""Which runs reproduce which table: the experiment lists of the paper's Tables 2-9.

Every experiment is a list of :class:`~abanet_lib.core.config.RunConfig` built from
``scale.base_config()``; a run shared by several tables (the full ABANet row of Tables 2 and
5-9, Table 4's first trial, ...) is the *same* config, hence the same run id, hence trained
once by :func:`abanet_lib.engine.registry.run_or_load`.

Choices made here (also written into the table captions by :mod:`abanet_lib.paper.tables`):

* Main rows (ABANet, EU-Net, DAD, EINet in Tables 2-3) run on ``scale.folds``; BASNet
  (11 CPU-min a run), the 16 smp architecture/encoder rows of Tables 2-3 and notebook 13's
  synthetic-data rows on ``scale.comparison_folds``; ablations (Tables 5-9, Figure 7,
  released-vs-paper) on ``scale.ablation_folds``. At reduced scale that is 3 / 1 / 1 folds, and
  four of the five EfficientNet-b7 rows are left out (``Scale.skipped_rows``): measured on this
  CPU, 3 folds everywhere cost about 15 CPU-hours, over the 8-hour budget
  (``results/cost_reduced.md``); ``notebook_scale(folds=..., run_skipped_rows=True)`` runs every
  row on the folds given. The seed stays 0 so the
  fold-f ABANet run is one config everywhere. Table 4 follows the paper's protocol: ``scale.trials`` trials, trial
  ``i`` with ``seed=i`` and ``fold=i % n_folds`` (new weights *and* a new split each time).
* ABANet variants drop keyword arguments equal to the defaults (:data:`ABANET_DEFAULTS`), so the
  "gates at 4,5,6" row of Table 6 *is* the canonical ABANet config.
* Table 7: sizes ``(S/2, S, 2S)`` for the scale's size ``S``: 128/256/512 at paper scale,
  64/128/256 at reduced scale, 32/64/128 at smoke scale.
* Table 8: SGD runs with ``lr = SGD_LR`` (1e-2) and momentum 0.9. The paper states one
  learning rate (1e-4, for Adam) and none for SGD; plain SGD at 1e-4 barely moves in a short
  from-scratch schedule, so that row would measure under-training, not the optimizer.
  Adamax and RMSprop keep the paper's 1e-4.
* Figure 7: alpha in ``FIG7_ALPHAS`` = the paper's {0.3, 0.5, 0.75, 0.9} plus 0.1.
* Smoke scale runs a documented subset of rows (:data:`SMOKE_ROWS`) so the notebook suite
  stays within a few minutes on a CPU; ``rows="all"`` lifts that. Table 4 at smoke scale
  leaves ABANet out (see :data:`SMOKE_ROWS`).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from abanet_lib.core.config import RunConfig, Scale, get_scale

#: Tables and figures this module knows, in the order the notebooks use them.
TABLES = ("table2", "table3", "table4", "table5", "table6", "table7", "table8", "table9",
          "fig7", "released_vs_paper", "synthetic")

#: ABANet's constructor defaults (the paper's network): kwargs equal to these are dropped.
ABANET_DEFAULTS = {"attention_stages": (4, 5, 6), "attention": True, "refine": True}

#: Learning rate and momentum of the SGD row of Table 8 (see module docstring).
SGD_LR = 1e-2
SGD_MOMENTUM = 0.9

#: Focal-loss alphas of Figure 7: the paper's four plus 0.1.
FIG7_ALPHAS = (0.1, 0.3, 0.5, 0.75, 0.9)

#: The label of the full ABANet row in every table that has one.
ABANET_ROW = "ABANet (ours)"

#: Rows run at smoke scale when ``rows`` is not given. An ABANet run costs about 16 GFLOP
#: per 64x64 image forward (full-resolution encoder), i.e. 30-60 s per smoke run on 2 CPU
#: cores, so the ablation notebooks run only the shared full-ABANet row (trained once, by
#: notebook 04) plus at most one row that exercises what is special about the notebook:
#: the released network (12), the MaskedFace-Net run (13).
#: Table 4 uses the cheap Din U-Net stand-in and GrabCut (its trials would otherwise add a
#: second ABANet run).
SMOKE_ROWS: dict[str, tuple[str, ...]] = {
    "table2": ("Unet / ResNet50", ABANET_ROW),
    "table3": (ABANET_ROW,),
    "table4": ("Din et al. (U-Net)", "Zhang et al. (GrabCut)"),
    "table5": (ABANET_ROW,),
    "table6": ("AG at stages 4,5,6 (ABANet)",),
    "table7": ("256x256 (ABANet)",),
    "table8": ("Adam (ABANet)",),
    "table9": ("Focal + SSIM + IoU (ABANet)",),
    "fig7": ("alpha=0.3 (ABANet)",),
    "released_vs_paper": ("abanet + paper loss (ABANet)", "abanet_official + official loss"),
    "synthetic": ("train mfsd-sample (ABANet)", "train maskedfacenet-seg500"),
}

MFSD_SAMPLE = "mfsd-sample"
MASKEDFACENET = "maskedfacenet-seg500"

#: Training crops of the real-data ABANet run per evaluation set (every fold of mfsd-sample's
#: 5-fold group split trains on 150; the tests check all five against the data). Notebook 13's
#: MaskedFace-Net-only run trains on as many synthetic images (a seeded subset of its 382),
#: so real-vs-synthetic transfer is compared at equal data, and "train both" adds as many
#: synthetic images to the real ones (1:1): each run costs about one or two ABANet runs
#: instead of three or four. The full MFSD has more crops than MaskedFace-Net: no cap there.
MATCHED_TRAIN_IMAGES = {MFSD_SAMPLE: 150}


@dataclass(frozen=True)
class ExperimentRow:
    """One row of a reproduced table.

    Attributes:
        table: table name (``"table2"`` ...).
        label: row label; equals the index of the paper's table in
            :mod:`abanet_lib.paper.paper_numbers` where the paper has the row.
        configs: the runs whose metrics are averaged into this row (folds/seeds/trials).
        paper_row: label of the paper's row this row is compared with (``None``: no paper value).
        paper_table: which paper table holds that row (defaults to ``table``).
        not_built: reason why this row cannot be run here (model missing), else ``None``.
        skipped: reason why the scale leaves this row out of its list on purpose (cost; see
            :attr:`Scale.skipped_rows`), else ``None``.
        note: short remark shown in the table (e.g. "stand-in", "lr 1e-2").
    """

    table: str
    label: str
    configs: tuple[RunConfig, ...]
    paper_row: str | None = None
    paper_table: str | None = None
    not_built: str | None = None
    skipped: str | None = None
    note: str = ""

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(c.run_id for c in self.configs)


# ---------------------------------------------------------------------------------------
# Model availability
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def model_status(name: str, model_kwargs: tuple = ()) -> str | None:
    """Return ``None`` when ``create_model(name, **kwargs)`` works here, else the reason.

    The model is built on the ``meta`` device (no memory, no weights), so this is cheap even for
    87 M-parameter networks; a model that cannot be built on ``meta`` is retried on the CPU.
    """
    try:
        from abanet_lib.models import create_model, list_models
    except Exception as err:  # the models package itself is broken or missing
        return f"abanet_lib.models not importable ({type(err).__name__}: {err})"
    if name not in list_models():
        return f"model {name!r} is not in abanet_lib.models.list_models()"
    kwargs = dict(RunConfig().with_model(name, **dict(model_kwargs)).model_kwargs_dict)
    import torch

    try:
        with torch.device("meta"):
            create_model(name, **kwargs)
        return None
    except ImportError as err:
        return f"{name} not built: {err}"
    except Exception:
        pass
    try:
        create_model(name, **kwargs)
        return None
    except Exception as err:
        return f"{name} not built ({type(err).__name__}: {err})"


# ---------------------------------------------------------------------------------------
# Config builders
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


def canonical_abanet(scale: Scale, fold: int = 0, seed: int = 0, device: str = "auto") -> RunConfig:
    """The full ABANet run of ``scale`` on ``fold`` (the row every table shares)."""
    return abanet_config(scale.base_config(fold=fold, seed=seed, device=device))


def _smp(arch: str, encoder: str) -> Callable[[RunConfig], RunConfig]:
    return lambda b: b.with_model(f"smp:{arch}:{encoder}")


#: BASNet's own loss (Qin et al. 2019): BCE + SSIM + IoU on every side output.
BASNET_LOSS = ("bce", "ssim", "iou")


def _named(name: str, **kw) -> Callable[[RunConfig], RunConfig]:
    return lambda b: b.with_model(name, **kw)


def _abanet(**kw) -> Callable[[RunConfig], RunConfig]:
    return lambda b: abanet_config(b, **kw)


_TABLE2_SMP = [
    ("Unet", "Unet", "Efficient-b7", "efficientnet-b7"),
    ("Unet", "Unet", "ResNet50", "resnet50"),
    ("Unet", "Unet", "VGG19", "vgg19"),
    ("Unet++", "UnetPlusPlus", "Efficient-b7", "efficientnet-b7"),
    ("Unet++", "UnetPlusPlus", "ResNet50", "resnet50"),
    ("Unet++", "UnetPlusPlus", "VGG19", "vgg19"),
    ("MAnet", "MAnet", "Efficient-b7", "efficientnet-b7"),
    ("MAnet", "MAnet", "ResNet50", "resnet50"),
    ("MAnet", "MAnet", "VGG19", "vgg19"),
    ("Linknet", "Linknet", "Efficient-b7", "efficientnet-b7"),
    ("Linknet", "Linknet", "ResNet50", "resnet50"),
    ("Linknet", "Linknet", "VGG19", "vgg19"),
    ("DeepLabV3+", "DeepLabV3Plus", "Efficient-b7", "efficientnet-b7"),
    ("DeepLabV3+", "DeepLabV3Plus", "ResNet50", "resnet50"),
    ("PAN", "PAN", "ResNet50", "resnet50"),
    ("PAN", "PAN", "VGG19", "vgg19"),
]


def _table2_specs() -> list[tuple[str, Callable[[RunConfig], RunConfig], str]]:
    specs = [(f"{paper} / {backbone}", _smp(arch, enc), "", "comparison")
             for paper, arch, backbone, enc in _TABLE2_SMP]
    specs += [
        ("EINet / ResNet50", _named("einet"),
         "stand-in: EINet's architecture is not published (ResNet-50 edge-guided decoder)", "folds"),
        ("EU-Net / ResNet-34", _named("eunet"), "", "folds"),
        ("DAD / ResNet50", _named("dad"), "DAD v1", "folds"),
        # BASNet keeps its own hybrid loss (BCE + SSIM + IoU); the other rows use ABANet's.
        # At 11 CPU-min a run (EU-Net, DAD, EINet: about 2) it runs on the comparison folds.
        ("BASNet", lambda b: b.with_model("basnet").replace(loss=BASNET_LOSS),
         "BCE + SSIM + IoU (its own loss)", "comparison"),
        (ABANET_ROW, _abanet(), "", "folds"),
    ]
    return specs


def _row_specs(table: str, scale: Scale):
    """(label, make, note, paper_row, paper_table, per) for every row of ``table``.

    ``per`` is "folds", "comparison", "ablation", "trials" or "seeds": which runs make up the
    row (see :func:`_folds_for`).
    """
    if table == "table2":
        return [(label, make, note, label, "table2", per) for label, make, note, per in _table2_specs()]
    if table == "table3":
        from abanet_lib.paper.paper_numbers import TABLE3

        wanted = set(TABLE3.index)
        return [(label, make, note, label, "table3", per)
                for label, make, note, per in _table2_specs() if label in wanted]
    if table == "table4":
        rows = [
            ("Din et al. (U-Net)", _named("unet_din"), "stand-in U-Net (Din et al.'s net is unpublished)"),
            ("Zhang et al. (GrabCut)", _named("grabcut", rect_fraction="fit"),
             "GrabCut, no training; rectangle fitted on the training masks (models/grabcut.py)"),
            ("Geng et al. (U-Net)", _named("unet_geng"), "stand-in plain U-Net (unpublished)"),
            # One instance per crop: 64 sampled RoIs instead of COCO's 512 (see models/maskrcnn.py).
            ("Sola & Gera (Mask R-CNN)", _named("maskrcnn", box_batch_size_per_image=64),
             "stand-in torchvision Mask R-CNN, 64 RoIs per image"),
            (ABANET_ROW, _abanet(), ""),
        ]
        return [(label, make, note, label, "table4", "trials") for label, make, note in rows]
    if table == "table5":
        rows = [
            ("baseline", _abanet(attention=False, refine=False), "no attention gates, no refinement"),
            ("baseline+refinement", _abanet(attention=False, refine=True), ""),
            ("baseline+AG", _abanet(attention=True, refine=False), ""),
            (ABANET_ROW, _abanet(), ""),
        ]
        return [(label, make, note, label, "table5", "ablation") for label, make, note in rows]
    if table == "table6":
        rows = [
            ("AG at stages 5,6", _abanet(attention_stages=(5, 6)), ""),
            ("AG at stages 4,5,6 (ABANet)", _abanet(attention_stages=(4, 5, 6)), ""),
            ("AG at stages 3,4,5,6", _abanet(attention_stages=(3, 4, 5, 6)), ""),
        ]
        return [(label, make, note, label, "table6", "ablation") for label, make, note in rows]
    if table == "table7":
        rows = []
        for paper_label, factor in (("128x128", 0.5), ("256x256 (ABANet)", 1.0), ("512x512", 2.0)):
            size = int(round(scale.image_size * factor))
            note = f"trained and tested at {size}x{size} (paper: {paper_label.split(' ')[0]})"
            rows.append((paper_label, _abanet_at_size(size), note, paper_label, "table7", "ablation"))
        return rows
    if table == "table8":
        rows = [
            ("SGD", lambda b: abanet_config(b.replace(optimizer="sgd", lr=SGD_LR, momentum=SGD_MOMENTUM)),
             f"lr {SGD_LR:g}, momentum {SGD_MOMENTUM:g} (paper: lr not stated)"),
            ("Adamax", lambda b: abanet_config(b.replace(optimizer="adamax")), ""),
            ("RMSprop", lambda b: abanet_config(b.replace(optimizer="rmsprop")), ""),
            ("Adam (ABANet)", _abanet(), ""),
        ]
        return [(label, make, note, label, "table8", "ablation") for label, make, note in rows]
    if table == "table9":
        rows = [
            ("Focal", ("focal",)), ("IoU", ("iou",)), ("Focal + IoU", ("focal", "iou")),
            ("Focal + SSIM + IoU (ABANet)", ("focal", "ssim", "iou")),
        ]
        return [(label, _abanet_with_loss(loss), "", label, "table9", "ablation") for label, loss in rows]
    if table == "fig7":
        rows = []
        for alpha in FIG7_ALPHAS:
            canonical = alpha == RunConfig().focal_alpha
            label = f"alpha={alpha:g}" + (" (ABANet)" if canonical else "")
            paper_row = ABANET_ROW if canonical else None
            rows.append((label, _abanet_with_alpha(alpha), "", paper_row, "table2", "ablation"))
        return rows
    if table == "released_vs_paper":
        rows = []
        for model in ("abanet", "abanet_official"):
            for variant in ("paper", "official"):
                canonical = model == "abanet" and variant == "paper"
                label = f"{model} + {variant} loss" + (" (ABANet)" if canonical else "")
                rows.append((label, _model_with_loss_variant(model, variant), "",
                             ABANET_ROW if canonical else None, "table2", "ablation"))
        return rows
    if table == "synthetic":
        matched = MATCHED_TRAIN_IMAGES.get(scale.eval_dataset)
        return [
            ("train mfsd-sample (ABANet)", _abanet(), "test: mfsd-sample test fold",
             ABANET_ROW, "table2", "comparison"),
            ("train maskedfacenet-seg500",
             _train_on((MASKEDFACENET,), MASKEDFACENET, "given", max_train=matched),
             "own test: maskedfacenet testing folder; seed i for the i-th fold; as many training "
             "images as the real-data run (seeded subset)", None, None, "seeds"),
            ("train both", _train_on((MFSD_SAMPLE, MASKEDFACENET), MFSD_SAMPLE, None,
                                     extra_train=matched),
             "own test: mfsd-sample test fold; real crops plus as many MaskedFace-Net images (1:1)",
             None, None, "comparison"),
        ]
    raise ValueError(f"experiments: unknown table {table!r}; expected one of {', '.join(TABLES)}")


def _abanet_at_size(size: int) -> Callable[[RunConfig], RunConfig]:
    return lambda b: abanet_config(b.replace(image_size=size))


def _abanet_with_loss(loss: tuple) -> Callable[[RunConfig], RunConfig]:
    return lambda b: abanet_config(b.replace(loss=loss))


def _abanet_with_alpha(alpha: float) -> Callable[[RunConfig], RunConfig]:
    return lambda b: abanet_config(b.replace(focal_alpha=alpha))


def _model_with_loss_variant(model: str, variant: str) -> Callable[[RunConfig], RunConfig]:
    def make(b: RunConfig) -> RunConfig:
        b = b.replace(loss_variant=variant)
        return abanet_config(b) if model == "abanet" else b.with_model(model)
    return make


def _train_on(train: tuple, eval_dataset: str, split: str | None, max_train: int | None = None,
              extra_train: int | None = None) -> Callable[[RunConfig], RunConfig]:
    def make(b: RunConfig) -> RunConfig:
        changes = {"train_datasets": train, "eval_dataset": eval_dataset, "extra_train_images": extra_train}
        if split is not None:
            changes["split"] = split
        if max_train is not None:  # never above the scale's own cap (smoke)
            changes["max_train_images"] = min(max_train, b.max_train_images or max_train)
        return abanet_config(b.replace(**changes))
    return make


def _folds_for(per: str, scale: Scale) -> list[dict]:
    """The (fold, seed) pairs of one row."""
    if per == "folds":
        return [{"fold": f, "seed": 0} for f in scale.folds]
    if per == "comparison":
        return [{"fold": f, "seed": 0} for f in scale.comparison_folds]
    if per == "ablation":
        return [{"fold": f, "seed": 0} for f in scale.ablation_folds]
    if per == "trials":
        return [{"fold": i % scale.n_folds, "seed": i} for i in range(scale.trials)]
    if per == "seeds":  # own split is fixed ("given"): vary the seed; the fold picks the MFSD
        return [{"fold": f, "seed": i} for i, f in enumerate(scale.comparison_folds)]  # cross-test fold
    raise AssertionError(per)


def table_rows(table: str, scale: Scale | str | None = None, rows: Iterable[str] | str | None = None,
               device: str = "auto", check_models: bool = True) -> list[ExperimentRow]:
    """Every row of ``table`` with its run configs.

    Args:
        table: one of :data:`TABLES`.
        scale: a :class:`Scale` or its name (``None``: ``ABANET_SCALE``).
        rows: labels to keep; ``None`` = all rows, except at smoke scale where it means
            :data:`SMOKE_ROWS`; ``"all"`` = all rows at any scale.
        device: execution device written into every config (not part of the run id).
        check_models: mark rows whose model cannot be built here as ``not_built``.

    Returns:
        Rows in the paper's order.
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    specs = _row_specs(table, scale)
    labels = [s[0] for s in specs]
    wanted = _wanted_rows(table, scale, rows, labels)
    out = []
    for label, make, note, paper_row, paper_table, per in specs:
        if label not in wanted:
            continue
        configs = tuple(make(scale.base_config(device=device, **fs)) for fs in _folds_for(per, scale))
        reason = None
        if check_models:
            reason = model_status(configs[0].model, configs[0].model_kwargs)
        out.append(ExperimentRow(table=table, label=label, configs=configs, paper_row=paper_row,
                                 paper_table=paper_table, not_built=reason,
                                 skipped=scale.skip_reason(label), note=note))
    return out


def _wanted_rows(table: str, scale: Scale, rows, labels: list[str]) -> set[str]:
    if rows == "all":
        return set(labels)
    if rows is None:
        return set(SMOKE_ROWS[table]) if scale.name == "smoke" else set(labels)
    rows = [rows] if isinstance(rows, str) else list(rows)
    unknown = [r for r in rows if r not in labels]
    if unknown:
        raise ValueError(f"{table}: unknown row(s) {unknown}; rows are {labels}")
    return set(rows)


def experiments(table: str, scale: Scale | str | None = None, rows: Iterable[str] | str | None = None,
                device: str = "auto") -> list[RunConfig]:
    """The run configs that reproduce ``table`` at ``scale`` (dedup'ed), leaving out rows that
    cannot be built here and rows the scale skips on purpose.

    Args:
        table: ``"table2"`` ... ``"table9"``, ``"fig7"``, ``"released_vs_paper"``, ``"synthetic"``.
        scale: a :class:`Scale` or its name (``None``: ``ABANET_SCALE``).
        rows: subset of row labels (see :func:`table_rows`).
        device: execution device for every config.
    """
    configs = [c for row in table_rows(table, scale, rows, device)
               if row.not_built is None and row.skipped is None for c in row.configs]
    return unique_configs(configs)


def all_experiments(scale: Scale | str | None = None, device: str = "auto",
                    rows: str | None = None) -> list[RunConfig]:
    """Every run of every table, in notebook order, each config once (by run id)."""
    return unique_configs(c for table in TABLES for c in experiments(table, scale, rows=rows, device=device))


def unique_configs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """``configs`` without repeated run ids, first occurrence kept (order preserved)."""
    seen, out = set(), []
    for cfg in configs:
        if cfg.run_id not in seen:
            seen.add(cfg.run_id)
            out.append(cfg)
    return out


def notebook_scale(scale: str | Scale | None = None, folds: Sequence[int] | None = None,
                   data_root: str | None = None, run_skipped_rows: bool = False) -> Scale:
    """Resolve a notebook's parameters into a :class:`Scale`.

    Args:
        scale: scale name or object (``None``: ``ABANET_SCALE``).
        folds: override of the main-row, comparison and ablation folds (``None`` keeps the scale's).
        data_root: where data sets live; sets ``ABANET_DATA`` for this process when given.
        run_skipped_rows: also run the rows the scale leaves out for cost
            (:attr:`Scale.skipped_rows`, e.g. four EfficientNet-b7 rows at reduced scale).
    """
    import os

    resolved = scale if isinstance(scale, Scale) else get_scale(scale)
    if folds is not None:
        folds = tuple(int(f) for f in ([folds] if isinstance(folds, int) else folds))
        bad = [f for f in folds if not 0 <= f < resolved.n_folds]
        if bad:
            raise ValueError(f"folds {bad} out of range: the {resolved.name} scale has {resolved.n_folds} folds")
        resolved = dataclasses.replace(resolved, folds=folds, ablation_folds=folds, comparison_folds=folds)
    if run_skipped_rows:
        resolved = dataclasses.replace(resolved, skipped_rows=())
    if data_root:
        os.environ["ABANET_DATA"] = str(data_root)
    return resolved


# ---------------------------------------------------------------------------------------
# Cost estimate
# ---------------------------------------------------------------------------------------
#: Forward GFLOP per 64x64 image, counted with ``torch.utils.flop_counter`` (training costs
#: about 3x the forward pass). Other models are counted on first use (:func:`forward_gflop`).
FORWARD_GFLOP_AT_64 = {"abanet": 15.9, "basnet": 15.87, "smp:Unet:resnet50": 1.33, "unet_din": 1.87,
                       "grabcut": 0.0}
#: Sustained GFLOP/s of training on the development machine's 2 idle CPU cores: ABANet at 64x64,
#: batch 8, bf16 autocast + channels_last trained at 5.2 img/s = 5.2 * 3 * 15.9 GFLOP/s
#: (forward + backward ~ 3 forwards). Smaller models use the cores less well (underestimated).
CPU_GFLOPS = 248.0
#: Approximate data set sizes used by the estimate (images).
DATASET_IMAGES = {"mfsd-sample": 220, "maskedfacenet-seg500": 450, "mfsd": 8500}


@functools.lru_cache(maxsize=None)
def forward_gflop(model: str, model_kwargs: tuple = ()) -> float:
    """Forward GFLOP of one 64x64 image (table value, else counted on a CPU build)."""
    if not model_kwargs and model in FORWARD_GFLOP_AT_64:
        return FORWARD_GFLOP_AT_64[model]
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from abanet_lib.models import create_model

    net = create_model(model, **RunConfig().with_model(model, **dict(model_kwargs)).model_kwargs_dict).eval()
    if getattr(net, "needs_fit", False):  # needs training data before a forward pass (GrabCut "fit")
        return FORWARD_GFLOP_AT_64.get(model, 0.0)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    return counter.get_total_flops() / 1e9


def estimate_run_seconds(cfg: RunConfig, gflops: float = CPU_GFLOPS,
                         flop_table: dict | None = None) -> tuple[int, float]:
    """FLOP-based estimate of one run (see :func:`budget`); returns ``(n_train, seconds)``."""
    flops = flop_table or {}
    n_eval_set = DATASET_IMAGES.get(cfg.eval_dataset, 220)
    n_test = n_eval_set / cfg.n_folds if cfg.split == "groupkfold" else 0.1 * n_eval_set
    n = sum(DATASET_IMAGES.get(d, 220) for d in cfg.train_datasets if d != cfg.eval_dataset)
    if cfg.extra_train_images is not None:  # one cap over all extra sets, as in train.build_split
        n = min(n, cfg.extra_train_images)
    if cfg.eval_dataset in cfg.train_datasets:
        n += n_eval_set - n_test
    n_val = n * cfg.val_fraction
    n -= n_val
    if cfg.max_train_images is not None:
        n = min(n, cfg.max_train_images)
    if cfg.model in flops:
        f = flops[cfg.model]
    elif cfg.model in FORWARD_GFLOP_AT_64 and not cfg.model_kwargs:
        f = FORWARD_GFLOP_AT_64[cfg.model]
    elif cfg.model == "abanet":
        f = FORWARD_GFLOP_AT_64["abanet"]  # the variants differ by a few percent
    else:
        f = forward_gflop(cfg.model, cfg.model_kwargs)
    f *= (cfg.image_size / 64) ** 2
    trainable = cfg.model != "grabcut"
    total = (3 * f * cfg.epochs * n + f * cfg.epochs * n_val if trainable else 0.0) + f * n_test
    return int(n), round(total / gflops, 1)


def budget(table: str, scale: Scale | str | None = None, rows=None, gflops: float = CPU_GFLOPS,
           flop_table: dict | None = None):
    """Rough time estimate (seconds) of the runs of ``table`` at ``scale`` on a given compute rate.

    Per run: training ``3 * F * epochs * n_train`` plus validation ``F * epochs * n_val`` plus the
    test ``F * n_test`` GFLOP, divided by ``gflops``, where ``F`` is the forward GFLOP of one
    image, scaled by ``(size / 64)^2``. Data loading and Python overhead are ignored, so small
    models are underestimated.

    Args:
        gflops: sustained GFLOP/s of the machine (default: the 2-core development machine).
        flop_table: model name -> forward GFLOP at 64x64, overriding the defaults.

    Returns:
        DataFrame with one row per run: ``run_id``, ``model``, ``image_size``, ``n_train``,
        ``seconds``; ``attrs["total_s"]`` holds the sum.
    """
    import pandas as pd

    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    records = []
    for cfg in experiments(table, scale, rows=rows):
        n_train, seconds = estimate_run_seconds(cfg, gflops, flop_table)
        records.append({"run_id": cfg.run_id, "model": cfg.model, "image_size": cfg.image_size,
                        "n_train": n_train, "seconds": seconds})
    frame = pd.DataFrame(records)
    frame.attrs["total_s"] = float(frame["seconds"].sum()) if len(frame) else 0.0
    return frame
