"""The learning-curve study (issue 15): curves, costs and the reading computed from records."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from abanet_lib.paper import learning_curve as L


def fake_run(size: int, epochs: int, val: list[float], seconds: list[float], test_iou: float):
    cfg = [c for c in L.study_configs() if c.image_size == size][0].replace(epochs=epochs)
    history = pd.DataFrame({"epoch": range(1, len(val) + 1), "val_iou": val, "seconds": seconds})
    best = int(pd.Series(val).idxmax()) + 1
    return SimpleNamespace(config=cfg, run_id=cfg.run_id, history=history,
                           metrics={"best_epoch": best, "test": {"iou": test_iou}}, test={"iou": test_iou})


def test_study_runs_are_the_canonical_abanet_trained_longer_and_larger():
    from abanet_lib.paper.experiments import canonical_abanet
    from abanet_lib.core.config import get_scale

    base = canonical_abanet(get_scale("reduced"))
    for cfg, (size, epochs) in zip(L.study_configs(), L.STUDY):
        assert cfg.replace(image_size=base.image_size, epochs=base.epochs) == base
        assert (cfg.image_size, cfg.epochs) == (size, epochs)


def test_summary_reads_best_so_far_and_relative_cost():
    # 64 px: 20 s an epoch after a 30 s first one; the best so far is a running max
    val64 = [0.5, 0.7, 0.6, 0.65, 0.65] + [0.80] * 10 + [0.83] * 25
    r64 = fake_run(64, 40, val64, [30.0] + [20.0] * 39, 0.82)
    val96 = [0.4] * 10 + [0.84] * 20
    r96 = fake_run(96, 30, val96, [40.0] + [30.0] * 29, 0.85)
    table = L.summary([r64, r96])
    row64 = table[table["image_size"] == 64].iloc[0]
    assert row64["seconds_per_epoch"] == 20.0
    assert row64["best_val_iou@5"] == pytest.approx(70.0)  # epoch 3 dipped: the max so far stays
    assert row64["best_val_iou@15"] == pytest.approx(80.0)
    assert row64["best_val_iou@40"] == pytest.approx(83.0)
    assert row64["cost@15"] == pytest.approx(1.0) and row64["cost@40"] == pytest.approx(40 / 15)
    row96 = table[table["image_size"] == 96].iloc[0]
    assert row96["cost@30"] == pytest.approx(30 * 30 / (20 * 15))
    assert math.isnan(row96["best_val_iou@40"])  # not trained that long
    reading = " ".join(L.verdict(table))
    assert "best validation IoU of the study's run is 80.00" in reading
    # 64 px at 20 epochs is +3 points for 20/15 of the cost: the cheapest setting above 1 point
    assert "64x64 at 20 epochs (+3.00 points at 1.33x the cost)" in reading


def test_no_setting_worth_it_is_said_plainly():
    flat = fake_run(64, 40, [0.8] * 40, [20.0] * 40, 0.8)
    reading = " ".join(L.verdict(L.summary([flat])))
    assert "No setting of the study is more than 1 point above it" in reading


def test_write_study_without_records_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "load_study", lambda scale="reduced": [])
    md, reading = L.write_study(out_dir=tmp_path, figures=tmp_path / "figures")
    assert "No study run is on record yet" in md.read_text()


def test_choice_prices_a_new_setting_as_retraining_the_whole_list():
    r64 = fake_run(64, 40, [0.80] * 15 + [0.84] * 25, [20.0] * 40, 0.82)
    table = L.summary([r64])
    totals = {"runs": 200, "missing": 120, "total_cpu_hours": 20.0, "remaining_cpu_hours": 9.0}
    text = " ".join(L.choice(table, totals))
    # keeping 64x64 / 15 epochs adds 9 h; 20 epochs retrains everything: 20 h x 20/15 = 26.7 h
    assert "Within the budget: 64x64 at 15 epochs (the scale as it is" in text
    assert "64x64 at 20 epochs, would add about 27 CPU-hours: over the budget" in text
    assert "What the budget leaves on the table: 64x64 at 20 epochs reaches 84.00 (+4.00 points)" in text
    cheap = {"runs": 200, "missing": 120, "total_cpu_hours": 4.0, "remaining_cpu_hours": 3.0}
    assert "Within the budget: 64x64 at 20 epochs (a new setting" in " ".join(L.choice(table, cheap))


def test_choice_with_the_whole_list_on_record_says_nothing_is_left_to_add():
    """Once every run was trained, the choice read "adds the list's 0 missing runs, about 0.0
    CPU-hours" and "about 0.0 CPU-hours to add"."""
    r64 = fake_run(64, 40, [0.80] * 15 + [0.84] * 25, [20.0] * 40, 0.82)
    done = {"runs": 200, "missing": 0, "total_cpu_hours": 20.0, "remaining_cpu_hours": 0.0}
    text = " ".join(L.choice(L.summary([r64]), done))
    assert "Keeping 64x64 and 15 epochs adds nothing: every run of the list is on record;" in text
    assert "(the scale as it is; best validation IoU 80.00, nothing to add)." in text
    assert "missing runs" not in text and "about 0.0 CPU-hours" not in text


def test_importing_the_library_keeps_the_notebook_backend():
    """Importing the study (via paper.tables, notebook.views) once switched matplotlib to Agg, and
    every notebook lost its inline figures; the backend is the caller's to choose."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('module://matplotlib_inline.backend_inline'); "
            "import abanet_lib.notebook.views, abanet_lib.paper.learning_curve; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-1000:]
    assert "inline" in out.stdout.strip()
