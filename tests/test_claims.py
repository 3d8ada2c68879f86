"""The claims ledger: paired t-intervals, verdicts, pairing on shared folds, the committed ledger."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from abanet_lib.paper import claims as C
from abanet_lib.paper import experiments as E
from abanet_lib.core import paths
from abanet_lib.core.config import SCALES, get_scale

COMMITTED_RUNS = paths.PROJECT_ROOT / "results" / "runs"


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------
def test_paired_ci_matches_a_hand_computation():
    diffs = [1.0, 2.5, -0.5, 3.0, 1.5]
    s = C.paired_stats(diffs)
    mean, sd = 1.5, math.sqrt(sum((d - 1.5) ** 2 for d in diffs) / 4)  # = sqrt(7.5 / 4)
    assert s.n == 5 and s.mean == pytest.approx(mean) and s.sd == pytest.approx(sd)
    assert s.t == pytest.approx(2.7764451, abs=1e-6)  # t_{0.975, 4} from a t table
    half = 2.7764451 * sd / math.sqrt(5)
    assert (s.ci_low, s.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert s.mdd == pytest.approx(half)
    # ... and scipy's own one-sample t interval on the differences agrees
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert (s.ci_low, s.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_t_quantile_df_and_single_pair_rule():
    assert C.t_quantile(1) == pytest.approx(12.7062047, abs=1e-6)
    assert C.t_quantile(2) == pytest.approx(4.3026527, abs=1e-6)
    assert math.isnan(C.t_quantile(0))
    assert C.power_factor(5) == pytest.approx((2.7764451 + 0.9409646) / 2.7764451, abs=1e-6)  # t table, df 4
    one = C.paired_stats([2.0], reference_sd=3.0, reference_k=3)  # n = 1: no CI, MDD from ABANet's spread
    assert one.n == 1 and one.mean == 2.0 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert one.mdd == pytest.approx(4.3026527 * 3.0, abs=1e-5) and "n=1" in one.mdd_rule
    assert math.isnan(C.paired_stats([2.0]).mdd)  # no reference spread: no MDD
    none = C.paired_stats([])
    assert none.n == 0 and math.isnan(none.mean)


def test_verdicts_on_constructed_pairs():
    ps = C.paired_stats
    assert C.verdict(ps([1.0, 2.0, 3.0, 2.5, 1.5])) == C.CONFIRMED
    assert C.verdict(ps([-1.0, -2.0, -3.0, -2.5, -1.5])) == C.REFUTED
    assert C.verdict(ps([-1.0, 1.0, 2.0, -0.5, 0.5])) == C.UNRESOLVED
    assert C.verdict(ps([5.0], reference_sd=0.1, reference_k=3)) == C.UNRESOLVED  # n = 1, however large
    assert C.verdict(ps([])) == C.UNRESOLVED
    # equality: inside the margin -> confirmed; away from 0 -> refuted; wide -> unresolved
    assert C.verdict(ps([0.1, -0.1, 0.05, 0.0, -0.05]), "equal") == C.CONFIRMED
    assert C.verdict(ps([3.0, 3.1, 2.9, 3.05, 2.95]), "equal") == C.REFUTED
    assert C.verdict(ps([-3.0, 3.0, 1.0, -1.0, 0.5]), "equal") == C.UNRESOLVED
    with pytest.raises(ValueError):
        C.verdict(ps([1.0, 2.0]), "worse")


def test_claim_verdict_needs_every_comparison():
    assert C.combine([C.CONFIRMED, C.CONFIRMED]) == C.CONFIRMED
    assert C.combine([C.CONFIRMED, C.UNRESOLVED]) == C.UNRESOLVED
    assert C.combine([C.CONFIRMED, C.REFUTED]) == C.REFUTED
    assert C.combine([]) == C.UNRESOLVED


# ---------------------------------------------------------------------------------------
# Pairing
# ---------------------------------------------------------------------------------------
def test_pair_scores_use_only_shared_keys():
    a = {(0, 0): 80.0, (1, 0): 70.0, (2, 0): 75.0}
    b = {(1, 0): 68.0, (2, 0): 76.0, (3, 0): 90.0, (2, 1): 10.0}
    keys, d = C.pair_scores(a, b)
    assert keys == [(1, 0), (2, 0)] and d.tolist() == [2.0, -1.0]


def _fake_runs(iou_by_id: dict[str, float]):
    def load(cfgs):
        return {c.run_id: SimpleNamespace(config=c, test={"iou": iou_by_id[c.run_id]})
                for c in cfgs if c.run_id in iou_by_id}
    return load


def test_ledger_pairs_only_the_folds_both_rows_have(monkeypatch):
    """Row A on folds 0-3, row B on folds 1-4: three pairs (1, 2, 3), whatever A and B score elsewhere."""
    scale = get_scale("reduced")
    wide = E.every_fold(scale)
    rows = {r.label: r for r in E.table_rows("table5", wide, rows="all", check_models=False)}
    a, b = rows["baseline+AG"], rows["baseline"]
    scores = {}
    for cfg in a.configs:
        if cfg.fold in (0, 1, 2, 3):
            scores[cfg.run_id] = 0.80 + 0.01 * cfg.fold
    for cfg in b.configs:
        if cfg.fold in (1, 2, 3, 4):
            scores[cfg.run_id] = 0.78 + 0.02 * cfg.fold
    monkeypatch.setattr(C, "load_finished", _fake_runs(scores))
    claim = C.Claim("t", "A beats B", "table5", "Table 5", pairs=(("baseline+AG", "baseline"),))
    ledger = C.build_ledger(scale, claims=(claim,))
    row = ledger.comparisons.iloc[0]
    diffs = [100 * ((0.80 + 0.01 * f) - (0.78 + 0.02 * f)) for f in (1, 2, 3)]
    assert row["n"] == 3 and row["pairs"] == "fold 1;fold 2;fold 3"
    assert row["mean_diff"] == pytest.approx(np.mean(diffs))
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / math.sqrt(3)
    assert row["ci_low"] == pytest.approx(np.mean(diffs) - half)
    assert row["paper_effect"] == pytest.approx(92.425 - 91.047)  # paper Table 5
    assert len(row["run_ids_row"].split(";")) == 3 and len(row["run_ids_vs"].split(";")) == 3
    assert "issue 15 requires >= 5" in row["note"]
    assert ledger.claims.iloc[0]["verdict"] == C.verdict(C.paired_stats(diffs))
    assert C.powered_claims(ledger) == [] and C.progress_line(ledger).startswith(
        "Claims on >= 5 paired folds (trials) in every counted comparison: 0 of 1; the others wait")
    for cfg in a.configs + b.configs:  # folds 0-4 on both rows: 5 pairs, the claim is powered
        scores[cfg.run_id] = 0.8
    assert C.powered_claims(C.build_ledger(scale, claims=(claim,))) == ["t"]
    assert C.progress_line(C.build_ledger(scale, claims=(claim,))).endswith(
        ": 1 of 1. Verdicts: 0 confirmed, 0 refuted, 1 unresolved at this n.")


def test_every_claim_names_rows_that_exist():
    for claim in C.CLAIMS:
        labels = {r.label for r in E.table_rows(claim.table, "reduced", rows="all", check_models=False)}
        assert claim.comparisons, claim.key
        for better, other in claim.comparisons:
            assert better in labels and other in labels, (claim.key, better, other)
    assert len({c.key for c in C.CLAIMS}) == len(C.CLAIMS) == 11


# ---------------------------------------------------------------------------------------
# The gpu scale
# ---------------------------------------------------------------------------------------
def test_gpu_scale_has_the_paired_folds_and_resolution():
    gpu = SCALES["gpu"]
    assert "gpu" in paths.COMMITTED_SCALES
    assert 128 <= gpu.image_size <= 256 and gpu.trials >= C.MIN_PAIRS
    for folds in (gpu.folds, gpu.ablation_folds, gpu.comparison_folds):
        assert len(folds) >= C.MIN_PAIRS and all(0 <= f < gpu.n_folds for f in folds)
    for table in E.TABLES:  # every table's list builds at the gpu scale, rows on >= 5 folds/trials
        for row in E.table_rows(table, gpu, check_models=False):
            assert len(row.configs) >= C.MIN_PAIRS, (table, row.label)
            assert all(c.scale == "gpu" for c in row.configs)


def test_gpu_ledger_reads_not_run_without_records(tmp_results, tmp_path):
    ledger = C.write_claims("gpu", tmp_path / "out")
    assert (ledger.comparisons["n"] == 0).all()
    assert set(ledger.claims["verdict"]) == {C.UNRESOLVED}
    text = (tmp_path / "out" / "claims_gpu.md").read_text()
    assert "not run" in text and "(gpu scale)" in text
    assert "in every counted comparison: 0 of 11; " in text and "batch_runner run --scale gpu" in text
    assert "Verdicts: 0 confirmed, 0 refuted, 11 unresolved at this n." in text


# ---------------------------------------------------------------------------------------
# The ledger of the committed records
# ---------------------------------------------------------------------------------------
@pytest.fixture()
def committed_records(monkeypatch):
    if not COMMITTED_RUNS.is_dir():
        pytest.skip("no committed results/runs in this checkout")
    monkeypatch.delenv("ABANET_RESULTS", raising=False)


def test_ledger_from_the_committed_records(committed_records, tmp_path):
    ledger = C.write_claims("reduced", tmp_path / "a")
    assert list(ledger.claims["claim"]) == [c.key for c in C.CLAIMS]
    assert len(ledger.comparisons) == sum(len(c.comparisons) for c in C.CLAIMS)
    for _, r in ledger.claims.iterrows():
        assert int(r["n"]) >= 1, r["claim"]  # every claim has at least one paired fold on record
        assert r["verdict"] in C.VERDICTS
    for _, r in ledger.comparisons.iterrows():
        assert r["verdict"] in C.VERDICTS
        if r["n"] < 2:
            assert r["verdict"] == C.UNRESOLVED and math.isnan(r["ci_low"])
        else:
            assert r["ci_low"] <= r["mean_diff"] <= r["ci_high"]
        for run_id in filter(None, (r["run_ids_row"] + ";" + r["run_ids_vs"]).split(";")):
            assert (COMMITTED_RUNS / run_id / "metrics.json").is_file(), run_id
    # a fresh build writes the same bytes (no dates, no machine state)
    C.main(["--scale", "reduced", "--out", str(tmp_path / "b")])
    for name in ("claims.md", "claims.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    md = (tmp_path / "a" / "claims.md").read_text()
    for claim in C.CLAIMS:
        assert sum(line.startswith(f"| {claim.text} |") for line in md.splitlines()) == 1, claim.key
    csv_lines = (tmp_path / "a" / "claims.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(ledger.comparisons)
