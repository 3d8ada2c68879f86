"""Command line: ``python -m abanet_lib <command>`` (also installed as ``abanet``).

Commands:
    train           train + evaluate one run (skipped when its results exist)
    evaluate        re-evaluate a finished run on its test split
    predict         segment mask regions on photos (abanet_lib.predict)
    reproduce       execute the numbered notebooks in order through papermill
    results-readme  regenerate the results section of the README (abanet_lib.tables)
    list-runs       show the finished runs of the registry
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from typing import Any

from abanet_lib.config import SCALES, RunConfig

# Help text of every RunConfig option of ``train`` (field -> help).
_FIELD_HELP = {
    "model": "model factory name: abanet, abanet_official, basnet, unet_plain, grabcut, maskrcnn, "
             "smp:<Arch>:<encoder> (e.g. smp:Unet:resnet50), ...",
    "loss": "comma-separated loss components summed over every output: focal, ssim, iou, bce",
    "loss_variant": "paper (eq. 3-5 of the paper) or official (as in the released code)",
    "focal_alpha": "focal-loss alpha (weight of positives, eq. 3)",
    "focal_gamma": "focal-loss gamma",
    "optimizer": "adam, adamax, rmsprop or sgd (Table 8)",
    "lr": "learning rate",
    "weight_decay": "weight decay (L2)",
    "momentum": "momentum for SGD and RMSprop",
    "schedule": "learning-rate schedule per epoch: none, cosine, step (x0.1 every third of the epochs)",
    "grad_clip": "clip the gradient norm to this value (default: no clipping)",
    "batch_size": "training batch size",
    "image_size": "square input size in pixels (training and test)",
    "epochs": "training epochs",
    "train_datasets": "comma-separated training data sets (mfsd, mfsd-sample, maskedfacenet-seg500)",
    "eval_dataset": "data set the validation and test splits come from",
    "split": "split scheme: groupkfold (identity-disjoint folds), paper (8500/2500/1758), given",
    "n_folds": "number of folds of the groupkfold split",
    "fold": "test fold (0-based)",
    "val_fraction": "fraction of training identities held out for validation (model selection)",
    "max_train_images": "cap on the number of training images (seeded subset)",
    "max_eval_images": "cap on the number of validation and test images each (seeded subset)",
    "extra_train_images": "cap on the images taken from the extra training data sets (seeded subset)",
    "augment": "training augmentation: flips, scale/crop, colour jitter (true/false)",
    "pretrained": "ImageNet encoder weights (true/false; needs a local weight cache offline)",
    "seed": "seed of weights, data order and split",
    "precision": "auto (bf16 where supported), bf16, fp16 (CUDA, with GradScaler) or fp32 (exact)",
    "channels_last": "channels_last memory format (true/false)",
    "early_stopping": "stop after this many epochs without validation-IoU gain (default: off)",
    "device": "auto (CUDA if present), cpu, cuda or cuda:N; not part of the run id",
    "num_workers": "DataLoader worker processes; not part of the run id",
}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _optional(kind):
    def parse(text: str):
        return None if text.strip().lower() in ("none", "null", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _csv(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--model-kwargs must be a JSON object, got {text!r} ({err})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--model-kwargs must be a JSON object like '{{\"k\": 1}}', got {text!r}")
    return value


def _field_parser(f: dataclasses.Field):
    default = f.default
    if f.name in ("loss", "train_datasets"):
        return _csv
    if isinstance(default, bool):
        return _bool
    if f.name in ("grad_clip",):
        return _optional(float)
    if f.name in ("max_train_images", "max_eval_images", "extra_train_images", "early_stopping"):
        return _optional(int)
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``train`` options: --scale, every RunConfig field, --model-kwargs, --force ..."""
    parser.add_argument("--scale", default=None, choices=sorted(SCALES),
                        help="start from this scale's settings (default: ABANET_SCALE or 'reduced'); "
                             "options below override them")
    parser.add_argument("--model-kwargs", type=_json_object, default=None,
                        help='JSON object of model factory options, e.g. \'{"base_channels": 4}\'')
    for f in dataclasses.fields(RunConfig):
        if f.name in ("model_kwargs", "scale"):
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_field_parser(f), default=None,
                            help=f"{_FIELD_HELP.get(f.name, f.name)} (scale default if omitted)")
    parser.add_argument("--force", action="store_true", help="retrain even if the run's results exist")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="cap on training batches per epoch (quick checks; changes results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of ``train`` options: scale base config, then explicit overrides."""
    from abanet_lib.config import get_scale

    cfg = get_scale(args.scale).base_config()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name not in ("model_kwargs", "scale"):
            changes[f.name] = value
    if changes:
        cfg = cfg.replace(**changes)
    if args.model_kwargs:
        cfg = cfg.with_model(None, **args.model_kwargs)
    return cfg


def build_parser(predict_options: bool = True) -> argparse.ArgumentParser:
    """The full parser; ``predict_options=False`` skips importing the predict module (faster)."""
    parser = argparse.ArgumentParser(
        prog="python -m abanet_lib",
        description="ABANet companion: train, evaluate, predict and reproduce the paper's results.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scales: " + "; ".join(s.description for s in SCALES.values()),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train and evaluate one run (loads it when already finished)",
                       description="Train and evaluate one run; results go to results/runs/<run_id>/, "
                                   "checkpoints to the git-ignored cache. A finished run is loaded, an "
                                   "interrupted one resumes from its last checkpoint.")
    add_train_arguments(p)

    p = sub.add_parser("evaluate", help="re-evaluate a finished run on its test split",
                       description="Rebuild a run's model from its best checkpoint and score its test split "
                                   "at native mask size.")
    p.add_argument("--run", required=True, help="run id (folder name under results/runs/)")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="write each probability map as an 8-bit PNG into DIR")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default=None, help="override the run's precision (auto, bf16, fp16, fp32)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")

    p = sub.add_parser("predict", help="segment the mask region on photos (abanet_lib.predict)",
                       description="Segment the face-mask region on whole photos.")
    predict_module = _optional_module("abanet_lib.predict") if predict_options else None
    if predict_module is not None and hasattr(predict_module, "add_arguments"):
        predict_module.add_arguments(p)
    else:
        p.add_argument("predict_args", nargs=argparse.REMAINDER, help="arguments of abanet_lib.predict")

    p = sub.add_parser("reproduce", help="execute the numbered notebooks in order (papermill)",
                       description="Run notebooks/NN_*.ipynb in order with kernel 'abanet' and the given "
                                   "scale; executed copies go to executed/<scale>/. Stops at the first "
                                   "failure, naming the notebook and cell (exit code 1).")
    p.add_argument("--scale", required=True, choices=sorted(SCALES), help="scale injected into every notebook")
    p.add_argument("--only", action="append", default=None, metavar="NN",
                   help="run only notebook NN (repeat or comma-separate for several)")
    p.add_argument("--from", dest="start_from", default=None, metavar="NN",
                   help="start at notebook NN (skip the ones before)")
    p.add_argument("--notebooks-dir", default=None, help="folder of the notebooks (default notebooks/)")
    p.add_argument("--out-dir", default=None, help="folder of the executed copies (default executed/<scale>/)")
    p.add_argument("--kernel", default="abanet", help="Jupyter kernel name (default abanet)")
    p.add_argument("--cell-timeout", type=int, default=None, help="per-cell time limit in seconds")
    p.add_argument("--no-train", dest="train_missing", action="store_false",
                   help="train nothing: tables and figures from finished runs only, missing rows 'not run'")

    sub.add_parser("results-readme", help="regenerate the README's results section from results/",
                   description="Call abanet_lib.tables.write_results_readme().")

    p = sub.add_parser("list-runs", help="show finished runs of the registry",
                       description="List complete runs (those with metrics.json), optionally filtered.")
    p.add_argument("--model", default=None, help="only this model")
    p.add_argument("--scale", default=None, help="only this scale")
    return parser


def _optional_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _cmd_train(args) -> int:
    from abanet_lib.registry import run_or_load

    cfg = config_from_args(args)
    run = run_or_load(cfg, force=args.force, progress=not args.no_progress, max_batches=args.max_batches)
    test = run.test
    print(f"run {run.run_id}: test iou {test.get('iou', float('nan')):.4f} "
          f"f1 {test.get('f1', float('nan')):.4f} (n={run.metrics.get('n_test')}) -> {run.path}")
    return 0


def _cmd_evaluate(args) -> int:
    from abanet_lib.evaluate import evaluate
    from abanet_lib.registry import load_model, load_run
    from abanet_lib.train import build_split

    run = load_run(args.run)
    cfg = run.config
    model = load_model(run, device=args.device)
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


def _cmd_predict(args) -> int:
    module = _optional_module("abanet_lib.predict")
    if module is None or not hasattr(module, "main"):
        print("error: 'predict' is not available (abanet_lib.predict is missing)", file=sys.stderr)
        return 2
    if hasattr(args, "predict_args"):
        return int(module.main(args.predict_args) or 0)
    return int(module.main(args) or 0)


def _cmd_reproduce(args) -> int:
    from abanet_lib.reproduce import NotebookFailed, reproduce

    only = [x for item in (args.only or []) for x in item.split(",") if x.strip()] or None
    try:
        done = reproduce(args.scale, only=only, start_from=args.start_from, notebooks_dir=args.notebooks_dir,
                         out_dir=args.out_dir, kernel_name=args.kernel, cell_timeout=args.cell_timeout,
                         train_missing=args.train_missing)
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"all {len(done)} notebooks ran at scale {args.scale}")
    return 0


def _cmd_results_readme(args) -> int:
    tables = _optional_module("abanet_lib.tables")
    if tables is None or not hasattr(tables, "write_results_readme"):
        print("error: 'results-readme' is not available (abanet_lib.tables.write_results_readme is missing)",
              file=sys.stderr)
        return 2
    out = tables.write_results_readme(cost=True)
    if out is not None:
        print(f"wrote {out}")
    return 0


def _cmd_list_runs(args) -> int:
    from abanet_lib.registry import find_runs

    filters = {k: v for k, v in (("model", args.model), ("scale", args.scale)) if v is not None}
    runs = find_runs(**filters)
    if not runs:
        print("no finished runs" + (f" matching {filters}" if filters else ""))
        return 0
    print(f"{'run_id':32s} {'model':24s} {'scale':8s} {'fold':>4s} {'seed':>4s} {'epochs':>6s} {'test iou':>8s}  date")
    for run in runs:
        c, m = run.config, run.metrics
        iou = run.test.get("iou")
        print(f"{run.run_id:32s} {c.model[:24]:24s} {c.scale:8s} {c.fold:4d} {c.seed:4d} {m.get('epochs_run', 0):6d} "
              f"{iou if iou is None else format(iou, '.4f'):>8}  {m.get('provenance', {}).get('date_utc', '')}")
    return 0


_COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
             "reproduce": _cmd_reproduce, "results-readme": _cmd_results_readme, "list-runs": _cmd_list_runs}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Importing the predict module (face detectors, ...) is only worth it for its own command.
    args = build_parser(predict_options="predict" in argv).parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
