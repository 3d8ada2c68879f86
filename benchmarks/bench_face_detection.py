"""Which offline face detector finds masked faces best?

For every detector of :func:`abanet_lib.app.faces.available_detectors`:

* maskedfacenet-seg500 (1024x1024 FFHQ photos with a drawn surgical mask; labels 0/1/2):
  ``found`` = at least one face; ``hit`` = the largest box overlaps the face region
  (label 1 or 2) with box IoU >= 0.3; ``mask_coverage`` = share of mask pixels (label 2)
  inside the crop that the pipeline would segment (largest box, margin 0.25, square).
* mfsd-sample (250x250 real MFSD face crops): ``found`` = at least one face (each crop is a
  face, so this is the recall on tight real crops); ``mask_coverage`` as above.

Writes ``results/benchmarks/face_detection.{json,md}``.

    .venv/bin/python benchmarks/bench_face_detection.py [--limit N]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from abanet_lib.app import faces
from abanet_lib.core import paths

MARGIN = 0.25
IOU_HIT = 0.3


def _photos(mirror: Path, limit: int | None):
    mfn = sorted((mirror / "maskedfacenet-seg500").glob("*/*/images/*.jpg"))
    mfsd = sorted((mirror / "mfsd-sample" / "image").glob("*.jpg"))
    if limit:
        mfn, mfsd = mfn[:limit], mfsd[:limit]
    return mfn, mfsd


def _mfn_mask(image_path: Path) -> np.ndarray:
    mask_path = image_path.parent.parent / "masks" / f"{image_path.stem}_gt.png"
    return np.asarray(Image.open(mask_path))


def _coverage(box, mask: np.ndarray) -> float:
    if box is None:
        return 0.0
    crop = faces.expand_box(box, MARGIN, mask.shape)
    total = mask.sum()
    return float(mask[crop.y1:crop.y2, crop.x1:crop.x2].sum() / total) if total else 1.0


def run(limit: int | None = None, detectors: list[str] | None = None, mirror: Path | None = None) -> dict:
    mirror = mirror or paths.data_mirror()
    if mirror is None:
        raise SystemExit("data mirror not found (set ABANET_DATA_MIRROR)")
    mfn, mfsd = _photos(mirror, limit)
    results = {}
    for name in detectors or faces.available_detectors():
        detector = faces.create_detector(name)
        row = {"maskedfacenet": {"found": [], "hit": [], "mask_coverage": [], "seconds": []},
               "mfsd_sample": {"found": [], "mask_coverage": [], "seconds": []}}
        for path in mfn:
            image = np.asarray(Image.open(path).convert("RGB"))
            labels = _mfn_mask(path)
            start = time.perf_counter()
            boxes = detector.detect(image)
            row["maskedfacenet"]["seconds"].append(time.perf_counter() - start)
            top = boxes[0] if boxes else None
            face_box = faces.mask_bbox(labels > 0)
            row["maskedfacenet"]["found"].append(bool(boxes))
            row["maskedfacenet"]["hit"].append(bool(top and face_box and faces.box_iou(top, face_box) >= IOU_HIT))
            row["maskedfacenet"]["mask_coverage"].append(_coverage(top, labels == 2))
        for path in mfsd:
            image = np.asarray(Image.open(path).convert("RGB"))
            mask = np.asarray(Image.open(path.parent.parent / "mask" / path.name).convert("L")) > 127
            start = time.perf_counter()
            boxes = detector.detect(image)
            row["mfsd_sample"]["seconds"].append(time.perf_counter() - start)
            row["mfsd_sample"]["found"].append(bool(boxes))
            row["mfsd_sample"]["mask_coverage"].append(_coverage(boxes[0] if boxes else None, mask))
        results[name] = {ds: {k: float(np.mean(v)) if v else None for k, v in d.items()}
                         | {"n": len(d["found"])} for ds, d in row.items()}
        print(name, json.dumps(results[name]), flush=True)
    # Rank: hits on the 1024x1024 photos (the pipeline's use case), then real-crop recall.
    best = max(results, key=lambda n: (results[n]["maskedfacenet"]["hit"] or 0,
                                       results[n]["mfsd_sample"]["found"] or 0))
    return {"detectors": results, "best": best, "margin": MARGIN, "iou_hit": IOU_HIT,
            "n_maskedfacenet": len(mfn), "n_mfsd_sample": len(mfsd),
            "maskedfacenet_photos": sorted({f"{p.parent.parent.parent.name}/{p.parent.parent.name}" for p in mfn}),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version()},
            "notes": ("Detection on a copy downscaled to 640 px on the longer side, CPU. "
                      "YuNet (needs an ONNX file not bundled with opencv-python) and MediaPipe "
                      "(1.2.x bundles no face model) cannot run offline and are not candidates.")}


def write(report: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "face_detection.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Face detection on masked faces (offline detectors)", "",
             f"maskedfacenet-seg500: {report['n_maskedfacenet']} photos (1024x1024); "
             f"mfsd-sample: {report['n_mfsd_sample']} real face crops (250x250). "
             f"Hit = largest box IoU >= {report['iou_hit']} with the face region (labels 1+2); "
             f"mask coverage = share of mask pixels inside the crop (margin {report['margin']}).", "",
             "| detector | MFN found | MFN hit | MFN mask coverage | MFN ms/photo | MFSD-crop found | MFSD-crop mask coverage | MFSD ms/crop |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in report["detectors"].items():
        m, s = r["maskedfacenet"], r["mfsd_sample"]
        lines.append(f"| {name} | {m['found']:.3f} | {m['hit']:.3f} | {m['mask_coverage']:.3f} | "
                     f"{1000 * m['seconds']:.0f} | {s['found']:.3f} | {s['mask_coverage']:.3f} | "
                     f"{1000 * s['seconds']:.0f} |")
    lines += ["", f"Best (default of `--detector auto` when installed): **{report['best']}**.", "",
              report["notes"], f"Machine: {report['machine']['platform']}."]
    (folder / "face_detection.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="photos per data set (debug)")
    parser.add_argument("--detectors", nargs="+", default=None, help="default: every available one")
    parser.add_argument("--mirror", type=Path, default=None, help="data mirror (default: ABANET_DATA_MIRROR)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (MTCNN)")
    parser.add_argument("--out", type=Path, default=None, help="default results/benchmarks")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = run(args.limit, args.detectors, args.mirror)
    write(report, args.out or paths.results_dir() / "benchmarks")
    print("best:", report["best"])


if __name__ == "__main__":
    main()
