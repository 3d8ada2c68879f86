"""Notebook views of built tables: compact frames that fit the page, and a reading of the numbers.

The tables of :func:`abanet_lib.paper.table_builder.build_table` carry every metric twice (ours, paper),
the spreads, flags, notes and run ids: up to 20 columns, too wide for a notebook or GitHub.
:func:`show_table` splits them into the metrics (``mean ± std`` beside the paper) and the
status/notes, and :func:`reading` writes the few sentences a notebook states about the result
*from the numbers of the frame*, so the text never goes stale when the runs change. Whether one
row beats another is never read off the means: :func:`reading` quotes the claims ledger's rows for
the table (:mod:`abanet_lib.paper.claims`: paired folds, 95 % t interval, verdict), the same
sentences as ``results/README.md``. :func:`effects` turns pairs of rows into the differences an
ablation is about.

Nothing here trains or reads weights; everything works on a frame (or its CSV via
:func:`abanet_lib.paper.table_files.read_table`) and, for the ledger, on the run records.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abanet_lib.core.config import Scale
from abanet_lib.paper import claims
from abanet_lib.paper.definitions import LOWER_IS_BETTER, TABLES
from abanet_lib.paper.experiments import table_rows
from abanet_lib.paper.table_files import interval_cell, paired_cell, read_table
from abanet_lib.paper.tables import pair_agreement



def _spec(frame: pd.DataFrame):
    return TABLES[frame.attrs.get("table", "table2")]


def _nan(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def _fmt(value: Any, metric: str, percent: bool) -> str:
    if _nan(value):
        return ""
    if metric == "fps":
        return f"{float(value):.0f}"
    return f"{float(value):.2f}" if percent else f"{float(value):.3f}"


def metrics_table(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows x (n, per metric ``ours`` as ``mean ± std`` and ``paper``), as short strings.

    Args:
        frame: a table from :func:`abanet_lib.paper.table_builder.build_table`.
        metrics: metric columns to show (default: the table's metrics).
    """
    spec = _spec(frame)
    metrics = list(metrics or spec.metrics)
    out = pd.DataFrame(index=frame.index)
    out["n"] = [int(v) if not _nan(v) else 0 for v in frame["n"]]
    for m in metrics:
        pct = m in spec.percent
        std_col = f"{m}_std"
        ours = []
        for _, r in frame.iterrows():
            text = _fmt(r[m], m, pct)
            if text and std_col in frame.columns and not _nan(r[std_col]) and m != "fps":
                text += f" ± {_fmt(r[std_col], m, pct)}"
            ours.append(text)
        out[f"{m} ours"] = ours
        paper_col = f"paper_{m}"
        if paper_col in frame.columns and frame[paper_col].notna().any():
            out[f"{m} paper"] = [_fmt(v, m, pct) if m != "fps" else _fmt(v, m, pct) for v in frame[paper_col]]
    return out


def status_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows x (status, difference to the paper, the 95 % CI of our mean, the paired difference to the
    canonical ABANet row on shared folds, flags, note): what :func:`metrics_table` leaves out."""
    spec = _spec(frame)
    diff = f"diff_{spec.primary}"
    out = pd.DataFrame(index=frame.index)
    out["status"] = frame["status"].astype(str)
    if diff in frame.columns:
        out[f"{spec.primary} ours − paper"] = [
            "" if _nan(v) else f"{float(v):+.2f}" for v in frame[diff]]
    p = spec.primary
    if f"{p}_ci_low" in frame.columns:
        out[f"{p} 95 % CI"] = [interval_cell(lo, hi, spec) for lo, hi in zip(frame[f"{p}_ci_low"], frame[f"{p}_ci_high"])]
    if "vs_ref_diff" in frame.columns and frame["vs_ref_diff"].notna().any():
        out[f"minus {frame.attrs.get('reference_row', 'ABANet')}, same folds (pairs)"] = [
            paired_cell(r, spec) for _, r in frame.iterrows()]
    for col, name in (("within_spread", "paper within our spread"), ("tied_with_best", "tied with our best")):
        if col in frame.columns:
            out[name] = ["" if _nan(v) else ("yes" if bool(v) else "no") for v in frame[col]]
    out["note"] = frame["note"].fillna("").astype(str) if "note" in frame.columns else ""
    return out


def show_table(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> None:
    """Display title and caption, then the metrics and the status/notes as two frames that fit."""
    title = frame.attrs.get("title", "")
    caption = frame.attrs.get("caption", "")
    display(Markdown(f"**{title}**\n\n{caption}"))
    display(metrics_table(frame, metrics))
    display(status_table(frame))


def _measured(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    ok = frame[frame[metric].notna()] if metric in frame.columns else frame.iloc[:0]
    if "status" in ok.columns:  # complete rows and rows with some of their runs (their n says how many)
        status = ok["status"].astype(str)
        ok = ok[(status == "ok") | status.str.startswith("partial")]
    return ok


def _best(values: pd.Series, metric: str):
    return values.idxmin() if metric in LOWER_IS_BETTER else values.idxmax()


def typical_spread(scale_name: str, metric: str = "iou") -> float | None:
    """Median run-to-run std of ``metric`` over the rows of the scale's Table 4 (five trials each,
    the one table with many runs per row), or None when that table was not built."""
    try:
        t4 = read_table(f"table4_{scale_name}")
    except FileNotFoundError:
        return None
    col = f"{metric.split('@')[0]}_std"  # iou@mfsd -> iou: Table 4 is scored on MFSD
    if col not in t4.columns or t4[col].notna().sum() == 0:
        return None
    return float(t4[col].dropna().median())


def _setting(scale: Scale) -> str:
    parts = [f"{scale.image_size}x{scale.image_size} inputs"]
    if scale.max_train_images:
        parts.append(f"at most {scale.max_train_images} training crops")
    parts.append(f"{scale.epochs} epochs")
    parts.append("ImageNet encoders" if scale.pretrained else "trained from scratch")
    return ", ".join(parts)


def reading(frame: pd.DataFrame, scale: Any = None, metric: str | None = None) -> str:
    """A few sentences (markdown) about the table, computed from the frame's numbers.

    A table with a claim opens with the claims ledger's verdicts (paired differences over folds
    with their 95 % interval), then describes the means: our highest and the paper's, how far our
    rows sit from the paper's, on how many pairs of rows the two orderings agree. A table no claim
    uses gets the same description and the rows' spread instead of verdicts. At smoke scale it
    says the numbers mean nothing.

    Args:
        frame: a table from :func:`abanet_lib.paper.table_builder.build_table`.
        scale: the :class:`abanet_lib.core.config.Scale` of the runs (for the setting sentence).
        metric: the metric read (default: the table's primary metric).
    """
    spec = _spec(frame)
    metric = metric or spec.primary
    scale_name = scale.name if scale is not None else frame.attrs.get("scale", "")
    unit = " points" if metric in spec.percent else ""
    ok = _measured(frame, metric)
    lines = []
    if scale_name == "smoke":
        lines.append("*Smoke scale: a few images and one epoch check that the pipeline runs; the numbers "
                     "below mean nothing about the method.*")
    if ok.empty:
        lines.append(f"No row of this table has a {metric} result yet (train the runs or set `train_missing=True`).")
        return "\n\n".join(lines)
    table_claims = claims.claims_of_table(spec.name) if metric == spec.primary else []
    if table_claims:  # the paired verdict first: the means below only describe the rows
        lines.append(ledger_reading(table_claims, scale if scale is not None else (scale_name or None)))
    best = _best(ok[metric], metric)
    std = ok.loc[best, f"{metric}_std"] if f"{metric}_std" in ok.columns else float("nan")
    pct = metric in spec.percent
    text = (f"Our highest {'mean' if table_claims else 'row'} is **{best}** "
            f"({metric} {_fmt(ok.loc[best, metric], metric, pct)}"
            f"{'' if _nan(std) else ' ± ' + _fmt(std, metric, pct)}, n = {int(ok.loc[best, 'n'])})")
    paper_col = f"paper_{metric}"
    has_paper = paper_col in frame.columns and frame[paper_col].notna().any()
    if has_paper:
        paper = frame[frame[paper_col].notna()]
        pbest = _best(paper[paper_col], metric)
        text += f"; the paper's best is **{pbest}** ({_fmt(paper.loc[pbest, paper_col], metric, pct)})."
    else:
        text += "; the paper has no number for this comparison."
    lines.append(text)
    if has_paper:
        both = ok[ok[paper_col].notna()]
        if len(both):
            gap = (both[metric] - both[paper_col]).astype(float)
            where = "below" if gap.mean() < 0 else "above"
            setting = _setting(scale) if scale is not None else ""
            lines.append(
                f"Our rows are {abs(gap.mean()):.2f}{unit} {where} the paper's on average "
                f"(from {gap.min():+.2f} to {gap.max():+.2f})"
                + (f": expected, since this scale uses {setting} where the paper trains at 256x256 on "
                   f"about 8,800 crops with pretrained encoders." if setting and scale_name != "paper" else "."))
        if len(both) >= 2:
            agree, total = pair_agreement(both[metric].to_numpy(float), both[paper_col].to_numpy(float))
            if metric in LOWER_IS_BETTER:
                agree, total = pair_agreement(-both[metric].to_numpy(float), -both[paper_col].to_numpy(float))
            if table_claims:
                lines.append(f"Our means are ordered as the paper's on {agree} of {total} pairs of rows; "
                             "unpaired means rank nothing: the ledger above says which differences the "
                             "folds resolve.")
            else:
                lines.append(f"The two orderings agree on {agree} of {total} pairs of rows"
                             + (" (the paper's ranking is reproduced)." if agree == total and total
                                else " (the ranking is not reproduced everywhere)."))
    if table_claims:
        return "\n\n".join(lines + _missing_rows(frame))
    # spread (tables without a claim)
    stds = ok[f"{metric}_std"].dropna() if f"{metric}_std" in ok.columns else pd.Series(dtype=float)
    spread = float(stds.max()) if len(stds) else typical_spread(scale_name, metric) if pct else None
    if len(ok) >= 2:
        values = ok[metric].astype(float)
        span = float(values.max() - values.min())
        if len(stds):
            src = f"the largest run-to-run std in this table ({spread:.2f}{unit})"
        elif spread is not None:
            src = (f"one run per row here; Table 4's five trials at this scale move a row by a typical "
                   f"std of {spread:.2f}{unit}")
        else:
            src = "one run per row, so no spread is measured"
        if spread is None:
            lines.append(f"Our rows span {span:.2f}{unit}; with {src}, no difference between them is resolved.")
        else:
            close = [str(i) for i in ok.index if i != best and abs(float(ok.loc[i, metric]) - float(ok.loc[best, metric])) <= 2 * spread]
            lines.append(
                f"Our rows span {span:.2f}{unit} ({src}); "
                + (f"{len(close)} of {len(ok) - 1} other rows lie within twice that spread of the best, so "
                   f"their order is unresolved: {', '.join(close)}." if close else
                   "every other row is further than twice that spread from the best."))
    return "\n\n".join(lines + _missing_rows(frame))


def _missing_rows(frame: pd.DataFrame) -> list[str]:
    missing = frame[frame["status"].astype(str) != "ok"] if "status" in frame.columns else frame.iloc[:0]
    if not len(missing):
        return []
    return [f"{len(missing)} row(s) without all their runs here: "
            + "; ".join(f"{i} ({s})" for i, s in missing["status"].items()) + "."]


def ledger_reading(table_claims: Sequence[claims.Claim], scale: Any) -> str:
    """The claims ledger's sentences for ``table_claims`` (markdown), computed from the records:
    the same sentences ``results/README.md`` quotes."""
    ledger = claims.build_ledger(scale, table_claims)
    lines = ["**Claims ledger** (paired differences over the folds both rows have, 95 % t interval; "
             "all comparisons in `results/claims.md`):"]
    lines += [f"- {claims.claim_sentence(r)}" for _, r in ledger.claims.iterrows()]
    return "\n".join(lines)


def effects(frame: pd.DataFrame, pairs: Mapping[str, tuple[str, str]], metric: str | None = None) -> pd.DataFrame:
    """One row per named change ``name: (from row, to row)``: the change of ``metric`` in ours and
    in the paper, and the larger of the two rows' stds (NaN when single runs).

    Pairs whose rows are missing from the frame (e.g. at smoke scale) are left out.
    """
    spec = _spec(frame)
    metric = metric or spec.primary
    paper_col = f"paper_{metric}"
    std_col = f"{metric}_std"
    rows = []
    for name, (a, b) in pairs.items():
        if a not in frame.index or b not in frame.index:
            continue
        ours = float(frame.loc[b, metric]) - float(frame.loc[a, metric]) if not (
            _nan(frame.loc[a, metric]) or _nan(frame.loc[b, metric])) else float("nan")
        paper = (float(frame.loc[b, paper_col]) - float(frame.loc[a, paper_col])
                 if paper_col in frame.columns and not (_nan(frame.loc[a, paper_col]) or _nan(frame.loc[b, paper_col]))
                 else float("nan"))
        spread = max((float(frame.loc[r, std_col]) for r in (a, b)
                      if std_col in frame.columns and not _nan(frame.loc[r, std_col])), default=float("nan"))
        n_runs = f"{int(frame.loc[a, 'n'])} / {int(frame.loc[b, 'n'])}" if "n" in frame.columns else ""
        rows.append({"change": name, "from": a, "to": b, f"{metric} ours": ours, f"{metric} paper": paper,
                     "std of the rows": spread, "runs (from / to)": n_runs})
    out = pd.DataFrame(rows, columns=["change", "from", "to", f"{metric} ours", f"{metric} paper", "std of the rows",
                                      "runs (from / to)"])
    return out.set_index("change").round(3)


def effects_reading(effect_frame: pd.DataFrame, metric: str = "iou", scale_name: str = "") -> str:
    """Sentences about :func:`effects`: sign agreement with the paper and size against the spread.

    A change larger than twice the rows' spread is only a hint: whether it is resolved is the
    claims ledger's paired interval (quoted by :func:`reading`)."""
    if effect_frame.empty:
        return "No pair of rows of this ablation has results at this scale."
    spread = typical_spread(scale_name, metric) if scale_name else None
    lines = []
    for name, r in effect_frame.iterrows():
        ours, paper = r[f"{metric} ours"], r[f"{metric} paper"]
        if _nan(ours):
            lines.append(f"- {name}: no result yet.")
            continue
        s = f"- {name}: ours {ours:+.2f}"
        if not _nan(paper):
            same = np.sign(ours) == np.sign(paper)
            s += f", paper {paper:+.2f} ({'same direction' if same else 'opposite direction'})"
        noise = r["std of the rows"] if not _nan(r["std of the rows"]) else spread
        if noise is not None and not _nan(noise):
            s += (f"; |change| {'under' if abs(ours) <= 2 * noise else 'over'} twice the run-to-run std "
                  f"({noise:.2f}){'' if abs(ours) <= 2 * noise else ': a hint, the ledger decides'}")
        else:
            s += "; single runs, spread unknown"
        counts = str(r.get("runs (from / to)", ""))
        if counts and len(set(counts.split(" / "))) > 1:
            s += f"; the rows have {counts} runs, so these means are not over the same folds (the ledger pairs them)"
        lines.append(s + ".")
    return "\n".join(lines)


#: RunConfig fields that differ between runs of one row (not a knob of the ablation)
_PER_RUN_FIELDS = frozenset({"fold", "seed", "device", "num_workers", "scale"})


def config_changes(table: str, scale: Any, reference: str | None = None) -> pd.DataFrame:
    """What each row of ``table`` changes in the run configuration, against ``reference``
    (default: the row marked ABANet, else the first row): one row per table row, one column per
    changed :class:`abanet_lib.core.config.RunConfig` field, computed from the configs the
    experiments list builds (nothing trains).

    Args:
        table: a table name of :data:`abanet_lib.paper.experiments.TABLES`.
        scale: a :class:`abanet_lib.core.config.Scale` or its name.
        reference: row label the others are compared with.
    """
    rows = [r for r in table_rows(table, scale, rows="all", check_models=False) if r.configs]
    if not rows:
        return pd.DataFrame()
    if reference is None:
        reference = next((r.label for r in rows if "ABANet" in r.label), rows[0].label)
    ref = dataclasses.asdict(next(r for r in rows if r.label == reference).configs[0])
    changed: dict[str, dict[str, str]] = {}
    for r in rows:
        cfg = dataclasses.asdict(r.configs[0])
        diff = {k: v for k, v in cfg.items() if k not in _PER_RUN_FIELDS and v != ref.get(k)}
        changed[r.label] = {k: _show_value(v) for k, v in diff.items()}
    cols = sorted({k for d in changed.values() for k in d})
    out = pd.DataFrame.from_dict(changed, orient="index", columns=cols).fillna("")
    out.index.name = f"row (vs {reference})"
    if not cols:
        out["change"] = ""
    return out


def _show_value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        if v and all(isinstance(x, (tuple, list)) and len(x) == 2 for x in v):
            return ", ".join(f"{k}={_show_value(x)}" for k, x in v)
        return "+".join(str(x) for x in v) if v else "()"
    return str(v)


def plot_image_sizes(stats: pd.DataFrame):
    """Figure 3a: native width vs height per data set (left) and the images per longer side
    (right), one bar per distinct size, so a data set whose images all share one size shows one
    bar (a 20-bin histogram over a few distinct sizes draws bars too thin to see).

    Args:
        stats: :func:`abanet_lib.data.explore.sample_stats` (columns dataset, width, height).
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    longer = stats[["width", "height"]].max(axis=1).astype(int)
    sizes = sorted(longer.unique())
    datasets = sorted(stats["dataset"].unique())
    width = 0.8 / max(1, len(datasets))
    x = np.arange(len(sizes))
    for i, name in enumerate(datasets):
        part = stats[stats["dataset"] == name]
        jitter = np.random.default_rng(0).normal(0, 3, (2, len(part)))
        a.scatter(part["width"] + jitter[0], part["height"] + jitter[1], s=10, alpha=0.6,
                  label=f"{name} (n={len(part)})")
        counts = longer[part.index].value_counts()
        b.bar(x + (i - (len(datasets) - 1) / 2) * width, [int(counts.get(s, 0)) for s in sizes], width=width,
              label=name)
    a.set(xlabel="width [px]", ylabel="height [px]", title="Image sizes (jittered)")
    a.legend(fontsize=7)
    step = max(1, len(sizes) // 12)  # at most about 12 tick labels
    b.set_xticks(x[::step], [str(s) for s in sizes][::step], rotation=45, ha="right", fontsize=7)
    b.set(xlabel="longer side [px] (one bar per distinct size)", ylabel="images", title="Longer side")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
