"""The paper's reported numbers as data frames (read-only views of the table definitions).

Everything here is *the paper's* claim (or, for :data:`RELEASED_SMP_SCORES`, the means of the
per-image scores the authors released with their code), never our measurement. The paper's
values of Tables 2-9 live with their rows in :mod:`abanet_lib.paper.definitions` (the one
source); this module presents them as frames. Source: ``shared/paper/abanet-paper.md`` and
``shared/notes/official-code.md``.

Units follow the paper: IoU, F1, precision, recall and accuracy in percent; MAE, and the F-beta
and S-measure of Table 3, as fractions in [0, 1]; Table 4's F-beta in percent. Figure 7 has no
numbers in the paper's text (:data:`FIGURE7_NOTE`).

Each table is a :class:`pandas.DataFrame` indexed by the row label (``row`` column = label).
Copy before editing: ``TABLE2.copy()``.
"""
from __future__ import annotations

import pandas as pd

from abanet_lib.paper.definitions import (FIGURE7_ALPHAS, FIGURE7_CHOSEN_ALPHA, FIGURE7_GAMMA,  # noqa: F401
                                          FIGURE7_NOTE, TABLE_ORDER, TABLES)  # (Figure 7's facts: re-exported)

#: Metric columns of the paper, in the paper's units (see module docstring).
PERCENT_METRICS = ("iou", "f1", "precision", "recall", "accuracy")

#: Table name -> the paper's DataFrame (``None`` where the paper gives no numbers).
PAPER_TABLES: dict[str, pd.DataFrame | None] = {name: TABLES[name].paper_frame() for name in TABLE_ORDER}
TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE8, TABLE9 = (
    PAPER_TABLES[f"table{i}"] for i in range(2, 10))
#: Figure 7: the paper's text gives no numbers.
FIGURE7 = PAPER_TABLES["fig7"]


def _frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns).set_index("row", drop=False)


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

#: The paper's full-ABANet numbers (Table 2 "Ours"), repeated in Tables 5-9.
ABANET_PAPER = TABLE2.loc["ABANet (ours)", list(PERCENT_METRICS)].to_dict()


def paper_table(name: str) -> pd.DataFrame | None:
    """Return a copy of the paper's table ``name`` (``"table2"`` ... ``"table9"``), or ``None``
    for the tables without paper numbers (``fig7``, ``released_vs_paper``, ``synthetic``)."""
    if name not in PAPER_TABLES:
        raise ValueError(f"paper_table: unknown table {name!r}; expected one of {sorted(PAPER_TABLES)}")
    table = PAPER_TABLES[name]
    return None if table is None else table.copy()
