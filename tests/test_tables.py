"""Paper numbers, tables beside the paper, the results README and the figure helpers."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from abanet_lib.paper import definitions as D  # noqa: E402
from abanet_lib.paper import experiments as E  # noqa: E402
from abanet_lib.paper import paper_numbers as P  # noqa: E402
from abanet_lib.paper import recorded_metrics as R  # noqa: E402
from abanet_lib.paper import table_builder as B  # noqa: E402
from abanet_lib.paper import table_files as F  # noqa: E402
from abanet_lib.paper import tables as T  # noqa: E402
from abanet_lib.paper.figures import alpha_sweep_plot, ablation_bars, hardest_crops, qualitative_grid  # noqa: E402
from abanet_lib.paper.plots import error_overlay  # noqa: E402

PROV = {"git_commit": "abc1234567890", "git_dirty": False,
        "device": {"device": "cpu", "cpu_model": "Test CPU", "torch_threads": 2, "cuda_name": None}}


def fake_run(cfg, iou, **extra):
    """A finished run as the registry returns it (metrics.json nests the summary under "test")."""
    test = {"iou": iou, "f1": iou + 0.05, "precision": 0.9, "recall": 0.95, "accuracy": 0.97,
            "mae": 0.05, "maxf": 0.93, "s_measure": 0.9}
    test.update(extra)
    per_image = pd.DataFrame({"name": ["a", "b", "c"], "iou": [iou, iou - 0.2, iou - 0.2]})
    return SimpleNamespace(config=cfg, metrics={"test": test, "provenance": PROV}, per_image=per_image,
                           path=Path("/nonexistent-run-record") / cfg.run_id)  # no artifacts recorded


@pytest.fixture()
def three_folds():
    return E.notebook_scale("reduced", folds=(0, 1, 2))


# ---------------------------------------------------------------------------------------
# Paper numbers
# ---------------------------------------------------------------------------------------
def test_paper_numbers_spot_checks():
    assert P.TABLE2.loc["ABANet (ours)", "iou"] == 93.814
    assert P.TABLE2.loc["ABANet (ours)", "precision"] == 97.164
    assert P.TABLE2.loc["EINet / ResNet50", "recall"] == 97.845
    assert P.TABLE2.loc["PAN / ResNet50", "f1"] == 92.967
    assert len(P.TABLE2) == 21 and len(P.TABLE3) == 5
    assert P.TABLE3.loc["ABANet (ours)", ["mae", "fbeta", "s_measure"]].tolist() == [0.014, 0.971, 0.968]
    assert P.TABLE4.loc["Zhang et al. (GrabCut)", ["iou", "iou_std", "fps"]].tolist() == [81.2, 1.4, 273]
    assert P.TABLE4.loc["ABANet (ours)", ["mae", "mae_std", "fbeta"]].tolist() == [0.014, 0.02, 96.8]
    assert P.TABLE5.loc["baseline+AG", "precision"] == 97.28
    assert P.TABLE6["iou"].tolist() == [92.75, 93.814, 93.588]
    assert P.TABLE7["paper_size"].tolist() == [128, 256, 512] and P.TABLE7["iou"].max() == 93.814
    assert P.TABLE8.loc["SGD", "iou"] == 93.182 and P.TABLE8.loc["RMSprop", "accuracy"] == 97.75
    assert P.TABLE9.loc["IoU", "accuracy"] == 94.27
    assert P.RELEASED_SMP_SCORES.loc["Unet / Efficient-b7", "f1"] == 94.321
    assert P.FIGURE7 is None and P.paper_table("fig7") is None and "no numbers" in P.FIGURE7_NOTE
    # the full ABANet row repeats Table 2 in Tables 5, 6, 8, 9
    for table, label in (("table5", "ABANet (ours)"), ("table6", "AG at stages 4,5,6 (ABANet)"),
                         ("table8", "Adam (ABANet)"), ("table9", "Focal + SSIM + IoU (ABANet)")):
        assert P.paper_table(table).loc[label, "iou"] == P.ABANET_PAPER["iou"]
    with pytest.raises(ValueError, match="unknown table"):
        P.paper_table("table12")


def test_paper_row_labels_match_the_experiment_rows():
    for table in ("table2", "table3", "table4", "table5", "table6", "table7", "table8", "table9"):
        labels = [r.label for r in E.table_rows(table, "paper", check_models=False)]
        assert labels == list(P.paper_table(table).index), table


# ---------------------------------------------------------------------------------------
# build_table
# ---------------------------------------------------------------------------------------
def test_build_table_mean_std_paper_and_status(tmp_path, three_folds):
    rows = {r.label: r for r in E.table_rows("table5", three_folds, check_models=False)}
    runs = [fake_run(c, v) for c, v in zip(rows["baseline"].configs, (0.80, 0.82, 0.84))]
    runs += [fake_run(c, v) for c, v in zip(rows["ABANet (ours)"].configs, (0.93, 0.94, 0.95))]
    runs += [fake_run(rows["baseline+refinement"].configs[0], 0.90)]  # 1 of 3 folds
    runs += [fake_run(E.canonical_abanet(three_folds).replace(seed=9), 0.1)]  # another table's run
    frame = B.build_table("table5", runs, three_folds, folder=tmp_path, check_models=False)

    assert list(frame.index) == list(P.TABLE5.index)
    base = frame.loc["baseline"]
    assert base["iou"] == pytest.approx(82.0) and base["iou_std"] == pytest.approx(2.0)
    assert base["n"] == 3 and base["status"] == "ok"
    # 95 % t interval of the row's mean: 82 +- t(0.975, 2) x 2 / sqrt(3) = 82 +- 4.968
    assert base["iou_ci_low"] == pytest.approx(82.0 - 4.9683, abs=1e-3)
    assert base["iou_ci_high"] == pytest.approx(82.0 + 4.9683, abs=1e-3)
    assert base["f1"] == pytest.approx(87.0)
    assert base["paper_iou"] == 91.047 and base["diff_iou"] == pytest.approx(82.0 - 91.047)
    assert not base["within_spread"]
    full = frame.loc["ABANet (ours)"]
    assert full["iou"] == pytest.approx(94.0) and full["paper_iou"] == 93.814
    assert full["within_spread"]  # |94 - 93.814| <= 1
    assert full["tied_with_best"] and not base["tied_with_best"]
    assert frame.loc["baseline+refinement", "status"] == "partial (1/3 runs)"
    assert math.isnan(frame.loc["baseline+refinement", "iou_std"])
    assert frame.loc["baseline+AG", "status"] == "not run" and frame.loc["baseline+AG", "n"] == 0
    assert math.isnan(frame.loc["baseline+AG", "iou"])

    md = (tmp_path / "table5_reduced.md").read_text()
    assert md.startswith("# Table 5")
    assert "82.00 ± 2.00" in md and "| 91.047 |" in md and "not run" in md
    assert "iou 95 % CI (ours)" in md and "[77.03, 86.97]" in md
    size, epochs = three_folds.image_size, three_folds.epochs
    for words in ("reduced: mfsd-sample", "7 runs in this table", f"{size}x{size}", f"Epochs: {epochs}",
                  "Test CPU (2 threads)", "abc1234567", "paper Table 5", "no (from scratch)"):
        assert words in md, words
    back = F.read_table("table5_reduced", tmp_path)
    assert back.loc["baseline", "iou"] == pytest.approx(82.0)
    assert back.attrs["table"] == "table5" and back.attrs["scale"] == "reduced"


def test_not_built_rows_and_released_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): "no module einet" if name == "einet" else None)
    smoke = E.notebook_scale("smoke")
    rows = {r.label: r for r in E.table_rows("table2", smoke, rows="all")}
    runs = [fake_run(rows["Unet / Efficient-b7"].configs[0], 0.5)]
    frame = B.build_table("table2", runs, smoke, rows="all", folder=tmp_path)
    assert frame.loc["EINet / ResNet50", "status"] == "not built: no module einet"
    assert frame.loc["BASNet", "status"] == "not run"
    assert frame.loc["Unet / Efficient-b7", "released_iou"] == 89.516
    assert math.isnan(frame.loc["BASNet", "released_iou"])
    assert math.isnan(frame.loc["Unet / Efficient-b7", "iou_std"])  # one run: no spread
    assert pd.isna(frame.loc["Unet / Efficient-b7", "within_spread"])
    md = (tmp_path / "table2_smoke.md").read_text()
    assert "not built: no module einet" in md and "numbers mean nothing" in md


def test_rows_skipped_at_a_scale_show_why_and_ignore_earlier_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): None)
    reduced = E.notebook_scale("reduced")
    rows = {r.label: r for r in E.table_rows("table2", reduced)}
    runs = [fake_run(rows["MAnet / Efficient-b7"].configs[0], 0.5), fake_run(rows["Unet / Efficient-b7"].configs[0], 0.6)]
    frame = B.build_table("table2", runs, reduced, folder=tmp_path)
    status = frame.loc["MAnet / Efficient-b7", "status"]
    assert status.startswith("not run at this scale: EfficientNet-b7") and frame.loc["MAnet / Efficient-b7", "n"] == 0
    assert math.isnan(frame.loc["MAnet / Efficient-b7", "iou"])  # the earlier run is not in the scale's list
    # a U-Net-family row runs on the 5 claim folds: one run of five is partial
    assert frame.loc["Unet / Efficient-b7", "status"] == "partial (1/5 runs)"
    assert frame.loc["Unet / Efficient-b7", "iou"] == 60.0
    assert "4 left out at this scale for cost" in T.summarize_table(frame, D.TABLES["table2"])[0]


def test_committed_folds_beyond_the_scale_count_in_the_row(tmp_path, monkeypatch):
    """A fold-1 record of a fold-0 row (run from a notebook with folds=[1]) was committed but fed
    no table: it now counts in n, the mean and the paired column, and the note names it."""
    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): None)
    reduced = E.notebook_scale("reduced")
    wide = {r.label: r for r in E.table_rows("table2", E.every_fold(reduced))}
    manet = {c.fold: c for c in wide["MAnet / VGG19"].configs}
    abanet = {c.fold: c for c in wide["ABANet (ours)"].configs}
    runs = [fake_run(manet[0], 0.70), fake_run(abanet[0], 0.80), fake_run(abanet[1], 0.78)]
    committed = {manet[1].run_id: fake_run(manet[1], 0.74)}
    asked = []
    monkeypatch.setattr(B, "load_finished", lambda cfgs: asked.extend(c.run_id for c in cfgs) or
                        {i: committed[i] for i in asked if i in committed})
    frame = B.build_table("table2", runs, reduced, folder=tmp_path)
    assert manet[1].run_id in asked and manet[0].run_id not in asked  # only folds the scale does not plan
    row = frame.loc["MAnet / VGG19"]
    assert row["status"] == "ok" and row["n"] == 2 and row["iou"] == pytest.approx(72.0)
    assert "n counts committed fold 1 beyond the scale's" in row["note"]
    assert row["vs_ref_n"] == 2 and row["vs_ref_diff"] == pytest.approx(((70 - 80) + (74 - 78)) / 2)
    only = B.build_table("table2", runs, reduced, folder=tmp_path, committed=False)
    assert only.loc["MAnet / VGG19", "n"] == 1 and only.loc["MAnet / VGG19", "iou"] == pytest.approx(70.0)
    # folds chosen by hand (a notebook's folds=[0]) show exactly those: nothing beyond is read
    asked.clear()
    fold0 = B.build_table("table2", runs, E.notebook_scale("reduced", folds=[0]), folder=tmp_path)
    assert asked == [] and fold0.loc["MAnet / VGG19", "n"] == 1 and fold0.loc["ABANet (ours)", "n"] == 1
    assert E.has_own_folds(reduced) and not E.has_own_folds(E.notebook_scale("reduced", folds=[0]))


def test_table3_and_table4_units_and_extra_metrics(tmp_path):
    smoke = E.notebook_scale("smoke")
    t4 = {r.label: r for r in E.table_rows("table4", smoke, rows="all", check_models=False)}
    runs = [fake_run(c, 0.9) for c in t4["ABANet (ours)"].configs]
    extra = {c.run_id: {"fps": 12.5} for c in t4["ABANet (ours)"].configs}
    frame = B.build_table("table4", runs, smoke, rows="all", extra_metrics=extra, folder=tmp_path,
                          check_models=False)
    row = frame.loc["ABANet (ours)"]
    assert row["iou"] == pytest.approx(90.0) and row["fbeta"] == pytest.approx(93.0)  # percent
    assert row["mae"] == pytest.approx(0.05) and row["fps"] == 12.5  # fraction, raw
    assert row["paper_iou_std"] == 0.6 and row["paper_fps"] == 75
    assert "93.4 ± 0.6" in (tmp_path / "table4_smoke.md").read_text()
    t3 = B.build_table("table3", [fake_run(E.canonical_abanet(smoke), 0.9)], smoke, folder=tmp_path,
                       check_models=False)
    assert t3.loc["ABANet (ours)", "fbeta"] == pytest.approx(0.93)  # fraction, as the paper's Table 3
    assert t3.loc["ABANet (ours)", "paper_fbeta"] == 0.971


def test_fig7_and_synthetic_compare_only_where_the_paper_has_numbers(tmp_path):
    smoke = E.notebook_scale("smoke")
    cfgs = [r.configs[0] for r in E.table_rows("fig7", smoke, rows="all", check_models=False)]
    frame = B.build_table("fig7", [fake_run(c, 0.8) for c in cfgs], smoke, rows="all", folder=tmp_path,
                          check_models=False)
    assert frame.loc["alpha=0.3 (ABANet)", "paper_iou"] == 93.814
    assert math.isnan(frame.loc["alpha=0.9", "paper_iou"])
    syn = [r.configs[0] for r in E.table_rows("synthetic", smoke, check_models=False)]
    extra = {syn[0].run_id: {"iou@mfsd": 80.0, "iou@maskedfacenet": 40.0},
             syn[1].run_id: {"iou@mfsd": 30.0, "iou@maskedfacenet": 95.0}}
    frame = B.build_table("synthetic", [fake_run(c, 0.5) for c in syn], smoke, extra_metrics=extra,
                          folder=tmp_path, check_models=False)
    first = frame.loc["train mfsd-sample (ABANet)"]
    assert first["iou@mfsd"] == 80.0 and first["paper_iou@mfsd"] == 93.814
    assert math.isnan(first["paper_iou@maskedfacenet"])
    assert frame.loc["train maskedfacenet-seg500", "iou@maskedfacenet"] == 95.0


def test_results_readme_sentences_and_markers(tmp_path, three_folds):
    rows = {r.label: r for r in E.table_rows("table9", three_folds, check_models=False)}
    values = {"Focal": (0.70, 0.72, 0.74), "IoU": (0.80, 0.81, 0.82), "Focal + IoU": (0.79, 0.80, 0.81),
              "Focal + SSIM + IoU (ABANet)": (0.81, 0.82, 0.83)}
    runs = [fake_run(c, v) for label, vs in values.items() for c, v in zip(rows[label].configs, vs)]
    tables = tmp_path / "results" / "tables"
    B.build_table("table9", runs, three_folds, folder=tables, check_models=False)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    out = T.write_results_readme(folder=tables, readme=readme)
    text = out.read_text()
    assert out == tmp_path / "results" / "README.md"
    assert "Results (reduced scale)" in text and "4 of 4 rows have results" in text
    # no "winner" verdict from unpaired means: the claims ledger answers that, with its CI
    assert "winner" not in text and "same best row" not in text
    assert "*the hybrid loss beats its parts*: **unresolved at this n**" in text
    assert (tmp_path / "results" / "claims.md").is_file()
    # where the ledger stands, up front: 3 folds of Table 9 power no claim (ABANET_RESULTS holds no
    # other records here)
    assert "[Claims ledger](claims.md): Claims on >= 5 paired folds (trials) in every counted comparison: 0 of 11;" in text
    # paper order Focal < IoU < Focal+IoU < full; ours swaps IoU and Focal+IoU: 5 of 6 pairs
    assert "agrees with the paper's for 5 of 6 row pairs" in text
    # a table with a claim leaves "which row is better" to the ledger (was: "2 rows ... lie within
    # the run-to-run spread of our best row", a judgement from unpaired means)
    assert "lie within the run-to-run spread" not in text
    assert "the claims ledger's paired intervals below decide it" in text
    assert "150 training images" in text  # the caveats
    new = readme.read_text()
    assert "\nold\n" not in new and new.endswith("<!-- results:end -->\ntail\n") and "Table 9" in new
    # the README's line for a table with a claim quotes the ledger, not our highest mean (before:
    # "Our highest row on iou: Focal + SSIM + IoU (ABANet) (...)" without the ledger's caveat)
    bullet = next(line for line in new.splitlines() if line.startswith("- **Table 9"))
    assert "): 4 of 4 rows have results. Ledger: *the hybrid loss beats its parts*: **unresolved at this n** (" \
        in bullet and "highest row" not in bullet
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    T.write_results_readme(folder=tables, readme=plain)
    assert plain.read_text() == "no markers\n"


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
def test_hardest_crops_rule():
    cfg = E.canonical_abanet(E.notebook_scale("smoke"))
    r1 = SimpleNamespace(config=cfg, per_image=pd.DataFrame({"name": ["a", "b", "c", "d"], "iou": [0.9, 0.5, 0.5, 0.1]}))
    r2 = SimpleNamespace(config=cfg.replace(seed=1),
                         per_image=pd.DataFrame({"name": ["b", "c", "d"], "iou": [0.7, 0.7, 0.9]}))
    # means: b 0.6, c 0.6, d 0.5 ("a" is not shared); tie b/c broken by name
    assert hardest_crops([r1, r2], k=2) == ["d", "b"]
    assert hardest_crops([r1], k=1) == ["d"]
    with pytest.raises(ValueError, match="no per-image"):
        hardest_crops([SimpleNamespace(config=cfg, per_image=pd.DataFrame({"x": [1]}))])


def test_error_overlay_and_grid():
    gt = np.array([[1, 1, 0], [0, 0, 0]], bool)
    pred = np.array([[1, 0, 1], [0, 0, 0]], bool)
    rgb = error_overlay(pred, gt)
    assert rgb.shape == (2, 3, 3)
    assert rgb[0, 0].tolist() == [1, 1, 1]  # true positive white
    assert rgb[0, 1, 2] > 0.9 and rgb[0, 1, 0] < 0.2  # false negative blue
    assert rgb[0, 2, 0] >= 0.9 and rgb[0, 2, 2] < 0.2  # false positive red
    assert rgb[1].sum() == 0
    samples = [SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8), mask=np.eye(8, dtype=bool), name=f"s{i}")
               for i in range(3)]
    fig = qualitative_grid(samples, {"A": [np.eye(8)] * 3, "B": [np.zeros((8, 8))] * 3}, title="t")
    assert len(fig.axes) == 4 * 3
    with pytest.raises(ValueError, match="2 maps for 3 samples"):
        qualitative_grid(samples, {"A": [np.eye(8)] * 2})


def test_alpha_and_ablation_plots():
    frame = pd.DataFrame({"iou": [80.0, 82.0, math.nan], "iou_std": [1.0, math.nan, math.nan],
                          "paper_iou": [math.nan, 93.814, math.nan]},
                         index=["alpha=0.9", "alpha=0.3 (ABANet)", "alpha=0.5"])
    fig = alpha_sweep_plot(frame)
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [0.3, 0.9] and list(line.get_ydata()) == [82.0, 80.0]
    fig = ablation_bars(frame, title="x")
    ax = fig.axes[0]
    # horizontal dot plot: one labelled line per table row, our two finite means, the paper's one
    assert [t.get_text() for t in ax.get_yticklabels()] == list(frame.index)
    ours = ax.containers[0][0].get_xydata()
    assert sorted(ours[:, 0].tolist()) == [80.0, 82.0]
    paper = [np.ma.compressed(c.get_offsets()[:, 0]) for c in ax.collections if c.get_label() == "paper"]
    assert len(paper) == 1 and [v for v in paper[0] if np.isfinite(v)] == [93.814]


def _recorded(run, tmp_path, **files):
    run.path = tmp_path / run.config.run_id
    run.path.mkdir(parents=True, exist_ok=True)
    for name, obj in files.items():
        (run.path / name).write_text(json.dumps(obj))
    return run


def test_cross_domain_scores_come_from_the_record_only(tmp_path, monkeypatch):
    import abanet_lib.engine.evaluate as ev
    from abanet_lib.paper import artifacts

    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: pytest.fail("a table evaluated a model"))
    smoke = E.notebook_scale("smoke")
    cfg = E.canonical_abanet(smoke)
    run = _recorded(fake_run(cfg, 0.8), tmp_path,
                    **{artifacts.CROSS_DOMAIN_FILE: {"maskedfacenet-seg500": {"iou": 0.25, "f1": 0.4}}})
    out = R.recorded_cross_domain([run], smoke)
    assert out[cfg.run_id] == {"iou@mfsd": pytest.approx(80.0), "f1@mfsd": pytest.approx(85.0),
                               "iou@maskedfacenet": 25.0, "f1@maskedfacenet": 40.0}
    bare = fake_run(cfg.replace(seed=3), 0.8)
    assert math.isnan(R.recorded_cross_domain([bare], smoke)[bare.config.run_id]["iou@maskedfacenet"])


def test_fps_comes_from_each_record_and_a_missing_one_says_why(tmp_path, monkeypatch):
    import abanet_lib.engine.evaluate as ev
    from abanet_lib.paper import artifacts

    monkeypatch.setattr(ev, "measure_fps", lambda *a, **k: pytest.fail("a table measured speed live"))
    smoke = E.notebook_scale("smoke")
    rows = {r.label: r for r in E.table_rows("table4", smoke, rows="all", check_models=False)}
    abanet = [_recorded(fake_run(c, 0.5), tmp_path, **{artifacts.SPEED_FILE: {"fps": 10.0 + i}})
              for i, c in enumerate(rows["ABANet (ours)"].configs)]
    din = [fake_run(c, 0.5) for c in rows["Din et al. (U-Net)"].configs]
    frame = B.build_table("table4", abanet + din, smoke, rows="all", folder=tmp_path, check_models=False)
    assert frame.loc["ABANet (ours)", "fps"] == pytest.approx(np.mean([10.0 + i for i in range(len(abanet))]))
    assert math.isnan(frame.loc["Din et al. (U-Net)", "fps"])
    assert "fps not in the record of" in frame.loc["Din et al. (U-Net)", "note"]


def test_readme_bullet_of_a_table_without_a_claim_keeps_the_caveat_of_its_highest_row(tmp_path):
    smoke = E.notebook_scale("smoke")
    syn = [r.configs[0] for r in E.table_rows("synthetic", smoke, check_models=False)]
    extra = {syn[0].run_id: {"iou@mfsd": 80.0, "iou@maskedfacenet": 40.0},
             syn[1].run_id: {"iou@mfsd": 30.0, "iou@maskedfacenet": 95.0}}
    frame = B.build_table("synthetic", [fake_run(c, 0.5) for c in syn], smoke, extra_metrics=extra,
                          folder=tmp_path, check_models=False)
    bullet = T.readme_bullet(T.table_sentences(frame, D.TABLES["synthetic"]), [])
    # before: only the first two sentences, so a single run read as "our highest row" with no caveat
    assert "Our highest row on iou@mfsd: train mfsd-sample (ABANet) (80.00, single run)." in bullet
    assert bullet.endswith("Each row has a single run, so no spread is known and no difference between rows "
                           "can be called significant.")


def test_results_readme_quotes_the_cost_report(tmp_path, monkeypatch):
    from abanet_lib.paper import cost

    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    frame = pd.DataFrame({"run_id": ["x", "y"], "model": ["abanet", "grabcut"], "tables": ["table5", "table4"],
                          "fold": [0, 0], "status": ["done (cpu)", "missing"], "cpu_seconds": [7200.0, 1.0],
                          "typical_seconds": [7200.0, 1.0], "basis": ["measured", "same config"],
                          "machine": ["Recorded CPU, 2 cores, torch 2.0", ""]})
    monkeypatch.setattr(cost, "cost_table", lambda scale: frame)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    out = T.write_results_readme("reduced", folder=tables, readme=readme, cost=True)
    assert ("1 of 2 runs done; whole list about 2.0 CPU-hours at typical cost (2.0 h as measured, 2.0 h of "
            "it measured on CPU runs), 0.0 h left; within the 20 CPU-hour budget") in out.read_text()
    assert (tmp_path / "results" / "cost_reduced.md").is_file()
    assert "[per model](results/cost_reduced.md)" in readme.read_text()


def test_notebook_reading_quotes_the_ledger_instead_of_a_winner(tmp_path, three_folds, monkeypatch):
    """Issue 15: a table notebook states the ledger's paired verdicts, not "our best row wins"."""
    from abanet_lib.notebook import views
    from abanet_lib.paper import claims as C

    rows = {r.label: r for r in E.table_rows("table5", three_folds, check_models=False)}
    runs = [fake_run(c, v) for label, vals in (("baseline", (0.80, 0.82, 0.84)), ("ABANet (ours)", (0.81, 0.83, 0.86)))
            for c, v in zip(rows[label].configs, vals)]
    frame = B.build_table("table5", runs, three_folds, folder=tmp_path, check_models=False)
    asked = []

    def fake_ledger(scale, table_claims):
        asked.append([c.key for c in table_claims])
        row = {"claim_text": "attention gates help", "verdict": C.UNRESOLVED, "row": "baseline+AG",
               "vs": "baseline", "n": 5, "mean_diff": 0.5, "ci_low": -1.0, "ci_high": 2.0}
        return SimpleNamespace(claims=pd.DataFrame([row]))

    monkeypatch.setattr(C, "build_ledger", fake_ledger)
    text = views.reading(frame, three_folds)
    assert asked == [["ag_helps", "refinement_helps"]]
    assert "**Claims ledger**" in text
    assert "*attention gates help*: **unresolved at this n** (baseline+AG vs baseline: +0.50 [-1.00, +2.00] IoU points, n = 5)." in text
    assert "twice that spread" not in text  # the old winner heuristic is gone where a claim exists
    # the verdict comes first and the means are only described (before: "Our highest row is ...",
    # then "the ranking is not reproduced everywhere", a ranking read off unpaired means)
    assert text.startswith("**Claims ledger**")
    assert "Our highest mean is **ABANet (ours)**" in text and "Our highest row" not in text
    assert "unpaired means rank nothing: the ledger above says which differences the folds resolve." in text
    assert "the ranking is not reproduced" not in text and "ranking is reproduced" not in text


def test_effects_say_when_two_rows_do_not_share_their_folds(tmp_path, three_folds):
    from abanet_lib.notebook import views

    rows = {r.label: r for r in E.table_rows("table5", three_folds, check_models=False)}
    runs = [fake_run(rows["baseline"].configs[0], 0.80)]
    runs += [fake_run(c, v) for c, v in zip(rows["ABANet (ours)"].configs, (0.81, 0.83, 0.86))]
    frame = B.build_table("table5", runs, three_folds, folder=tmp_path, check_models=False)
    eff = views.effects(frame, {"both modules": ("baseline", "ABANet (ours)")})
    assert eff.loc["both modules", "runs (from / to)"] == "1 / 3"
    assert eff.loc["both modules", "iou ours"] == pytest.approx(83.333 - 80.0, abs=1e-3)
    text = views.effects_reading(eff, "iou")
    assert "the rows have 1 / 3 runs, so these means are not over the same folds" in text


def test_rows_are_compared_with_abanet_on_the_folds_both_have(tmp_path, three_folds):
    """Issue 15: Table 2's means stood on different fold sets; the paired column never does."""
    rows = {r.label: r for r in E.table_rows("table5", three_folds, check_models=False)}
    runs = [fake_run(c, v) for c, v in zip(rows["ABANet (ours)"].configs, (0.90, 0.80, 0.85))]
    runs += [fake_run(rows["baseline"].configs[0], 0.88)]  # fold 0 only: ABANet's easiest fold
    runs += [fake_run(c, v) for c, v in zip(rows["baseline+AG"].configs, (0.89, 0.80, 0.83))]
    frame = B.build_table("table5", runs, three_folds, folder=tmp_path, check_models=False)
    assert frame.attrs["reference_row"] == "ABANet (ours)"
    base = frame.loc["baseline"]
    # unpaired means: 88 - 85 = +3; paired on fold 0: 88 - 90 = -2
    assert base["iou"] - frame.loc["ABANet (ours)", "iou"] == pytest.approx(3.0)
    assert base["vs_ref_n"] == 1 and base["vs_ref_diff"] == pytest.approx(-2.0)
    assert math.isnan(base["vs_ref_ci_low"])
    ag = frame.loc["baseline+AG"]
    assert ag["vs_ref_n"] == 3 and ag["vs_ref_diff"] == pytest.approx(-1.0)
    low, high = B.mean_interval([-1.0, 0.0, -2.0])
    assert ag["vs_ref_ci_low"] == pytest.approx(low) and ag["vs_ref_ci_high"] == pytest.approx(high)
    md = (tmp_path / "table5_reduced.md").read_text()
    assert "iou minus ABANet (ours), same folds [95 % CI] (pairs)" in md
    assert "| -2.00 (1) |" in md and "-1.00 [-3.48, +1.48] (3)" in md
