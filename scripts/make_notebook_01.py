"""Build notebooks/01_dataset_exploration.ipynb (stored without outputs).

Run: .venv/bin/python scripts/make_notebook_01.py
"""
from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell

from abanet_lib.notebook_builder import abanet_notebook, parameters_cell, write_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "01_dataset_exploration.ipynb"

cells = [
    new_markdown_cell(
        "# 01 - Data sets: what we train and test on\n\n"
        "The paper introduces MFSD (masked-face crops with hand-checked mask labels) and shows it in "
        "Figures 1-4: sample faces, crops with labels, image sizes / face counts, and mask types. "
        "This notebook computes the same views for every data set present locally: the 220 published "
        "MFSD test crops (`mfsd-sample`), 500 MaskedFace-Net images with synthetic masks "
        "(`maskedfacenet-seg500`), and the full MFSD if it was downloaded by hand. "
        "All statistics and figures come from `abanet_lib.data.explore`."
    ),
    parameters_cell(
        "import os\n\n"
        "data_root = None  # folder with one sub-folder per data set; None = ./data (copied from the mirror)\n"
        "scale = os.environ.get(\"ABANET_SCALE\", \"reduced\")\n"
        "datasets = [\"mfsd-sample\", \"maskedfacenet-seg500\", \"mfsd\"]\n"
        "seed = 0"
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n\n"
        "from abanet_lib import plots\n"
        "from abanet_lib.config import get_scale\n"
        "from abanet_lib.data import explore, read_mfsd_boxes\n\n"
        "plots.set_style()\n"
        "scale = get_scale(scale)\n"
        "# per data set, how many images are decoded for the statistics (smoke: a quick look)\n"
        "max_images = 24 if scale.name == \"smoke\" else None\n"
        "found, status = explore.load_available(datasets, data_root)\n"
        "status"
    ),
    new_markdown_cell(
        "## Counts\nSamples and identity groups (people for MFSD crops, photos for full MFSD, images for "
        "MaskedFace-Net). Group splits keep one identity on one side, so the number of groups bounds how "
        "many independent test identities a fold can have."
    ),
    new_code_cell(
        "counts = explore.dataset_counts(found)\n"
        "counts"
    ),
    new_code_cell(
        "refs = {name: explore.subsample(r, max_images, seed) for name, r in found.items()}\n"
        "all_refs = [r for part in refs.values() for r in part]\n"
        "stats = explore.sample_stats(all_refs)\n"
        "stats.groupby(\"dataset\")[[\"height\", \"width\", \"coverage\"]].describe().T"
    ),
    new_markdown_cell("## Figure 1 - sample masked faces"),
    new_code_cell(
        "for name, part in refs.items():\n"
        "    fig = explore.plot_sample_grid(part, n=12, title=f\"{name}: sample masked faces\", seed=seed)\n"
        "    plots.save_fig(fig, f\"fig01_samples_{name}\")\n"
        "    plt.show()"
    ),
    new_markdown_cell("## Figure 2 - crops and their mask labels (and overlays)"),
    new_code_cell(
        "for name, part in refs.items():\n"
        "    fig = explore.plot_crops_with_labels(part, n=6, title=f\"{name}: crops (top) and labels (bottom)\", seed=seed)\n"
        "    plots.save_fig(fig, f\"fig02_crops_labels_{name}\")\n"
        "    plt.show()\n"
        "    fig = explore.plot_sample_grid(part, n=12, overlay=True, title=f\"{name}: mask overlay (red)\", seed=seed)\n"
        "    plots.save_fig(fig, f\"data_overlay_{name}\")\n"
        "    plt.show()"
    ),
    new_markdown_cell(
        "## Figure 3 - image sizes and counts\n"
        "Faces per photo (the paper's Fig. 3c) needs the full MFSD `dataset.csv`; without it the count "
        "panel shows samples and identity groups only. Face orientation (Fig. 3b) has no labels here."
    ),
    new_code_cell(
        "fig = explore.plot_image_sizes(stats)\n"
        "plots.save_fig(fig, \"fig03a_image_sizes\")\n"
        "plt.show()\n"
        "per_photo = explore.faces_per_photo(read_mfsd_boxes(status.set_index(\"dataset\").loc[\"mfsd\", \"root\"])) \\\n"
        "    if \"mfsd\" in found else None\n"
        "fig = explore.plot_counts(counts, per_photo)\n"
        "plots.save_fig(fig, \"fig03c_counts\")\n"
        "plt.show()"
    ),
    new_markdown_cell("## Mask coverage and identities"),
    new_code_cell(
        "fig = explore.plot_coverage(stats)\n"
        "plots.save_fig(fig, \"data_mask_coverage\")\n"
        "plt.show()\n"
        "print(\"empty masks:\", int(stats[\"empty\"].sum()), \"of\", len(stats))\n"
        "identities = explore.identity_counts([r for part in found.values() for r in part])\n"
        "fig = explore.plot_identity_counts(identities)\n"
        "plots.save_fig(fig, \"data_identity_counts\")\n"
        "plt.show()\n"
        "identities.groupby(\"dataset\")[\"n\"].describe()"
    ),
    new_markdown_cell(
        "## Figure 4 - mask types (proxy)\n"
        "The paper's pie chart counts annotated mask types (cloth, surgical, N95, ...). No type labels "
        "exist here, so this is a **proxy**: k-means clusters of each mask region's median colour. "
        "Colour is not type (a blue cloth mask and a blue surgical mask fall together)."
    ),
    new_code_cell(
        "# one clustering per data set: MaskedFace-Net masks are all the same synthetic surgical mask\n"
        "clusters = {}\n"
        "for name, part in stats.groupby(\"dataset\"):\n"
        "    _, clusters[name] = explore.mask_colour_clusters(part, k=5, seed=seed)\n"
        "    fig = explore.plot_mask_colour_pie(\n"
        "        clusters[name], title=f\"{name}: mask colour clusters\\n(proxy for mask type, n={len(part)})\")\n"
        "    plots.save_fig(fig, f\"fig04_mask_colour_proxy_{name}\")\n"
        "    plt.show()\n"
        "pd.concat(clusters, names=[\"dataset\"])"
    ),
]

nb = abanet_notebook(cells)

if __name__ == "__main__":
    print(f"wrote {write_notebook(nb, OUT)}")
