"""The claims ledger: every claim of the paper, tested on paired folds of our run records.

:data:`CLAIMS` is the one declarative list of the paper's claims. Each names the experiment
table (:mod:`abanet_lib.paper.definitions`) and the row labels it compares: the row the paper says is
better (``row``) against one or more alternatives (``others``). :func:`build_ledger` reads the
finished runs of those rows from the records (nothing trains) and computes, per comparison:

* **Pairs.** Run ``r`` of the row and run ``r'`` of the alternative pair when they share
  ``(fold, seed)``, i.e. the same identity-disjoint test fold and the same seed; in Table 4
  trial ``i`` is ``(fold i mod k, seed i)``, so this pairs by trial. Only pairs that *both*
  rows have a record for count; a run without a partner is left out. Every committed fold of
  the row's configuration counts, not only the folds the scale plans for the row (so the
  fold-1 smp runs of Table 2 pair with ABANet's fold 1).
* **Difference** ``d = IoU(row) - IoU(alternative)`` in IoU points (the run's mean per-image
  test IoU x 100, as in the tables); ``n`` pairs, mean ``d``, sample sd (ddof = 1).
* **95 % CI**: ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (Student t over the pairs, df = n - 1);
  none when ``n < 2``.
* **Minimum detectable difference (MDD)**: the CI half-width ``t_{0.975, n-1} * sd / sqrt(n)``,
  i.e. the smallest mean difference this n and this sd would have told from 0 (a true
  difference of that size is found about half the time; 80 % power needs about
  ``(t_{0.975} + t_{0.80}) / t_{0.975}`` times more, :func:`power_factor`). With ``n = 1`` the pair has
  no sd: the MDD is ``t_{0.975, k-1} * s_ABANet``, ``s_ABANet`` the sd of the canonical
  ABANet's test IoU over its ``k`` committed folds (seed 0), a stand-in for the unknown sd of a
  paired difference (:func:`reference_spread`).
* **Verdict** (a claim that the row is *better*): ``confirmed`` when the CI excludes 0 in the
  paper's direction, ``refuted`` when it excludes 0 against it, ``unresolved at this n`` when
  it contains 0 or ``n < 2`` (no CI). A claim of *equality* (the released code is the paper's
  model): ``refuted`` when the CI excludes 0, ``confirmed`` when the CI lies inside
  +-:data:`EQUIVALENCE_MARGIN` points, else unresolved.
* **Claim verdict** over its comparisons ("X is best of several" compares X with *each*
  alternative, pairwise, chosen so that no alternative is picked from our own numbers):
  ``confirmed`` when every counted comparison is confirmed (an intersection-union test: no
  multiplicity correction needed), ``refuted`` when any is refuted (no correction: with ``m``
  alternatives a tie is wrongly refuted up to ``m x 2.5 %`` of the time), otherwise
  unresolved. Alternatives the scale skips on purpose (``RowDefinition.skipped_at``) are listed
  but not counted. The claim's row in the ledger shows the *binding* comparison: the closest
  alternative (smallest mean difference in the paper's direction), or for equality the largest
  ``|mean|``.

Issue 15 asks for at least :data:`MIN_PAIRS` paired folds per claim; rows with fewer say so.

:func:`write_claims` writes ``claims.md`` and ``claims.csv`` (``claims_<scale>.*`` for another
scale than :data:`LEDGER_SCALE`) with fixed formatting and no dates or machine state, so the
same records give the same bytes. ``python -m abanet_lib.paper.claims [--scale reduced] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from abanet_lib.core import paths
from abanet_lib.core.config import Scale, get_scale
from abanet_lib.paper.runs import load_finished
from abanet_lib.paper.definitions import ABANET_ROW, FIGURE7_NOTE, PRETRAINING_ROWS, TABLES
from abanet_lib.paper.experiments import ExperimentRow, canonical_abanet, every_fold, table_rows, unique_configs

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Paired folds (or trials) per claim issue 15 asks for.
MIN_PAIRS = 5
#: Half-width (IoU points) of the interval inside which an equality claim counts as confirmed.
#: Declared before looking: the smallest effect the paper reports between two of its rows is
#: 0.18 points (Table 8), the spread of its Table 4 trials 0.6; one point is a difference a
#: reader of Table 2 would call "the same model".
EQUIVALENCE_MARGIN = 1.0
#: The scale whose ledger is ``results/claims.md`` (other scales write ``claims_<scale>.md``).
LEDGER_SCALE = "reduced"

CONFIRMED = "confirmed"
REFUTED = "refuted"
UNRESOLVED = "unresolved at this n"
VERDICTS = (CONFIRMED, REFUTED, UNRESOLVED)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper.

    Attributes:
        key: short id (CSV, tests).
        text: the claim, in words.
        table: the table of :mod:`abanet_lib.paper.definitions` holding the rows.
        source: where the paper makes it ("Table 5", ..., "ours" for a claim of this project).
        row: the row the paper says is better (row label of ``table``).
        others: the rows it is compared with, pairwise.
        pairs: explicit ``(better, worse)`` row pairs instead of ``row`` x ``others``.
        kind: ``"better"`` (row > each other) or ``"equal"`` (row = each other).
        note: what the claim's rows mean at our scale.
    """

    key: str
    text: str
    table: str
    source: str
    row: str = ""
    others: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    kind: str = "better"
    note: str = ""

    @property
    def comparisons(self) -> tuple[tuple[str, str], ...]:
        return self.pairs or tuple((self.row, other) for other in self.others)


#: The U-Net family of Table 2: "classical networks like Unet, Unet++, and Linknet" (paper,
#: Table 2 discussion), each on the three encoders of the table.
UNET_FAMILY = tuple(f"{arch} / {enc}" for arch in ("Unet", "Unet++", "Linknet")
                    for enc in ("Efficient-b7", "ResNet50", "VGG19"))

#: The paper's claims, in the paper's order. Row labels are those of
#: :mod:`abanet_lib.paper.definitions`.
CLAIMS: tuple[Claim, ...] = (
    Claim("ag_helps", "attention gates help", "table5", "Table 5",
          pairs=(("baseline+AG", "baseline"), (ABANET_ROW, "baseline+refinement")),
          note="gates added to the baseline, and to baseline+refinement (= ABANet)"),
    Claim("refinement_helps", "the refinement module helps", "table5", "Table 5",
          pairs=(("baseline+refinement", "baseline"), (ABANET_ROW, "baseline+AG")),
          note="refinement added to the baseline, and to baseline+AG (= ABANet)"),
    Claim("ag_stages_456_best", "attention gates at stages 4,5,6 are best", "table6", "Table 6",
          row="AG at stages 4,5,6 (ABANet)", others=("AG at stages 5,6", "AG at stages 3,4,5,6")),
    Claim("input_256_best", "256x256 is the best input size", "table7", "Table 7",
          row="256x256 (ABANet)", others=("128x128", "512x512"),
          note="the paper's 128/256/512 are the scale's S/2, S, 2S (the closest ratio it allows)"),
    Claim("adam_best", "Adam is the best optimizer", "table8", "Table 8",
          row="Adam (ABANet)", others=("SGD", "Adamax", "RMSprop")),
    Claim("hybrid_loss_best", "the hybrid loss beats its parts", "table9", "Table 9",
          row="Focal + SSIM + IoU (ABANet)", others=("Focal", "IoU", "Focal + IoU")),
    Claim("alpha_03_best", "focal alpha = 0.3 is best", "fig7", "Figure 7",
          row="alpha=0.3 (ABANet)", others=("alpha=0.5", "alpha=0.75", "alpha=0.9"),
          note="against the paper's other alphas; our extra alpha=0.1 is not part of the claim"),
    Claim("abanet_beats_general", "ABANet beats BASNet, DAD and the U-Net family", "table2", "Table 2",
          row=ABANET_ROW, others=("BASNet", "DAD / ResNet50") + UNET_FAMILY,
          note="U-Net family = Unet, Unet++ and Linknet on the three encoders, as the paper groups them"),
    Claim("abanet_beats_masked_face", "ABANet beats the masked-face methods", "table4", "Table 4",
          row=ABANET_ROW, others=("Din et al. (U-Net)", "Zhang et al. (GrabCut)", "Geng et al. (U-Net)",
                                  "Sola & Gera (Mask R-CNN)"),
          note="paired by trial (trial i: seed i, test fold i mod 5); Din, Geng, Sola & Gera are stand-ins"),
    Claim("released_equals_paper", "the released code equals the paper's model", "released_vs_paper", "ours",
          row="abanet + paper loss (ABANet)",
          others=("abanet_official + official loss", "abanet_official + paper loss", "abanet + official loss"),
          kind="equal",
          note="released graph + released loss, then each part alone, against the paper's graph and loss"),
    Claim("pretraining_helps", "ImageNet pretraining helps (the paper's models start from it, ours from scratch)",
          "pretraining", "ours", pairs=((PRETRAINING_ROWS[1], PRETRAINING_ROWS[0]),),
          note="the only ImageNet encoder installable offline: a U-Net on EfficientNet-Lite0; the paper "
               "gives no scratch numbers, so its effect is not given"),
)


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedStats:
    """Paired difference statistics (IoU points)."""

    n: int
    mean: float
    sd: float
    t: float
    ci_low: float
    ci_high: float
    mdd: float
    mdd_rule: str


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t quantile ``t_{(1+confidence)/2, df}`` (NaN for df < 1)."""
    return float(stats.t.ppf(0.5 + confidence / 2.0, df)) if df >= 1 else math.nan


def power_factor(n: int, power: float = 0.8, confidence: float = CONFIDENCE) -> float:
    """How many MDDs (CI half-widths) a true difference must be to be found with ``power`` at ``n``
    pairs: ``(t_{(1+c)/2, n-1} + t_{power, n-1}) / t_{(1+c)/2, n-1}``."""
    t_ci = t_quantile(n - 1, confidence)
    return (t_ci + float(stats.t.ppf(power, n - 1))) / t_ci


def paired_stats(diffs: Sequence[float], reference_sd: float = math.nan, reference_k: int = 0,
                 confidence: float = CONFIDENCE) -> PairedStats:
    """Mean, t-interval and minimum detectable difference of paired differences.

    Args:
        diffs: one difference per pair.
        reference_sd, reference_k: the sd (over ``reference_k`` runs) used for the MDD when
            there is a single pair (see the module docstring); NaN/0: no MDD for n = 1.
    """
    d = np.asarray(list(diffs), dtype=float)
    n = int(d.size)
    if n == 0:
        return PairedStats(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "no pairs")
    mean = float(d.mean())
    if n == 1:
        t_ref = t_quantile(reference_k - 1, confidence)
        mdd = t_ref * reference_sd if reference_k >= 2 and math.isfinite(reference_sd) else math.nan
        rule = (f"n=1: t(0.975,{reference_k - 1}) x ABANet fold sd ({reference_k} folds)"
                if math.isfinite(mdd) else "n=1: no ABANet fold spread to stand in")
        return PairedStats(1, mean, math.nan, math.nan, math.nan, math.nan, mdd, rule)
    sd = float(d.std(ddof=1))
    t = t_quantile(n - 1, confidence)
    half = t * sd / math.sqrt(n)
    return PairedStats(n, mean, sd, t, mean - half, mean + half, half, f"t(0.975,{n - 1}) x sd / sqrt({n})")


def verdict(s: PairedStats, kind: str = "better", margin: float = EQUIVALENCE_MARGIN) -> str:
    """Verdict of one comparison (see the module docstring)."""
    if s.n < 2 or not (math.isfinite(s.ci_low) and math.isfinite(s.ci_high)):
        return UNRESOLVED
    if kind == "better":
        if s.ci_low > 0:
            return CONFIRMED
        if s.ci_high < 0:
            return REFUTED
        return UNRESOLVED
    if kind == "equal":
        if s.ci_low > 0 or s.ci_high < 0:
            return REFUTED
        if -margin <= s.ci_low and s.ci_high <= margin:
            return CONFIRMED
        return UNRESOLVED
    raise ValueError(f"verdict: unknown claim kind {kind!r}; expected 'better' or 'equal'")


def combine(verdicts: Iterable[str]) -> str:
    """Claim verdict from its counted comparisons: all confirmed, any refuted, else unresolved."""
    verdicts = list(verdicts)
    if any(v == REFUTED for v in verdicts):
        return REFUTED
    if verdicts and all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return UNRESOLVED


def pair_scores(a: Mapping[tuple, float], b: Mapping[tuple, float]) -> tuple[list[tuple], np.ndarray]:
    """The keys both score maps share (sorted) and the differences ``a - b`` on them."""
    keys = sorted(set(a) & set(b))
    return keys, np.asarray([a[k] - b[k] for k in keys], dtype=float)


# ---------------------------------------------------------------------------------------
# Reading the records
# ---------------------------------------------------------------------------------------
def _iou_points(run) -> float:
    value = run.test.get("iou")
    return float(value) * 100.0 if isinstance(value, (int, float)) else math.nan


def row_scores(row: ExperimentRow, runs: Mapping[str, object]) -> dict[tuple, float]:
    """``{(fold, seed): test IoU in points}`` of the row's finished runs."""
    out = {}
    for cfg in row.configs:
        run = runs.get(cfg.run_id)
        if run is not None and math.isfinite(_iou_points(run)):
            out[(cfg.fold, cfg.seed)] = _iou_points(run)
    return out


def reference_spread(scale: Scale | str | None = None, runs: Mapping[str, object] | None = None) -> tuple[float, int]:
    """``(sd, k)`` of the canonical ABANet's test IoU (points) over its ``k`` committed folds, seed 0."""
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    folds = range(scale.n_folds) if scale.split == "groupkfold" else scale.folds
    cfgs = [canonical_abanet(scale, fold=f) for f in folds]
    runs = dict(runs) if runs is not None else {}
    missing = [c for c in cfgs if c.run_id not in runs]
    if missing:
        runs.update(load_finished(missing))
    values = [_iou_points(runs[c.run_id]) for c in cfgs if c.run_id in runs]
    values = [v for v in values if math.isfinite(v)]
    return (float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan), len(values)


def paper_effect(claim: Claim, better: str, other: str) -> float:
    """The paper's IoU difference ``better - other`` (NaN where the paper gives no numbers;
    0 for an equality claim, which is what it asserts)."""
    if claim.kind == "equal":
        return 0.0
    paper = TABLES[claim.table].paper_frame()
    if paper is None or better not in paper.index or other not in paper.index:
        return math.nan
    return float(paper.loc[better, "iou"]) - float(paper.loc[other, "iou"])


# ---------------------------------------------------------------------------------------
# The ledger
# ---------------------------------------------------------------------------------------
COMPARISON_COLUMNS = (
    "claim", "claim_text", "source", "kind", "row", "vs", "counted", "paper_effect", "n", "pairs",
    "mean_diff", "ci_low", "ci_high", "sd", "mdd", "mdd_rule", "verdict", "claim_verdict", "note",
    "run_ids_row", "run_ids_vs",
)
CLAIM_COLUMNS = (
    "claim", "claim_text", "source", "kind", "row", "vs", "paper_effect", "n", "mean_diff",
    "ci_low", "ci_high", "mdd", "verdict", "comparisons", "note",
)


@dataclass
class Ledger:
    """The computed ledger: one row per comparison and one per claim."""

    scale: Scale
    comparisons: pd.DataFrame
    claims: pd.DataFrame
    reference_sd: float
    reference_k: int
    extra: dict = field(default_factory=dict)


def _pair_label(key: tuple, table: str) -> str:
    fold, seed = key
    return f"trial {seed}" if table == "table4" else f"fold {fold}" + (f" seed {seed}" if seed else "")


def build_ledger(scale: Scale | str | None = "reduced", claims: Sequence[Claim] = CLAIMS) -> Ledger:
    """Compute every claim of ``claims`` from the finished runs of ``scale`` (nothing trains)."""
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    wide = every_fold(scale)
    rows_by_table: dict[str, dict[str, ExperimentRow]] = {}
    for table in sorted({c.table for c in claims}):
        rows_by_table[table] = {r.label: r for r in table_rows(table, wide, rows="all", check_models=False)}
    wanted = [cfg for claim in claims for pair in claim.comparisons for label in pair
              for cfg in _row(rows_by_table, claim, label).configs]
    runs = load_finished(unique_configs(wanted))
    ref_sd, ref_k = reference_spread(scale, runs)

    comp_records, claim_records = [], []
    for claim in claims:
        rows = rows_by_table[claim.table]
        records = []
        for better, other in claim.comparisons:
            a, b = _row(rows_by_table, claim, better), _row(rows_by_table, claim, other)
            skipped = a.skipped or b.skipped
            sa, sb = row_scores(a, runs), row_scores(b, runs)
            keys, diffs = pair_scores(sa, sb)
            s = paired_stats(diffs, ref_sd, ref_k)
            v = verdict(s, claim.kind)
            notes = []
            if skipped:
                notes.append(f"not run at this scale (skipped: {'row' if a.skipped else 'alternative'}); "
                             "not counted")
            elif s.n == 0:
                notes.append("not run: no fold both rows have")
            if 0 < s.n < MIN_PAIRS:
                notes.append(f"n = {s.n} < {MIN_PAIRS}: issue 15 requires >= {MIN_PAIRS} paired folds")
            if claim.table == "fig7" and not math.isfinite(paper_effect(claim, better, other)):
                notes.append("paper gives no Figure 7 numbers, only the choice alpha = 0.3")
            records.append({
                "claim": claim.key, "claim_text": claim.text, "source": claim.source, "kind": claim.kind,
                "row": better, "vs": other, "counted": not skipped,
                "paper_effect": paper_effect(claim, better, other),
                "n": s.n, "pairs": ";".join(_pair_label(k, claim.table) for k in keys),
                "mean_diff": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "sd": s.sd,
                "mdd": s.mdd, "mdd_rule": s.mdd_rule, "verdict": v, "note": "; ".join(notes),
                "run_ids_row": ";".join(cfg.run_id for cfg in a.configs if (cfg.fold, cfg.seed) in keys),
                "run_ids_vs": ";".join(cfg.run_id for cfg in b.configs if (cfg.fold, cfg.seed) in keys),
            })
        counted = [r for r in records if r["counted"]]
        claim_v = combine(r["verdict"] for r in counted)
        for r in records:
            r["claim_verdict"] = claim_v
        comp_records += records
        claim_records.append(_claim_record(claim, records, counted, claim_v, rows))
    comparisons = pd.DataFrame(comp_records, columns=list(COMPARISON_COLUMNS))
    claims_frame = pd.DataFrame(claim_records, columns=list(CLAIM_COLUMNS))
    return Ledger(scale=scale, comparisons=comparisons, claims=claims_frame,
                  reference_sd=ref_sd, reference_k=ref_k)


def _row(rows_by_table: Mapping[str, Mapping[str, ExperimentRow]], claim: Claim, label: str) -> ExperimentRow:
    rows = rows_by_table[claim.table]
    if label not in rows:
        raise ValueError(f"claim {claim.key!r}: no row {label!r} in {claim.table}; rows are {list(rows)}")
    return rows[label]


def _binding(records: list[dict], kind: str) -> dict:
    """The comparison shown on the claim's row: the binding one (see the module docstring)."""
    with_pairs = [r for r in records if r["n"] > 0]
    if not with_pairs:
        return records[0]
    if kind == "equal":
        return max(with_pairs, key=lambda r: abs(r["mean_diff"]))
    return min(with_pairs, key=lambda r: r["mean_diff"])


def _claim_record(claim: Claim, records: list[dict], counted: list[dict], claim_v: str,
                  rows: Mapping[str, ExperimentRow]) -> dict:
    shown = _binding(counted or records, claim.kind)
    tally = {v: sum(r["verdict"] == v for r in counted) for v in VERDICTS}
    parts = [f"{len(counted)} counted: {tally[CONFIRMED]} confirmed, {tally[REFUTED]} refuted, "
             f"{tally[UNRESOLVED]} unresolved"]
    if len(counted) < len(records):
        parts.append(f"{len(records) - len(counted)} not run at this scale")
    notes = [claim.note] if claim.note else []
    if claim.table == "table7":
        sizes = {label: rows[label].configs[0].image_size for label in (claim.row,) + claim.others}
        notes.append("at this scale " + ", ".join(f"{label.split(' ')[0]} = {size}x{size}"
                                                  for label, size in sizes.items()))
    if claim.table == "fig7":
        notes.append(FIGURE7_NOTE.rstrip("."))
    if 0 < shown["n"] < MIN_PAIRS or any(0 < r["n"] < MIN_PAIRS for r in counted):
        notes.append(f"fewer than {MIN_PAIRS} pairs: issue 15 requires >= {MIN_PAIRS} paired folds")
    if all(r["n"] == 0 for r in counted):
        notes.append("not run")
    return {
        "claim": claim.key, "claim_text": claim.text, "source": claim.source, "kind": claim.kind,
        "row": shown["row"], "vs": shown["vs"], "paper_effect": shown["paper_effect"], "n": shown["n"],
        "mean_diff": shown["mean_diff"], "ci_low": shown["ci_low"], "ci_high": shown["ci_high"],
        "mdd": shown["mdd"], "verdict": claim_v, "comparisons": "; ".join(parts), "note": "; ".join(notes),
    }


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------
def _rounded(value, digits: int) -> float | None:
    """``value`` rounded to ``digits`` (``None`` for a missing value; -0 becomes 0)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), digits) + 0.0


def _num(value, digits: int) -> str:
    """Signed fixed-point text (``+1.23``), empty for a missing value."""
    v = _rounded(value, digits)
    return "" if v is None else f"{v:+.{digits}f}"


def _plain(value, digits: int) -> str:
    """Fixed-point text, empty for a missing value."""
    v = _rounded(value, digits)
    return "" if v is None else f"{v:.{digits}f}"


def diff_ci_text(r) -> str:
    """``"+1.23 [-0.40, +2.86]"`` (or ``"(n = 1, no CI)"`` / ``"not run"``) for a ledger row."""
    return _diff_ci(r)


def claim_sentence(r) -> str:
    """One markdown sentence for a claim row of the ledger: claim, verdict, binding comparison."""
    diff = diff_ci_text(r) + (" IoU points" if int(r["n"]) else "")
    return f"*{r['claim_text']}*: **{r['verdict']}** ({r['row']} vs {r['vs']}: {diff}, n = {int(r['n'])})."


def claims_of_table(table: str) -> tuple[Claim, ...]:
    """The claims whose rows live in ``table`` (empty for a table no claim uses)."""
    return tuple(c for c in CLAIMS if c.table == table)


def _diff_ci(r) -> str:
    if r["n"] == 0:
        return "not run"
    text = _num(r["mean_diff"], 2)
    if r["n"] >= 2:
        text += f" [{_num(r['ci_low'], 2)}, {_num(r['ci_high'], 2)}]"
    else:
        text += " (n = 1, no CI)"
    return text


def _effect(r) -> str:
    if r["kind"] == "equal":
        return "0 (claimed equal)"
    value = r["paper_effect"]
    return "not given" if not math.isfinite(value) else _num(value, 2)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_csv(ledger: Ledger) -> str:
    """One row per comparison, floats with 4 decimals, NaN empty, ordered as :data:`CLAIMS`."""
    frame = ledger.comparisons.copy()
    for col in ("paper_effect", "mean_diff", "ci_low", "ci_high", "sd", "mdd"):
        frame[col] = [_plain(v, 4) for v in frame[col]]
    frame["counted"] = ["yes" if v else "no" for v in frame["counted"]]
    return frame.to_csv(index=False, lineterminator="\n")


def powered_claims(ledger: Ledger) -> list[str]:
    """Keys of the claims whose every counted comparison stands on >= ``MIN_PAIRS`` pairs."""
    c = ledger.comparisons
    counted = c[c["counted"].astype(bool)]
    return [key for key in ledger.claims["claim"]
            if len(group := counted[counted["claim"] == key]) and int(group["n"].min()) >= MIN_PAIRS]


def progress_line(ledger: Ledger) -> str:
    """Two sentences: how many claims already stand on the paired folds issue 15 asks for, and
    how many claims each verdict has."""
    done = powered_claims(ledger)
    total = len(ledger.claims)
    line = (f"Claims on >= {MIN_PAIRS} paired folds (trials) in every counted comparison: "
            f"{len(done)} of {total}")
    if len(done) < total:
        line += ("; the others wait for runs of the list not made yet (`python -m abanet_lib.ops.batch_runner "
                 f"run --scale {ledger.scale.name}` resumes them)")
    tally = ledger.claims["verdict"].value_counts()
    return line + ". Verdicts: " + ", ".join(f"{int(tally.get(v, 0))} {v}" for v in VERDICTS) + "."


def to_markdown(ledger: Ledger) -> str:
    """The ledger as markdown: the statistics, one row per claim, then every comparison."""
    scale = ledger.scale
    ref = (f"{ledger.reference_sd:.2f} IoU points over k = {ledger.reference_k} folds"
           if math.isfinite(ledger.reference_sd) else f"not available ({ledger.reference_k} ABANet folds)")
    lines = [
        f"# Claims ledger ({scale.name} scale)",
        "",
        f"Generated from the run records by `python -m abanet_lib.paper.claims --scale {scale.name}` "
        "(abanet_lib/paper/claims.py); do not edit by hand.",
        "",
        f"Scale: {scale.description}.",
        "",
        progress_line(ledger),
        "",
        "How to read it:",
        "",
        "- **Difference** = IoU(row) - IoU(vs), in IoU points (mean per-image test IoU x 100), "
        "over the pairs both rows have a record for: same test fold and seed (Table 4: same "
        "trial). Every committed fold of a row's configuration counts; unpaired runs are left out.",
        "- **95 % CI** = mean +- t(0.975, n-1) x sd / sqrt(n): Student t over the n pairs, df = n - 1. "
        "No CI with n < 2.",
        "- **MDD** (minimum detectable difference) = the CI half-width, t(0.975, n-1) x sd / sqrt(n): "
        "the smallest mean difference this n and sd would tell from 0 (found about half the time "
        f"when true; 80 % power needs about {power_factor(MIN_PAIRS):.2f}x that at n = {MIN_PAIRS}). "
        "With n = 1: t(0.975, k-1) x the "
        f"canonical ABANet's fold-to-fold sd ({ref}), a stand-in for the unknown sd of a paired difference.",
        "- **Verdict**: *confirmed* = the CI excludes 0 in the paper's direction; *refuted* = it "
        "excludes 0 against it; *unresolved at this n* = it contains 0, or n < 2 (no CI). The "
        "equality claim (released code = paper's model): *refuted* when the CI excludes 0, "
        f"*confirmed* when it lies within +-{EQUIVALENCE_MARGIN:g} point.",
        "- **Claims with several alternatives** (\"X is best\", \"beats A, B, ...\") compare X with "
        "each alternative pairwise: confirmed only if every comparison is (an intersection-union "
        "test: no multiplicity correction is needed), refuted if any is (uncorrected: with m "
        "alternatives a true tie is called refuted up to m x 2.5 % of the time), else unresolved. "
        "The claim's row shows the binding "
        "comparison (the closest alternative: smallest mean difference; for equality the largest "
        "|difference|); all "
        "comparisons follow below. Alternatives the scale skips on purpose are listed, not counted.",
        f"- Issue 15 requires >= {MIN_PAIRS} paired folds (trials) per claim; rows with fewer say so.",
        "- Paper's effect = the same difference in the paper's tables (paper_numbers.py).",
        "",
        "## Claims",
        "",
        "| claim | paper | row vs binding alternative | paper's effect | ours: mean diff [95 % CI] | n "
        "| MDD | verdict | comparisons | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in ledger.claims.iterrows():
        cells = [r["claim_text"], r["source"], f"{r['row']} vs {r['vs']}", _effect(r), _diff_ci(r),
                 str(int(r["n"])), _plain(r["mdd"], 2), f"**{r['verdict']}**", r["comparisons"], r["note"]]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Every comparison",
        "",
        "| claim | row | vs | paper's effect | ours: mean diff [95 % CI] | n | pairs | MDD | verdict | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in ledger.comparisons.iterrows():
        cells = [r["claim"], r["row"], r["vs"], _effect(r), _diff_ci(r), str(int(r["n"])), r["pairs"],
                 _plain(r["mdd"], 2), r["verdict"] + ("" if r["counted"] else " (not counted)"), r["note"]]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines.append("")
    return "\n".join(lines)


def ledger_name(scale: Scale | str) -> str:
    """File stem: ``claims`` for :data:`LEDGER_SCALE`, else ``claims_<scale>``."""
    name = scale.name if isinstance(scale, Scale) else str(scale)
    return "claims" if name == LEDGER_SCALE else f"claims_{name}"


def write_claims(scale: Scale | str | None = "reduced", folder: Path | str | None = None) -> Ledger:
    """Build the ledger of ``scale`` and write ``<folder>/claims.md`` and ``claims.csv``.

    Args:
        scale: the scale whose records are read (``None``: ``ABANET_SCALE``).
        folder: output folder (default ``paths.results_dir(scale)``, i.e. ``results/``).
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    ledger = build_ledger(scale)
    out = Path(folder) if folder is not None else paths.results_dir(scale.name)
    out.mkdir(parents=True, exist_ok=True)
    stem = ledger_name(scale)
    (out / f"{stem}.md").write_text(to_markdown(ledger), encoding="utf-8")
    (out / f"{stem}.csv").write_text(to_csv(ledger), encoding="utf-8")
    ledger.extra["files"] = [out / f"{stem}.md", out / f"{stem}.csv"]
    return ledger


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m abanet_lib.paper.claims",
        description="Write the claims ledger (claims.md, claims.csv) from the run records.")
    parser.add_argument("--scale", default="reduced", help="scale whose records are read (default: reduced)")
    parser.add_argument("--out", default=None, help="output folder (default: the scale's results folder)")
    args = parser.parse_args(argv)
    ledger = write_claims(args.scale, args.out)
    for path in ledger.extra["files"]:
        print(path)
    for _, r in ledger.claims.iterrows():
        print(f"{r['claim']}: {r['verdict']} ({_diff_ci(r)}, n = {int(r['n'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
