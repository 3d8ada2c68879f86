"""Data-set statistics (DataFrames) and figures for notebook 01.

Statistics functions return pandas DataFrames; plotting functions return matplotlib Figures
(the notebook saves them with :func:`abanet_lib.paper.plots.save_fig`). The paper's Figure 4 shows
annotated mask *types* (cloth, surgical, N95...); no such labels are available here, so
:func:`mask_colour_clusters` clusters the median colour of each mask region as a proxy and the
figure says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .loaders import list_samples
from .registry import fetch
from .samples import DataError

#: Reference colours used to name colour clusters (RGB).
NAMED_COLOURS = {
    "black": (35, 35, 35), "dark grey": (70, 70, 70), "grey": (128, 128, 128), "light grey": (190, 190, 190),
    "white": (240, 240, 240), "light blue": (150, 190, 220), "blue": (40, 70, 160), "navy": (25, 30, 70),
    "green": (60, 130, 70), "pink": (230, 170, 185), "red": (180, 40, 40), "beige": (210, 190, 160),
    "brown": (110, 75, 50), "yellow": (220, 200, 60),
}


# ---------------------------------------------------------------------------------------
# Loading what is there
# ---------------------------------------------------------------------------------------
def load_available(names, data_root: str | Path | None = None) -> tuple[dict, pd.DataFrame]:
    """List every requested data set that can be found; report the others.

    Args:
        names: data set names (keys of ``DATASETS``).
        data_root: folder holding one sub-folder per data set; None = the default data root
            (copied from the mirror on first use, see :func:`fetch`).

    Returns:
        ``({name: RefList}, status)`` with status columns ``dataset, present, n_samples,
        root, note``.
    """
    found, rows = {}, []
    for name in names:
        try:
            root = fetch(name, None if data_root is None else Path(data_root) / name)
            refs = list_samples(name, root)
            found[name] = refs
            rows.append({"dataset": name, "present": True, "n_samples": len(refs), "root": str(root), "note": ""})
        except DataError as exc:
            rows.append({"dataset": name, "present": False, "n_samples": 0, "root": "",
                         "note": str(exc).splitlines()[0]})
    return found, pd.DataFrame(rows)


def subsample(refs, limit: int | None, seed: int = 0) -> list:
    """A deterministic random subset of at most ``limit`` refs (all when None), in name order."""
    refs = list(refs)
    if limit is None or len(refs) <= limit:
        return refs
    idx = np.random.default_rng(seed).choice(len(refs), size=limit, replace=False)
    return sorted((refs[i] for i in idx), key=lambda r: (r.subset, r.name))


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------
def dataset_counts(refs_by_name: dict) -> pd.DataFrame:
    """Samples and identity groups per data set / subset / category."""
    rows = []
    for name, refs in refs_by_name.items():
        frame = pd.DataFrame([{"subset": r.subset or "-", "category": r.category or "-", "group": r.group}
                              for r in refs])
        for (subset, category), part in frame.groupby(["subset", "category"], sort=True):
            rows.append({"dataset": name, "subset": subset, "category": category,
                         "n_samples": len(part), "n_groups": part["group"].nunique()})
    return pd.DataFrame(rows, columns=["dataset", "subset", "category", "n_samples", "n_groups"])


def sample_stats(refs) -> pd.DataFrame:
    """One row per sample: native size, mask coverage, median colour of the mask region.

    Columns: ``dataset, name, group, subset, category, height, width, coverage, empty,
    mask_r, mask_g, mask_b`` (colour NaN for an empty mask).
    """
    rows = []
    for r in refs:
        s = r.load()
        pixels = s.image[s.mask]
        colour = np.median(pixels, axis=0) if len(pixels) else np.full(3, np.nan)
        rows.append({
            "dataset": r.source, "name": r.name, "group": r.group, "subset": r.subset, "category": r.category,
            "height": s.image.shape[0], "width": s.image.shape[1], "coverage": float(s.mask.mean()),
            "empty": not s.mask.any(), "mask_r": colour[0], "mask_g": colour[1], "mask_b": colour[2],
        })
    return pd.DataFrame(rows)


def identity_counts(refs) -> pd.DataFrame:
    """Samples per identity group, most frequent first (columns ``dataset, group, n``)."""
    frame = pd.DataFrame([{"dataset": r.source, "group": r.group} for r in refs])
    out = frame.groupby(["dataset", "group"]).size().rename("n").reset_index()
    return out.sort_values(["dataset", "n", "group"], ascending=[True, False, True], ignore_index=True)


def _colour_name(rgb) -> str:
    names = list(NAMED_COLOURS)
    ref = np.asarray([NAMED_COLOURS[n] for n in names], dtype=float)
    return names[int(np.argmin(((ref - np.asarray(rgb, dtype=float)) ** 2).sum(axis=1)))]


def mask_colour_clusters(stats: pd.DataFrame, k: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """k-means of the per-sample median mask colour: a *proxy* for the paper's mask types.

    Args:
        stats: output of :func:`sample_stats`.
        k: number of clusters (reduced when there are fewer distinct colours).
        seed: k-means seed.

    Returns:
        ``(stats with a 'colour_cluster' column, clusters)`` where clusters has columns
        ``cluster, r, g, b, n, share, colour_name`` sorted by ``n`` descending.
    """
    from sklearn.cluster import KMeans

    stats = stats.copy()
    valid = stats.dropna(subset=["mask_r", "mask_g", "mask_b"])
    colours = valid[["mask_r", "mask_g", "mask_b"]].to_numpy(dtype=float)
    k = max(1, min(k, len(np.unique(colours, axis=0))))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(colours)
    stats["colour_cluster"] = -1
    stats.loc[valid.index, "colour_cluster"] = km.labels_
    counts = np.bincount(km.labels_, minlength=k)
    clusters = pd.DataFrame({
        "cluster": np.arange(k), "r": km.cluster_centers_[:, 0], "g": km.cluster_centers_[:, 1],
        "b": km.cluster_centers_[:, 2], "n": counts, "share": counts / counts.sum(),
    })
    clusters["colour_name"] = [_colour_name(c) for c in km.cluster_centers_]
    return stats, clusters.sort_values("n", ascending=False, ignore_index=True)


def faces_per_photo(boxes: dict) -> pd.DataFrame:
    """From :func:`read_mfsd_boxes`: number of photos per count of masked faces (Fig. 3c)."""
    n = pd.Series({photo: sum(b.with_mask for b in bs) for photo, bs in boxes.items()})
    out = n.value_counts().sort_index().rename_axis("masked_faces").rename("n_photos").reset_index()
    return out


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
def _overlay(image: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.45) -> np.ndarray:
    out = image.astype(np.float32).copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, dtype=np.float32)
    return out.astype(np.uint8)


def plot_sample_grid(refs, n: int = 12, ncols: int = 6, overlay: bool = False, title: str = "", seed: int = 0):
    """Grid of images (Fig. 1 style), optionally with the mask overlaid in red."""
    import matplotlib.pyplot as plt

    chosen = subsample(refs, n, seed)
    nrows = max(1, int(np.ceil(len(chosen) / ncols)))
    # 1.5 in per photo keeps photo grids under 1 MB as PNG
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, chosen):
        s = r.load()
        ax.imshow(_overlay(s.image, s.mask) if overlay else s.image)
        ax.set_title(r.name[:22], fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_crops_with_labels(refs, n: int = 6, title: str = "", seed: int = 0):
    """Fig. 2 style: top row crops, bottom row their binary mask labels."""
    import matplotlib.pyplot as plt

    chosen = subsample(refs, n, seed)
    fig, axes = plt.subplots(2, len(chosen), figsize=(1.8 * len(chosen), 3.8), squeeze=False)
    for j, r in enumerate(chosen):
        s = r.load()
        axes[0, j].imshow(s.image)
        axes[1, j].imshow(s.mask, cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(r.name[:22], fontsize=6)
        for ax in axes[:, j]:
            ax.axis("off")
    axes[0, 0].text(-0.1, 0.5, "crop", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
    axes[1, 0].text(-0.1, 0.5, "label", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_image_sizes(stats: pd.DataFrame):
    """Fig. 3a style: native width vs height per data set, and the longer-side histogram."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, part in stats.groupby("dataset"):
        jitter = np.random.default_rng(0).normal(0, 3, (2, len(part)))
        a.scatter(part["width"] + jitter[0], part["height"] + jitter[1], s=10, alpha=0.6, label=f"{name} (n={len(part)})")
        b.hist(part[["width", "height"]].max(axis=1), bins=20, alpha=0.6, label=name)
    a.set(xlabel="width [px]", ylabel="height [px]", title="Image sizes (jittered)")
    b.set(xlabel="longer side [px]", ylabel="images", title="Longer side")
    a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_counts(counts: pd.DataFrame, per_photo: pd.DataFrame | None = None):
    """Fig. 3c style: samples per data set/subset/category; masked faces per photo if given."""
    import matplotlib.pyplot as plt

    ncols = 2 if per_photo is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.5), squeeze=False)
    labels = [f"{d}\n{s}/{c}" if (s, c) != ("-", "-") else d
              for d, s, c in zip(counts["dataset"], counts["subset"], counts["category"])]
    ax = axes[0, 0]
    ax.bar(range(len(counts)), counts["n_samples"], color="tab:blue", label="samples")
    ax.bar(range(len(counts)), counts["n_groups"], color="tab:orange", alpha=0.7, width=0.5, label="identity groups")
    ax.set_xticks(range(len(counts)), labels, fontsize=7)
    ax.set(ylabel="count", title="Samples and identity groups")
    ax.legend(fontsize=7)
    if per_photo is not None:
        ax = axes[0, 1]
        ax.bar(per_photo["masked_faces"], per_photo["n_photos"])
        ax.set(xlabel="masked faces in the photo", ylabel="photos", title="Masked faces per image")
    fig.tight_layout()
    return fig


def plot_coverage(stats: pd.DataFrame):
    """Distribution of the mask's share of the image, per data set."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, part in stats.groupby("dataset"):
        ax.hist(100 * part["coverage"], bins=20, range=(0, 100), alpha=0.6,
                label=f"{name} (mean {100 * part['coverage'].mean():.1f}%)")
    ax.set(xlabel="mask pixels [% of image]", ylabel="images", title="Mask coverage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_identity_counts(ids: pd.DataFrame, top: int = 25):
    """Samples of the ``top`` most frequent identities per data set, and the group-size histogram."""
    import matplotlib.pyplot as plt

    names = list(ids["dataset"].unique())
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        part = ids[ids["dataset"] == name]
        head = part.head(top)
        axes[row, 0].bar(range(len(head)), head["n"])
        axes[row, 0].set_xticks(range(len(head)), head["group"].str[:14], rotation=90, fontsize=6)
        axes[row, 0].set(ylabel="samples", title=f"{name}: largest identity groups")
        sizes = part["n"].value_counts().sort_index()
        axes[row, 1].bar(sizes.index, sizes.to_numpy())
        axes[row, 1].set(xlabel="samples per identity", ylabel="identities",
                         title=f"{name}: {len(part)} groups")
    fig.tight_layout()
    return fig


def plot_mask_colour_pie(clusters: pd.DataFrame, title: str = ""):
    """Fig. 4 proxy: share of each mask-colour cluster, wedges painted in the cluster colour."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    colours = clusters[["r", "g", "b"]].to_numpy() / 255.0
    labels = [f"{c} ({100 * s:.0f}%)" for c, s in zip(clusters["colour_name"], clusters["share"])]
    ax.pie(clusters["n"], colors=np.clip(colours, 0, 1), labels=labels,
           wedgeprops={"edgecolor": "black", "linewidth": 0.5}, textprops={"fontsize": 7})
    ax.set_title(title or "Mask colour clusters\n(proxy for mask type: k-means of median mask colour)", fontsize=9)
    fig.tight_layout()
    return fig
