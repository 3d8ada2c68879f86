"""The whole-photo pipeline end to end on photos with known masks.

maskedfacenet-seg500 ``testing`` (50 photos, 1024x1024; mask = label 2): detect the face,
crop with a margin, segment, paste back at full resolution, and compare with the ground truth.

Reports: detection rate (a face box overlapping the labelled face region with IoU >= 0.3),
mean IoU of the pasted-back mask vs the ground truth, photos/s (load + detect + segment,
no file writing). The model is the best finished run of ``results/runs`` whose checkpoint is
in the cache (preferring runs trained on maskedfacenet-seg500); when there is none, an
UNTRAINED ABANet is used and the file says so (IoU then means nothing; detection rate and
speed still hold).

Writes ``results/benchmarks/whole_photo.{json,md}``.

    .venv/bin/python benchmarks/bench_whole_photo.py [--run RUN] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from abanet_lib.app import faces, predict
from abanet_lib.core import paths


def run(run_spec: str | None, limit: int | None, detector_name: str, margin: float,
        device: str = "cpu", warmup: int = 1) -> dict:
    mirror = paths.data_mirror()
    if mirror is None:
        raise SystemExit("data mirror not found (set ABANET_DATA_MIRROR)")
    photos = sorted((mirror / "maskedfacenet-seg500" / "testing").glob("*/images/*.jpg"))[:limit]
    run_spec = run_spec or predict.find_trained_run() or "untrained:abanet@128"
    segmenter = predict.load_segmenter(run_spec, device)
    detector = faces.create_detector(detector_name)
    for path in photos[:warmup]:  # first calls pay one-off costs (allocator, kernel selection)
        predict.predict_photo(predict.load_photo(path)[0], segmenter, detector, margin=margin)
    rows = []
    start_all = time.perf_counter()
    for path in photos:
        t0 = time.perf_counter()
        image, _ = predict.load_photo(path)
        result = predict.predict_photo(image, segmenter, detector, margin=margin, no_face="whole")
        seconds = time.perf_counter() - t0
        labels = np.asarray(Image.open(path.parent.parent / "masks" / f"{path.stem}_gt.png"))
        truth, mask = labels == 2, result.mask()
        union = (truth | mask).sum()
        face_box = faces.mask_bbox(labels > 0)
        detected = [faces.FaceBox(*f["face_box"]) for f in result.faces if f["source"] != "whole"]
        hit = any(faces.box_iou(b, face_box) >= 0.3 for b in detected) if face_box else False
        rows.append({"photo": path.name, "detected": hit, "n_faces": len(detected),
                     "iou": float((truth & mask).sum() / union) if union else 1.0, "seconds": seconds,
                     **{k: round(v, 4) for k, v in result.timings.items()}})
    wall = time.perf_counter() - start_all
    ious = np.array([r["iou"] for r in rows])
    detected = np.array([r["detected"] for r in rows])
    return {
        "model": segmenter.label, "trained": segmenter.trained, "image_size": segmenter.image_size,
        "detector": detector.name, "margin": margin, "warmup": warmup, "n_photos": len(rows),
        "detection_rate": float(detected.mean()),
        "mean_iou": float(ious.mean()), "mean_iou_detected": float(ious[detected].mean()) if detected.any() else None,
        "photos_per_s": len(rows) / wall, "mean_detect_s": float(np.mean([r["detect_s"] for r in rows])),
        "mean_segment_s": float(np.mean([r["segment_s"] for r in rows])),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "device": str(segmenter.device),
                    "gpu": torch.cuda.get_device_name() if segmenter.device.type == "cuda" else None},
        "per_photo": rows,
    }


def write(report: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "whole_photo.json").write_text(json.dumps(report, indent=2) + "\n")
    status = ("trained run" if report["trained"] else
              "**UNTRAINED model (random weights): the IoU means nothing; detection rate and speed hold**")
    lines = ["# Whole-photo pipeline on maskedfacenet-seg500 testing", "",
             f"{report['n_photos']} photos (1024x1024), ground truth = label 2 (the mask). "
             f"Model `{report['model']}` at {report['image_size']}x{report['image_size']}: {status}. "
             f"Detector `{report['detector']}`, crop margin {report['margin']}.", "",
             "| detection rate | IoU pasted-back mask vs GT (all photos) | IoU (detected photos) | photos/s | detect s/photo | segment s/photo |",
             "|---|---|---|---|---|---|",
             f"| {report['detection_rate']:.3f} | {report['mean_iou']:.4f} | "
             f"{report['mean_iou_detected'] if report['mean_iou_detected'] is None else round(report['mean_iou_detected'], 4)} | "
             f"{report['photos_per_s']:.2f} | {report['mean_detect_s']:.3f} | {report['mean_segment_s']:.3f} |", "",
             f"photos/s counts load + detection + segmentation (no file writing) after {report['warmup']} warm-up "
             f"photo(s); segmenter on {report['machine']['device']}"
             f"{' (' + report['machine']['gpu'] + ')' if report['machine'].get('gpu') else ''}, detection on CPU, "
             f"{report['machine']['threads']} CPU threads; {report['machine']['platform']}."]
    (folder / "whole_photo.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="run id / save_pretrained folder (default: best run)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--margin", type=float, default=predict.DEFAULT_MARGIN)
    parser.add_argument("--device", default="cpu", help="where the segmenter runs (detection: CPU)")
    parser.add_argument("--warmup", type=int, default=1, help="photos run once before timing")
    parser.add_argument("--out", type=Path, default=None, help="default results/benchmarks")
    args = parser.parse_args()
    report = run(args.run, args.limit, args.detector, args.margin, args.device, args.warmup)
    write(report, args.out or paths.results_dir() / "benchmarks")
    print(json.dumps({k: v for k, v in report.items() if k != "per_photo"}, indent=1))


if __name__ == "__main__":
    main()
