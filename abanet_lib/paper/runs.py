"""Load the run if it exists, otherwise train it: the orchestration that makes a run's record.

:func:`run_or_load` trains (resuming an interrupted attempt), evaluates the test split, records
the paper's artifacts (:mod:`abanet_lib.paper.artifacts`: speed, cross-domain scores, figure
maps) and writes the record through :func:`abanet_lib.engine.registry.record_run`;
:func:`run_many` / :func:`run_labelled` do it for a list of configurations (a table's rows).
:func:`run_or_load_distributed` trains with DistributedDataParallel first; launched with::

    torchrun --nproc_per_node 2 -m abanet_lib.paper.runs --scale smoke [--model NAME] [--set key=value ...]

Reading finished records (``load_run``, ``find_runs``, ``load_model``) is
:mod:`abanet_lib.engine.registry`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from abanet_lib.core import paths, provenance
from abanet_lib.core.config import RunConfig, get_scale
from abanet_lib.core.io import atomic_csv
from abanet_lib.data.fingerprint import data_fingerprint
from abanet_lib.engine import registry
from abanet_lib.engine.assembly import TrainingData, build_model, build_split, build_training_data, seed_everything
from abanet_lib.engine.checkpoints import checkpoint_dir, staged_checkpoints
from abanet_lib.engine.evaluate import evaluate
from abanet_lib.engine.train import join_process_group, train
from abanet_lib.paper import artifacts


class RunFailedError(RuntimeError):
    """One or more runs of :func:`run_many` failed (details in the message and logs)."""


def run_or_load(
    cfg: RunConfig,
    force: bool = False,
    progress: bool = True,
    *,
    model: nn.Module | None = None,
    criterion: Callable | None = None,
    data: TrainingData | None = None,
    test_refs: Sequence | None = None,
    max_batches: int | None = None,
    callbacks: Sequence = (),
    accumulator_factory: Callable | None = None,
    extra_metrics: dict | None = None,
) -> registry.Run:
    """Return the finished run of ``cfg``, training and evaluating it first if needed.

    Args:
        cfg: the run.
        force: retrain from scratch (drops checkpoints and the old metrics).
        progress: progress bars / per-epoch lines.
        model, criterion, data, test_refs: injected pieces (tests, custom experiments);
            by default built from ``cfg`` (split from :func:`abanet_lib.engine.assembly.build_split`).
        max_batches: cap on training batches per epoch (smoke checks).
        callbacks: passed to :func:`abanet_lib.engine.train.train`.
        accumulator_factory: metric accumulator for :func:`abanet_lib.engine.evaluate.evaluate`.
        extra_metrics: entries added to ``metrics.json`` (the distributed run's world size).

    Training happens in the run's staging folder (:func:`abanet_lib.engine.registry.record_run`);
    the finished folder replaces the record in one step, so a kill at any moment leaves the
    previous record as it was, and running again resumes the interrupted attempt.
    """
    if not force and registry.is_complete(cfg):
        return registry.checked_against_data(registry.load_run_folder(registry.run_dir(cfg)),
                                             check_data=model is None and data is None)
    return registry.record_run(cfg, lambda staging: _train_and_evaluate(
        cfg, staging, progress, model, criterion, data, test_refs, max_batches, callbacks,
        accumulator_factory, extra_metrics), force=force, progress=progress)


def _train_and_evaluate(cfg, folder, progress, model, criterion, data, test_refs, max_batches,
                        callbacks, accumulator_factory, extra_metrics=None) -> None:
    """Train (resuming from the staged checkpoint if any) and evaluate into ``folder`` (the
    staging folder); ``metrics.json`` is written last."""
    start = time.perf_counter()
    split = None
    if test_refs is None or (data is None and model is None):
        split = build_split(cfg)
    if test_refs is None:
        test_refs = split.test
    if model is None:
        seed_everything(cfg.seed)  # same order as train(): identical initial weights
        model = build_model(cfg, split)
    trainable = model.trainable
    if data is None and trainable:
        data = build_training_data(cfg, split if split is not None else build_split(cfg))

    result = train(cfg, folder, model=model, criterion=criterion, data=data, progress=progress,
                   max_batches=max_batches, resume=True, callbacks=callbacks)
    t_eval = time.perf_counter()
    # Every record keeps its test predictions as 1-bit PNGs: figures need no weights.
    per_image, summary = evaluate(result.model, test_refs, cfg.image_size, device=result.device,
                                  precision=result.precision, batch_size=max(cfg.batch_size, 8),
                                  channels_last=cfg.channels_last, progress=False,
                                  accumulator_factory=accumulator_factory,
                                  save_predictions_dir=folder / registry.PREDICTIONS_DIR,
                                  prediction_format="binary")
    eval_seconds = time.perf_counter() - t_eval
    if result.trained:
        atomic_csv(result.history, folder / "history.csv")
    else:
        atomic_csv(pd.DataFrame(columns=["epoch", "train_loss", "val_loss", "val_iou", "lr", "seconds",
                                          "img_per_s"]), folder / "history.csv")
    atomic_csv(per_image, folder / "per_image.csv")
    artifacts.record_artifacts(folder, cfg, result.model, result.device, trained=result.trained)
    data_sha256 = None
    if split is not None:  # built from cfg (not injected): record the bytes it read
        fingerprint = data_fingerprint([*split.train, *split.val, *split.test])
        registry.write_data_record(folder, fingerprint)
        data_sha256 = fingerprint["sha256"]

    n_train = len(data.train) if data is not None else 0
    n_val = len(data.val) if data is not None and data.val is not None else 0
    final_best = checkpoint_dir(cfg, staged=False) / "best.pt"
    metrics = {
        "run_id": cfg.run_id,
        "model": cfg.model,
        "scale": cfg.scale,
        "test": summary,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": len(test_refs),
        "trained": result.trained,
        "best_epoch": result.best_epoch,
        "best_val_iou": result.best_val_iou,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "train_seconds": result.seconds,
        "train_img_per_s": result.img_per_s,
        "eval_seconds": eval_seconds,
        "precision": result.precision,
        "data_sha256": data_sha256,
        # where best.pt lands once the record is swapped in
        "checkpoint": str(final_best) if result.best_checkpoint else None,
        # what an untrained model fitted on the training split (GrabCut's rectangle), if anything
        "fitted": result.model.fitted_params(),
        "provenance": provenance.collect(result.device, wall_seconds=time.perf_counter() - start,
                                         scale=cfg.scale),
        **(extra_metrics or {}),
    }
    registry.write_metrics(folder, metrics)


def run_many(cfgs: Iterable[RunConfig], force: bool = False, progress: bool = True,
             raise_on_failure: bool = True, train_missing: bool = True, **kwargs: Any) -> list[registry.Run]:
    """Run (or load) several configurations, one progress line each.

    Only missing runs train. A failing run is logged to
    ``cache_dir()/failures/<run_id>.log`` (traceback) and the loop goes on; at the end
    :class:`RunFailedError` lists every failure (unless ``raise_on_failure`` is False).
    With ``train_missing=False`` nothing trains: complete runs load, missing ones are
    reported as "not run" and left out (tables then mark their rows "not run").

    Returns:
        The runs that completed, in input order.
    """
    cfgs = list(cfgs)
    runs, failures = [], []
    for i, cfg in enumerate(cfgs, start=1):
        tag = f"[{i}/{len(cfgs)}] {cfg.run_id} ({cfg.model}, fold {cfg.fold}, seed {cfg.seed})"
        if not force and registry.is_complete(cfg):
            try:
                runs.append(registry.load_run(cfg.run_id))
            except registry.RunRecordError as err:  # reported and left out; the record is never retrained over
                message = f"{tag}: BROKEN RECORD, left out: {err}"
                print(message, flush=True)
                warnings.warn(message, stacklevel=2)
                if train_missing:
                    failures.append(f"{cfg.run_id} ({cfg.model}): broken record: {err}")
                continue
            if progress:
                print(f"{tag}: cached", flush=True)
            continue
        if not train_missing:
            if progress:
                print(f"{tag}: not run (train_missing=False)", flush=True)
            continue
        if progress:
            print(f"{tag}: training ...", flush=True)
        t0 = time.perf_counter()
        try:
            run = run_or_load(cfg, force=force, progress=progress, **kwargs)
        except Exception as err:  # keep going; report all failures at the end
            log = paths.cache_dir() / "failures" / f"{cfg.run_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n\n" + traceback.format_exc())
            failures.append(f"{cfg.run_id} ({cfg.model}): {type(err).__name__}: {err} [log: {log}]")
            if progress:
                print(f"{tag}: FAILED after {time.perf_counter() - t0:.0f}s: {type(err).__name__}: {err}",
                      flush=True)
            continue
        runs.append(run)
        if progress:
            iou = run.test.get("iou")
            print(f"{tag}: done in {time.perf_counter() - t0:.0f}s, test iou "
                  f"{iou if iou is None else round(iou, 4)}", flush=True)
    if failures and raise_on_failure:
        raise RunFailedError(f"{len(failures)} of {len(cfgs)} runs failed:\n  " + "\n  ".join(failures))
    return runs


def load_finished(cfgs: Iterable[RunConfig]) -> dict[str, registry.Run]:
    """``{run_id: run}`` of the complete records among ``cfgs`` (nothing trains, nothing prints)."""
    return {run.config.run_id: run for run in run_many(list(cfgs), train_missing=False, progress=False)}


def run_labelled(cfgs: dict[str, RunConfig], **kwargs: Any) -> dict[str, registry.Run]:
    """:func:`run_many` over ``{label: config}``; returns ``{label: run}`` of the completed runs."""
    by_id = {run.config.run_id: run for run in run_many(list(cfgs.values()), **kwargs)}
    return {label: by_id[cfg.run_id] for label, cfg in cfgs.items() if cfg.run_id in by_id}


def run_or_load_distributed(cfg: RunConfig, force: bool = False, progress: bool = True, **train_options: Any):
    """DDP-train ``cfg`` (``train(distributed=True)``) if its run is missing, then let rank 0 finish it.

    Every rank trains into the staging folder; rank 0 then calls :func:`run_or_load`, which
    resumes from the final checkpoint (no epochs left), evaluates the test split and swaps the
    record in; ``metrics.json`` gets a ``distributed`` entry (world size, backend).

    Args:
        train_options: ``backend``, ``sync_bn``, ``find_unused_parameters`` of :func:`train`.

    Returns:
        The :class:`~abanet_lib.engine.registry.Run` on rank 0, ``None`` on other ranks.
    """
    group, _ = join_process_group(train_options.get("backend"))
    if force or not registry.is_complete(cfg):
        staging = registry.staging_dir(cfg)
        with staged_checkpoints(cfg):  # the finished record stays untouched until the swap
            if group.is_main:
                registry.prepare_staging(cfg, staging, force=force, progress=progress)
            group.barrier()
            result = train(cfg, staging, progress=progress, distributed=True, **train_options)
        if group.is_main:
            run_or_load(cfg, progress=progress, extra_metrics={"distributed": {
                **result.extra, "train_seconds": result.seconds, "train_img_per_s": result.img_per_s}})
    group.barrier()
    return registry.load_run(cfg.run_id) if group.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node N -m abanet_lib.paper.runs --scale smoke [--model M] [--set k=v]``."""
    parser = argparse.ArgumentParser(prog="torchrun ... -m abanet_lib.paper.runs",
                                     description="train one RunConfig with DistributedDataParallel and record it")
    parser.add_argument("--scale", default=None, help="smoke, reduced or paper (default: ABANET_SCALE)")
    parser.add_argument("--model", default=None, help="factory name (default: the scale's abanet)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a RunConfig field (JSON values), e.g. --set epochs=2")
    parser.add_argument("--backend", default=None, choices=["gloo", "nccl"])
    parser.add_argument("--force", action="store_true", help="retrain even if the run exists")
    args = parser.parse_args(argv)
    cfg = get_scale(args.scale).base_config()
    if args.model:
        cfg = cfg.with_model(args.model)
    changes = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    if changes:
        cfg = cfg.replace(**changes)
    run = run_or_load_distributed(cfg, force=args.force, backend=args.backend)
    if run is not None:
        print(f"run {cfg.run_id}: test iou {run.test.get('iou')}; folder {run.path}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
