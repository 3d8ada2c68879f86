"""The learning-curve study behind the reduced scale's image size and epochs (issue 15).

Issue 15 asks for the scale to be *chosen from measurements*: the canonical ABANet trained on one
fold for longer than the scale's schedule, at its 64x64 and at a larger input, with the
validation IoU of every epoch and what an epoch costs. :data:`STUDY` lists those runs; they are
ordinary run records in ``results/runs/`` (fold 0, seed 0, the reduced scale's settings but
``epochs`` and ``image_size``), trained by ``python -m abanet_lib.paper.learning_curve train``.

:func:`write_study` renders, from the records only, ``results/learning_curve.md`` / ``.csv``
(best validation IoU so far at each epoch, seconds per epoch, the test IoU of each run's best
checkpoint, and the cost of the claims list at each candidate) and
``results/figures/learning_curve_reduced.png``. The choice is read on *validation* IoU (the
test IoU is printed for the record, never used to choose).

What an epoch costs is read from the runs' ``history.csv``: the two study runs trained side by
side, one thread each, the way ``make runs`` trains the list (one single-threaded worker per
core), so their seconds per epoch are the list's.

Example:
    >>> [(c.image_size, c.epochs) for c in study_configs()]
    [(64, 40), (96, 30)]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig, get_scale
from abanet_lib.core.io import atomic_write_text
from abanet_lib.paper import cost
from abanet_lib.paper import runs as run_records
from abanet_lib.paper.experiments import canonical_abanet
from abanet_lib.paper.plots import save_fig, set_style

#: (image size, epochs) of the study's runs: the scale's 64x64 run on to 40 epochs, and 96x96
#: (2.25x the pixels) on to 30 epochs: what fits beside the list in one sitting on 2 cores.
STUDY: tuple[tuple[int, int], ...] = ((64, 40), (96, 30))
#: The scale whose image size and epochs the study tests.
STUDY_SCALE = "reduced"
#: The study's fold and seed (the canonical ABANet's first fold).
STUDY_FOLD, STUDY_SEED = 0, 0
#: Epoch marks at which the table reads the best validation IoU so far.
MARKS = (5, 10, 15, 20, 25, 30, 40)
#: A setting is worth its cost only if its best validation IoU beats the scale's by more than
#: this many points. Declared with the study: the canonical ABANet's test IoU spreads by about
#: 2 points across folds, and the validation set has 26 crops (one crop moves the mean ~0.5).
WORTH_POINTS = 1.0
#: CPU-hours issue 15 allows for what the claims add to the list (hours of the 2-core machine).
ADDED_BUDGET_CPU_HOURS = 12.0


def study_configs(scale: str = "reduced") -> list[RunConfig]:
    """The study's run configs: the canonical ABANet of ``scale`` on fold 0 at each (size, epochs)."""
    base = canonical_abanet(get_scale(scale), fold=STUDY_FOLD, seed=STUDY_SEED)
    return [base.replace(image_size=size, epochs=epochs) for size, epochs in STUDY]


def curves(records: Iterable) -> pd.DataFrame:
    """One row per (run, epoch): ``image_size, epochs, epoch, val_iou, best_val_iou, seconds``.

    ``best_val_iou`` is the running maximum (training keeps the best-validation checkpoint, so
    this is what stopping after that epoch would have selected); IoU in points.
    """
    frames = []
    for run in records:
        h = run.history
        if h is None or h.empty:
            continue
        frames.append(pd.DataFrame({
            "run_id": run.run_id, "image_size": run.config.image_size, "epochs": run.config.epochs,
            "epoch": h["epoch"].astype(int), "val_iou": h["val_iou"].astype(float) * 100.0,
            "best_val_iou": h["val_iou"].astype(float).cummax() * 100.0, "seconds": h["seconds"].astype(float)}))
    columns = ["run_id", "image_size", "epochs", "epoch", "val_iou", "best_val_iou", "seconds"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def seconds_per_epoch(curve: pd.DataFrame) -> float:
    """Median seconds of the epochs after the first (the first one also warms up caches)."""
    later = curve[curve["epoch"] > 1]["seconds"]
    return float(later.median()) if len(later) else math.nan


def summary(records: Sequence, scale: str = "reduced") -> pd.DataFrame:
    """One row per study run: seconds per epoch, best validation IoU at :data:`MARKS`, the test IoU
    of the run's best checkpoint, and the cost of a run at each mark relative to the scale's run."""
    scale_obj = get_scale(scale)
    data = curves(records)
    by_id = {r.run_id: r for r in records}
    reference = data[data["image_size"] == scale_obj.image_size]
    ref_spe = seconds_per_epoch(reference) if len(reference) else math.nan
    rows = []
    for run_id, curve in data.groupby("run_id", sort=False):
        run = by_id[run_id]
        spe = seconds_per_epoch(curve)
        row = {"run_id": run_id, "image_size": run.config.image_size, "epochs": run.config.epochs,
               "seconds_per_epoch": spe,
               "best_epoch": int(run.metrics.get("best_epoch", 0)) or None,
               "test_iou_best_checkpoint": 100.0 * float(run.test.get("iou", math.nan))}
        for mark in MARKS:
            upto = curve[curve["epoch"] <= mark]
            row[f"best_val_iou@{mark}"] = float(upto["best_val_iou"].iloc[-1]) if mark <= len(curve) else math.nan
            row[f"cost@{mark}"] = (spe * mark) / (ref_spe * scale_obj.epochs) if mark <= len(curve) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame, scale: str = "reduced") -> list[str]:
    """Sentences computed from :func:`summary`: what longer training and a larger input buy on
    validation IoU, at what cost relative to the scale's run."""
    s = get_scale(scale)
    ref = table[table["image_size"] == s.image_size] if not table.empty else table
    if ref.empty or not math.isfinite(ref.iloc[0].get(f"best_val_iou@{s.epochs}", math.nan)):
        return ["The study's run at the scale's image size is not on record yet."]
    base = float(ref.iloc[0][f"best_val_iou@{s.epochs}"])
    out = [f"At the {scale} scale's {s.image_size}x{s.image_size} and {s.epochs} epochs the best validation IoU "
           f"of the study's run is {base:.2f}."]
    options = []
    for _, r in table.iterrows():
        marks = [m for m in MARKS if math.isfinite(r[f"best_val_iou@{m}"])]
        for m in marks:
            if not (r["image_size"] == s.image_size and m == s.epochs):
                options.append((float(r[f"cost@{m}"]), int(r["image_size"]), m, float(r[f"best_val_iou@{m}"]) - base))
        if marks:
            last = marks[-1]
            out.append(f"{r['image_size']}x{r['image_size']} after {last} epochs: {r[f'best_val_iou@{last}']:.2f} "
                       f"({r[f'best_val_iou@{last}'] - base:+.2f} points) at {r[f'cost@{last}']:.2f}x the cost of a run.")
    worth = sorted(o for o in options if o[3] > WORTH_POINTS)
    if worth:
        ratio, size, mark, gain = worth[0]
        out.append(f"The cheapest setting more than {WORTH_POINTS:g} point above it is {size}x{size} at {mark} "
                   f"epochs (+{gain:.2f} points at {ratio:.2f}x the cost).")
    else:
        out.append(f"No setting of the study is more than {WORTH_POINTS:g} point above it on validation IoU.")
    return out


def choice(table: pd.DataFrame, totals: dict, scale: str = "reduced",
           budget_hours: float = ADDED_BUDGET_CPU_HOURS) -> list[str]:
    """The setting the scale keeps, as sentences: every (size, epochs) of the study priced as the
    work it adds, and the best validation IoU among those that fit ``budget_hours``.

    Keeping the scale's setting adds only its missing runs (``totals["remaining_cpu_hours"]`` of
    :func:`abanet_lib.paper.cost.summary`); any other setting retrains the whole list (every run id
    changes with the size or the epochs): ``totals["total_cpu_hours"]`` times the setting's cost
    ratio. Only settings at least as long as the scale's are candidates (the question is whether
    more training is worth its cost). Among the settings within the budget the highest best
    validation IoU wins (IoU within :data:`WORTH_POINTS` of it: the cheaper one).
    """
    s = get_scale(scale)
    if table.empty or not totals:
        return ["No study run or no cost report: no choice is computed."]
    options = []
    for _, r in table.iterrows():
        for m in MARKS:
            value = r[f"best_val_iou@{m}"]
            if not math.isfinite(value) or m < s.epochs:  # the question is whether *more* is worth it
                continue
            current = r["image_size"] == s.image_size and m == s.epochs
            added = totals["remaining_cpu_hours"] if current else totals["total_cpu_hours"] * float(r[f"cost@{m}"])
            options.append({"size": int(r["image_size"]), "epochs": m, "iou": float(value), "hours": float(added),
                            "current": current})
    fits = [o for o in options if o["hours"] <= budget_hours]
    keeping = (f"adds the list's {totals['missing']} missing runs, about {totals['remaining_cpu_hours']:.1f} CPU-hours"
               if totals["missing"] else "adds nothing: every run of the list is on record")
    out = [f"Budget for what issue 15 adds: about {budget_hours:g} CPU-hours. Keeping {s.image_size}x{s.image_size} "
           f"and {s.epochs} epochs {keeping}; any other setting retrains all {totals['runs']} runs "
           f"(the whole list is about {totals['total_cpu_hours']:.1f} CPU-hours at this setting)."]
    over = sorted((o for o in options if o["hours"] > budget_hours), key=lambda o: o["hours"])
    if over:
        o = over[0]
        out.append(f"The cheapest other setting, {o['size']}x{o['size']} at {o['epochs']} epochs, would add about "
                   f"{o['hours']:.0f} CPU-hours: over the budget.")
    if not fits:
        out.append("No setting fits the budget; the scale's setting stays and the list runs on as far as it can.")
        return out
    top = max(o["iou"] for o in fits)
    pick = min((o for o in fits if o["iou"] >= top - WORTH_POINTS), key=lambda o: o["hours"])
    out.append(f"Within the budget: {pick['size']}x{pick['size']} at {pick['epochs']} epochs "
               f"({'the scale as it is' if pick['current'] else 'a new setting'}; best validation IoU "
               f"{pick['iou']:.2f}, "
               + (f"about {pick['hours']:.1f} CPU-hours to add)." if pick["hours"] > 0 else "nothing to add)."))
    better = [o for o in options if o["iou"] > pick["iou"] + WORTH_POINTS]
    if better:
        b = max(better, key=lambda o: o["iou"])
        out.append(f"What the budget leaves on the table: {b['size']}x{b['size']} at {b['epochs']} epochs reaches "
                   f"{b['iou']:.2f} ({b['iou'] - pick['iou']:+.2f} points): the verdicts of the ledger hold for a "
                   "model trained short of convergence, and the `gpu` scale is where longer training is run.")
    return out


def plot(records: Sequence, scale: str = "reduced", folder: Path | None = None) -> Path:
    """Save :func:`figure` as ``learning_curve_<scale>.png`` and close it; return the path."""
    fig = figure(records, scale)
    out = save_fig(fig, "learning_curve", scale=scale, folder=folder)
    plt.close(fig)
    return out


def figure(records: Sequence, scale: str = "reduced"):
    """Validation IoU per epoch (thin) and best so far (thick) of each study run; the scale's
    epochs marked."""
    set_style()
    data = curves(records)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for size, curve in data.groupby("image_size"):
        line, = ax.plot(curve["epoch"], curve["best_val_iou"], lw=2, label=f"{size}x{size}: best so far")
        ax.plot(curve["epoch"], curve["val_iou"], lw=0.8, alpha=0.6, color=line.get_color(),
                label=f"{size}x{size}: each epoch")
    ax.axvline(get_scale(scale).epochs, color="grey", ls="--", lw=1, label=f"{scale} scale: {get_scale(scale).epochs} epochs")
    ax.set(xlabel="epoch", ylabel="validation IoU (%)", title="Canonical ABANet, fold 0: learning curve")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def load_study(scale: str = "reduced") -> list:
    """The study's finished runs (missing ones are left out; nothing trains)."""
    return list(run_records.run_many(study_configs(scale), train_missing=False, progress=False))


def write_study(scale: str = "reduced", out_dir: Path | None = None, figures: Path | None = None,
                totals: dict | None = None) -> tuple[Path, list[str]]:
    """Write ``learning_curve.md`` and ``.csv`` (into ``out_dir``, default ``results/``) and the
    figure; return the markdown path and the reading (:func:`verdict` + :func:`choice`). Same
    records, same bytes.

    Args:
        totals: the list's cost (:func:`abanet_lib.paper.cost.summary`) for :func:`choice`;
            ``None``: no choice is computed.
    """
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir(scale)
    records = load_study(scale)
    table = summary(records, scale)
    reading = verdict(table, scale) + (choice(table, totals, scale) if totals is not None and not table.empty else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "learning_curve.csv", table.to_csv(index=False, float_format="%.4f"))
    if records:
        plot(records, scale, folder=figures)
    s = get_scale(scale)
    lines = ["# Learning curve: how long and how large the reduced scale trains", "",
             "Generated from the run records by `python -m abanet_lib.paper.learning_curve` "
             "(abanet_lib/paper/learning_curve.py); do not edit by hand.", "",
             f"The canonical ABANet (Adam 1e-4, focal + SSIM + IoU, batch {s.batch_size}, from scratch) on fold "
             f"{STUDY_FOLD}, seed {STUDY_SEED}, trained past the {scale} scale's {s.epochs} epochs. IoU in points on "
             "the fold's validation crops (26); the test IoU of each run's best checkpoint is shown for the record and "
             "was not used to choose. Seconds per epoch: the median after the first epoch, both runs side by side on "
             "one thread each (how `make runs` trains the list). Cost: a run stopped at that epoch, relative to the "
             f"{scale} scale's run ({s.image_size}x{s.image_size}, {s.epochs} epochs).", "",
             f"![learning curve](figures/learning_curve_{scale}.png)", ""]
    if table.empty:
        lines += ["No study run is on record yet: `python -m abanet_lib.paper.learning_curve train`.", ""]
    else:
        head = ["run", "size", "s / epoch", *[f"best val IoU @{m}" for m in MARKS], "best epoch",
                "test IoU (best checkpoint)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in table.iterrows():
            cells = [f"`{r['run_id']}`", f"{r['image_size']}x{r['image_size']}", f"{r['seconds_per_epoch']:.1f}"]
            for m in MARKS:
                v, c = r[f"best_val_iou@{m}"], r[f"cost@{m}"]
                cells.append("" if not math.isfinite(v) else f"{v:.2f} ({c:.2f}x)")
            cells += [str(r["best_epoch"]), f"{r['test_iou_best_checkpoint']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Cells: best validation IoU so far (cost of a run stopped there, relative to the scale's).", "",
                  "## Reading and choice", "", *[f"- {v}" for v in reading], ""]
    md = out_dir / "learning_curve.md"
    atomic_write_text(md, "\n".join(lines).rstrip() + "\n")
    return md, reading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m abanet_lib.paper.learning_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="render", choices=("render", "train", "list"),
                        help="render the study from the records (default), train its missing runs, or list them")
    parser.add_argument("--scale", default="reduced")
    args = parser.parse_args(argv)
    if args.command == "list":
        for cfg in study_configs(args.scale):
            print(cfg.run_id, f"{cfg.image_size}x{cfg.image_size}", f"{cfg.epochs} epochs")
        return 0
    if args.command == "train":
        run_records.run_many(study_configs(args.scale), train_missing=True)
    print(write_study(args.scale, totals=cost.summary(cost.cost_table(args.scale)))[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
