"""Build notebooks/03_training.ipynb (stored without outputs). Run: python scripts/make_notebook_03.py"""
from __future__ import annotations

from pathlib import Path

import nbformat

from abanet_lib.notebook_builder import abanet_notebook, parameters_cell, write_notebook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "03_training.ipynb"

md = nbformat.v4.new_markdown_cell
code = nbformat.v4.new_code_cell

cells = [
    md("""# 03 · Training ABANet

Trains the paper's ABANet (Sect. 3–4: attention gates on decoder stages 4–6, residual refinement,
hybrid focal + SSIM + IoU loss summed over all eight side outputs; Adam, lr 1e-4, batch 8) on the
chosen scale, then scores the best checkpoint (highest validation IoU) on the held-out test fold
at each mask's native resolution.

Everything goes through the run registry: when `results/runs/<run_id>/metrics.json` exists, the
run is **loaded, not retrained** (set `force = True` to retrain). An interrupted training resumes
from its last checkpoint in the git-ignored cache.

Scales: `smoke` checks the plumbing (numbers mean nothing), `reduced` is the CPU-sized
reproduction on the 220 real MFSD crops, `paper` is the full protocol (GPU)."""),
    parameters_cell("""import os

scale = os.environ.get("ABANET_SCALE", "reduced")  # smoke | reduced | paper
fold = 0          # test fold of the identity-disjoint split
seed = 0          # seeds weights, data order and split
device = "auto"   # auto | cpu | cuda
force = False     # retrain even when the run's results exist"""),
    code("""import pandas as pd

from abanet_lib.config import get_scale
from abanet_lib.devices import describe_device
from abanet_lib.plots import save_fig, set_style
from abanet_lib.registry import run_or_load
from abanet_lib.train import build_split
from abanet_lib.training_plots import plot_history, plot_per_image, show_run_predictions

set_style()
cfg = get_scale(scale).base_config(fold=fold, seed=seed, device=device).with_model("abanet")
print(get_scale(scale).description)
print("run id:", cfg.run_id)
pd.Series(describe_device(device), name="device").to_frame()"""),
    md("## Train (or load) the run"),
    code("""run = run_or_load(cfg, force=force)
m = run.metrics
print(f"trained {m['epochs_run']} epochs on {m['n_train']} images ({m['n_val']} validation, "
      f"{m['n_test']} test); best epoch {m['best_epoch']} (val IoU {m['best_val_iou']})")
print(f"training {m['train_seconds']:.0f} s at {m['train_img_per_s']:.1f} img/s, precision {m['precision']}, "
      f"device {m['provenance']['device']['device']}")"""),
    md("## Learning curves\n\nTraining loss is summed over all side outputs; validation loss and IoU use the "
       "main (refined) output at the training resolution."),
    code("""fig = plot_history(run.history, title=f"ABANet, {scale} scale, fold {fold}")
save_fig(fig, f"nb03_training_curves_{scale}")
run.history.round(4)"""),
    md("## Test scores (native mask resolution, threshold 0.5)"),
    code("""keys = ["iou", "f1", "precision", "recall", "accuracy", "mae", "maxf", "s_measure", "maxe",
        "boundary_f"]
pd.Series({k: run.test[k] for k in keys if k in run.test}, name=f"ABANet ({scale})").to_frame().round(4)"""),
    code("""fig = plot_per_image(run.per_image, "iou", title=f"test IoU per image ({scale})")
save_fig(fig, f"nb03_test_iou_per_image_{scale}")
run.per_image.nsmallest(5, "iou")[["name", "iou", "f1", "precision", "recall"]].round(3)"""),
    md("## A few predictions\n\nBest, median and worst test images by IoU. Errors: green = correct mask "
       "pixels, red = false positives, blue = missed mask pixels."),
    code("""refs = {r.name: r for r in build_split(cfg).test}
ranked = run.per_image.sort_values("iou", ascending=False)["name"].tolist()
picks = [ranked[0], ranked[len(ranked) // 2], ranked[-1]]
fig = show_run_predictions(run, [refs[n] for n in picks], device=device)
save_fig(fig, f"nb03_predictions_{scale}")"""),
]

nb = abanet_notebook(cells)

if __name__ == "__main__":
    print(f"wrote {write_notebook(nb, OUT)}")
