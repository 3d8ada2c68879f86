"""Plot style and the one helper that saves every figure of the project."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from abanet_lib import paths


def set_style() -> None:
    """The project's fixed plot style (called by :func:`save_fig` and notebooks)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"})


def save_fig(fig, name: str, folder: Path | None = None, pdf: bool = False) -> Path:
    """Save ``fig`` as ``results/figures/<name>.png`` (and PDF if asked); return the PNG path.

    Args:
        fig: a matplotlib Figure.
        name: file stem, e.g. ``"fig03_image_sizes"``; no extension.
        folder: override of the figures folder (tests).
        pdf: also write a PDF next to the PNG.
    """
    if Path(name).suffix:
        raise ValueError(f"save_fig: give a file stem without extension, got {name!r}")
    folder = Path(folder) if folder is not None else paths.figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.png"
    fig.savefig(out)
    if pdf:
        fig.savefig(folder / f"{name}.pdf")
    return out
