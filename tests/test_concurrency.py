import pytest
import torch

from abanet_lib.ops.concurrency import CONTEXT_BYTES, measure_peak_bytes, workers_per_device


def test_workers_fill_the_device_up_to_the_reserve():
    # 80 GB * 0.85 = 68 GB usable; (3 GB + context) per worker
    assert workers_per_device([2e9, 3e9], 80e9) == int(68e9 // (3e9 + CONTEXT_BYTES))
    assert workers_per_device([2e9], 80e9, max_workers=4) == 4


def test_a_run_larger_than_the_device_still_gets_one_worker():
    assert workers_per_device([200e9], 80e9) == 1


@pytest.mark.parametrize("bad, match", [([], "empty"), ([float("nan")], "finite"), ([-1.0], "finite")])
def test_bad_measurements_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        workers_per_device(bad, 80e9)


def test_no_memory_statistics_on_cpu():
    assert measure_peak_bytes(lambda: None, "cpu") is None


def test_probe_step_trains_the_config_once_and_cpu_plans_one_worker_per_core(monkeypatch):
    import torch

    from abanet_lib.core.config import RunConfig
    from abanet_lib.ops import concurrency
    from abanet_lib.ops.concurrency import plan_workers, probe_step

    cfg = RunConfig(model="unet_plain", model_kwargs=(("base_channels", 4),), image_size=32, batch_size=2,
                    precision="fp32", device="cpu", channels_last=False)
    torch.manual_seed(0)
    step = probe_step(cfg, "cpu")
    model = step.model
    before = [p.detach().clone() for p in model.parameters()]
    step()  # one real optimizer step: the weights move
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # CPU: one single-threaded worker per core (was 1 worker whatever the cores), capped
    monkeypatch.setattr(concurrency, "cpu_cores", lambda: 2)
    assert plan_workers([cfg, cfg.replace(fold=1)], "cpu") == 2
    assert plan_workers([cfg], "cpu", max_workers=1) == 1
    monkeypatch.setattr(concurrency, "cpu_cores", lambda: 16)
    assert plan_workers([cfg], "cpu", max_workers=4) == 4


def test_batch_runner_refuses_a_bad_worker_count(capsys):
    from abanet_lib.ops import batch_runner

    assert batch_runner.main(["run", "--scale", "smoke", "--workers", "many", "--max-runs", "1"]) == 2
    assert "--workers many: expected a positive integer or auto" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--scale", "huge"], "--scale: unknown scale 'huge'"),
    (["--tables", "table99"], "--tables: unknown table(s) ['table99']"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),
    (["--budget-s", "-5"], "--budget-s -5.0: expected a positive number of seconds"),
    (["--budget-s", "nan"], "--budget-s nan: expected a positive number of seconds"),
    (["--threads", "-1"], "--threads -1: expected a positive integer"),
    (["--max-runs", "0"], "--max-runs 0: expected a positive integer"),
])
def test_batch_runner_refuses_bad_options_in_one_line_before_any_run(argv, message, capsys, monkeypatch):
    # Before: --scale/--tables raised a traceback, and --device tpu, --threads -1 or --budget-s -5 were accepted
    # (the workers then failed run by run, or --list printed a plan).
    from abanet_lib.ops import batch_runner

    monkeypatch.setattr(batch_runner, "run_session", lambda *a, **k: pytest.fail("a run session started"))
    assert batch_runner.main(["run", "--scale", "smoke", "--list", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_batch_runner_refuses_cuda_without_cuda_before_any_run(capsys, monkeypatch):
    from abanet_lib.ops import batch_runner

    monkeypatch.setattr(batch_runner, "run_session", lambda *a, **k: pytest.fail("a run session started"))
    assert batch_runner.main(["run", "--scale", "smoke", "--workers", "auto", "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("error: --device: device 'cuda' requested but CUDA is not available; "
                                       "use 'cpu' or 'auto'\n")
