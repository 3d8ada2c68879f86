"""The speed benchmark's plumbing (tiny input) and the released-step baseline's loss."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_speed")


@pytest.fixture(scope="module")
def released(load_benchmark):
    return load_benchmark("released_step")


def test_released_loss_equals_library_official_loss(released):
    """The plain re-implementation is the released loss: equal to HybridLoss(variant='official')."""
    from abanet_lib.engine.losses import HybridLoss

    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(3, 1, 24, 24, generator=gen) * 3 for _ in range(4)]
    target = (torch.rand(3, 1, 24, 24, generator=gen) > 0.5).float()
    ours = HybridLoss(variant="official")(tuple(logits), target)
    plain = released.released_hybrid_loss([torch.sigmoid(x) for x in logits], target)
    assert plain.item() == pytest.approx(ours.item(), rel=1e-5)
    # a perfect prediction has SSIM 1, IoU 1: only the (squashed) focal term is left
    perfect = released.ReleasedLoss()([target], target)
    focal_only = released.released_focal(target, target)
    assert perfect.item() == pytest.approx(focal_only.item(), abs=1e-5)


def test_quick_benchmark_returns_a_well_formed_result(bench, tmp_path):
    result = bench.run_benchmark("cpu", **bench.QUICK, compile=False, threads=1)
    assert result["device"] == "cpu" and result["batch"] == 2 and result["image_size"] == 32
    assert set(result["contenders"]) == {"released", "ours"}
    for phase in ("train", "infer"):
        released_ips = result[phase]["released"]["img_per_s"]
        for name, row in result[phase].items():
            assert row["n"] == 1 and row["median_s"] > 0
            assert row["img_per_s"] == pytest.approx(2 / row["median_s"])
            assert row["ratio_vs_released"] == pytest.approx(row["img_per_s"] / released_ips)
        assert result[phase]["released"]["ratio_vs_released"] == pytest.approx(1.0)
    assert result["best_train"]["contender"] == "ours"
    assert result["meets_target"]["train"] == (result["best_train"]["ratio"] >= 2.0)
    assert result["machine"]["torch_version"] == torch.__version__
    assert result["torch_threads"] == 1
    json_path, md_path = bench.write_results(result, tmp_path)
    assert json_path.name == "speed_cpu.json" and md_path.name == "speed_cpu.md"
    text = md_path.read_text()
    assert "| released (ABANetOfficial" in text and "Load average" in text
    # share of peak: FLOPs per image = 3 x the eval forward; no peak is listed for a CPU
    ours = result["train"]["ours"]
    assert ours["tflops"] == pytest.approx(ours["img_per_s"] * result["training_flops_per_image"] / 1e12)
    assert result["bf16_peak_tflops"] is None and ours["share_of_bf16_peak"] is None


def test_bf16_peaks_are_matched_by_device_name(bench):
    assert bench.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA GeForce GTX 1080") is None and bench.bf16_peak_tflops(None) is None
    from abanet_lib.models import create_model
    from abanet_lib.models.inspect import count_flops

    assert bench.training_flops_per_image(32) == 3 * count_flops(create_model("abanet"), 32)


def test_steps_return_valid_outputs(bench, released):
    """Both contenders train (finite loss, weights change) and infer maps in [0, 1]."""
    torch.set_num_threads(1)
    images = torch.randn(2, 3, 32, 32)  # batch 2: BatchNorm needs 2 values at the 1x1 bridge
    masks = (torch.rand(2, 1, 32, 32) > 0.5).float()
    ours = bench.OurStep(torch.device("cpu"), precision="fp32")
    first = next(ours.model.parameters())
    before = first.detach().clone()
    loss = ours.train_step(images, masks)
    assert torch.isfinite(loss) and loss.item() > 0
    assert not torch.equal(before, first.detach())
    prob = ours.infer(images)
    assert prob.shape == (2, 1, 32, 32) and 0 <= prob.min() and prob.max() <= 1
    base = released.ReleasedStep(torch.device("cpu"))
    pred = base.infer(images)
    assert pred.shape == (2, 1, 32, 32)
    assert pred.amin(dim=(1, 2, 3)).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert pred.amax(dim=(1, 2, 3)).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
