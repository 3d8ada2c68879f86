"""Plot style and the one helper that saves every figure of the project."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from abanet_lib.core import paths


def set_style() -> None:
    """The project's fixed plot style (called by :func:`save_fig` and notebooks)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"})


#: Scale names a figure's file name may end with (``<stem>_<scale>.png``).
_SCALE_SUFFIXES = ("smoke", "reduced", "paper", "gpu")


def save_fig(fig, name: str, scale: str | None = None, folder: Path | None = None, pdf: bool = False) -> Path:
    """Save ``fig`` as ``<figures of scale>/<name>_<scale>.png`` (and PDF if asked); return the path.

    Every figure is named by its scale, and a non-committed scale (smoke) writes under the
    git-ignored ``.cache/results-<scale>/`` (:func:`abanet_lib.core.paths.figures_dir`), so a notebook
    run by hand at smoke scale never overwrites a committed figure. The PNG is written without
    variable metadata, so the same figure rendered twice gives the same bytes.

    Args:
        fig: a matplotlib Figure.
        name: file stem without extension, e.g. ``"fig03_image_sizes"``; may already end with
            ``_<scale>``.
        scale: the scale the figure shows; ``None`` takes it from the name's ``_<scale>`` suffix.
        folder: override of the figures folder (tests).
        pdf: also write a PDF next to the PNG.

    Raises:
        ValueError: the name has an extension, or no scale is given or found in the name.

    Example:
        ``save_fig(fig, "model_costs", scale="reduced")`` -> ``results/figures/model_costs_reduced.png``
    """
    if Path(name).suffix:
        raise ValueError(f"save_fig: give a file stem without extension, got {name!r}")
    suffix = next((s for s in _SCALE_SUFFIXES if name.endswith(f"_{s}")), None)
    if scale is None:
        if suffix is None:
            raise ValueError(f"save_fig: figure {name!r} names no scale; pass scale= (one of "
                             f"{', '.join(_SCALE_SUFFIXES)}) so smoke outputs never replace committed ones")
        scale = suffix
    scale = str(getattr(scale, "name", scale))
    if suffix is None:
        name = f"{name}_{scale}"
    elif suffix != scale:
        raise ValueError(f"save_fig: figure {name!r} ends with scale {suffix!r} but scale={scale!r}")
    folder = Path(folder) if folder is not None else paths.figures_dir(scale)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.png"
    # No "Software"/date entries: identical records give identical bytes.
    fig.savefig(out, metadata={"Software": None})
    if pdf:
        fig.savefig(folder / f"{name}.pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return out
