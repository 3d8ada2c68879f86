"""Losses: known values, references (pytorch-msssim, numpy), edge cases and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from abanet_lib.engine import losses as L
from abanet_lib.core.config import RunConfig


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.py


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_pair(n=2, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, size, size, generator=g) * 2
    target = (torch.rand(n, 1, size, size, generator=g) > 0.6).float()
    return logits, target


# ---------------------------------------------------------------------------------------
# focal
# ---------------------------------------------------------------------------------------
def test_focal_known_values():
    x = np.array([0.0, 2.0, -1.0, 3.0, -4.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    p = _sigmoid(x)
    alpha, gamma = 0.3, 2.0
    expected = np.where(y == 1, -alpha * (1 - p) ** gamma * np.log(p),
                        -(1 - alpha) * p**gamma * np.log(1 - p)).mean()
    got = L.focal_loss(torch.tensor(x).view(1, 1, 2, 3).float(), torch.tensor(y).view(1, 1, 2, 3).float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # x = 0, y = 1 alone: 0.3 * 0.25 * log 2
    one = L.focal_loss(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert one.item() == pytest.approx(0.3 * 0.25 * np.log(2), rel=1e-6)


def test_focal_half_alpha_no_gamma_is_half_bce():
    logits, target = _random_pair()
    focal = L.focal_loss(logits, target, alpha=0.5, gamma=0.0)
    assert focal.item() == pytest.approx(0.5 * L.bce_loss(logits, target).item(), rel=1e-6)


def test_focal_stable_for_large_logits():
    logits = torch.tensor([[-200.0, 200.0], [200.0, -200.0]]).view(1, 1, 2, 2).requires_grad_()
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    loss = L.focal_loss(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # the two wrong pixels cost alpha*200 and (1-alpha)*200, averaged over 4 pixels
    assert loss.item() == pytest.approx((0.3 * 200 + 0.7 * 200) / 4, rel=1e-5)


# ---------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["valid", "zero"])
def test_ssim_identical_maps_is_one(padding):
    g = torch.Generator().manual_seed(1)
    prob = torch.rand(2, 1, 20, 20, generator=g)
    assert torch.allclose(L.ssim_of_probs(prob, prob, padding), torch.ones(2), atol=1e-5)
    logits = torch.logit(prob)
    assert L.ssim_loss(logits, prob, padding=padding).item() == pytest.approx(0.0, abs=1e-5)


def test_ssim_constant_maps_known_value():
    a, b = 0.2, 0.7
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances are 0: the contrast term is 1
    prob = torch.full((1, 1, 16, 16), a)
    target = torch.full((1, 1, 16, 16), b)
    # float32 E[x^2] - E[x]^2 leaves ~1e-8 of fake variance next to C2 = 9e-4: rel 1e-3
    assert L.ssim_of_probs(prob, target, "valid").item() == pytest.approx(expected, rel=1e-3)
    assert L.ssim_of_probs(prob.double(), target.double(), "zero")[0].item() != pytest.approx(expected, rel=1e-3)
    loss = L.ssim_loss(torch.logit(prob), target, padding="valid")
    assert loss.item() == pytest.approx(1 - expected, rel=1e-3)


def test_ssim_zero_padding_matches_pytorch_msssim_in_interior():
    from pytorch_msssim import ssim

    logits, target = _random_pair(n=3, size=32, seed=2)
    prob = torch.sigmoid(logits)
    zero_map = L.ssim_map(prob, target, "zero")
    valid_map = L.ssim_map(prob, target, "valid")
    assert zero_map.shape == (3, 1, 32, 32) and valid_map.shape == (3, 1, 22, 22)
    # same interior pixels: the window never touches the padding there
    assert torch.allclose(zero_map[..., 5:-5, 5:-5], valid_map, atol=1e-6)
    reference = ssim(prob, target, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    assert torch.allclose(valid_map.flatten(1).mean(1), reference, atol=1e-6)
    assert torch.allclose(L.ssim_of_probs(prob, target, "valid"), reference, atol=1e-7)
    # the border is where they differ
    assert not torch.allclose(L.ssim_of_probs(prob, target, "zero"), reference, atol=1e-3)


# ---------------------------------------------------------------------------------------
# IoU, empty and full masks
# ---------------------------------------------------------------------------------------
def test_iou_loss_known_value():
    logits, target = _random_pair(n=2, size=8, seed=3)
    p = _sigmoid(logits.double().numpy())
    t = target.double().numpy()
    inter = (p * t).reshape(2, -1).sum(1)
    union = (p + t - p * t).reshape(2, -1).sum(1)
    expected = (1 - (inter + 1.0) / (union + 1.0)).mean()
    assert L.iou_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_iou_loss_empty_masks():
    empty = torch.zeros(1, 1, 16, 16)
    assert L.iou_loss(torch.full_like(empty, -100.0), empty).item() == pytest.approx(0.0, abs=1e-6)
    assert L.iou_loss(torch.full_like(empty, 100.0), empty).item() == pytest.approx(1 - 1 / 257, rel=1e-6)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_hybrid_finite_with_gradients_on_empty_and_full_masks(fill, variant):
    target = torch.full((2, 1, 16, 16), fill)
    logits = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4)).requires_grad_()
    loss = L.HybridLoss(("focal", "ssim", "iou", "bce"), variant=variant)(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------
# HybridLoss
# ---------------------------------------------------------------------------------------
def test_hybrid_over_tuple_is_sum_of_elements():
    logits, target = _random_pair(n=2, size=16, seed=5)
    outputs = (logits, logits * 0.5, logits - 1)
    loss = L.HybridLoss()
    total = loss(outputs, target)
    parts = [loss(o, target).item() for o in outputs]
    assert total.item() == pytest.approx(sum(parts), rel=1e-6)
    assert loss(list(outputs), target).item() == pytest.approx(total.item(), rel=1e-6)
    last = loss.last_components
    assert set(last) == {"focal", "ssim", "iou", "total"}
    assert last["total"] == pytest.approx(last["focal"] + last["ssim"] + last["iou"], rel=1e-6)


def test_hybrid_rows_of_table9_and_weights():
    logits, target = _random_pair(n=2, size=16, seed=6)
    focal = L.focal_loss(logits, target).item()
    iou = L.iou_loss(logits, target).item()
    ssim = L.ssim_loss(logits, target).item()
    assert L.HybridLoss(("focal",))(logits, target).item() == pytest.approx(focal, rel=1e-6)
    assert L.HybridLoss(("iou",))(logits, target).item() == pytest.approx(iou, rel=1e-6)
    assert L.HybridLoss(("focal", "iou"))(logits, target).item() == pytest.approx(focal + iou, rel=1e-6)
    assert L.HybridLoss()(logits, target).item() == pytest.approx(focal + ssim + iou, rel=1e-6)
    weighted = L.HybridLoss(("focal", "iou"), weights={"iou": 2.0})(logits, target).item()
    assert weighted == pytest.approx(focal + 2 * iou, rel=1e-6)
    # Figure 7 alpha sweep changes the focal term as eq. (3) says
    f75 = L.HybridLoss(("focal",), alpha=0.75)(logits, target).item()
    assert f75 == pytest.approx(L.focal_loss(logits, target, alpha=0.75).item(), rel=1e-6)


def test_hybrid_runs_in_float32_under_autocast():
    logits, target = _random_pair(n=2, size=16, seed=7)
    half = logits.bfloat16()
    expected = L.HybridLoss()(half.float(), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = L.HybridLoss()(half, target)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_hybrid_rejects_bad_input():
    logits, target = _random_pair(n=1, size=16)
    with pytest.raises(ValueError, match="upsampled"):
        L.HybridLoss()(logits[..., :8, :8], target)
    with pytest.raises(ValueError, match="unknown component"):
        L.HybridLoss(("dice",))
    with pytest.raises(ValueError, match="unknown variant"):
        L.HybridLoss(variant="released")


def test_build_loss_from_config():
    paper = L.build_loss(RunConfig())
    assert paper.components == ("focal", "ssim", "iou") and paper.variant == "paper"
    assert (paper.alpha, paper.gamma, paper.ssim_padding) == (0.3, 2.0, "valid")
    sweep = L.build_loss(RunConfig(focal_alpha=0.75, loss=("focal", "iou")))
    assert sweep.alpha == 0.75 and sweep.components == ("focal", "iou")
    official = L.build_loss(RunConfig(loss_variant="official"))
    assert (official.alpha, official.gamma, official.ssim_padding) == (0.25, 2.0, "zero")
    with pytest.raises(ValueError, match="loss_variant"):
        L.build_loss(RunConfig(loss_variant="other"))


# ---------------------------------------------------------------------------------------
# Official variant against an independent numpy computation
# ---------------------------------------------------------------------------------------
def _numpy_ssim_zero(x, y):
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def blur(a):
        return correlate(a, win, mode="constant", cval=0.0)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()


def test_official_variant_matches_numpy():
    logits, target = _random_pair(n=2, size=14, seed=8)
    target[0, 0, 3, 3:7] = 0.5  # labels neither 0 nor 1: no focal loss there
    outputs = (logits, logits * 0.7)
    loss = L.HybridLoss(variant="official")
    got = loss(outputs, target).item()

    t = target.double().numpy()[:, 0]
    expected = 0.0
    for out in outputs:
        p = _sigmoid(out.double().numpy()[:, 0])  # the released network's output
        q = np.clip(_sigmoid(p), 1e-6, 1 - 1e-6)  # its focal loss applies sigmoid again
        focal = np.where(t == 1, -((1 - q) ** 2) * np.log(q), 0.0)
        focal += np.where(t == 0, -0.25 * q**2 * np.log(1 - _sigmoid(p)), 0.0)
        inter = (p * t).reshape(2, -1).sum(1)
        iou = (1 - inter / (t.reshape(2, -1).sum(1) + p.reshape(2, -1).sum(1) - inter)).mean()
        ssim = np.mean([_numpy_ssim_zero(p[i], t[i]) for i in range(2)])
        expected += focal.mean() + (1 - ssim) + iou
    assert got == pytest.approx(expected, rel=1e-5)
    assert "bce_unused" in loss.last_components
    assert loss.last_components["total"] == pytest.approx(got, rel=1e-6)


def test_official_focal_modulating_factor_is_detached():
    # one positive pixel: d/dp [-(1-q)^2 log q] with (1-q)^2 held constant = -(1-q)^2 (1-q)
    p = torch.tensor([0.3]).view(1, 1, 1, 1).requires_grad_()
    L.official_focal_loss(p, torch.ones(1, 1, 1, 1)).backward()
    q = _sigmoid(0.3)
    assert p.grad.item() == pytest.approx(-((1 - q) ** 3), rel=1e-5)


def test_official_iou_without_epsilon_is_nan_on_empty_masks():
    empty = torch.zeros(1, 1, 8, 8)
    prob = torch.sigmoid(torch.full_like(empty, -200.0))  # underflows to exactly 0
    assert torch.isnan(L.official_iou_loss(prob, empty))
    assert L.official_iou_loss(prob, empty, eps=1.0).item() == pytest.approx(0.0, abs=1e-6)
    # strictly positive prediction on an empty target: 0 / sum(p) -> loss 1, not NaN
    assert L.official_iou_loss(torch.full_like(empty, 0.1), empty).item() == pytest.approx(1.0)
