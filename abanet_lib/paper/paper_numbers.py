"""The paper's reported numbers, typed from the paper text, as data.

Everything here is *the paper's* claim (or, for :data:`RELEASED_SMP_SCORES`, the means of the
per-image scores the authors released with their code), never our measurement. Source:
``shared/paper/abanet-paper.md`` (Tables 2-9) and ``shared/notes/official-code.md``.

Units follow the paper: IoU, F1, precision, recall and accuracy in percent; MAE, and the F-beta
and S-measure of Table 3, as fractions in [0, 1]; Table 4's F-beta in percent. The module also
states where the paper gives no number (Figure 7).

Each table is a :class:`pandas.DataFrame` indexed by the row label used by
:mod:`abanet_lib.paper.experiments` (``row`` column = label). Copy before editing: ``TABLE2.copy()``.
"""
from __future__ import annotations

import pandas as pd

#: Metric columns of the paper, in the paper's units (see module docstring).
PERCENT_METRICS = ("iou", "f1", "precision", "recall", "accuracy")


def _frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    return frame.set_index("row", drop=False)


# ---------------------------------------------------------------------------------------
# Table 2: general segmentation models on the MFSD test set (percent).
# Row labels are "<Arch> / <Backbone>" as printed; the paper leaves BASNet's backbone blank.
# ---------------------------------------------------------------------------------------
TABLE2 = _frame(
    ["row", "model_paper", "backbone", "iou", "f1", "precision", "recall", "accuracy"],
    [
        ("Unet / Efficient-b7", "Unet", "Efficient-b7", 89.516, 94.469, 91.507, 97.63, 96.115),
        ("Unet / ResNet50", "Unet", "ResNet50", 89.188, 94.299, 91.463, 97.318, 96.032),
        ("Unet / VGG19", "Unet", "VGG19", 89.208, 94.302, 91.28, 97.533, 96.012),
        ("Unet++ / Efficient-b7", "Unet++", "Efficient-b7", 89.524, 94.47, 91.565, 97.567, 96.129),
        ("Unet++ / ResNet50", "Unet++", "ResNet50", 88.526, 93.928, 90.952, 97.106, 95.678),
        ("Unet++ / VGG19", "Unet++", "VGG19", 89.242, 94.329, 91.602, 97.225, 95.998),
        ("MAnet / Efficient-b7", "MAnet", "Efficient-b7", 89.587, 94.507, 91.667, 97.529, 97.159),
        ("MAnet / ResNet50", "MAnet", "ResNet50", 89.61, 94.21, 91.218, 97.405, 95.934),
        ("MAnet / VGG19", "MAnet", "VGG19", 89.242, 94.339, 91.45, 97.418, 95.999),
        ("Linknet / Efficient-b7", "Linknet", "Efficient-b7", 89.484, 94.464, 91.629, 97.482, 96.113),
        ("Linknet / ResNet50", "Linknet", "ResNet50", 89.011, 94.202, 91.427, 97.152, 95.904),
        ("Linknet / VGG19", "Linknet", "VGG19", 89.064, 94.239, 91.652, 96.978, 95.905),
        ("DeepLabV3+ / Efficient-b7", "DeepLabV3+", "Efficient-b7", 89.242, 94.353, 91.45, 97.448, 95.999),
        ("DeepLabV3+ / ResNet50", "DeepLabV3+", "ResNet50", 89.463, 94.46, 91.46, 97.665, 96.083),
        ("PAN / ResNet50", "PAN", "ResNet50", 89.312, 92.967, 91.522, 97.435, 96.033),
        ("PAN / VGG19", "PAN", "VGG19", 89.466, 94.457, 91.52, 97.59, 96.107),
        ("EINet / ResNet50", "EINet", "ResNet50", 91.435, 96.576, 95.341, 97.845, 97.2),
        ("EU-Net / ResNet-34", "EU-Net", "ResNet-34", 88.834, 94.11, 91.09, 97.352, 95.875),
        ("DAD / ResNet50", "DAD", "ResNet50", 93.24, 96.598, 95.57, 97.649, 97.39),
        ("BASNet", "BASNet", "", 91.68, 95.488, 94.754, 96.235, 96.787),
        ("ABANet (ours)", "Ours", "", 93.814, 96.817, 97.164, 96.474, 97.623),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 3: "top five" models of Table 2 on additional metrics (fractions).
# ---------------------------------------------------------------------------------------
TABLE3 = _frame(
    ["row", "mae", "fbeta", "s_measure"],
    [
        ("EINet / ResNet50", 0.026, 0.955, 0.957),
        ("EU-Net / ResNet-34", 0.035, 0.915, 0.872),
        ("DAD / ResNet50", 0.027, 0.957, 0.96),
        ("BASNet", 0.018, 0.948, 0.953),
        ("ABANet (ours)", 0.014, 0.971, 0.968),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 4: masked-face segmentation methods, mean +- std over five trials.
# IoU, F1, F-beta in percent; MAE a fraction; FPS frames per second (no std given).
# The method each citation used, per the paper: Din, Geng = U-Net based, Zhang = GrabCut,
# Sola & Gera = Mask R-CNN.
# ---------------------------------------------------------------------------------------
TABLE4 = _frame(
    ["row", "method_paper", "iou", "iou_std", "f1", "f1_std", "mae", "mae_std",
     "fbeta", "fbeta_std", "fps"],
    [
        ("Din et al. (U-Net)", "DIN et. al [19]", 90.3, 0.6, 95.7, 0.4, 0.043, 0.02, 92.7, 0.4, 105),
        ("Zhang et al. (GrabCut)", "Zhang et. al [23]", 81.2, 1.4, 88.66, 0.8, 0.172, 0.08, 82.5, 0.6, 273),
        ("Geng et al. (U-Net)", "Geng et. al [21]", 88.9, 0.4, 94.2, 0.3, 0.067, 0.06, 91.9, 0.3, 115),
        ("Sola & Gera (Mask R-CNN)", "Sola and Gera [63]", 91.4, 0.2, 96.2, 0.3, 0.027, 0.03, 95.6, 0.5, 66),
        ("ABANet (ours)", "ours", 93.4, 0.6, 96.5, 0.4, 0.014, 0.02, 96.8, 0.4, 75),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 5: module ablation (percent).
# ---------------------------------------------------------------------------------------
TABLE5 = _frame(
    ["row", "iou", "f1", "precision", "recall", "accuracy"],
    [
        ("baseline", 91.047, 94.99, 94.254, 95.745, 96.185),
        ("baseline+refinement", 91.73, 95.542, 94.859, 96.235, 96.787),
        ("baseline+AG", 92.425, 96.73, 97.28, 96.188, 97.256),
        ("ABANet (ours)", 93.814, 96.817, 97.164, 96.474, 97.623),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 6: attention-gate skip stages (percent). Row label = the stages with a gate.
# ---------------------------------------------------------------------------------------
TABLE6 = _frame(
    ["row", "iou", "f1", "accuracy"],
    [
        ("AG at stages 5,6", 92.75, 95.638, 97.308),
        ("AG at stages 4,5,6 (ABANet)", 93.814, 96.817, 97.623),
        ("AG at stages 3,4,5,6", 93.588, 96.72, 97.671),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 7: input size (IoU only, percent). Row label = the paper's input size.
# ---------------------------------------------------------------------------------------
TABLE7 = _frame(
    ["row", "paper_size", "iou"],
    [
        ("128x128", 128, 92.576),
        ("256x256 (ABANet)", 256, 93.814),
        ("512x512", 512, 93.241),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 8: optimizers (percent).
# ---------------------------------------------------------------------------------------
TABLE8 = _frame(
    ["row", "iou", "f1", "accuracy"],
    [
        ("SGD", 93.182, 95.72, 97.32),
        ("Adamax", 93.584, 96.432, 97.531),
        ("RMSprop", 93.635, 96.509, 97.75),
        ("Adam (ABANet)", 93.814, 96.817, 97.623),
    ],
)

# ---------------------------------------------------------------------------------------
# Table 9: loss functions (percent).
# ---------------------------------------------------------------------------------------
TABLE9 = _frame(
    ["row", "iou", "f1", "accuracy"],
    [
        ("Focal", 88.879, 92.84, 95.4),
        ("IoU", 90.32, 93.79, 94.27),
        ("Focal + IoU", 91.262, 94.18, 95.9),
        ("Focal + SSIM + IoU (ABANet)", 93.814, 96.817, 97.623),
    ],
)

# ---------------------------------------------------------------------------------------
# Figure 7: focal-loss alpha. The paper text only names the values tried and the choice;
# the figure's numbers are not in the text, so there is nothing to compare against.
# ---------------------------------------------------------------------------------------
FIGURE7_ALPHAS = (0.3, 0.5, 0.75, 0.9)
FIGURE7_CHOSEN_ALPHA = 0.3
FIGURE7_GAMMA = 2.0
FIGURE7 = None
FIGURE7_NOTE = ("The paper's text gives no numbers for Figure 7: it states only that alpha in "
                "{0.3, 0.5, 0.75, 0.9} was tried with gamma = 2 and that alpha = 0.3 was chosen.")

# ---------------------------------------------------------------------------------------
# Means of the per-image scores released with the authors' code for the smp baselines
# (274 test crops; percent). Scored with a harsher protocol (masks truncated, not
# thresholded), so not directly comparable with Table 2; note that several equal Table 2's
# row to the third decimal. FPN was released but is not in Table 2.
# ---------------------------------------------------------------------------------------
RELEASED_SMP_SCORES = _frame(
    ["row", "accuracy", "f1", "iou", "precision", "recall"],
    [
        ("Unet / Efficient-b7", 96.118, 94.321, 89.516, 91.507, 97.630),
        ("Unet / ResNet50", 96.032, 94.120, 89.188, 91.463, 97.318),
        ("Unet++ / Efficient-b7", 96.129, 94.336, 89.524, 91.565, 97.567),
        ("MAnet / Efficient-b7", 96.159, 94.373, 89.587, 91.667, 97.529),
        ("Linknet / Efficient-b7", 96.113, 94.320, 89.484, 91.629, 97.482),
        ("DeepLabV3+ / ResNet50", 96.083, 94.320, 89.463, 91.460, 97.665),
        ("PAN / VGG19", 96.107, 94.298, 89.466, 91.521, 97.590),
        ("FPN / VGG19", 96.043, 94.250, 89.335, 91.493, 97.490),
    ],
)
RELEASED_SMP_N_IMAGES = 274

#: Table name -> the paper's DataFrame (``None`` where the paper gives no numbers).
PAPER_TABLES: dict[str, pd.DataFrame | None] = {
    "table2": TABLE2,
    "table3": TABLE3,
    "table4": TABLE4,
    "table5": TABLE5,
    "table6": TABLE6,
    "table7": TABLE7,
    "table8": TABLE8,
    "table9": TABLE9,
    "fig7": FIGURE7,
}

#: The paper's full-ABANet numbers (Table 2 "Ours"), repeated in Tables 5-9.
ABANET_PAPER = TABLE2.loc["ABANet (ours)", list(PERCENT_METRICS)].to_dict()


def paper_table(name: str) -> pd.DataFrame | None:
    """Return a copy of the paper's table ``name`` (``"table2"`` ... ``"table9"``, ``"fig7"``).

    Tables without paper numbers (``fig7``, ``released_vs_paper``, ``synthetic``) give ``None``.
    """
    if name in PAPER_TABLES:
        table = PAPER_TABLES[name]
        return None if table is None else table.copy()
    if name in ("released_vs_paper", "synthetic"):
        return None
    raise ValueError(f"paper_table: unknown table {name!r}; expected one of "
                     f"{sorted(PAPER_TABLES) + ['released_vs_paper', 'synthetic']}")
