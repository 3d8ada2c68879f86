"""The GPU run path on CPU: bundle preparation, the batch runner, packing and merging.

The batch-runner test runs the real command line (planning from ``experiments``, spawned
worker processes, lock files, budget, archive, summary) with a fast stand-in for
``runs.run_or_load`` (:func:`fake_run_or_load` below), because one real ABANet run takes
minutes on the shared 2-core machine. The real trainer is exercised by
``ABANET_TEST_REAL_BATCH=1`` (:func:`test_batch_runner_real_smoke_runs`) and by
``SKIP_INSTALL=1 SCALE=smoke scripts/gpu_run.sh``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from abanet_lib.ops import batch_runner, gpu_bundle
from abanet_lib.core import paths
from abanet_lib.core.config import RunConfig, get_scale

ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------
# A stand-in runner: imported by the spawned workers as ``test_gpu_script:fake_run_or_load``
# ---------------------------------------------------------------------------------------
FAIL_SIZE_ENV = "ABANET_FAKE_FAIL_SIZE"


def fake_run_or_load(cfg: RunConfig):
    """Write a complete run folder like the registry does (metrics.json last), quickly.

    Fails (RuntimeError) for configs whose image size equals ``$ABANET_FAKE_FAIL_SIZE``.
    """
    if str(cfg.image_size) == os.environ.get(FAIL_SIZE_ENV, ""):
        raise RuntimeError(f"planned failure at image size {cfg.image_size}")
    folder = paths.runs_dir() / cfg.run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), sort_keys=True))
    (folder / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    (folder / "per_image.csv").write_text("name,iou\na,0.5\n")
    time.sleep(0.3)
    metrics = {"run_id": cfg.run_id, "test": {"iou": 0.25 + cfg.image_size / 1000, "f1": 0.4},
               "worker_pid": os.getpid()}
    (folder / "metrics.json").write_text(json.dumps(metrics))

    class _Run:
        path = folder

    _Run.metrics = metrics
    return _Run()


# ---------------------------------------------------------------------------------------
# Planning, locks, estimates
# ---------------------------------------------------------------------------------------
def test_priority_plan_orders_tiers_and_deduplicates():
    scale = get_scale("reduced")
    base = scale.base_config()
    main = base.with_model("abanet")
    by_table = {
        "table2": [main, main.replace(fold=1), base.with_model("smp:Unet:resnet34"),
                   base.with_model("smp:Unet:resnet34").replace(fold=1), base.with_model("basnet")],
        "table5": [main.with_model(attention=False), main],
        "table4": [main.replace(seed=1, fold=1), base.with_model("grabcut")],
    }
    plan = batch_runner.priority_plan(["table5", "table4", "table2"], scale, by_table=by_table, claim_ids=set())
    ids = [p.run_id for p in plan]
    assert len(ids) == len(set(ids)) == 8
    tiers = [p.tier for p in plan]
    assert tiers == sorted(tiers)
    by_id = {p.run_id: p for p in plan}
    # the main ABANet row is tier 0 and lists every table asking for it
    assert by_id[main.run_id].tier == batch_runner.TIER_MAIN
    assert set(by_id[main.run_id].tables) == {"table2", "table5"}
    assert by_id[base.with_model("basnet").run_id].tier == batch_runner.TIER_MAIN
    assert by_id[main.with_model(attention=False).run_id].tier == batch_runner.TIER_ABLATION
    assert by_id[base.with_model("smp:Unet:resnet34").run_id].tier == batch_runner.TIER_COMPARISON
    assert by_id[base.with_model("grabcut").run_id].tier == batch_runner.TIER_TRIALS
    # remaining folds: the main model's fold 1 before the comparison's fold 1
    rest = [p.config for p in plan if p.tier == batch_runner.TIER_OTHER_FOLDS]
    assert [c.model for c in rest] == ["abanet", "smp:Unet:resnet34"]
    # a row the claims ledger compares gets its other folds before every other row's (issue 15)
    claimed = batch_runner.priority_plan(["table5", "table4", "table2"], scale, by_table=by_table,
                                         claim_ids={base.with_model("smp:Unet:resnet34").replace(fold=1).run_id})
    later = [(p.tier, p.config.model) for p in claimed if p.config.fold == 1 and p.config.seed == 0]
    assert later == [(batch_runner.TIER_CLAIM_FOLDS, "smp:Unet:resnet34"), (batch_runner.TIER_OTHER_FOLDS, "abanet")]


def test_lock_is_exclusive_and_estimate_uses_finished_runs(tmp_path):
    assert batch_runner.acquire_lock(tmp_path, "run-a", worker=0)
    assert not batch_runner.acquire_lock(tmp_path, "run-a", worker=1)
    assert batch_runner.acquire_lock(tmp_path, "run-b", worker=1)
    cfg = RunConfig(model="abanet", image_size=64)
    other = RunConfig(model="basnet", image_size=64)
    assert batch_runner.estimate_seconds(cfg, {}) == 0.0
    statuses = {
        "x": {"status": "done", "seconds": 10.0, "duration_key": batch_runner.duration_key(cfg),
              "model": "abanet", "image_size": 64},
        "y": {"status": "done", "seconds": 30.0, "duration_key": batch_runner.duration_key(other),
              "model": "basnet", "image_size": 64},
        "z": {"status": "failed", "seconds": 99.0, "model": "abanet", "image_size": 64},
    }
    assert batch_runner.estimate_seconds(cfg, statuses) == 10.0
    assert batch_runner.estimate_seconds(RunConfig(model="unet_plain"), statuses) == 20.0
    # a committed record's seconds price a configuration from a sitting's first minute
    priors = {batch_runner.duration_key(other): 500.0}
    assert batch_runner.estimate_seconds(other, {}) == 0.0  # before: try it, even with 60 s left
    assert batch_runner.estimate_seconds(other, {}, priors) == 500.0
    assert batch_runner.estimate_seconds(other, statuses, priors) == 30.0  # this sitting's own first
    # another input size of a finished model: scaled by the pixel count, not the median of all runs
    # (a 128x128 ABANet was priced like a 32x32 one and started 4 minutes before the deadline)
    big = RunConfig(model="abanet", image_size=128)
    assert batch_runner.estimate_seconds(big, statuses) == 10.0 * (128 / 64) ** 2
    # at a sitting's start, the same configuration's records at other sizes price it the same way
    # (before: 0 s, "try it", for a 128x128 ABANet whose only 128x128 record was trained on a GPU)
    sized_priors = {batch_runner.duration_key(cfg.replace(image_size=32)): 300.0,
                    batch_runner.duration_key(cfg): 580.0,
                    batch_runner.duration_key(other.replace(image_size=32)): 9999.0}  # another model: not used
    assert batch_runner.estimate_seconds(big, {}, sized_priors) == 580.0 * 4  # the nearest size, 64x64
    assert batch_runner.estimate_seconds(big, {}, {batch_runner.duration_key(big): 975.0}) == 975.0


def test_priors_come_from_committed_cpu_records_on_the_workers_threads(tmp_results):
    import json

    def record(cfg, threads, device="cpu", epochs=(100.0, 110.0), test=20.0):
        folder = tmp_results / "results" / "runs" / cfg.run_id
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"eval_seconds": test, "provenance": {
            "device": {"device": device, "torch_threads": threads, "cpu_count": 2}}}))
        (folder / "history.csv").write_text("epoch,seconds\n" + "".join(f"{i},{s}\n" for i, s in enumerate(epochs)))

    one, two, gpu = (RunConfig(model="abanet", image_size=64, fold=f) for f in (0, 1, 2))
    record(one, threads=1)
    record(two, threads=1, epochs=(150.0, 150.0))  # same configuration, slower fold: the max counts
    record(gpu, threads=1, device="cuda")
    priors = batch_runner.recorded_priors([one, two, gpu], threads=1)
    assert priors == {batch_runner.duration_key(one): 320.0}
    # no record on the workers' thread count: the records on other counts price it (before: {})
    assert batch_runner.recorded_priors([one, two], threads=2) == {batch_runner.duration_key(one): 320.0}
    three = RunConfig(model="abanet", image_size=64, fold=3)
    record(three, threads=2, epochs=(50.0,))  # a record on the workers' own thread count wins
    assert batch_runner.recorded_priors([one, two, three], threads=2) == {batch_runner.duration_key(one): 70.0}


# ---------------------------------------------------------------------------------------
# The whole command line with worker processes (stand-in runner)
# ---------------------------------------------------------------------------------------
def _runner_env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(ABANET_RESULTS=str(tmp_path / "results"), ABANET_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(TESTS_DIR), str(ROOT), env.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1", **extra)
    return env


def test_batch_runner_cli_runs_packs_and_merges(tmp_path, monkeypatch):
    smoke = get_scale("smoke")
    expected = batch_runner.priority_plan(["table5", "table7"], smoke, rows="all")
    sizes = sorted({p.config.image_size for p in expected})
    assert len(expected) >= 3 and len(sizes) >= 2
    fail_size = [s for s in sizes if s != smoke.image_size][0]
    out = tmp_path / "out"
    env = _runner_env(tmp_path, **{FAIL_SIZE_ENV: str(fail_size)})
    cmd = [sys.executable, "-m", "abanet_lib.ops.batch_runner", "--scale", "smoke",
           "--tables", "table5,table7", "--rows", "all", "--workers", "2", "--budget-s", "50",
           "--out", str(out),
           "--runner", "test_gpu_script:fake_run_or_load", "--no-prepare", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    summary = json.loads((out / "summary.json").read_text())
    failed = {f["run_id"]: f for f in summary["failed"]}
    done = {d["run_id"]: d for d in summary["done"]}
    want_fail = {p.run_id for p in expected if p.config.image_size == fail_size}
    assert set(failed) == want_fail
    assert all("planned failure" in f["error"] for f in failed.values())
    assert set(done) == {p.run_id for p in expected} - want_fail
    assert summary["interrupted"] == [] and summary["not_started"] == [] and summary["errors"] == []
    assert sorted(summary["packed"]) == sorted(done)
    assert {d["worker"] for d in done.values()} | {f["worker"] for f in failed.values()} == {0, 1}
    for run_id, rec in done.items():
        cfg = next(p.config for p in expected if p.run_id == run_id)
        assert rec["metrics"]["iou"] == pytest.approx(0.25 + cfg.image_size / 1000)
    log = (out / "log.txt").read_text()
    assert "worker-0.log" in log and "worker-1.log" in log and "planned failure" in log

    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    for run_id in done:
        assert f"{run_id}/metrics.json" in names and f"{run_id}/config.json" in names
    assert not any(n.split("/")[0] in want_fail for n in names)

    # Merge round trip into a fresh results folder; then again (keeps complete runs);
    # an incomplete local folder is replaced.
    other = tmp_path / "other_runs"
    result = batch_runner.merge_archive(out / "runs.tar.gz", other)
    assert sorted(result["merged"]) == sorted(done)
    first = sorted(done)[0]
    src_metrics = json.loads((tmp_path / "results" / "runs" / first / "metrics.json").read_text())
    assert json.loads((other / first / "metrics.json").read_text()) == src_metrics
    (other / first / "metrics.json").write_text('{"local": 1}')
    second = sorted(done)[-1]
    (other / second / "metrics.json").unlink()
    again = subprocess.run([sys.executable, "-m", "abanet_lib.ops.batch_runner", "merge",
                            str(out / "runs.tar.gz"), "--runs-dir", str(other)],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["merged"] == 1
    assert json.loads((other / first / "metrics.json").read_text()) == {"local": 1}
    assert (other / second / "metrics.json").is_file()

    # A second session (in this process) finds the first run complete and runs nothing.
    for key in ("ABANET_RESULTS", "ABANET_CACHE"):
        monkeypatch.setenv(key, env[key])
    out2 = tmp_path / "out2"
    code = batch_runner.main(["--scale", "smoke", "--tables", "table5,table7", "--rows", "all", "--out", str(out2),
                              "--no-prepare", "--max-runs", "1"])
    assert code == 0
    summary2 = json.loads((out2 / "summary.json").read_text())
    assert summary2["skipped_complete"] == [expected[0].run_id] and summary2["done"] == []


def test_budget_stops_starting_runs(tmp_path, monkeypatch):
    """With a budget shorter than one run, the busy worker is stopped and the archive written."""
    monkeypatch.setenv("ABANET_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ABANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    base = get_scale("smoke").base_config()
    plan = [batch_runner.PlannedRun(base.replace(seed=s, image_size=4096), ("table5",), 1) for s in range(3)]
    summary = batch_runner.run_session(["table5"], "smoke", budget_s=1.0, workers=1, out=tmp_path / "o",
                                       plan=plan, runner="test_gpu_script:slow_run", prepare=False,
                                       threads=1, pack_reserve_s=0.0)
    assert summary["done"] == [] and summary["packed"] == []
    assert len(summary["interrupted"]) + len(summary["not_started"]) == 3
    assert (tmp_path / "o" / "runs.tar.gz").is_file()
    with tarfile.open(tmp_path / "o" / "runs.tar.gz") as tar:
        assert tar.getnames() == []


def slow_run(cfg):  # used by test_budget_stops_starting_runs in a worker process
    time.sleep(60)


def test_sigterm_to_the_runner_stops_its_workers(tmp_path):
    """Killing the batch runner must not leave a worker training on (it would race the next one)."""
    import signal

    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "abanet_lib.ops.batch_runner", "--scale", "smoke", "--tables", "table5",
           "--max-runs", "1", "--budget-s", "300", "--out", str(tmp_path / "out"), "--work-dir", str(work),
           "--runner", "test_gpu_script:slow_run", "--no-prepare", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=_runner_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        locks = []
        while time.time() < deadline and not locks:
            locks = list((work / "locks").glob("*")) if (work / "locks").is_dir() else []
            time.sleep(0.2)
        assert locks, "the worker never started its run"
        worker_pid = int(locks[0].read_text().split()[0])  # core.io lock files start with the pid
        os.kill(worker_pid, 0)  # alive while it runs
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    for _ in range(50):
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail(f"worker {worker_pid} outlived the runner")
    assert (tmp_path / "out" / "summary.json").is_file()  # the parent still wrote its summary


def test_merge_refuses_unsafe_members(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../escape/metrics.json")
        tar.add(payload, arcname="good-run/metrics.json")
        tar.add(payload, arcname="half-run/config.json")
    result = batch_runner.merge_archive(evil, tmp_path / "runs")
    assert result["refused"] == ["../escape/metrics.json"]
    assert result["merged"] == ["good-run"] and result["incomplete_in_archive"] == ["half-run"]
    assert not (tmp_path / "escape").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        batch_runner.merge_archive(tmp_path / "missing.tar.gz", tmp_path / "runs")


# ---------------------------------------------------------------------------------------
# Bundle: wheels list and the downsized data copy
# ---------------------------------------------------------------------------------------
def test_imported_modules_and_missing_distributions(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("import os, numpy as np\nfrom torch import nn\nfrom . import b\n"
                              "import importlib\nimportlib.import_module('segmentation_models_pytorch')\n")
    (pkg / "b.py").write_text("def f(:\n")  # a file being edited: skipped, not fatal
    assert gpu_bundle.imported_top_modules(pkg) == {"os", "numpy", "torch", "importlib",
                                                   "segmentation_models_pytorch"}
    missing = gpu_bundle.missing_distributions(pkg)
    # smp is not on the GPU image, numpy/torch are; versions pinned to the ones installed here
    from importlib import metadata

    assert missing == {"segmentation-models-pytorch": metadata.version("segmentation-models-pytorch")}
    # our real package: whatever it needs beyond the GPU image is pure python here
    for dist in gpu_bundle.missing_distributions():
        assert dist not in gpu_bundle.GPU_PREINSTALLED


def test_derive_dataset_resizes_images_and_keeps_labels(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for i in range(3):
        (src / "training" / "CWM" / "images").mkdir(parents=True, exist_ok=True)
        (src / "training" / "CWM" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            src / "training" / "CWM" / "images" / f"{i:05d}.jpg", quality=95)
        labels = np.zeros((64, 64), np.uint8)
        labels[16:48, 8:56] = 1
        labels[32:48, 16:48] = 2
        Image.fromarray(labels).save(src / "training" / "CWM" / "masks" / f"{i:05d}_gt.png")
    (src / "SHA256SUMS").write_text("x  ./y\n")
    dst = tmp_path / "dst"
    manifest = gpu_bundle.derive_dataset(src, dst, max_side=16, workers=1)
    assert manifest["n_files"] == 6 and manifest["max_side"] == 16
    mask = np.array(Image.open(dst / "training/CWM/masks/00000_gt.png"))
    assert mask.shape == (16, 16) and set(np.unique(mask)) == {0, 1, 2}
    assert (mask == 2).sum() == 4 * 8  # 16x32 px region at 1/4 scale, nearest keeps it exact
    image = Image.open(dst / "training/CWM/images/00000.jpg")
    assert image.size == (16, 16) and image.format == "JPEG"
    sums = dict(line.split("  ./")[::-1] for line in (dst / "SHA256SUMS").read_text().splitlines())
    assert len(sums) == 6
    assert sums["training/CWM/images/00001.jpg"] == gpu_bundle.sha256_file(dst / "training/CWM/images/00001.jpg")
    assert json.loads((dst / "DERIVED.json").read_text())["source_checksums_sha256"] == \
        gpu_bundle.sha256_file(src / "SHA256SUMS")


def test_copied_mfsd_sample_passes_the_data_layer_checks(tmp_path, data_mirror, monkeypatch):
    """The bundle copies mfsd-sample unchanged: fetch()/list_samples() accept it offline."""
    monkeypatch.setenv("ABANET_CACHE", str(tmp_path / "cache"))
    dst = tmp_path / "data" / "mfsd-sample"
    gpu_bundle.derive_dataset(data_mirror / "mfsd-sample", dst, max_side=None)
    assert (dst / "SHA256SUMS").read_bytes() == (data_mirror / "mfsd-sample" / "SHA256SUMS").read_bytes()
    from abanet_lib.data import list_samples

    monkeypatch.setenv("ABANET_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ABANET_DATA_MIRROR", str(tmp_path / "no-mirror"))
    refs = list_samples("mfsd-sample")
    assert len(refs) == 220 and Path(refs[0].image_path).is_relative_to(dst)


# ---------------------------------------------------------------------------------------
# The shell script
# ---------------------------------------------------------------------------------------
def test_gpu_run_script_is_valid_bash_and_calls_the_runner():
    script = ROOT / "scripts" / "gpu_run.sh"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert "-m abanet_lib.ops.batch_runner run" in text
    assert "--target /tmp/site .whl/*.whl" in text and "--no-index" in text
    assert "ABANET_DATA=$ROOT/.gpu_bundle/data" in text and "ABANET_CACHE" in text
    assert '--out "$OUT"' in text and "BUDGET_S:-480" in text
    assert os.access(script, os.X_OK)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ABANET_TEST_REAL_BATCH") != "1",
                    reason="trains real smoke runs (minutes on 2 cores); set ABANET_TEST_REAL_BATCH=1")
def test_batch_runner_real_smoke_runs(tmp_path, data_mirror):
    out = tmp_path / "out"
    env = _runner_env(tmp_path, ABANET_DATA_MIRROR=str(data_mirror), ABANET_DATA=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-m", "abanet_lib.ops.batch_runner", "--scale", "smoke",
                           "--tables", "table5", "--workers", "2", "--budget-s", "900", "--out", str(out),
                           "--max-runs", "2"], env=env, capture_output=True, text=True, timeout=1000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["done"]) == 2, summary
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    for rec in summary["done"]:
        metrics_name = f"{rec['run_id']}/metrics.json"
        assert metrics_name in names
        assert 0.0 <= rec["metrics"]["iou"] <= 1.0
