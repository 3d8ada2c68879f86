"""results/ is the record: tables and figures are a pure function of the committed runs, smoke
outputs never land there, and no command damages a record before its replacement is complete."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abanet_lib.paper import artifacts, plots
from abanet_lib.core import paths
from abanet_lib.engine import registry
from abanet_lib.paper import runs as paper_runs
from abanet_lib.core.config import get_scale
from abanet_lib.paper.experiments import experiments
from abanet_lib.paper.definitions import TABLE_ORDER
from abanet_lib.paper.table_builder import build_table
from engine_standins import TinyNet, bce, blob_data, tiny_config, FakeRef, SimpleAccumulator

ROOT = paths.PROJECT_ROOT
COMMITTED_RUNS = ROOT / "results" / "runs"
COMMITTED_TABLES = ROOT / "results" / "tables"


def _digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def committed_records(monkeypatch):
    """Read the committed results/ (the test command points ABANET_RESULTS elsewhere)."""
    if not COMMITTED_RUNS.is_dir():
        pytest.skip("no committed results/runs in this checkout")
    monkeypatch.delenv("ABANET_RESULTS", raising=False)


# ---------------------------------------------------------------------------------------
# Rendering reads records only and is deterministic
# ---------------------------------------------------------------------------------------
def test_every_committed_table_renders_from_the_records_byte_for_byte(committed_records, tmp_path, monkeypatch):
    def no_weights(*a, **k):
        raise AssertionError("rendering a table loaded model weights")

    monkeypatch.setattr(registry, "load_model", no_weights)
    scale = get_scale("reduced")
    for table in TABLE_ORDER:
        runs = paper_runs.run_many(experiments(table, scale), train_missing=False, progress=False)
        build_table(table, runs, scale, folder=tmp_path)
        for ext in ("csv", "md", "json"):
            name = f"{table}_reduced.{ext}"
            assert (tmp_path / name).read_bytes() == (COMMITTED_TABLES / name).read_bytes(), \
                f"{name} rendered from results/runs differs from the committed table"


def test_every_committed_record_feeds_a_table_the_study_or_the_photo_model(committed_records):
    """No record sits in results/runs unread (three fold-1 smp runs once fed no table): each is a
    table row's run on some fold of its split, a learning-curve run, or a photo-model run (the
    shipped model's candidates and the folds the whole-photo benchmark compares)."""
    from abanet_lib.paper import learning_curve, photo_model
    from abanet_lib.paper.experiments import every_fold

    wide = every_fold(get_scale("reduced"))
    read = {cfg.run_id for table in TABLE_ORDER for cfg in experiments(table, wide)}
    read |= {cfg.run_id for cfg in learning_curve.study_configs()}
    read |= {cfg.run_id for fold in range(wide.n_folds) for cfg in photo_model.candidates(fold)}
    committed = {p.name for p in COMMITTED_RUNS.iterdir() if (p / "metrics.json").is_file()}
    assert sorted(committed - read) == []


def test_figures_render_to_identical_bytes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = []
    for i in range(2):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 2], [1, 0, 2])
        ax.set_title("same record")
        outs.append(plots.save_fig(fig, "twice", scale="reduced", folder=tmp_path / str(i)).read_bytes())
        plt.close(fig)
    assert outs[0] == outs[1]
    assert b"matplotlib version" not in outs[0]  # no Software entry that changes with the version


def test_save_fig_names_every_figure_by_its_scale_and_keeps_smoke_out_of_results(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.delenv("ABANET_RESULTS", raising=False)
    with pytest.raises(ValueError, match="names no scale"):
        plots.save_fig(plt.figure(), "model_costs")
    with pytest.raises(ValueError, match="ends with scale"):
        plots.save_fig(plt.figure(), "table2_iou_reduced", scale="smoke")
    assert paths.figures_dir("smoke") == ROOT / ".cache" / "results-smoke" / "figures"
    assert paths.figures_dir("reduced") == ROOT / "results" / "figures"
    assert paths.runs_dir("smoke") == ROOT / ".cache" / "results-smoke" / "runs"
    cfg = tiny_config(epochs=1)  # a smoke config
    assert registry.run_dir(cfg).parent == ROOT / ".cache" / "results-smoke" / "runs"
    plt.close("all")


def test_recorded_columns_come_from_the_records_and_empty_cells_say_why(tmp_results):
    from abanet_lib.paper.recorded_metrics import recorded_cross_domain, recorded_fps

    run = _train_tiny(tiny_config(epochs=1))
    fps = recorded_fps([run])[run.run_id]["fps"]
    assert fps == json.loads((run.path / artifacts.SPEED_FILE).read_text())["fps"]
    (run.path / artifacts.SPEED_FILE).unlink()
    assert recorded_fps([run]) == {}
    # a cross-domain score that the record lacks stays empty (NaN), never re-measured
    values = recorded_cross_domain([run], "smoke")[run.run_id]
    assert values["iou@maskedfacenet"] != values["iou@maskedfacenet"]


# ---------------------------------------------------------------------------------------
# Nothing destructive before its replacement exists
# ---------------------------------------------------------------------------------------
REFS = [FakeRef("a", 32, 32, 1), FakeRef("b", 48, 64, 2), FakeRef("c", 32, 48, 3)]


def _train_tiny(cfg, **kw):
    import torch

    torch.manual_seed(cfg.seed)
    return paper_runs.run_or_load(cfg, progress=False, model=TinyNet(), criterion=bce, data=blob_data(),
                                test_refs=REFS, accumulator_factory=SimpleAccumulator, **kw)


def test_a_failed_forced_retrain_leaves_the_record_and_its_weights_untouched(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=3)
    first = _train_tiny(cfg)
    before = _digest(first.path)
    best = registry.checkpoint_dir(cfg) / "best.pt"
    best_before = hashlib.sha256(best.read_bytes()).hexdigest()

    def dies_in_epoch_two(info):
        if info.epoch == 2:
            raise KeyboardInterrupt  # a kill after epoch 2's checkpoint was written
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(cfg, force=True, callbacks=[dies_in_epoch_two])
    assert _digest(first.path) == before
    assert hashlib.sha256(best.read_bytes()).hexdigest() == best_before
    assert registry.staging_dir(cfg).is_dir()  # the attempt waits in staging ...
    resumed = _train_tiny(cfg, force=True)      # ... and the next forced call resumes it
    assert resumed.metrics["resumed_from_epoch"] == 2 and resumed.metrics["epochs_run"] == 3
    assert not registry.staging_dir(cfg).exists()


def test_a_failed_model_construction_leaves_no_folder(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=1).replace(model="no-such-model")
    with pytest.raises(Exception, match="no-such-model"):
        paper_runs.run_or_load(cfg, progress=False)
    assert not registry.run_dir(cfg).exists() and not registry.staging_dir(cfg).exists()


def test_swap_without_atomic_exchange_is_recovered_after_a_kill(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=1)
    first = _train_tiny(cfg)
    before = _digest(first.path)
    monkeypatch.setattr(registry, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def killed_after_first_rename(a, b):
        real_rename(a, b)
        calls.append(b)
        if str(b).endswith(registry.PREVIOUS_SUFFIX):
            raise KeyboardInterrupt  # killed between the two renames

    monkeypatch.setattr(registry.os, "rename", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(cfg, force=True)
    monkeypatch.setattr(registry.os, "rename", real_rename)
    assert not first.path.exists()  # the moment of the kill: the old record is at <id>.previous
    again = paper_runs.run_or_load(cfg, progress=False)  # restores it before anything else
    assert _digest(again.path) == before


def _real_cheap_config():
    """A committed reduced run that trains in a couple of minutes on 2 cores (Din U-Net)."""
    for cfg in experiments("table4", "reduced"):
        if cfg.model == "unet_din" and (COMMITTED_RUNS / cfg.run_id / registry.METRICS_FILE).is_file():
            return cfg
    pytest.skip("no committed Din U-Net run to retrain")


@pytest.mark.data
def test_sigkill_of_a_forced_retrain_of_a_real_run_leaves_the_committed_record_unchanged(
        committed_records, data_mirror, tmp_path):
    import shutil

    cfg = _real_cheap_config()
    results = tmp_path / "results"
    shutil.copytree(COMMITTED_RUNS / cfg.run_id, results / "runs" / cfg.run_id)
    before = _digest(COMMITTED_RUNS / cfg.run_id)
    assert _digest(results / "runs" / cfg.run_id) == before
    env = dict(os.environ, ABANET_RESULTS=str(results), ABANET_CACHE=str(tmp_path / "cache"),
               ABANET_DATA_MIRROR=str(data_mirror))
    code = ("import json,sys; from abanet_lib.paper import runs as paper_runs; from abanet_lib.core.config import RunConfig; "
            f"cfg = RunConfig.from_dict(json.load(open({str(results / 'runs' / cfg.run_id / 'config.json')!r}))); "
            "print('started', flush=True); paper_runs.run_or_load(cfg, force=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    moment = random.Random().uniform(3.0, 25.0)  # data preparation, model build or training
    time.sleep(moment)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the retrain ended before the kill at {moment:.1f}s:\n{out}"
    assert _digest(results / "runs" / cfg.run_id) == before, f"record changed by a kill at {moment:.1f}s"
    run = registry.load_run_folder(results / "runs" / cfg.run_id)
    assert run.metrics["run_id"] == cfg.run_id
    # the interrupted attempt waits in the git-ignored staging folder, nowhere else
    assert {p.name for p in (results / "runs").iterdir()} <= {cfg.run_id, registry.STAGING_DIR}


def test_exchange_swaps_two_folders_atomically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "f").write_text("new"), (b / "f").write_text("old")
    if not registry._exchange(a, b):
        pytest.skip("this platform or file system has no atomic exchange (the fallback is tested above)")
    assert (b / "f").read_text() == "new" and (a / "f").read_text() == "old"


# ---------------------------------------------------------------------------------------
# A notebook run by hand at smoke scale changes no committed file
# ---------------------------------------------------------------------------------------
@pytest.mark.data
def test_a_smoke_notebook_run_by_hand_changes_no_committed_file(data_mirror, tmp_path):
    import papermill as pm

    before = _digest(ROOT / "results")
    env = {k: v for k, v in os.environ.items() if k not in ("ABANET_RESULTS",)}
    env["ABANET_SCALE"] = "smoke"
    script = ("import papermill as pm; pm.execute_notebook("
              f"{str(ROOT / 'notebooks' / '01_dataset_exploration.ipynb')!r}, {str(tmp_path / 'out.ipynb')!r}, "
              "kernel_name='abanet', parameters={'scale': 'smoke'}, "
              f"cwd={str(ROOT / 'notebooks')!r}, progress_bar=False)")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _digest(ROOT / "results") == before
    smoke_figures = paths.PROJECT_ROOT / ".cache" / "results-smoke" / "figures"
    assert any(p.name.endswith("_smoke.png") for p in smoke_figures.glob("fig01_samples_*"))
    del pm


# ---------------------------------------------------------------------------------------
# The data a record was made from is fingerprinted and checked
# ---------------------------------------------------------------------------------------
def test_a_record_notices_when_its_data_changed(tmp_results, monkeypatch):
    from types import SimpleNamespace

    from abanet_lib.data.fingerprint import data_fingerprint

    files = []
    for i in range(3):
        img, msk = tmp_results / f"img{i}.png", tmp_results / f"msk{i}.png"
        img.write_bytes(b"image %d" % i), msk.write_bytes(b"mask %d" % i)
        files.append(SimpleNamespace(source="mfsd", name=f"s{i}", image_path=img, mask_path=msk))
    split = SimpleNamespace(train=files[:2], val=[], test=files[2:])
    monkeypatch.setattr(registry, "build_split", lambda cfg: split)
    run = _train_tiny(tiny_config(epochs=1))
    (run.path / registry.DATA_FILE).write_text(json.dumps(data_fingerprint(files)))
    assert registry.data_changes(run) == []
    files[0].image_path.write_bytes(b"edited")
    changes = registry.data_changes(run)
    assert changes == ["1 sample(s) changed: mfsd/s0 (image)"]
    with pytest.warns(UserWarning, match=r"data differs from the data it was trained on: 1 sample\(s\) changed"):
        paper_runs.run_or_load(run.config, progress=False)


def test_a_broken_record_is_reported_and_the_others_still_render(tmp_results, capsys):
    good, bad = tiny_config(epochs=1), tiny_config(epochs=1, seed=4)
    _train_tiny(good), _train_tiny(bad)
    broken = registry.run_dir(bad) / registry.METRICS_FILE
    broken.write_text("{ not json")
    with pytest.raises(registry.RunRecordError, match=rf"{broken}: not a readable JSON record"):
        registry.load_run(bad.run_id)
    with pytest.warns(UserWarning, match="BROKEN RECORD"):
        runs = paper_runs.run_many([good, bad], train_missing=False, progress=False)
    assert [r.run_id for r in runs] == [good.run_id]
    assert f"{bad.run_id}" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="skipping unreadable run record"):
        assert [r.run_id for r in registry.find_runs(model="tiny-standin")] == [good.run_id]
    assert str(registry.run_dir(bad)) in registry.broken_runs()


def test_results_readme_claims_and_cost_regenerate_byte_for_byte(committed_records, tmp_path):
    import shutil

    from abanet_lib.paper.tables import write_results_readme

    out, project = tmp_path / "results", tmp_path / "project"
    shutil.copytree(ROOT / "results" / "tables", out / "tables")
    project.mkdir()
    shutil.copy(ROOT / "README.md", project / "README.md")
    write_results_readme("reduced", folder=out / "tables", readme=project / "README.md", cost=True)
    for name in ("README.md", "claims.md", "claims.csv", "cost_reduced.md", "cost_reduced.csv"):
        assert (out / name).read_bytes() == (ROOT / "results" / name).read_bytes(), f"results/{name} is stale"
    assert (project / "README.md").read_bytes() == (ROOT / "README.md").read_bytes(), "README results block is stale"
