"""Build notebooks/14_segment_your_photos.ipynb (stored without outputs).

Run: .venv/bin/python scripts/make_notebook_14.py
"""
from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell

from abanet_lib.notebook_builder import abanet_notebook, parameters_cell, write_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "14_segment_your_photos.ipynb"

cells = [
    new_markdown_cell(
        "# 14 - Segment the mask on your own photos\n\n"
        "The paper segments the mask region in **face crops**. A real photo is larger and may hold "
        "several faces, so `abanet_lib.predict` wraps the model in a whole-photo pipeline: "
        "**detect** faces (offline detector, see `results/benchmarks/face_detection.md`), **crop** each "
        "with a margin, **segment** the crop at the model's input size, **paste** the mask back at full "
        "resolution, and draw an **overlay**. This notebook runs each step by hand on sample photos, then "
        "the same pipeline as one call (what `python -m abanet_lib predict` does).\n\n"
        "The model is the best finished run in `results/runs` when one exists (its checkpoint must be in "
        "the cache); otherwise an **untrained** model, clearly labelled: its masks are noise, the "
        "pipeline's geometry is what you see."
    ),
    parameters_cell(
        "import os\n\n"
        "scale = os.environ.get(\"ABANET_SCALE\", \"reduced\")\n"
        "run = None  # run id or save_pretrained folder; None = best trained run, else an untrained model\n"
        "fallback_model = \"abanet\"  # used untrained when no trained run exists\n"
        "n_photos = 3  # maskedfacenet-seg500 testing photos (1024x1024, ground truth known)\n"
        "detector_name = \"auto\"\n"
        "margin = 0.25\n"
        "threshold = 0.5"
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "from matplotlib.patches import Rectangle\n\n"
        "from abanet_lib import faces, paths, plots, predict\n"
        "from abanet_lib.config import get_scale\n"
        "from abanet_lib.data import list_samples\n\n"
        "plots.set_style()\n"
        "scale = get_scale(scale)\n"
        "# smoke: a light untrained baseline keeps the notebook fast\n"
        "fallback = \"smp:Unet:resnet34\" if scale.name == \"smoke\" else fallback_model\n"
        "run_spec = run or predict.find_trained_run() or f\"untrained:{fallback}@{scale.image_size}\"\n"
        "segmenter = predict.load_segmenter(run_spec, device=\"cpu\")\n"
        "detector = faces.create_detector(detector_name)\n"
        "status = \"TRAINED\" if segmenter.trained else \"UNTRAINED (random weights: masks are meaningless)\"\n"
        "print(f\"model: {segmenter.label} at {segmenter.image_size}x{segmenter.image_size} -> {status}\")\n"
        "print(f\"face detector: {detector.name}\")"
    ),
    new_markdown_cell("## The photos\nMaskedFace-Net test photos: whole FFHQ portraits with a drawn mask; "
                      "the ground truth (label 2 = mask) lets us score the pasted-back mask."),
    new_code_cell(
        "refs = [r for r in list_samples(\"maskedfacenet-seg500\") if r.subset == \"testing\"][:n_photos]\n"
        "photos = [predict.load_photo(r.image_path)[0] for r in refs]\n"
        "truths = [r.load().mask for r in refs]\n"
        "[(r.name, p.shape) for r, p in zip(refs, photos)]"
    ),
    new_markdown_cell("## Step 1 - detect faces\nBoxes in full-photo pixels, largest first "
                      "(green). The crop (yellow) is the box made square and grown by `margin` on each side."),
    new_code_cell(
        "detections = [detector.detect(p) for p in photos]\n"
        "crop_boxes = [[faces.expand_box(b, margin, p.shape[:2]) for b in d] or [faces.whole_image_box(p.shape[:2])]\n"
        "              for p, d in zip(photos, detections)]\n"
        "fig, axes = plt.subplots(1, len(photos), figsize=(2.2 * len(photos), 2.2), squeeze=False)\n"
        "for ax, p, d, c in zip(axes[0], photos, detections, crop_boxes):\n"
        "    ax.imshow(predict.thumbnail(p), extent=(0, p.shape[1], p.shape[0], 0))  # small figure, pixel coordinates\n"
        "    for b in d:\n"
        "        ax.add_patch(Rectangle((b.x1, b.y1), b.width, b.height, fill=False, color=\"lime\", lw=2))\n"
        "    for b in c:\n"
        "        ax.add_patch(Rectangle((b.x1, b.y1), b.width, b.height, fill=False, color=\"gold\", lw=2, ls=\"--\"))\n"
        "    ax.set_title(f\"{len(d)} face(s)\")\n"
        "    ax.axis(\"off\")\n"
        "plots.save_fig(fig, \"fig14a_detect_and_crop\")\n"
        "[[b.to_dict() for b in d] for d in detections]"
    ),
    new_markdown_cell("## Step 2 and 3 - crop and segment\nEach crop is resized to the model's input size, "
                      "ImageNet-normalised, segmented, and the probability map is resized back to the crop."),
    new_code_cell(
        "crops = [p[b.y1:b.y2, b.x1:b.x2] for p, boxes in zip(photos, crop_boxes) for b in boxes[:1]]\n"
        "crop_probs = segmenter.predict_crops(crops)\n"
        "fig, axes = plt.subplots(2, len(crops), figsize=(2 * len(crops), 4), squeeze=False)\n"
        "for i, (c, pr) in enumerate(zip(crops, crop_probs)):\n"
        "    axes[0, i].imshow(predict.thumbnail(c))\n"
        "    axes[0, i].set_title(f\"crop {c.shape[1]}x{c.shape[0]}\")\n"
        "    axes[1, i].imshow(predict.thumbnail(pr), vmin=0, vmax=1, cmap=\"magma\")\n"
        "    axes[1, i].set_title(\"mask probability\" + (\"\" if segmenter.trained else \" (untrained)\"))\n"
        "for ax in axes.ravel():\n"
        "    ax.axis(\"off\")\n"
        "plots.save_fig(fig, \"fig14b_crops_and_probabilities\")"
    ),
    new_markdown_cell("## Step 4 - paste back at full resolution\nThe crop's map goes back where the crop came "
                      "from (maximum where crops overlap); the result equals what `predict_photo` returns in one call."),
    new_code_cell(
        "canvases = []\n"
        "for p, boxes, pr in zip(photos, crop_boxes, crop_probs):\n"
        "    canvas = np.zeros(p.shape[:2], np.float32)\n"
        "    canvases.append(predict.paste_mask(canvas, pr, boxes[0]))\n"
        "results = [predict.predict_photo(p, segmenter, detector, margin=margin, threshold=threshold) for p in photos]\n"
        "same = [np.allclose(c, r.prob, atol=1e-6) for c, r in zip(canvases, results)]\n"
        "ious = [float((r.mask(threshold) & t).sum() / max(1, (r.mask(threshold) | t).sum())) for r, t in zip(results, truths)]\n"
        "print(\"step-by-step map == predict_photo:\", same)\n"
        "print(\"IoU of the pasted-back mask vs ground truth:\", np.round(ious, 3), \"\" if segmenter.trained else \"(untrained: meaningless)\")"
    ),
    new_markdown_cell("## Step 5 - overlay"),
    new_code_cell(
        "fig, axes = plt.subplots(2, len(photos), figsize=(2.2 * len(photos), 4.6), squeeze=False)\n"
        "for i, (p, r, t) in enumerate(zip(photos, results, truths)):\n"
        "    axes[0, i].imshow(predict.thumbnail(predict.overlay(p, r.mask(threshold), r.faces)))\n"
        "    axes[0, i].set_title(f\"prediction, IoU {ious[i]:.2f}\")\n"
        "    axes[1, i].imshow(predict.thumbnail(predict.overlay(p, t)))\n"
        "    axes[1, i].set_title(\"ground truth (label 2)\")\n"
        "for ax in axes.ravel():\n"
        "    ax.axis(\"off\")\n"
        "fig.suptitle(f\"{segmenter.label}: {status}\")\n"
        "plots.save_fig(fig, \"fig14c_overlays\")"
    ),
    new_markdown_cell(
        "## The whole pipeline as one call\n"
        "`predict_paths` is what the command line runs:\n\n"
        "```\npython -m abanet_lib predict photos/ --run RUN_OR_FOLDER --out predictions/\n```\n\n"
        "Here on the photos above, a real MFSD face crop (detectors often miss faces that fill the "
        "frame: `--no-face whole` then segments the whole image) and a file that is not an image "
        "(reported, the batch goes on)."
    ),
    new_code_cell(
        "demo = paths.cache_dir() / \"notebook14\"\n"
        "demo.mkdir(parents=True, exist_ok=True)\n"
        "(demo / \"notes.txt\").write_text(\"not a photo\")\n"
        "inputs = [r.image_path for r in refs] + [list_samples(\"mfsd-sample\")[0].image_path, demo / \"notes.txt\"]\n"
        "summary = predict.predict_paths(inputs, segmenter, demo / \"out\", detector=detector, margin=margin,\n"
        "                                threshold=threshold, progress=False)\n"
        "print(predict.format_summary(summary))\n"
        "summary[\"failures\"]"
    ),
    new_code_cell(
        "import pandas as pd\n\n"
        "records = pd.read_json(demo / \"out\" / \"predictions.jsonl\", lines=True)\n"
        "records[[\"file\", \"status\", \"n_faces\", \"mask_area_px\"]].assign(file=records.file.map(lambda f: os.path.basename(f)))"
    ),
    new_markdown_cell(
        "Measured end to end on all 50 test photos (detection rate, IoU, photos/s): "
        "`results/benchmarks/whole_photo.md`; detectors compared in `results/benchmarks/face_detection.md`. "
        "To share a trained model: `abanet_lib.export.save_pretrained(model, cfg, folder)` writes a "
        "Hub-style folder (config.json + model.safetensors) that `--run folder` accepts, and "
        "`export_onnx` writes an ONNX graph (`results/benchmarks/onnx.md`)."
    ),
]

nb = abanet_notebook(cells)
print(f"wrote {write_notebook(nb, OUT)}")
