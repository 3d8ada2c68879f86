"""Every table at once: ``results/README.md`` and the results block of the project README.

:func:`write_results_readme` summarises every written table of a scale (in the definitions'
order) with sentences computed from the numbers (:func:`summarize_table`), quotes the claims
ledger (:mod:`abanet_lib.paper.claims`) and, when asked, the cost report
(:mod:`abanet_lib.paper.cost`) and the learning-curve study behind the scale's size and epochs
(:mod:`abanet_lib.paper.learning_curve`), then replaces the block between ``<!-- results:start -->`` and
``<!-- results:end -->`` of the project README. One table is built by
:mod:`abanet_lib.paper.table_builder`; its files are :mod:`abanet_lib.paper.table_files`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from abanet_lib.core import paths
from abanet_lib.paper import claims
from abanet_lib.paper import cost as cost_module
from abanet_lib.paper import learning_curve
from abanet_lib.paper.definitions import LOWER_IS_BETTER, TABLE_ORDER, TABLES, TableDefinition
from abanet_lib.paper.table_files import read_table

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def summarize_table(frame: pd.DataFrame, spec: TableDefinition) -> list[str]:
    """Honest sentences computed from one table's numbers."""
    return list(table_sentences(frame, spec).values())


def table_sentences(frame: pd.DataFrame, spec: TableDefinition) -> dict[str, str]:
    """:func:`summarize_table`'s sentences by role, in reading order: ``rows`` (how many have
    results), then where measured ``highest`` (our highest row), ``order`` (agreement with the
    paper's order), ``caveat`` (:func:`ranking_caveat`) and ``gap`` (ours - paper)."""
    p = spec.primary
    unit = " points" if p in spec.percent else ""
    status = frame["status"].astype(str)
    n_rows = len(frame)
    done = frame[frame[p].notna()]
    n_not_built = int(status.str.startswith("not built").sum())
    n_not_run = int((status == "not run").sum())
    n_skipped = int(status.str.startswith("not run at this scale").sum())
    out = {"rows": f"{len(done)} of {n_rows} rows have results"
           + (f"; {n_not_built} not built" if n_not_built else "")
           + (f"; {n_skipped} left out at this scale for cost" if n_skipped else "")
           + (f"; {n_not_run} not run yet" if n_not_run else "") + "."}
    if done.empty:
        return out
    sign = -1.0 if p in LOWER_IS_BETTER else 1.0
    our_best = (done[p] * sign).idxmax()
    paper_done = done[done[f"paper_{p}"].notna()]
    fmt = (lambda v: f"{v:.2f}") if p in spec.percent else (lambda v: f"{v:.3f}")
    best_std = done.loc[our_best, f"{p}_std"]
    out["highest"] = (f"Our highest row on {p}: {our_best} ({fmt(done.loc[our_best, p])}"
                      + (f" ± {fmt(best_std)}" if not math.isnan(best_std) else ", single run") + ").")
    if len(paper_done) >= 2:
        # Who "wins" is the claims ledger's question (paired folds, CI): not asked here.
        agree, total = pair_agreement(paper_done[p].to_numpy(), paper_done[f"paper_{p}"].to_numpy())
        if total:
            out["order"] = f"Our order agrees with the paper's for {agree} of {total} row pairs."
    caveat = ranking_caveat(done, spec)
    if caveat:
        out["caveat"] = caveat
    if len(paper_done):
        gap = (paper_done[p] - paper_done[f"paper_{p}"]).mean()
        within = paper_done["within_spread"].dropna()
        out["gap"] = (f"Mean gap ours - paper on {p}: {gap:+.2f}{unit} over {len(paper_done)} rows"
                      + (f"; {int(within.sum())} of {len(within)} rows are within our spread of the paper's value."
                         if len(within) else "."))
    return out


def ranking_caveat(done: pd.DataFrame, spec: TableDefinition) -> str | None:
    """What our means can say about which row is better: nothing where the claims ledger asks it
    (its paired intervals decide), else which rows lie within our best row's spread, or that single
    runs have none."""
    p = spec.primary
    tied = done[done["tied_with_best"].fillna(False).astype(bool)]
    if claims.claims_of_table(spec.name):
        return ("Whether one row beats another is not read off these means: the claims ledger's paired "
                "intervals below decide it.")
    if len(tied) > 1:
        return (f"{len(tied)} rows ({', '.join(map(str, tied.index))}) lie within the run-to-run "
                "spread of our best row: the ranking among them is not resolved by our runs.")
    if done[f"{p}_std"].isna().all():
        return ("Each row has a single run, so no spread is known and no difference between rows "
                "can be called significant.")
    return None


def readme_bullet(sentences: dict[str, str], verdicts: list[str]) -> str:
    """The README's line for one table from its :func:`table_sentences`: how many rows have
    results, then the claims ledger's verdicts where the table has a claim (issue 15: the
    ledger's rows, not our highest mean), else our highest row with what its spread allows us to say."""
    if verdicts:
        return sentences["rows"] + " Ledger: " + " ".join(verdicts)
    return " ".join(sentences[k] for k in ("rows", "highest", "caveat") if k in sentences)


def pair_agreement(ours, paper) -> tuple[int, int]:
    """(pairs of rows ordered the same way by ours and the paper, pairs compared); pairs tied on
    either side are skipped."""
    ours, paper = np.asarray(ours, float), np.asarray(paper, float)
    agree = total = 0
    for i in range(len(ours)):
        for j in range(i + 1, len(ours)):
            a, b = np.sign(ours[i] - ours[j]), np.sign(paper[i] - paper[j])
            if a == 0 or b == 0:
                continue
            total += 1
            agree += int(a == b)
    return agree, total


CAVEATS = {
    "reduced": (
        "Caveats that apply to every table: the paper trains on 8,500 MFSD crops and tests on 1,758; "
        "offline we have 220 real MFSD crops (mfsd-sample), so each reduced-scale model sees about 150 "
        "training images and is tested on about 44 per fold. Encoders start from scratch (no ImageNet "
        "weights offline), images are smaller and training is shorter than the paper's (see each "
        "caption) and 15 epochs train ABANet short of convergence (results/learning_curve.md). Absolute "
        "numbers are therefore expected to sit below the paper's; what carries information is whether the "
        "paired differences of the claims ledger (the same folds for both rows) exclude zero. "
        "EINet and the Table 4 methods other than GrabCut are stand-ins: the original networks are "
        "unpublished."
    ),
    "paper": (
        "Caveats: the paper-scale runs follow the paper's recipe (full MFSD split, 256x256, batch 8, Adam "
        "1e-4, ImageNet encoders) but not its unpublished details (epochs, model selection, augmentation); "
        "EINet and the Table 4 methods other than GrabCut are stand-ins for unpublished networks."
    ),
    "smoke": (
        "Caveat: smoke scale (1 epoch on 16 images of 64x64) only checks that the pipeline runs; its "
        "numbers mean nothing and must not be compared with the paper."
    ),
}


def _pick_scale(folder: Path) -> str | None:
    for name in ("paper", "reduced", "smoke"):
        if any(folder.glob(f"*_{name}.csv")):
            return name
    return None


def _ledger_sentences(scale: str, folder: Path) -> tuple[dict[str, list[str]], str]:
    """Write the claims ledger next to the tables; return per table one sentence per claim, and
    the ledger's progress line (how many claims stand on enough paired folds)."""
    ledger = claims.write_claims(scale, folder=folder)
    table_of = {c.key: c.table for c in claims.CLAIMS}
    out: dict[str, list[str]] = {}
    for _, r in ledger.claims.iterrows():
        out.setdefault(table_of[r["claim"]], []).append(claims.claim_sentence(r))
    return out, claims.progress_line(ledger)


def write_results_readme(scale: str | None = None, folder: Path | None = None,
                         readme: Path | None = None, cost: bool = False) -> Path:
    """Write ``results/README.md`` from the written tables and update README.md's results block.

    Args:
        scale: which scale's tables to summarise (default: the largest scale with tables).
        folder: tables folder (default ``results/tables``).
        readme: the project README whose block between ``<!-- results:start -->`` and
            ``<!-- results:end -->`` is replaced (only when both markers exist).
        cost: also write ``results/cost_<scale>.md`` (:mod:`abanet_lib.paper.cost`: runs done, CPU-hours
            measured and left) and quote its summary line.

    Returns:
        Path of ``results/README.md``.
    """
    folder = Path(folder) if folder is not None else paths.tables_dir()
    scale = scale or _pick_scale(folder) or "reduced"
    lines = [f"# Results ({scale} scale)", "",
             "Generated by `abanet_lib.paper.tables.write_results_readme()` from `results/tables/`; "
             "do not edit by hand.", "", CAVEATS.get(scale, CAVEATS["reduced"]), ""]
    short = []
    ledger_sentences, progress = (_ledger_sentences(scale, folder.parent) if any(folder.glob(f"*_{scale}.csv"))
                                  else ({}, ""))
    if progress:
        ledger_md = f"{claims.ledger_name(scale)}.md"
        lines += [f"[Claims ledger]({ledger_md}): {progress}", ""]
        short.append(f"- **Claims ledger** ([claims](results/{ledger_md})): {progress}")
    for table in TABLE_ORDER:
        name = f"{table}_{scale}"
        if not (folder / f"{name}.csv").is_file():
            continue
        frame = read_table(name, folder)
        spec = TABLES[table]
        sentences = table_sentences(frame, spec)
        verdicts = ledger_sentences.get(table, [])
        lines += [f"## {spec.title}", "", f"Table: [`tables/{name}.md`](tables/{name}.md).", "",
                  " ".join(sentences.values()), ""]
        if verdicts:
            lines += [f"Claims ledger ([`{ledger_md}`]({ledger_md})):", "", *[f"- {v}" for v in verdicts], ""]
        short.append(f"- **{spec.title}** ([table](results/tables/{name}.md)): " + readme_bullet(sentences, verdicts))
    if not short:
        lines.append("No tables written yet: run the notebooks (or `make reproduce`).")
    if cost:
        frame = cost_module.cost_table(scale)
        report = cost_module.write_cost_report(scale, folder=folder.parent, frame=frame)
        headline = cost_module.headline(cost_module.summary(frame))
        lines += ["## Cost of the experiment list", "", f"{headline} Per model: [`{report.name}`]({report.name}).", ""]
        short.append(f"- **Cost** ([per model](results/{report.name})): {headline}")
        if scale == learning_curve.STUDY_SCALE:
            study, reading = learning_curve.write_study(scale, out_dir=folder.parent, figures=folder.parent / "figures",
                                                        totals=cost_module.summary(frame))
            lines += ["## The scale's image size and epochs: learning curve", "", " ".join(reading),
                      f"Details: [`{study.name}`]({study.name}).", ""]
            short.append(f"- **Learning curve** ([study](results/{study.name})): " + " ".join(reading))
    out = folder.parent / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    readme = Path(readme) if readme is not None else paths.PROJECT_ROOT / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if README_START in text and README_END in text:
            block = "\n".join([README_START, f"Results at {scale} scale (details: `results/README.md`).", "",
                               *(short or ["No tables written yet."]), "", README_END])
            new = re.sub(re.escape(README_START) + r".*?" + re.escape(README_END), lambda _: block,
                         text, count=1, flags=re.S)
            if new != text:
                readme.write_text(new, encoding="utf-8")
    return out
