"""Registry and evaluation: skip finished runs, atomic metrics.json, native-size scoring."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from abanet_lib.engine import registry
from abanet_lib.paper import runs as paper_runs
from abanet_lib.engine.evaluate import evaluate, measure_fps
from engine_standins import (AllOnesNet, FakeRef, OracleNet, SimpleAccumulator, TinyNet, bce, blob_data,
                             tiny_config)

REFS = [FakeRef("a", 32, 32, 1), FakeRef("b", 48, 64, 2), FakeRef("c", 32, 48, 3), FakeRef("d", 32, 48, 4)]


def _run(cfg, **kw):
    torch.manual_seed(cfg.seed)
    kw.setdefault("model", TinyNet())
    return paper_runs.run_or_load(cfg, progress=False, criterion=bce, data=blob_data(), test_refs=REFS,
                                accumulator_factory=SimpleAccumulator, **kw)


def test_evaluate_oracle_scores_one_at_native_size(tmp_path):
    acc = SimpleAccumulator()
    per_image, summary = evaluate(OracleNet(), REFS, image_size=16, device="cpu", precision="fp32",
                                  batch_size=2, save_predictions_dir=tmp_path / "pred",
                                  accumulator_factory=lambda: acc)
    assert acc.shapes == [(32, 32), (48, 64), (32, 48), (32, 48)]  # scored at each mask's native size
    assert per_image["iou"].tolist() == [1.0] * 4 and summary["iou"] == 1.0
    assert list(per_image["name"]) == ["a", "b", "c", "d"] and summary["n_images"] == 4
    png = np.asarray(Image.open(tmp_path / "pred" / "b.png"))
    assert png.shape == (48, 64) and png.dtype == np.uint8
    assert np.array_equal(png > 127, REFS[1].load().mask)


def test_evaluate_all_ones_gives_mask_coverage(tmp_path):
    per_image, summary = evaluate(AllOnesNet(), REFS, 16, "cpu", "fp32", accumulator_factory=SimpleAccumulator)
    coverage = [ref.load().mask.mean() for ref in REFS]
    assert per_image["iou"].to_numpy() == pytest.approx(coverage)
    assert summary["iou"] == pytest.approx(np.mean(coverage))


def test_evaluate_with_real_metric_accumulator():
    pytest.importorskip("abanet_lib.engine.metrics")
    per_image, summary = evaluate(OracleNet(), REFS, 16, "cpu", "fp32")
    assert per_image["iou"].tolist() == pytest.approx([1.0] * 4)
    assert summary["iou"] == pytest.approx(1.0) and summary["f1"] == pytest.approx(1.0)
    # soft edges of the upsampled map cost MAE, not the thresholded scores
    assert 0 < summary["mae"] < 0.25


def test_measure_fps_records_device():
    out = measure_fps(TinyNet(), 16, "cpu", batch_sizes=(1, 2), warmup=1, repeats=2, precision="fp32")
    assert set(out["fps"]) == {"1", "2"} and all(v > 0 for v in out["fps"].values())
    assert out["device"]["device"] == "cpu" and out["precision"] == "fp32"


def test_run_or_load_writes_folder_and_skips_finished_runs(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=2)
    run = _run(cfg)
    folder = tmp_results / "results" / "runs" / cfg.run_id
    assert run.path == folder
    assert {p.name for p in folder.iterdir()} == {"config.json", "metrics.json", "history.csv", "per_image.csv",
                                                  "predictions", "speed.json"}
    speed = json.loads((folder / "speed.json").read_text())
    assert speed["fps"] > 0 and speed["batch_size"] == 1 and speed["device"]["device"] == "cpu"
    assert speed["threads"] >= 1 and "load_average_1min" in speed
    assert json.loads((folder / "config.json").read_text()) == cfg.to_dict()
    m = run.metrics
    assert m["n_test"] == 4 and m["n_train"] == 12 and m["n_val"] == 6 and m["epochs_run"] == 2
    assert m["test"]["iou"] == pytest.approx(run.per_image["iou"].mean())
    assert m["best_val_iou"] == pytest.approx(run.history["val_iou"].max())
    assert m["checkpoint"].endswith(f"checkpoints/{cfg.run_id}/best.pt")
    prov = m["provenance"]
    assert prov["scale"] == "smoke" and prov["device"]["device"] == "cpu" and prov["threads"] >= 1
    assert set(prov["packages"]) >= {"torch", "numpy"} and "date_utc" in prov
    assert registry.is_complete(cfg)
    # a complete run keeps best.pt only: the resume state (weights + optimizer) is dropped
    ckpt = registry.checkpoint_dir(cfg)
    assert (ckpt / "best.pt").is_file() and not (ckpt / "last.pt").exists()

    def no_training(*a, **k):
        raise AssertionError("train() called for a finished run")

    monkeypatch.setattr(paper_runs, "train", no_training)
    again = paper_runs.run_or_load(cfg, progress=False)
    assert again.metrics == run.metrics
    pd.testing.assert_frame_equal(again.per_image, run.per_image)

    # load_model restores the best checkpoint's weights
    monkeypatch.setattr(registry, "build_model", lambda c: TinyNet())
    model = registry.load_model(run)
    best = torch.load(m["checkpoint"], weights_only=False)["model"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best.items())


def test_metrics_json_written_last_and_atomically(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=1)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(registry.os, "replace", lambda a, b: (replaced.append(str(b)), real_replace(a, b)))
    _run(cfg)
    into_record = [p for p in replaced if f"/{cfg.run_id}/" in p and ".staging" in p]
    assert into_record[-1].endswith("metrics.json")  # the record's last file, then the swap
    assert not list((tmp_results / "results" / "runs" / cfg.run_id).glob("*.tmp*"))

    # a failure during evaluation leaves no metrics.json: the run is not complete
    cfg2 = tiny_config(epochs=1, seed=5)

    def broken_eval(*a, **k):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(paper_runs, "evaluate", broken_eval)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        _run(cfg2)
    assert not registry.is_complete(cfg2)
    # the attempt stays in staging (resumable), never where records live
    assert not (tmp_results / "results" / "runs" / cfg2.run_id).exists()
    assert (registry.staging_dir(cfg2) / "config.json").is_file()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        registry.load_run(cfg2.run_id)


def test_find_runs_and_run_many_records_failures(tmp_results, capsys):
    good = tiny_config(epochs=1)
    _run(good)
    _run(good.replace(seed=3))
    assert len(registry.find_runs(model="tiny-standin")) == 2
    assert [r.config.seed for r in registry.find_runs(seed=3)] == [3]
    assert registry.find_runs(model="abanet") == []
    with pytest.raises(ValueError, match="unknown config field"):
        registry.find_runs(colour="red")

    bad = good.replace(model="no-such-model", seed=7)
    with pytest.raises(paper_runs.RunFailedError, match="no-such-model") as err:
        paper_runs.run_many([good, bad], criterion=bce, data=blob_data(), test_refs=REFS,
                          accumulator_factory=SimpleAccumulator)
    out = capsys.readouterr().out
    assert "[1/2]" in out and "cached" in out and "FAILED" in out
    assert "1 of 2 runs failed" in str(err.value)
    assert (tmp_results / "cache" / "failures" / f"{bad.run_id}.log").is_file()
    runs = paper_runs.run_many([good, bad], raise_on_failure=False, progress=False)
    assert [r.run_id for r in runs] == [good.run_id]


def test_force_retrains(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=1)
    first = _run(cfg)
    calls = []
    real_train = paper_runs.train
    monkeypatch.setattr(paper_runs, "train", lambda *a, **k: (calls.append(a[1]), real_train(*a, **k))[1])
    second = _run(cfg, force=True)
    assert calls == [registry.staging_dir(cfg)]  # trained in staging, then swapped in
    assert second.metrics["resumed_from_epoch"] == 0  # from scratch: no checkpoint carried over
    assert second.metrics["test"] == first.metrics["test"]  # same seed, same result
    assert not registry.staging_dir(cfg).exists() and second.path == registry.run_dir(cfg)


def test_run_many_without_training_and_run_labelled(tmp_results, monkeypatch, capsys):
    good = tiny_config(epochs=1)
    _run(good)
    missing = good.replace(seed=5)

    def no_training(*a, **k):
        raise AssertionError("train() called although train_missing=False")

    monkeypatch.setattr(paper_runs, "train", no_training)
    runs = paper_runs.run_many([missing, good], train_missing=False)
    assert [r.run_id for r in runs] == [good.run_id]
    assert f"{missing.run_id}" in capsys.readouterr().out
    labelled = paper_runs.run_labelled({"absent": missing, "present": good}, train_missing=False, progress=False)
    assert list(labelled) == ["present"] and labelled["present"].run_id == good.run_id


def test_binary_predictions_kept_in_every_record(tmp_results):
    run = _run(tiny_config(epochs=1))
    files = sorted((run.path / registry.PREDICTIONS_DIR).glob("*.png"))
    assert len(files) == run.metrics["n_test"]
    from abanet_lib.paper.figures import saved_predictions

    names = list(run.per_image["name"])
    maps = saved_predictions(run, names)
    assert maps is not None and set(np.unique(np.concatenate([m.ravel() for m in maps]))) <= {0.0, 1.0}
    # stored maps are the thresholded native-size predictions the metrics were computed from
    for name, m in zip(names, maps):
        gt = next(r for r in REFS if r.name == name).load().mask.astype(bool)
        assert m.shape == gt.shape
        pred = m >= 0.5
        union = (pred | gt).sum()
        iou = (pred & gt).sum() / union if union else 1.0
        assert iou == pytest.approx(run.per_image.set_index("name").loc[name, "iou"], abs=1e-6)


def test_a_run_being_trained_by_a_live_process_is_refused(tmp_results):
    import socket
    import subprocess
    import sys

    cfg = tiny_config(epochs=1)
    folder = registry.lock_dir(cfg)
    folder.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / registry.LOCK_FILE).write_text(f"{live.pid} {socket.gethostname()} 0\n")
        with pytest.raises(registry.RunBusyError, match=rf"{cfg.run_id} is being trained by process {live.pid}"):
            _run(cfg)
        assert not registry.is_complete(cfg)
    finally:
        live.kill()
        live.wait()
    # the holder is gone now: its stale lock is taken over, the run trains, the lock is removed
    run = _run(cfg)
    assert run.metrics["epochs_run"] == 1 and not (folder / registry.LOCK_FILE).exists()
    assert not list(folder.glob(registry.LOCK_FILE + "*"))  # no private lock copies left behind


def test_resume_state_kept_when_asked(tmp_results, monkeypatch):
    monkeypatch.setenv(registry.KEEP_RESUME_STATE_ENV, "1")
    cfg = tiny_config(epochs=1)
    _run(cfg)
    last = registry.checkpoint_dir(cfg) / "last.pt"
    assert torch.load(last, weights_only=False)["epoch"] == 1
    monkeypatch.delenv(registry.KEEP_RESUME_STATE_ENV)
    assert registry.drop_resume_state(cfg) and not last.exists()
    assert not registry.drop_resume_state(cfg)  # nothing left to drop


def test_full_disk_gives_a_clear_error_and_no_partial_file(tmp_path, monkeypatch):
    from abanet_lib.core import io

    def fill_disk(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 755315456 vs 755315344")

    target = tmp_path / "ckpt" / "last.pt"
    with pytest.raises(OSError, match=r"could not write .*last\.pt: .*unexpected pos.*GiB free"):
        io.atomic_write(target, fill_disk)
    assert list(target.parent.iterdir()) == []  # neither the target nor the partial temporary file
