"""Measured and estimated cost of an experiment list (abanet_lib.cost)."""
from __future__ import annotations

import json

import pandas as pd

from abanet_lib import batch_runner, cost, experiments
from abanet_lib.config import get_scale


def _fake_run(root, cfg, device: str, epoch_seconds: list[float], eval_seconds: float = 2.0) -> None:
    folder = root / cfg.run_id
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": range(1, len(epoch_seconds) + 1), "seconds": epoch_seconds}).to_csv(
        folder / "history.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({
        "run_id": cfg.run_id, "eval_seconds": eval_seconds, "train_seconds": 1.0,
        "provenance": {"device": {"device": device}}}))


def test_cost_table_prefers_measurements_then_same_config_then_model(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "estimate_run_seconds", lambda cfg: (0, 99.0))  # no model builds
    scale = get_scale("reduced")
    plan = batch_runner.priority_plan(list(experiments.TABLES), scale)
    abanet = [p.config for p in plan if p.config.model == "abanet"]
    a, b, c = abanet[0], abanet[1], next(p.config for p in plan if p.config.model == "basnet")
    same_key = [p.config for p in plan if batch_runner.duration_key(p.config) == batch_runner.duration_key(a)
                and p.config.run_id != a.run_id]
    _fake_run(tmp_path, a, "cpu", [10.0, 20.0])          # 32 s measured (epochs across resumes + test)
    _fake_run(tmp_path, c, "cuda:0", [1.0])               # GPU run: done, but priced like a CPU run
    frame = cost.cost_table(scale, runs_root=tmp_path).set_index("run_id")
    assert frame.loc[a.run_id, "cpu_seconds"] == 32.0 and frame.loc[a.run_id, "basis"] == "measured"
    assert frame.loc[a.run_id, "status"] == "done (cpu)" and frame.loc[c.run_id, "status"] == "done (gpu)"
    if same_key:
        assert frame.loc[same_key[0].run_id, "basis"] == "same config"
        assert frame.loc[same_key[0].run_id, "cpu_seconds"] == 32.0
    other = [r for r in abanet if batch_runner.duration_key(r) != batch_runner.duration_key(a)
             and r.image_size == a.image_size]
    if other:
        assert frame.loc[other[0].run_id, "basis"] == "same model"
    assert frame.loc[c.run_id, "basis"] == "FLOP estimate" and frame.loc[c.run_id, "cpu_seconds"] == 99.0
    totals = cost.summary(frame.reset_index())
    assert totals["done"] == 2 and totals["runs"] == len(plan)
    assert totals["measured_cpu_hours"] == round(32.0 / 3600, 2)


def test_cost_report_is_written(tmp_path):
    scale = get_scale("smoke")
    frame = pd.DataFrame({"run_id": ["x", "y"], "model": ["abanet", "grabcut"], "tables": ["table5", "table4"],
                          "fold": [0, 0], "status": ["done (cpu)", "missing"], "cpu_seconds": [3600.0, 1.0],
                          "basis": ["measured", "same model"]})
    out = cost.write_cost_report(scale, folder=tmp_path, frame=frame)
    text = out.read_text()
    assert "1 of 2 runs done" in text and "| abanet | 1 | 1 | 60.0 | 1.00 | measured |" in text
    assert (tmp_path / "cost_smoke.csv").is_file()


def test_headline_gives_the_budget_verdict():
    totals = {"runs": 3, "done": 1, "total_cpu_hours": 9.5, "measured_cpu_hours": 1.0,
              "remaining_cpu_hours": 8.0, "flop_estimated_runs": 0}
    assert "1.50 h over the 8 CPU-hour budget" in cost.headline(totals)
    assert "within the 10 CPU-hour budget" in cost.headline(totals, budget_hours=10)
