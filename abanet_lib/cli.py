"""Command line: ``python -m abanet_lib <command>`` (also installed as ``abanet``).

Commands:
    train           train + evaluate one run (a finished run is loaded and described)
    evaluate        re-evaluate a finished run on its test split
    predict         segment mask regions on photos (abanet_lib.app.predict)
    reproduce       execute the numbered notebooks in order through papermill
    results-readme  regenerate the results section of the README (abanet_lib.paper.tables)
    list-runs       show the finished runs of the registry (and any damaged record)

Errors. Every option is checked when it is parsed (ranges, finite numbers, choices, files);
a bad one ends the command with exit code 2 and one line on stderr naming the option. Errors
the project raises on purpose (bad data, a missing or damaged run record, a busy run, a
non-finite loss, ...) also print one line naming the file, run or option, exit code 2.
Anything else is a bug: its traceback is printed, then one line, exit code 1. ``--debug``
(anywhere on the command line) or ``ABANET_DEBUG=1`` shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from abanet_lib.app.options import (CliParser, ModelBuildError, OptionError, bool_option, choice_option,
                                    device_option, float_option, folder_option, int_option, is_deliberate,
                                    nonempty_option, one_line, raised_at)
from abanet_lib.core.config import EXECUTION_ONLY_FIELDS, SCALES, RunConfig, field_help, get_scale

#: Choices of the string options, spelled out so that ``--help`` and parsing need no torch
#: import (tests/test_hardening.py keeps them equal to the library's own lists).
LOSS_COMPONENTS = ("focal", "ssim", "iou", "bce")
LOSS_VARIANTS = ("paper", "official")
OPTIMIZERS = ("adam", "adamax", "rmsprop", "sgd")
SCHEDULES = ("none", "cosine", "step")
SPLITS = ("groupkfold", "paper", "given")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DATASET_NAMES = ("mfsd", "mfsd-sample", "maskedfacenet-seg500")
#: Data sets that ship their own training/testing folders (the ``given`` split needs them).
GIVEN_SPLIT_DATASETS = ("maskedfacenet-seg500",)

PROG = "python -m abanet_lib"
DEBUG_ENV = "ABANET_DEBUG"
#: --help of each RunConfig option, from the RunConfig docstring (its one description)
FIELD_HELP = field_help()

def notebook_numbers_option(text: str) -> str:
    items = [x.strip() for x in text.split(",")]
    if not items or any(not x.isdigit() for x in items):
        raise argparse.ArgumentTypeError(f"expected notebook numbers like 03 (comma-separated), got {text!r}")
    return text


def notebook_number_option(text: str) -> str:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a notebook number like 03, got {text!r}")
    return text.strip()


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"k\": 1}}', got {text!r}")
    return value


#: Parse-time type of every RunConfig option of ``train`` (field -> type).
FIELD_TYPES = {
    "model": nonempty_option,
    "loss": choice_option(LOSS_COMPONENTS, several=True),
    "loss_variant": choice_option(LOSS_VARIANTS),
    "focal_alpha": float_option(0.0, 1.0),
    "focal_gamma": float_option(0.0),
    "optimizer": choice_option(OPTIMIZERS),
    "lr": float_option(0.0, min_open=True),
    "weight_decay": float_option(0.0),
    "momentum": float_option(0.0, 1.0, max_open=True),
    "schedule": choice_option(SCHEDULES),
    "grad_clip": float_option(0.0, min_open=True, optional=True),
    "batch_size": int_option(1),
    "image_size": int_option(32, multiple_of=32),
    "epochs": int_option(1),
    "train_datasets": choice_option(DATASET_NAMES, several=True),
    "eval_dataset": choice_option(DATASET_NAMES),
    "split": choice_option(SPLITS),
    "n_folds": int_option(2),
    "fold": int_option(0),
    "val_fraction": float_option(0.0, 1.0, max_open=True),
    "max_train_images": int_option(1, optional=True),
    "max_eval_images": int_option(1, optional=True),
    "extra_train_images": int_option(1, optional=True),
    "resize_masks": bool_option,
    "augment": bool_option,
    "pretrained": bool_option,
    "seed": int_option(0, 2**32 - 1),
    "precision": choice_option(PRECISIONS),
    "channels_last": bool_option,
    "batches_on_device": bool_option,
    "early_stopping": int_option(1, optional=True),
    "device": device_option,
    "num_workers": int_option(0, 256),
}


def _field_parser(f: dataclasses.Field):
    if f.name in FIELD_TYPES:
        return FIELD_TYPES[f.name]
    default = f.default  # a RunConfig field without an entry above (tests/test_hardening.py flags it)
    if isinstance(default, bool):
        return bool_option
    if isinstance(default, int):
        return int_option()
    if isinstance(default, float):
        return float_option()
    return str


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``train`` options: --scale, every RunConfig field, --model-kwargs, --force ..."""
    parser.add_argument("--scale", default=None, choices=sorted(SCALES),
                        help="start from this scale's settings (default: ABANET_SCALE or 'reduced'); "
                             "options below override them")
    parser.add_argument("--model-kwargs", type=_json_object, default=None,
                        help='JSON object of model factory options, e.g. \'{"base_channels": 4}\'')
    for f in dataclasses.fields(RunConfig):
        # train_crops: only abanet_lib.paper.photo_model builds such crops (python -m abanet_lib.paper.photo_model)
        if f.name in ("model_kwargs", "scale", "train_crops"):
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_field_parser(f), default=None,
                            help=f"{FIELD_HELP[f.name].rstrip('.')} (scale default if omitted)")
    parser.add_argument("--force", action="store_true", help="retrain even if the run's results exist")
    parser.add_argument("--max-batches", type=int_option(1), default=None,
                        help="cap on training batches per epoch (quick checks; changes results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def config_from_args(args: argparse.Namespace, check_machine: bool = True) -> RunConfig:
    """The RunConfig of ``train`` options: scale base config, then explicit overrides.

    Args:
        args: parsed ``train`` options.
        check_machine: also refuse what this machine cannot run (fp16 without CUDA).

    Raises:
        OptionError: options that are valid alone but not together (``--fold`` beyond
            ``--n-folds``, fp16 without CUDA, an unknown model or model option, ...).
    """
    scale = args.scale or os.environ.get("ABANET_SCALE") or None
    if scale is not None and scale not in SCALES:
        raise OptionError(f"--scale: ABANET_SCALE={scale!r} is not a scale; expected one of "
                          f"{', '.join(sorted(SCALES))}")
    cfg = get_scale(scale).base_config()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name not in ("model_kwargs", "scale", "train_crops"):
            changes[f.name] = value
    if changes:
        cfg = cfg.replace(**changes)
    if args.model_kwargs:
        cfg = cfg.with_model(None, **args.model_kwargs)
    validate_config(cfg, check_machine=check_machine)
    return cfg


def validate_config(cfg: RunConfig, check_machine: bool = True) -> None:
    """Cross-option checks of a ``train`` configuration (each error names the options).

    Raises:
        OptionError: see :func:`config_from_args`.
    """
    if cfg.split == "groupkfold" and not 0 <= cfg.fold < cfg.n_folds:
        raise OptionError(f"--fold {cfg.fold}: expected 0 <= fold < --n-folds ({cfg.n_folds})")
    if cfg.split == "given" and cfg.eval_dataset not in GIVEN_SPLIT_DATASETS:
        raise OptionError(f"--split given: {cfg.eval_dataset} has no training/testing folders of its own; "
                          f"use --eval-dataset {' or '.join(GIVEN_SPLIT_DATASETS)}, or --split groupkfold")
    if cfg.precision == "fp16" and check_machine:
        import torch  # local import: torch-heavy (8 s), --help needs 0.2 s

        if cfg.device == "cpu" or not torch.cuda.is_available():
            raise OptionError("--precision fp16 needs a CUDA device (with GradScaler); on CPU use bf16 or fp32")
    from abanet_lib.models import describe_model  # local import: torch-heavy (8 s), --help needs 0.2 s

    try:
        describe_model(cfg.model)
    except ValueError as err:
        raise OptionError(f"--model {cfg.model}: {err}") from None
    _check_model_kwargs(cfg.model, cfg.model_kwargs_dict)


def _check_model_kwargs(name: str, kwargs: dict) -> None:
    """Refuse --model-kwargs names the model's factory does not accept."""
    import inspect

    from abanet_lib.models import MODELS  # local import: torch-heavy (8 s), --help needs 0.2 s
    from abanet_lib.models.smp_models import SmpSegmentationModel  # local import: torch-heavy (8 s), --help needs 0.2 s

    factory = SmpSegmentationModel if name.startswith("smp:") else MODELS[name]
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return  # smp passes the rest on to segmentation_models_pytorch
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise OptionError(f"--model-kwargs: model {name!r} has no option(s) {', '.join(unknown)}; "
                          f"it accepts {', '.join(accepted) or 'none'}")


def build_parser(predict_options: bool = True) -> argparse.ArgumentParser:
    """The full parser; ``predict_options=False`` skips importing the predict module (faster)."""
    parser = CliParser(
        prog=PROG,
        description="ABANet companion: train, evaluate, predict and reproduce the paper's results.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scales: " + "; ".join(s.description for s in SCALES.values())
               + ". Errors are one line; --debug (anywhere) shows their traceback.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train and evaluate one run (loads it when already finished)",
                       description="Train and evaluate one run; results go to results/runs/<run_id>/, "
                                   "checkpoints to the git-ignored cache. A finished run is loaded and "
                                   "described (when and where it was trained, whether its weights are on "
                                   "this machine, the command that retrains it); an interrupted one "
                                   "resumes from its last checkpoint.")
    add_train_arguments(p)

    p = sub.add_parser("evaluate", help="re-evaluate a finished run on its test split",
                       description="Rebuild a run's model from its best checkpoint and score its test split "
                                   "at native mask size.")
    p.add_argument("--run", required=True, type=nonempty_option, help="run id (folder name under results/runs/)")
    p.add_argument("--save-predictions", default=None, metavar="DIR", type=folder_option(),
                   help="write each probability map as an 8-bit PNG into DIR")
    p.add_argument("--device", default="auto", type=device_option, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default=None, type=choice_option(PRECISIONS),
                   help="override the run's precision (auto, bf16, fp16, fp32)")
    p.add_argument("--batch-size", type=int_option(1), default=8, help="images per forward pass")

    p = sub.add_parser("predict", help="segment the mask region on photos (abanet_lib.app.predict)",
                       description="Segment the face-mask region on whole photos. An --out folder with "
                                   "earlier results keeps them: new records are appended to "
                                   "predictions.jsonl, one per photo (the latest).")
    if predict_options:
        from abanet_lib.app import predict  # local import: torch-heavy (8 s), --help needs 0.2 s

        predict.add_arguments(p)
    else:
        p.add_argument("predict_args", nargs=argparse.REMAINDER, help="arguments of abanet_lib.app.predict")

    p = sub.add_parser("reproduce", help="execute the numbered notebooks in order (papermill)",
                       description="Run notebooks/NN_*.ipynb in order with kernel 'abanet' and the given "
                                   "scale; executed copies go to executed/<scale>/. Stops at the first "
                                   "failure, naming the notebook and cell (exit code 1).")
    p.add_argument("--scale", required=True, choices=sorted(SCALES), help="scale injected into every notebook")
    p.add_argument("--only", action="append", default=None, metavar="NN", type=notebook_numbers_option,
                   help="run only notebook NN (repeat or comma-separate for several)")
    p.add_argument("--from", dest="start_from", default=None, metavar="NN", type=notebook_number_option,
                   help="start at notebook NN (skip the ones before)")
    p.add_argument("--notebooks-dir", default=None, type=folder_option(must_exist=True),
                   help="folder of the notebooks (default notebooks/)")
    p.add_argument("--out-dir", default=None, type=folder_option(),
                   help="folder of the executed copies (default executed/<scale>/)")
    p.add_argument("--kernel", default="abanet", type=nonempty_option,
                   help="Jupyter kernel name (default abanet); must be installed")
    p.add_argument("--cell-timeout", type=int_option(1), default=None, help="per-cell time limit in seconds")
    p.add_argument("--no-train", dest="train_missing", action="store_false",
                   help="train nothing: tables and figures from finished runs only, missing rows 'not run'")

    sub.add_parser("results-readme", help="regenerate the README's results section from results/",
                   description="Call abanet_lib.paper.tables.write_results_readme().")

    p = sub.add_parser("list-runs", help="show finished runs of the registry",
                       description="List complete runs (those with metrics.json), optionally filtered. "
                                   "A damaged record is reported (exit code 2) and the others listed; "
                                   "unfinished run folders are counted.")
    p.add_argument("--model", default=None, type=nonempty_option, help="only this model (a factory name)")
    p.add_argument("--scale", default=None, type=choice_option(tuple(sorted(SCALES)) + ("custom",)),
                   help="only this scale")
    return parser


# ---------------------------------------------------------------------------------------
# Run records: read, check, describe
# ---------------------------------------------------------------------------------------
def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def retrain_command(cfg: RunConfig) -> str | None:
    """The one ``python -m abanet_lib train ... --force`` line that retrains ``cfg`` (same run id),
    or None when the command line cannot express it (a custom scale, an option out of its range)."""
    if cfg.scale not in SCALES:
        return None
    base = get_scale(cfg.scale).base_config()
    argv = ["train", "--scale", cfg.scale]
    for f in dataclasses.fields(RunConfig):
        if f.name in ("model_kwargs", "scale") or f.name in EXECUTION_ONLY_FIELDS:  # device: this machine's
            continue
        value = getattr(cfg, f.name)
        if value != getattr(base, f.name):
            argv += [f"--{f.name.replace('_', '-')}", _cli_value(value)]
    if cfg.model_kwargs:
        argv += ["--model-kwargs", json.dumps(cfg.model_kwargs_dict, sort_keys=True)]
    argv.append("--force")
    try:  # the command must give back this very run
        parser = build_parser(predict_options=False)
        with open(os.devnull, "w") as devnull:
            stderr, sys.stderr = sys.stderr, devnull
            try:
                args = parser.parse_args(argv)
            finally:
                sys.stderr = stderr
        if config_from_args(args, check_machine=False).run_id != cfg.run_id:
            return None
    except (SystemExit, ValueError):
        return None
    return PROG + " " + " ".join(shlex.quote(a) for a in argv)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _trained_on(provenance: dict) -> tuple[str, str]:
    """``("cuda (NVIDIA H200)", "cuda")`` from a record's provenance."""
    device = provenance.get("device")
    if isinstance(device, dict):
        kind = str(device.get("device") or "?")
        name = device.get("cuda_name") if kind.startswith("cuda") else device.get("cpu_model")
        return (f"{kind} ({name})" if name else kind), kind.split(":")[0]
    return str(device or "an unrecorded device"), str(device or "?").split(":")[0]


def describe_finished_run(run) -> str:
    """What ``train`` says about a finished record it loads instead of training."""
    import torch  # local import: torch-heavy (8 s), --help needs 0.2 s

    from abanet_lib.engine.checkpoints import checkpoint_dir  # local import: torch-heavy (8 s), --help needs 0.2 s

    m, cfg = run.metrics, run.config
    prov = m.get("provenance") if isinstance(m.get("provenance"), dict) else {}
    where, kind = _trained_on(prov)
    when = prov.get("date_utc") or "an unrecorded date"
    test = run.test
    scores = " ".join(f"{k} {test[k]:.4f}" for k in ("iou", "f1") if isinstance(test.get(k), (int, float)))
    lines = [f"run {run.run_id}: loaded the finished record {run.path} (nothing was trained now); "
             f"test {scores or 'scores missing'} (n={m.get('n_test')})",
             f"  trained {when} on {where}, {m.get('epochs_run', 0)} epoch(s), scale {cfg.scale}, "
             f"commit {prov.get('git_commit', 'unknown')}"]
    local = checkpoint_dir(cfg) / "best.pt"
    recorded = m.get("checkpoint")
    if not m.get("trained", True):
        lines.append("  weights: none to keep (a method without learned weights)")
    elif local.is_file():
        lines.append(f"  weights: on this machine ({local})")
    elif recorded and Path(recorded).is_file():
        lines.append(f"  weights: on this machine ({recorded})")
    else:
        lines.append(f"  weights: NOT on this machine (looked for {local}"
                     + (f" and {recorded}" if recorded and str(recorded) != str(local) else "")
                     + "; checkpoints live in the git-ignored cache): evaluate and predict need them, "
                       "retrain to get them")
    command = retrain_command(cfg)
    if command is None:
        lines.append("  retrain: not expressible on the command line (scale or options outside its "
                     f"choices); in Python: runs.run_or_load(registry.load_run({run.run_id!r}).config, "
                     "force=True)")
    else:
        lines.append(f"  retrain: {command}")
    seconds = m.get("train_seconds")
    if isinstance(seconds, (int, float)):
        estimate = f"about {_duration(seconds)} (the record's train_seconds, measured on {where}"
        if m.get("resumed_from_epoch"):
            estimate += f", after resuming from epoch {m['resumed_from_epoch']}: a full run takes longer"
        here = "cuda" if torch.cuda.is_available() else "cpu"
        if kind != here:
            estimate += f"; this machine would train on {here}, so expect a different time"
        lines.append(f"  expected time here: {estimate})")
    else:
        lines.append("  expected time here: unknown (the record has no train_seconds)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
def _raised_while_building_model(err: BaseException) -> bool:
    names = {(Path(f.filename).name, f.name) for f in raised_at(err)}
    return ("assembly.py", "build_model") in names or ("__init__.py", "create_model") in names


def _cmd_train(args) -> int:
    from abanet_lib.engine import registry  # local import: torch-heavy (8 s), --help needs 0.2 s
    from abanet_lib.paper import runs  # local import: torch-heavy (8 s), --help needs 0.2 s

    cfg = config_from_args(args)
    if not args.force and registry.is_complete(cfg):
        print(describe_finished_run(registry.load_run_record(cfg.run_id)))
        return 0
    try:  # a failure leaves no half-made run folder: runs.run_or_load trains in a staging folder
        run = runs.run_or_load(cfg, force=args.force, progress=not args.no_progress,
                               max_batches=args.max_batches)
    except Exception as err:
        if _raised_while_building_model(err) and not any(  # data errors name their file already
                c.__name__ in ("DataError", "RunBusyError") for c in type(err).__mro__):
            kwargs = json.dumps(cfg.model_kwargs_dict, sort_keys=True)
            raise ModelBuildError(f"run {cfg.run_id}: building model {cfg.model!r} (--model-kwargs {kwargs}, "
                                  f"--pretrained {_cli_value(cfg.pretrained)}) failed: {type(err).__name__}: "
                                  f"{err}") from err
        raise
    test = run.test
    print(f"run {run.run_id}: test iou {test.get('iou', float('nan')):.4f} "
          f"f1 {test.get('f1', float('nan')):.4f} (n={run.metrics.get('n_test')}) -> {run.path}")
    return 0


def _cmd_evaluate(args) -> int:
    from abanet_lib.data import DataError  # local import: torch-heavy (8 s), --help needs 0.2 s
    from abanet_lib.engine.evaluate import evaluate  # local import: torch-heavy (8 s), --help needs 0.2 s
    from abanet_lib.engine import registry  # local import: torch-heavy (8 s), --help needs 0.2 s
    from abanet_lib.engine.assembly import build_split  # local import: torch-heavy (8 s), --help needs 0.2 s

    if args.precision == "fp16" and not (args.device.startswith("cuda") or
                                         (args.device == "auto" and _cuda_available())):
        raise OptionError("--precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    run = registry.load_run_record(args.run)
    cfg = run.config
    changes = registry.data_changes(run)
    if changes:  # scoring other data under this run's name would be silently wrong
        raise DataError(f"run {run.run_id} ({run.path}): the data differs from the data it was trained and "
                        f"tested on: {'; '.join(changes)}; restore the data or retrain with --force")
    model = registry.load_model(run, device=args.device)
    per_image, summary = evaluate(model, build_split(cfg).test, cfg.image_size, device=args.device,
                                  precision=args.precision or cfg.precision, batch_size=args.batch_size,
                                  save_predictions_dir=args.save_predictions, channels_last=cfg.channels_last)
    keys = [k for k in ("iou", "f1", "precision", "recall", "accuracy", "mae", "maxf", "s_measure") if k in summary]
    print(f"run {run.run_id} ({cfg.model}), {summary['n_images']} test images:")
    for k in keys:
        print(f"  {k:10s} {summary[k]:.4f}")
    if args.save_predictions:
        print(f"predictions written to {args.save_predictions}")
    return 0


def _cuda_available() -> bool:
    import torch  # local import: torch-heavy (8 s), --help needs 0.2 s

    return torch.cuda.is_available()


def _cmd_predict(args) -> int:
    from abanet_lib.app import predict  # local import: torch-heavy (8 s), --help needs 0.2 s

    return int(predict.main(args.predict_args if hasattr(args, "predict_args") else args) or 0)


def _check_kernel(name: str) -> None:
    try:
        from jupyter_client.kernelspec import find_kernel_specs
    except ImportError:
        return  # papermill will say what is missing
    specs = find_kernel_specs()
    if name not in specs:
        raise OptionError(f"--kernel {name}: no such Jupyter kernel; installed: {', '.join(sorted(specs)) or 'none'} "
                          "(make env installs 'abanet')")


def _cmd_reproduce(args) -> int:
    from abanet_lib.paper.reproduce import NotebookFailed, reproduce  # local import: torch-heavy (8 s)

    only = [x.strip() for item in (args.only or []) for x in item.split(",") if x.strip()] or None
    _check_kernel(args.kernel)
    try:
        done = reproduce(args.scale, only=only, start_from=args.start_from, notebooks_dir=args.notebooks_dir,
                         out_dir=args.out_dir, kernel_name=args.kernel, cell_timeout=args.cell_timeout,
                         train_missing=args.train_missing)
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"all {len(done)} notebooks ran at scale {args.scale}")
    return 0


def _cmd_results_readme(args) -> int:
    from abanet_lib.paper.tables import write_results_readme  # local import: torch-heavy (8 s), --help needs 0.2 s

    out = write_results_readme(cost=True)
    if out is not None:
        print(f"wrote {out}")
    return 0


def _cmd_list_runs(args) -> int:
    if args.model is not None:
        from abanet_lib.models import describe_model  # local import: torch-heavy (8 s), --help needs 0.2 s

        try:
            describe_model(args.model)
        except ValueError as err:
            raise OptionError(f"--model {args.model}: {err}") from None
    from abanet_lib.engine import registry  # local import: torch-heavy (8 s), --help needs 0.2 s

    runs, damaged, unfinished = registry.scan_runs(model=args.model, scale=args.scale)
    filters = {k: v for k, v in (("model", args.model), ("scale", args.scale)) if v is not None}
    if not runs:
        print("no finished runs" + (f" matching {filters}" if filters else ""))
    else:
        print(f"{'run_id':32s} {'model':24s} {'scale':8s} {'fold':>4s} {'seed':>4s} {'epochs':>6s} "
              f"{'test iou':>8s}  date")
        for run in runs:
            c, m = run.config, run.metrics
            iou = run.test.get("iou")
            prov = m.get("provenance") if isinstance(m.get("provenance"), dict) else {}
            print(f"{run.run_id:32s} {c.model[:24]:24s} {c.scale:8s} {c.fold:4d} {c.seed:4d} "
                  f"{m.get('epochs_run', 0):6d} {iou if not isinstance(iou, (int, float)) else format(iou, '.4f'):>8}"
                  f"  {prov.get('date_utc', '')}")
    if unfinished:
        shown = ", ".join(unfinished[:5]) + (f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else "")
        print(f"({len(unfinished)} unfinished run folder(s) not listed, no metrics.json yet: {shown}; "
              "train resumes them)")
    for message in damaged:
        print(f"error: damaged run record: {message}", file=sys.stderr)
    return 2 if damaged else 0


_COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
             "reproduce": _cmd_reproduce, "results-readme": _cmd_results_readme, "list-runs": _cmd_list_runs}


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 failure or bug, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # Importing the predict module (face detectors, ...) is only worth it for its own command.
    args = build_parser(predict_options="predict" in argv).parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted (an interrupted train resumes from its last checkpoint when run again)",
              file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        if is_deliberate(err):
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        print(f"error: unexpected {type(err).__name__}: {one_line(err)} (a bug: the traceback above shows "
              "where; please report it)", file=sys.stderr)
        return 1
