"""Metrics against references: sklearn, pysodmetrics, Boundary IoU's reference code, hand values."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt, gaussian_filter
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, precision_score, recall_score

from abanet_lib.engine import metrics as M

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import py_sod_metrics as sod


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.py


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------
def _blobs(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random probability maps (float64) and binary ground truths (bool), (n, size, size)."""
    rng = np.random.default_rng(seed)
    gt = np.stack([gaussian_filter(rng.standard_normal((size, size)), 3) > 0.05 for _ in range(n)])
    noise = np.stack([gaussian_filter(rng.standard_normal((size, size)), 2) for _ in range(n)])
    prob = np.clip(0.6 * gt + 0.2 + 2.0 * noise, 0, 1)
    return prob, gt


def _edge_cases(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Empty/full predictions and ground truths in every combination."""
    z, o = np.zeros((size, size)), np.ones((size, size))
    half = np.zeros((size, size))
    half[:, : size // 2] = 1
    pairs = [(z, z), (o, z), (z, o), (o, o), (half, z), (z, half), (half * 0.9, o), (o * 0.7, half)]
    prob = np.stack([p for p, _ in pairs])
    gt = np.stack([g for _, g in pairs]).astype(bool)
    return prob, gt


def _zero_division(y_true, y_pred) -> int:
    """The module's rule: a 0/0 is 1 when both maps are empty, else 0."""
    return 1 if not y_true.any() and not y_pred.any() else 0


SKLEARN = {
    "iou": jaccard_score,
    "f1": f1_score,
    "precision": precision_score,
    "recall": recall_score,
}


def _sklearn_confusion(prob: np.ndarray, gt: np.ndarray, threshold=0.5) -> dict[str, np.ndarray]:
    out = {k: [] for k in (*SKLEARN, "accuracy")}
    for p, g in zip(prob, gt):
        y_true, y_pred = g.ravel().astype(int), (p >= threshold).ravel().astype(int)
        for key, fn in SKLEARN.items():
            zd = _zero_division(y_true, y_pred)
            if key == "precision":  # no positive prediction: 1 only if nothing was to be found
                zd = int(not y_true.any())
            if key == "recall":  # empty gt: 1 only if nothing was predicted
                zd = int(not y_pred.any())
            out[key].append(fn(y_true, y_pred, zero_division=zd))
        out["accuracy"].append(accuracy_score(y_true, y_pred))
    return {k: np.array(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------
# Confusion metrics
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("maker", [lambda: _blobs(6, 32, 0), _edge_cases])
def test_confusion_metrics_match_sklearn_per_image(maker):
    prob, gt = maker()
    ours = M.confusion_metrics(torch.from_numpy(prob), torch.from_numpy(gt))
    reference = _sklearn_confusion(prob, gt)
    for key in M.CONFUSION_KEYS:
        np.testing.assert_allclose(ours[key].numpy(), reference[key], atol=1e-12, err_msg=key)


def test_edge_case_values_are_the_documented_ones():
    prob, gt = _edge_cases()
    m = M.confusion_metrics(prob, gt)
    # (pred, gt) = (empty, empty), (full, empty), (empty, full)
    assert m["iou"][:3].tolist() == [1.0, 0.0, 0.0]
    assert m["precision"][:3].tolist() == [1.0, 0.0, 0.0]
    assert m["recall"][:3].tolist() == [1.0, 0.0, 0.0]
    assert m["f1"][:3].tolist() == [1.0, 0.0, 0.0]


def test_mask_iou_of_one_mask_equals_confusion_iou_and_keeps_the_empty_rule():
    prob, gt = _blobs(4, 32, 2)
    batch = M.confusion_metrics(torch.from_numpy(prob), torch.from_numpy(gt))["iou"].numpy()
    single = [M.mask_iou(p >= 0.5, g) for p, g in zip(prob, gt)]
    np.testing.assert_allclose(single, batch, atol=1e-12)
    empty = np.zeros((3, 3), bool)
    assert M.mask_iou(empty, empty) == 1.0 and M.mask_iou(~empty, empty) == 0.0  # as the photo demo needs
    with pytest.raises(ValueError, match=r"shape \(3, 3\) != ground truth shape \(2, 2\)"):
        M.mask_iou(empty, np.zeros((2, 2), bool))


def test_pooled_metrics_match_sklearn_on_all_pixels():
    prob, gt = _blobs(5, 32, 1)
    acc = M.MetricAccumulator(full=False)
    acc.update(prob[:3], gt[:3])
    acc.update(prob[3:], gt[3:])
    summary = acc.summary()
    y_true, y_pred = gt.ravel().astype(int), (prob >= 0.5).ravel().astype(int)
    assert summary["pooled_iou"] == pytest.approx(jaccard_score(y_true, y_pred), abs=1e-12)
    assert summary["pooled_f1"] == pytest.approx(f1_score(y_true, y_pred), abs=1e-12)
    assert summary["pooled_precision"] == pytest.approx(precision_score(y_true, y_pred), abs=1e-12)
    assert summary["pooled_recall"] == pytest.approx(recall_score(y_true, y_pred), abs=1e-12)
    assert summary["pooled_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    per_image = _sklearn_confusion(prob, gt)
    for key in M.CONFUSION_KEYS:
        assert summary[key] == pytest.approx(per_image[key].mean(), abs=1e-12)
    assert summary["mae"] == pytest.approx(np.abs(prob - gt).mean(), abs=1e-12)
    assert set(summary) == {"n_images", "mae", *M.CONFUSION_KEYS, *(f"pooled_{k}" for k in M.CONFUSION_KEYS)}


# ---------------------------------------------------------------------------------------
# Salient-object metrics against pysodmetrics
# ---------------------------------------------------------------------------------------
def _pysod(prob: np.ndarray, gt: np.ndarray, normalize: bool) -> dict[str, float]:
    """pysodmetrics' data-set results for maps (float64 in [0,1] + bool, or uint8 pairs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, em, sm, mae = sod.Fmeasure(), sod.Emeasure(), sod.Smeasure(), sod.MAE()
    for p, g in zip(prob, gt):
        for metric in (fm, em, sm, mae):
            metric.step(p, g, normalize=normalize)
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {
        "maxf": f["curve"].max(), "meanf": f["curve"].mean(), "adpf": f["adp"],
        "maxe": e["curve"].max(), "meane": e["curve"].mean(), "adpe": e["adp"],
        "s_measure": sm.get_results()["sm"], "mae": mae.get_results()["mae"],
        "f_curve": f["curve"], "e_curve": e["curve"],
        "s_per_image": np.array(sm.sms),
    }


SOD_KEYS = ("maxf", "meanf", "adpf", "maxe", "meane", "adpe", "s_measure", "mae")


def _check_against_pysod(prob64: np.ndarray, gt: np.ndarray, reference: dict, atol: float) -> None:
    acc = M.MetricAccumulator(chunk_size=3)  # several chunks
    acc.update(torch.from_numpy(prob64), torch.from_numpy(gt))
    summary = acc.summary()
    for key in SOD_KEYS:
        assert summary[key] == pytest.approx(reference[key], abs=atol), key
    # curves: ours ascending thresholds, pysodmetrics descending
    np.testing.assert_allclose(acc.fbeta_curve(), reference["f_curve"][::-1], atol=atol)
    np.testing.assert_allclose(acc.e_curve(), reference["e_curve"][::-1], atol=atol)
    np.testing.assert_allclose(acc.per_image()["s_measure"], reference["s_per_image"], atol=atol)


def test_sod_metrics_match_pysodmetrics_on_random_maps():
    prob, gt = _blobs(6, 40, 2)
    prob[0] = np.clip(prob[0], 0.3, 1)  # a map without low values
    eprob, egt = _edge_cases(40)
    prob, gt = np.concatenate([prob, eprob[[0, 1, 2, 3]]]), np.concatenate([gt, egt[[0, 1, 2, 3]]])
    # with normalize=False pysodmetrics takes float maps in [0, 1] as they are
    _check_against_pysod(prob, gt, _pysod(prob, gt, normalize=False), atol=1e-10)


def test_sod_metrics_match_pysodmetrics_on_real_masks(data_mirror):
    from PIL import Image

    paths = sorted((data_mirror / "mfsd-sample" / "mask").glob("*.jpg"))[:4]
    assert paths, "mfsd-sample masks missing from the mirror"
    gt = np.stack([np.asarray(Image.open(p).convert("L")) > 127 for p in paths])
    rng = np.random.default_rng(3)
    blurred = np.stack([gaussian_filter(g.astype(float), 4) for g in gt])
    shifted = np.roll(blurred, shift=3, axis=2) * 0.9 + 0.1 * rng.random(gt.shape)
    # pysodmetrics' default path: uint8 predictions (min-max normalised) and uint8 gts > 128
    pred_u8 = np.clip(np.round(shifted * 255), 0, 255).astype(np.uint8)
    gt_u8 = gt.astype(np.uint8) * 255
    reference = _pysod(pred_u8, gt_u8, normalize=True)
    prob64 = np.stack([(p / 255 - (p / 255).min()) / ((p / 255).max() - (p / 255).min()) for p in pred_u8])
    _check_against_pysod(prob64, gt, reference, atol=1e-10)
    assert 0.5 < reference["maxf"] < 1.0  # a meaningful, imperfect prediction


# ---------------------------------------------------------------------------------------
# Boundary metrics
# ---------------------------------------------------------------------------------------
def _square(size=64, top=10, left=10, side=20) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[top:top + side, left:left + side] = True
    return m


def _brute_boundary_f(pred: np.ndarray, gt: np.ndarray, tol: float) -> float:
    """Independent: boundary = fg pixels with a 8-neighbour in bg (edge replicated), EDT matching."""
    def boundary(m):
        padded = np.pad(m, 1, mode="edge")
        h, w = m.shape
        nb = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        return m & ~np.logical_and.reduce(nb)

    bp, bg = boundary(pred), boundary(gt)
    p = (distance_transform_edt(~bg)[bp] <= tol).mean()
    r = (distance_transform_edt(~bp)[bg] <= tol).mean()
    return 2 * p * r / (p + r)


def _cheng_boundary_iou(gt: np.ndarray, dt: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU reference code of Cheng et al. (2021), with OpenCV."""
    import cv2

    def mask_to_boundary(mask):
        h, w = mask.shape
        dilation = max(1, int(round(dilation_ratio * np.sqrt(h**2 + w**2))))
        new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(new_mask, np.ones((3, 3), dtype=np.uint8), iterations=dilation)
        return mask - eroded[1:h + 1, 1:w + 1]

    gb, db = mask_to_boundary(gt.astype(np.uint8)), mask_to_boundary(dt.astype(np.uint8))
    return ((gb * db) > 0).sum() / ((gb + db) > 0).sum()


def test_boundary_metrics_identical_masks_are_one():
    masks = np.stack([_square(), _square(top=0, left=30, side=34)])
    prob = masks.astype(np.float32)
    assert M.boundary_f(prob, masks).tolist() == [1.0, 1.0]
    assert M.boundary_iou(prob, masks).tolist() == [1.0, 1.0]


def test_boundary_f_shifted_square_known_value():
    gt, pred = _square(), _square(left=13)  # 20x20 square shifted right by 3 px
    # gt contour: 76 px; with a 2 px tolerance the left column (18 px) and 14 px of the right
    # column stay unmatched, as does one corner pixel per row: 42 matched, same for pred.
    value = M.boundary_f(pred[None].astype(np.float32), gt[None], tolerance=2).item()
    assert value == pytest.approx(42 / 76, abs=1e-12)
    assert value == pytest.approx(_brute_boundary_f(pred, gt, 2), abs=1e-12)
    assert M.boundary_f(pred[None].astype(np.float32), gt[None], tolerance=3).item() == pytest.approx(1.0)


def test_boundary_f_matches_brute_force_on_blobs():
    prob, gt = _blobs(4, 48, 4)
    ours = M.boundary_f(prob, gt, tolerance=2).numpy()
    reference = [_brute_boundary_f(p >= 0.5, g, 2) for p, g in zip(prob, gt)]
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_boundary_iou_matches_reference_code():
    gt, pred = _square(), _square(left=13)
    assert M.boundary_dilation(64, 64) == 2
    assert M.boundary_iou(pred[None].astype(np.float32), gt[None]).item() == pytest.approx(
        _cheng_boundary_iou(gt, pred), abs=1e-12)
    prob, gts = _blobs(4, 48, 5)
    gts[0, :, :6] = True  # a mask touching the image edge
    ours = M.boundary_iou(prob, gts).numpy()
    reference = [_cheng_boundary_iou(g, p >= 0.5) for p, g in zip(prob, gts)]
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_boundary_metrics_on_empty_masks():
    z = np.zeros((2, 16, 16), dtype=bool)
    one = z.copy()
    one[1, 4:10, 4:10] = True
    prob = z.astype(np.float32)
    assert M.boundary_f(prob, one).tolist() == [1.0, 0.0]
    assert M.boundary_iou(prob, one).tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------------------
# Accumulator and input validation
# ---------------------------------------------------------------------------------------
def test_accumulator_batches_single_maps_names_and_keys():
    prob, gt = _blobs(4, 32, 6)
    whole = M.MetricAccumulator()
    whole.update(torch.from_numpy(prob).float()[:, None], torch.from_numpy(gt)[:, None])
    parts = M.MetricAccumulator()
    parts.update(prob[:3], gt[:3], names=["a", "b", "c"])
    parts.update(prob[3], gt[3], names="d")
    df = parts.per_image()
    assert df["name"].tolist() == ["a", "b", "c", "d"]
    assert whole.per_image()["name"].tolist() == ["img00000", "img00001", "img00002", "img00003"]
    expected_columns = ["name", "tp", "fp", "fn", "tn", *M.CONFUSION_KEYS, "mae", "maxf", "meanf", "adpf",
                        "s_measure", "maxe", "meane", "adpe", "boundary_f", "boundary_iou"]
    assert list(df.columns) == expected_columns
    a, b = whole.summary(), parts.summary()
    assert set(a) == {"n_images", *M.CONFUSION_KEYS, *(f"pooled_{k}" for k in M.CONFUSION_KEYS), "mae", "maxf",
                      "meanf", "adpf", "s_measure", "maxe", "meane", "adpe", "boundary_f", "boundary_iou"}
    for key in a:  # float32 vs float64 input: same quantised thresholds, tiny MAE difference
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert b["boundary_iou"] == pytest.approx(df["boundary_iou"].mean())
    assert len(parts) == 4


def test_inputs_are_validated():
    prob, gt = _blobs(1, 16, 7)
    with pytest.raises(ValueError, match="logits"):
        M.confusion_metrics(prob * 5 - 2, gt)
    with pytest.raises(ValueError, match="binarise"):
        M.mae(prob, np.full(prob.shape, 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="equal shape"):
        M.mae(prob[:, :8], gt)
    with pytest.raises(ValueError, match="names"):
        M.MetricAccumulator().update(prob, gt, names=["a", "b"])
    with pytest.raises(ValueError, match="no images"):
        M.MetricAccumulator().summary()
