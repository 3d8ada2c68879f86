"""Build notebooks/02_model_definition.ipynb (stored without outputs).

Run: .venv/bin/python scripts/make_notebook_02.py
"""
from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell

from abanet_lib.notebook_builder import abanet_notebook, parameters_cell, write_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "02_model_definition.ipynb"

cells = [
    new_markdown_cell(
        "# 02 - Model definition: ABANet and every baseline\n\n"
        "ABANet (paper Sections 4.1-4.4, Figures 5-6) is BASNet's predict-refine network with attention "
        "gates on the skip connections of the finest decoder stages. This notebook shows the network as "
        "built in `abanet_lib.models`: tensor shapes stage by stage, parameters per block, the gated "
        "decoder, the attention maps psi and the eight side outputs, the size and cost of every model we "
        "compare against, and where the authors' released code departs from the paper. "
        "Nothing is trained here; all tables come from `abanet_lib.models.catalog`."
    ),
    parameters_cell(
        "import os\n\n"
        "scale = os.environ.get(\"ABANET_SCALE\", \"reduced\")\n"
        "stage_image_size = 256  # the paper's input size, for the shape tables (shape-only passes)\n"
        "seed = 0"
    ),
    new_code_cell(
        "import pandas as pd\n"
        "import torch\n\n"
        "from abanet_lib import plots\n"
        "from abanet_lib.config import get_scale\n"
        "from abanet_lib.models import create_model, list_models\n"
        "from abanet_lib.models import catalog\n\n"
        "plots.set_style()\n"
        "pd.set_option(\"display.max_colwidth\", 120)\n"
        "scale = get_scale(scale)\n"
        "torch.manual_seed(seed)\n"
        "# smoke: a few models at the smoke size; other scales: every model at the scale's size\n"
        "cost_models = list(catalog.QUICK_MODELS) if scale.name == \"smoke\" else list_models()\n"
        "print(scale.description)"
    ),
    new_markdown_cell(
        "## Tensor shapes, stage by stage\n"
        "A (1, 3, 256, 256) image through the paper variant (gates on paper stages 4, 5, 6). The encoder "
        "keeps full resolution in stage 1 (no ResNet stem), halves it in each later stage down to H/32 "
        "(stage 6, 8x8); the bridge works at H/32; decoder stage kd brings it back to the resolution of "
        "encoder stage k. Gates take the previous decoder stage as g (half the skip's resolution) and "
        "output the skip times psi."
    ),
    new_code_cell(
        "catalog.stage_table(\"abanet\", stage_image_size)"
    ),
    new_markdown_cell(
        "## The decoder and its gates\n"
        "One row per decoder stage: resolution, channels in (upsampled decoder features concatenated with "
        "the skip) and out, whether the skip is gated (paper stage numbering of Table 6: paper stage s is "
        "decoder stage (7 - s)d), and the side output it feeds. Stages 1-2 (6d, 5d) never carry a gate."
    ),
    new_code_cell(
        "catalog.decoder_table(\"abanet\", stage_image_size)"
    ),
    new_markdown_cell(
        "## Parameters per block\n"
        "Paper variant first, then the released-code variant (`abanet_official`). The encoder and the "
        "BASNet decoder hold almost all weights; the three gates add well under 1 %."
    ),
    new_code_cell(
        "paper_model = create_model(\"abanet\")\n"
        "catalog.parameters_by_block(paper_model)"
    ),
    new_code_cell(
        "official_model = create_model(\"abanet_official\")\n"
        "catalog.parameters_by_block(official_model)"
    ),
    new_markdown_cell(
        "## Size and cost of every model\n"
        "Parameters and FLOPs (2 x multiply-accumulates, batch 1, eval mode, counted by "
        "`torch.utils.flop_counter`) at the scale's image size. GrabCut has no weights and no FLOP count. "
        "Mask R-CNN's count depends on how many instances an untrained head detects. The description column "
        "says which models are stand-ins (Table 4 methods whose networks are not published; EINet)."
    ),
    new_code_cell(
        "costs = catalog.model_table(cost_models, image_size=scale.image_size, seed=seed,\n"
        "                            prebuilt={\"abanet\": paper_model, \"abanet_official\": official_model})\n"
        "costs.round(2)"
    ),
    new_code_cell(
        "fig = catalog.plot_model_costs(costs, scale.image_size)\n"
        "plots.save_fig(fig, \"model_costs\")"
    ),
    new_markdown_cell(
        "## Attention maps and side outputs\n"
        "psi of each gate and the probability maps of the eight outputs (refined, d1..d6, bridge) on one "
        "test crop. The weights come from a trained paper-variant run in the registry when one exists; "
        "otherwise the network is untrained and the title says so (then the maps only show the wiring)."
    ),
    new_code_cell(
        "image, mask, sample_label = catalog.sample_for_figures(scale.image_size, seed)\n"
        "figure_model, model_label = catalog.abanet_for_figures(scale.image_size, scale.name, untrained=paper_model)\n"
        "psi, side_outputs = catalog.attention_and_side_outputs(figure_model, image)\n"
        "fig = catalog.plot_attention_and_sides(image, mask, psi, side_outputs, f\"{model_label} - {sample_label}\")\n"
        "plots.save_fig(fig, \"model_attention_side_outputs\")"
    ),
    new_markdown_cell(
        "## Where the released code departs from the paper\n"
        "The authors' code (facts in `shared/notes/official-code.md`) gates the same three skips as the "
        "paper's best setting, but uses the gated skip *instead of* the decoder path, so several layers are "
        "built and never used. The project offers both: `abanet` (paper) and `abanet_official` (released "
        "graph). Notebook 12 compares them trained."
    ),
    new_code_cell(
        "unused = catalog.unused_parameters(official_model)\n"
        "catalog.released_code_departures(paper_model, official_model, unused)"
    ),
    new_markdown_cell(
        "Parameters of the released graph that receive no gradient when all eight outputs are "
        "back-propagated:"
    ),
    new_code_cell(
        "print(f\"{unused['count'].sum():,} of {catalog.count_parameters(official_model):,} parameters unused\")\n"
        "unused"
    ),
]

nb = abanet_notebook(cells)
print(f"wrote {write_notebook(nb, OUT)}")
