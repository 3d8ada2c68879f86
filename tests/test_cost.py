"""Measured and estimated cost of an experiment list (abanet_lib.paper.cost)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from abanet_lib.ops import batch_runner
from abanet_lib.paper import cost, experiments
from abanet_lib.core.config import get_scale


@pytest.fixture()
def all_buildable(monkeypatch):
    """Pretend every model builds (the model zoo is tested elsewhere; this keeps tests fast)."""
    monkeypatch.setattr(experiments, "model_status", lambda name, kwargs=(): None)


def _fake_run(root, cfg, device: str, epoch_seconds: list[float], eval_seconds: float = 2.0) -> None:
    folder = root / cfg.run_id
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": range(1, len(epoch_seconds) + 1), "seconds": epoch_seconds}).to_csv(
        folder / "history.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({
        "run_id": cfg.run_id, "eval_seconds": eval_seconds, "train_seconds": 1.0,
        "provenance": {"device": {"device": device}}}))


def _estimate(cfg):  # FLOP estimate stand-in: no model builds; 4x the pixels, 4x the seconds
    return 0, 100.0 * (cfg.image_size / 64) ** 2


def test_cost_table_prefers_measurements_then_same_config_then_scaled_model(tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "estimate_run_seconds", _estimate)
    scale = get_scale("reduced")
    plan = batch_runner.priority_plan(list(experiments.TABLES), scale)
    abanet = [p.config for p in plan if p.config.model == "abanet"]
    a, c = abanet[0], next(p.config for p in plan if p.config.model == "basnet")
    same_key = [p.config for p in plan if batch_runner.duration_key(p.config) == batch_runner.duration_key(a)
                and p.config.run_id != a.run_id]
    _fake_run(tmp_path, a, "cpu", [10.0, 20.0])          # 32 s measured (epochs across resumes + test)
    _fake_run(tmp_path, c, "cuda:0", [1.0])               # GPU run: done, but priced like a CPU run
    frame = cost.cost_table(scale, runs_root=tmp_path).set_index("run_id")
    assert frame.loc[a.run_id, "cpu_seconds"] == 32.0 and frame.loc[a.run_id, "basis"] == "measured"
    assert frame.loc[a.run_id, "status"] == "done (cpu)" and frame.loc[c.run_id, "status"] == "done (gpu)"
    assert same_key and frame.loc[same_key[0].run_id, "basis"] == "same config"
    assert frame.loc[same_key[0].run_id, "cpu_seconds"] == 32.0
    # another ABANet configuration: the estimate times what ABANet measured against its estimate
    big = next(r for r in abanet if r.image_size == 2 * a.image_size)
    assert frame.loc[big.run_id, "basis"] == "same model, FLOP-scaled"
    assert frame.loc[big.run_id, "cpu_seconds"] == 32.0 * 4
    assert frame.loc[c.run_id, "basis"] == "FLOP estimate" and frame.loc[c.run_id, "cpu_seconds"] == 100.0
    assert (frame["typical_seconds"] == frame["cpu_seconds"]).all()  # no configuration measured 3 times
    totals = cost.summary(frame.reset_index())
    assert totals["done"] == 2 and totals["runs"] == len(plan)
    assert totals["measured_cpu_hours"] == round(32.0 / 3600, 2)


def test_typical_cost_is_the_median_of_a_configuration_measured_three_times(tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "estimate_run_seconds", _estimate)
    scale = get_scale("reduced")
    geng = [p.config for p in batch_runner.priority_plan(["table4"], scale) if p.config.model == "unet_geng"]
    assert len(geng) == 5 and len({batch_runner.duration_key(g) for g in geng}) == 1
    for cfg, seconds in zip(geng, (10.0, 10.0, 40.0)):  # the third shared the cores with a benchmark
        _fake_run(tmp_path, cfg, "cpu", [seconds])
    frame = cost.cost_table(scale, runs_root=tmp_path).set_index("run_id").loc[[g.run_id for g in geng]]
    assert list(frame["cpu_seconds"]) == [12.0, 12.0, 42.0, 12.0, 12.0]
    assert list(frame["typical_seconds"]) == [12.0] * 5
    assert list(frame["basis"]) == ["measured"] * 3 + ["same config"] * 2
    _fake_run(tmp_path / "two", geng[0], "cpu", [10.0])
    _fake_run(tmp_path / "two", geng[1], "cpu", [40.0])
    two = cost.cost_table(scale, runs_root=tmp_path / "two").set_index("run_id")
    assert two.loc[geng[1].run_id, "typical_seconds"] == 42.0  # two measurements: no median yet


def test_cost_report_is_written(tmp_path):
    scale = get_scale("smoke")
    frame = pd.DataFrame({"run_id": ["x", "y"], "model": ["abanet", "grabcut"], "tables": ["table5", "table4"],
                          "fold": [0, 0], "status": ["done (cpu)", "missing"], "cpu_seconds": [3600.0, 1.0],
                          "typical_seconds": [1800.0, 1.0], "basis": ["measured", "same config"],
                          "machine": ["Recorded CPU, 2 cores, torch 2.0", ""]})
    out = cost.write_cost_report(scale, folder=tmp_path, frame=frame)
    text = out.read_text()
    # the machine is the measured runs' recorded one, not the machine that renders the report
    assert "Machine of the measured runs: Recorded CPU, 2 cores, torch 2.0." in text
    assert "1 of 2 runs done" in text and "| abanet | 1 | 1 | 60.0 | 1.00 | 0.50 | measured |" in text
    assert "about 0.5 CPU-hours at typical cost (1.0 h as measured" in text
    assert (tmp_path / "cost_smoke.csv").is_file()


def test_headline_gives_the_budget_verdict():
    totals = {"runs": 3, "done": 1, "total_cpu_hours": 10.5, "typical_cpu_hours": 9.5, "measured_cpu_hours": 1.0,
              "remaining_cpu_hours": 8.0, "flop_estimated_runs": 0}
    assert "1.50 h over the 8 CPU-hour budget" in cost.headline(totals, budget_hours=8)  # the typical total decides
    assert "within the 20 CPU-hour budget" in cost.headline(totals)  # 8 h before issue 15 + its 12 h
    assert "within the 10 CPU-hour budget" in cost.headline(totals, budget_hours=10)
    assert "(10.5 h as measured" in cost.headline(totals)


def test_budget_counts_flops(all_buildable):
    reduced = get_scale("reduced")
    small = cost.budget("table5", "reduced", gflops=10.0)
    # 4 rows on the 5 claim folds
    assert list(small["image_size"]) == [reduced.image_size] * 4 * len(reduced.claim_folds)
    row = small.iloc[0]
    # 176 mfsd-sample images outside the test fold; 15% of them validate
    assert row["n_train"] == int(176 * 0.85)
    f = 15.9 * (reduced.image_size / 64) ** 2  # GFLOP per image (15.9 at 64x64)
    e = reduced.epochs
    expected = (3 * f * e * 176 * 0.85 + f * e * 176 * 0.15 + f * 44) / 10.0
    assert row["seconds"] == pytest.approx(expected, rel=1e-3)
    assert small.attrs["total_s"] == pytest.approx(small["seconds"].sum())
    smoke = cost.budget("table4", "smoke", flop_table={"unet_din": 2.0})
    assert smoke.query("model == 'grabcut'")["seconds"].eq(0).all()
    assert (smoke["n_train"] == 16).all()


def test_a_single_threaded_run_counts_its_share_of_the_cores(tmp_path):
    """`make runs` trains one single-threaded run per core: such a run holds half of a 2-core
    machine, so its machine time is half its wall time (the old rule counted it whole)."""

    def record(name: str, threads: int, cores: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        prov = {"device": {"device": "cpu", "torch_threads": threads, "cpu_count": cores}}
        (folder / "metrics.json").write_text(json.dumps({"eval_seconds": 10.0, "provenance": prov}))
        (folder / "history.csv").write_text("epoch,seconds\n1,100\n2,90\n")
        return folder

    assert cost.measured_cpu_seconds(record("alone", 2, 2)) == 200.0
    assert cost.measured_cpu_seconds(record("one-of-two", 1, 2)) == 100.0
    assert cost.measured_cpu_seconds(record("many-threads", 8, 2)) == 200.0  # never above the whole machine
