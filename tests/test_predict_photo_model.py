"""Issue 13: the shipped photo model is predict's default, training crops are predict's crops,
one preprocessing function, and smoke/untrained weights are labelled."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from abanet_lib.app import export, photo_crops, predict
from abanet_lib.paper import photo_model
from abanet_lib.core import paths
from abanet_lib.app import faces as facelib
from abanet_lib.core.config import RunConfig
from abanet_lib.data import SegmentationDataset, SampleRef, transforms
from abanet_lib.models import create_model

SHIPPED = paths.PROJECT_ROOT / "results" / "runs" / predict.SHIPPED_RUN / "shipped"


class FixedDetector:
    """Stand-in detector returning one fixed box (the crop rule under test is the shared one)."""

    name = "fixed-box"

    def __init__(self, box=(300, 320, 700, 760)):
        self.box = box

    def detect(self, image):
        return [facelib.FaceBox(*self.box, 1.0, self.name)]


def _write_photo(folder: Path, size=(480, 640)) -> tuple[SampleRef, np.ndarray, np.ndarray]:
    """A photo with a 'face' and a label-2 'mask' as a maskedfacenet-seg500 sample."""
    rng = np.random.default_rng(3)
    h, w = size
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[150:330, 200:420] = 1
    labels[240:330, 220:400] = 2
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    Image.fromarray(image).save(folder / "images" / "00001.png")
    Image.fromarray(labels).save(folder / "masks" / "00001_gt.png")
    ref = SampleRef(folder / "images" / "00001.png", folder / "masks" / "00001_gt.png", "CWM_00001", "00001",
                    photo_crops.MFN, subset="training", category="CWM")
    return ref, image, labels == 2


# ---------------------------------------------------------------------------------------
# One preprocessing function
# ---------------------------------------------------------------------------------------
def test_evaluate_predict_and_training_share_one_preprocessing_with_unchanged_numerics():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, size=(211, 173, 3), dtype=np.uint8)
    one = transforms.preprocess(crop, 64)
    # the formula evaluate.preprocess used before issue 13 (committed records were made with it)
    resized = np.asarray(Image.fromarray(crop).resize((64, 64), Image.BILINEAR))
    x = torch.from_numpy(np.array(resized, copy=True)).permute(2, 0, 1).float().div_(255.0)
    old = (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.equal(one, old)
    assert torch.equal(transforms.preprocess(crop, 64), one)
    assert torch.equal(predict.Segmenter(torch.nn.Identity(), 64).preprocess([crop])[0], one)
    assert export.IMAGENET_MEAN is transforms.IMAGENET_MEAN and export.IMAGENET_STD is transforms.IMAGENET_STD
    with pytest.raises(ValueError, match="expected an RGB uint8 image"):
        transforms.preprocess(crop.astype(np.float32), 64)


def test_training_crops_are_the_crops_predict_feeds_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("ABANET_CACHE", str(tmp_path / "cache"))
    ref, image, truth = _write_photo(tmp_path / "photos")
    detector = FixedDetector((190, 140, 430, 340))
    built = photo_crops.build_crops([ref], [], 96, detector, margin=0.25)
    assert built.info[photo_crops.MFN] == {"photos": 1, "no_face": [], "crops": 1}

    seen = []

    class Capture(predict.Segmenter):
        def predict_crops(self, crops):
            seen.extend(crops)
            return [np.zeros(c.shape[:2], np.float32) for c in crops]

    result = predict.predict_photo(image, Capture(torch.nn.Identity(), 96), detector, margin=0.25)
    expected_box = facelib.expand_box(detector.detect(image)[0], 0.25, image.shape[:2])
    assert result.faces[0]["crop_box"] == [expected_box.x1, expected_box.y1, expected_box.x2, expected_box.y2]
    # same pixels cut, same resize: the training crop is exactly what predict resizes ...
    assert np.array_equal(seen[0], image[expected_box.y1:expected_box.y2, expected_box.x1:expected_box.x2])
    assert np.array_equal(built.arrays.images[0], transforms.resize_image(seen[0], 96))
    # ... and, normalised without augmentation, exactly what predict feeds the model
    x, mask = SegmentationDataset(built.arrays, augment=False)[0]
    assert torch.equal(x, predict.Segmenter(torch.nn.Identity(), 96).preprocess(seen)[0])
    # the mask crop is cut with the same box
    want = transforms.resize_pair(seen[0], truth[expected_box.y1:expected_box.y2, expected_box.x1:expected_box.x2], 96)[1]
    assert np.array_equal(mask[0].numpy().astype(bool), want)


def test_mfsd_reframing_pads_outside_the_crop_and_measures_detector_framing():
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    mask = np.zeros((10, 10), dtype=bool)
    mask[5:, :] = True
    framing = photo_crops.measure_framing(facelib.FaceBox(2, 2, 8, 8, 1.0, "x"), (10, 10), margin=0.5)
    assert (framing.scale, framing.dx, framing.dy) == (1.2, 0.0, 0.0)
    img, m = photo_crops.reframe(image, mask, photo_crops.Framing(2.0, 0.0, 0.0))
    assert img.shape == (20, 20, 3) and m.shape == (20, 20)
    assert (img[5:15, 5:15] == 200).all() and (img[:5] == photo_crops.FILL).all()
    assert m[10:15, 5:15].all() and not m[15:].any() and m.sum() == mask.sum()


# ---------------------------------------------------------------------------------------
# The shipped model is predict's default
# ---------------------------------------------------------------------------------------
def test_the_shipped_model_is_committed_fp16_small_and_the_validation_choice():
    weights = SHIPPED / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size <= photo_model.MAX_SHIPPED_BYTES
    with safe_open(str(weights), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["run_id"] == predict.SHIPPED_RUN and config["model_name"] == "photonet"
    # chosen on validation between the ImageNet and scratch encoders, both recorded
    candidates, unfinished = config["candidates"], config["unfinished_candidates"]
    assert {c["pretrained"] for c in [*candidates.values(), *unfinished.values()]} == {True, False}
    best = max(candidates, key=lambda k: candidates[k]["best_val_iou"])
    assert best == predict.SHIPPED_RUN
    assert {c.run_id for c in photo_model.candidates()} == set(candidates) | set(unfinished)
    for other in unfinished.values():  # a candidate that could not finish is recorded, never shipped
        assert other["epochs_done"] < other["epochs_planned"] and other["val_iou_by_epoch"]
    # the training record sits beside it and names the crops it was trained on
    record = json.loads((SHIPPED.parent / "metrics.json").read_text())
    assert record["run_id"] == predict.SHIPPED_RUN and record["scale"] == photo_model.PHOTO_SCALE
    assert record["photo_training"]["train"]["detector"] == photo_model.DETECTOR
    assert json.loads((SHIPPED.parent / "config.json").read_text())["train_crops"] == photo_model.TRAIN_CROPS


def test_predict_without_run_uses_the_shipped_model_and_labels_it(tmp_path, capsys):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, size=(120, 100, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    code = predict.main([str(tmp_path / "p.png"), "--out", str(tmp_path / "out"), "--detector",
                         "haar:frontalface_default"])
    assert code == 0
    record = json.loads((tmp_path / "out" / "predictions.jsonl").read_text().splitlines()[0])
    assert record["weights"] == f"shipped:{predict.SHIPPED_RUN}" and record["model"] == "photonet"
    assert record["scale"] == photo_model.PHOTO_SCALE and record["trained"] is True
    assert record["train_datasets"] == ["mfsd-sample", "maskedfacenet-seg500"] and "warning" not in record
    captured = capsys.readouterr()
    assert "WARNING" not in captured.out + captured.err
    overlay = np.asarray(Image.open(tmp_path / "out" / "p_overlay.png"))
    assert overlay.shape == (120, 100, 3)
    assert (overlay[2:8, 2:8] != np.asarray(Image.open(tmp_path / "p.png"))[2:8, 2:8]).any()  # the legend


@pytest.mark.data
def test_the_shipped_model_segments_a_held_out_photo(data_mirror, tmp_path):
    photo = sorted((data_mirror / "maskedfacenet-seg500" / "testing" / "CWM" / "images").glob("*.jpg"))[0]
    code = predict.main([str(photo), "--out", str(tmp_path)])
    assert code == 0
    mask = np.asarray(Image.open(tmp_path / f"{photo.stem}_mask.png")) > 127
    truth = np.asarray(Image.open(photo.parent.parent / "masks" / f"{photo.stem}_gt.png")) == 2
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8


def test_a_missing_shipped_model_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, "SHIPPED_RUN", "photonet-000000000000")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "p.png")
    assert predict.main([str(tmp_path / "p.png"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "photonet-000000000000/shipped" in err and "--run" in err


# ---------------------------------------------------------------------------------------
# Smoke weights say so
# ---------------------------------------------------------------------------------------
def test_smoke_weights_warn_on_the_console_and_in_every_json_line(tmp_path, capsys):
    cfg = RunConfig(image_size=32, scale="smoke").with_model("unet_plain", base_channels=8)
    torch.manual_seed(0)
    folder = export.save_pretrained(create_model(cfg.model, **cfg.model_kwargs_dict).eval(), cfg, tmp_path / "m")
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / name)
    code = predict.main([str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--run", str(folder), "--out",
                         str(tmp_path / "out"), "--detector", "haar:frontalface_default"])
    assert code == 0
    captured = capsys.readouterr()
    console = captured.out + captured.err
    assert console.count("WARNING") >= 2 and "smoke-scale" in console  # at the start and in the summary
    lines = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all("smoke-scale" in r["warning"] and r["scale"] == "smoke" for r in lines)


# ---------------------------------------------------------------------------------------
# The benchmark markdown is rendered from committed records only
# ---------------------------------------------------------------------------------------
def test_whole_photo_markdown_renders_from_the_committed_records_byte_for_byte(load_benchmark, monkeypatch):
    monkeypatch.delenv("ABANET_RESULTS", raising=False)  # read the committed results/
    bench = load_benchmark("bench_whole_photo")
    folder = paths.PROJECT_ROOT / "results" / "benchmarks"
    assert bench.render(folder) == (folder / "whole_photo.md").read_text()
    shipped = json.loads((folder / bench.SHIPPED_RECORD).read_text())
    assert shipped["model"] == f"shipped:{predict.SHIPPED_RUN}" and shipped["n_photos"] == 50
    # the earlier figure is kept beside the new one, unchanged
    old = json.loads((folder / bench.ABANET_RECORD).read_text())
    assert old["model"] == "abanet-8388e606e533" and round(old["mean_iou"], 4) == 0.6761
