"""Complete the run records made before records held everything that is rendered.

Since 2026-12-01 every record stores, besides its scores, what tables and figures show
(``speed.json``, ``cross_domain.json``, ``figure_maps.npz``, ``photo_demo.npz``; see
``abanet_lib.paper.artifacts``). This script adds to the older records what can be added honestly,
and never rewrites a score:

* ``provenance``: the 21 runs trained on a lent H200 on 2026-11-28 recorded ``commit: unknown``
  (the tree copied to the machine had no ``.git``). Both batch-runner calls ran from 06:09 to
  06:17 UTC (``results/gpu_sessions/*_log.txt``), after commit c67379f (06:06) and before
  2ecda1d (06:18), which committed exactly these runs; the commit is recorded with that reasoning
  in ``provenance.git_commit_source`` and ``git_dirty`` stays unknown.
* ``speed.json`` (``--speed``): inference speed depends on the architecture and input size, not
  on the weight values, so it is measured now for every record without one, with freshly
  initialised weights, the machine, threads and load recorded, and ``"weights": "fresh"`` saying so.
  Mask R-CNN's speed does depend on how many instances its head proposes; its note says so.
* Artifacts that need the trained weights (cross-domain scores, attention maps, the photo demo)
  are added only where the weights are on this machine (``--weights``); everywhere else the
  tables say why the cell is empty.

Usage:  python scripts/backfill_records.py [--provenance] [--speed] [--weights] [RUN_ID ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from abanet_lib.paper import artifacts
from abanet_lib.core import paths
from abanet_lib.engine import registry
from abanet_lib.core.io import atomic_write_text
from abanet_lib.engine.assembly import build_model, seed_everything

GPU_COMMIT = "c67379fd8a421fa28270797d9f2a3941f0df68e9"
GPU_COMMIT_SOURCE = (
    "backfilled 2026-12-01: the run was trained on a lent H200 on 2026-11-28 from a copy without "
    ".git; both batch-runner calls ran 06:09-06:17 UTC (results/gpu_sessions/*_log.txt), after "
    "commit c67379f (06:06 UTC) and before 2ecda1d (06:18 UTC), which committed these runs; "
    "whether the copy held uncommitted changes is unknown")


def backfill_provenance(run) -> bool:
    prov = run.metrics.get("provenance", {})
    if prov.get("git_commit") != "unknown":
        return False
    if prov.get("device", {}).get("device") != "cuda":
        raise SystemExit(f"{run.run_id}: commit unknown but not a GPU run; no rule to backfill it")
    metrics = dict(run.metrics)
    metrics["provenance"] = {**prov, "git_commit": GPU_COMMIT, "git_dirty": None,
                             "git_commit_source": GPU_COMMIT_SOURCE}
    atomic_write_text(Path(run.path) / registry.METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True))
    return True


def backfill_speed(run, cache: dict) -> bool:
    path = Path(run.path) / artifacts.SPEED_FILE
    if path.exists():
        return False
    cfg = run.config
    key = (cfg.model, json.dumps(cfg.model_kwargs_dict, sort_keys=True), cfg.image_size, cfg.precision)
    if key not in cache:
        seed_everything(cfg.seed)
        model = build_model(cfg.replace(pretrained=False))
        cache[key] = artifacts.measure_speed(model, cfg, "cpu")
    speed = dict(cache[key], weights="fresh",
                 note="measured after the run, with freshly initialised weights of the same architecture "
                      "(the run's weights were not on this machine)")
    if cfg.model == "maskrcnn":
        speed["note"] += "; Mask R-CNN's speed depends on the number of proposals its head keeps"
    atomic_write_text(path, json.dumps(speed, indent=1, sort_keys=True) + "\n")
    return True


def backfill_with_weights(run) -> list[str]:
    try:
        model = registry.load_model(run, device="cpu")
    except FileNotFoundError:
        return []
    return artifacts.backfill(run, model, device="cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_ids", nargs="*", help="default: every committed run")
    parser.add_argument("--provenance", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--weights", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    ids = args.run_ids or sorted(p.parent.name for p in paths.runs_dir().glob(f"*/{registry.METRICS_FILE}"))
    cache: dict = {}
    for run_id in ids:
        run = registry.load_run(run_id)
        done = []
        if args.provenance and backfill_provenance(run):
            done.append("provenance")
        if args.speed and backfill_speed(run, cache):
            done.append(artifacts.SPEED_FILE)
        if args.weights:
            done += backfill_with_weights(run)
        print(f"{run_id}: {', '.join(done) or 'nothing to add'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
