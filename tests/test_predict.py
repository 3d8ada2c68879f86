"""Whole-photo pipeline: loading odd files, paste-back geometry, batch summary, detectors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from abanet_lib.app import faces as facelib
from abanet_lib.app import predict


class BrightnessModel(nn.Module):
    """Stand-in segmenter: logits = 4 * (normalised red - 0.5), so bright pixels are 'mask'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N,3,S,S) -> (N,1,S,S)
        return 4.0 * (x[:, :1] - 0.5)


class BrightBoxDetector:
    """Stand-in detector: the bounding box of pixels brighter than 200 (none -> no face)."""

    name = "bright-box"

    def detect(self, image: np.ndarray) -> list[facelib.FaceBox]:
        box = facelib.mask_bbox(image.mean(axis=2) > 200)
        return [box] if box is not None else []


def _photo(h=90, w=120, square=(30, 40, 60, 80)) -> np.ndarray:
    """Dark noisy photo with a bright rectangle at square=(y1, x1, y2, x2)."""
    rng = np.random.default_rng(0)
    image = rng.integers(20, 60, size=(h, w, 3), dtype=np.uint8)
    y1, x1, y2, x2 = square
    image[y1:y2, x1:x2] = 250
    return image


@pytest.fixture()
def segmenter():
    return predict.Segmenter(BrightnessModel(), image_size=64, label="stand-in", trained=True)


def test_paste_mask_lands_in_the_crop_box():
    canvas = np.zeros((50, 80), np.float32)
    box = facelib.FaceBox(10, 5, 30, 20)  # x1, y1, x2, y2
    crop = np.full((15, 20), 0.9, np.float32)
    predict.paste_mask(canvas, crop, box)
    assert canvas[5:20, 10:30].min() == pytest.approx(0.9)
    assert canvas.sum() == pytest.approx(0.9 * 15 * 20)
    # Overlaps keep the max; a wrongly shaped crop is refused.
    predict.paste_mask(canvas, np.full((15, 20), 0.3, np.float32), facelib.FaceBox(20, 10, 40, 25))
    assert canvas[10, 25] == pytest.approx(0.9) and canvas[22, 35] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="does not match box"):
        predict.paste_mask(canvas, crop.T, box)


def test_expand_box_square_and_clipped():
    box = facelib.expand_box(facelib.FaceBox(40, 30, 60, 70), 0.25, (100, 100))
    # 20x40 -> square 40x40 around (50, 50) -> +25% each side = 60x60 -> (20, 20, 80, 80)
    assert (box.x1, box.y1, box.x2, box.y2) == (20, 20, 80, 80)
    edge = facelib.expand_box(facelib.FaceBox(0, 0, 20, 20), 0.5, (30, 30))
    assert (edge.x1, edge.y1, edge.x2, edge.y2) == (0, 0, 30, 30)


def test_predict_photo_mask_at_full_resolution(segmenter):
    image = _photo()
    result = predict.predict_photo(image, segmenter, BrightBoxDetector(), margin=0.3)
    mask = result.mask()
    assert mask.shape == image.shape[:2] and result.status == "ok"
    truth = np.zeros_like(mask)
    truth[30:60, 40:80] = True
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9, iou  # resize to 64 and back only blurs the edges
    face = result.faces[0]
    assert face["face_box"] == [40, 30, 80, 60] and face["mask_area_px"] == pytest.approx(1200, rel=0.1)
    # Known boxes bypass the detector; no face + "skip" gives an empty map.
    known = predict.predict_photo(image, segmenter, None, boxes=[facelib.FaceBox(40, 30, 80, 60, 1.0, "csv")])
    assert known.faces[0]["source"] == "csv"
    empty = predict.predict_photo(np.full((40, 40, 3), 30, np.uint8), segmenter, BrightBoxDetector(), no_face="skip")
    assert empty.status == "no-face" and empty.faces == [] and empty.prob.max() == 0


def test_batch_with_bad_files_goes_on(tmp_path, segmenter):
    src = tmp_path / "photos"
    src.mkdir()
    image = _photo()
    Image.fromarray(image).save(src / "a_rgb.png")
    (src / "b_not_an_image.jpg").write_text("hello, I am text")
    Image.fromarray(np.full((50, 70), 40, np.uint8), mode="L").save(src / "c_gray.png")  # no bright box
    Image.fromarray(image).convert("CMYK").save(src / "d_cmyk.jpg", quality=95)
    # EXIF orientation 6 = stored rotated; upright = stored rotated 90 deg clockwise... via exif_transpose.
    stored = np.ascontiguousarray(np.rot90(image, k=1))  # (120, 90, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "e_exif.jpg", exif=exif, quality=95)

    out = tmp_path / "out"
    summary = predict.predict_paths(predict.collect_inputs([str(src)]), segmenter, out,
                                    detector=BrightBoxDetector(), progress=False)
    assert (summary["total"], summary["ok"], summary["no_face"], summary["failed"]) == (5, 3, 1, 1)
    assert "b_not_an_image.jpg: unreadable: not an image" in summary["failures"][0]
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["ok", "failed", "no-face", "ok", "ok"]
    by_name = {r["file"].split("/")[-1]: r for r in lines}
    assert any("mode CMYK" in n for n in by_name["d_cmyk.jpg"]["notes"])
    assert any("mode L" in n for n in by_name["c_gray.png"]["notes"])
    # The EXIF photo is processed upright: same size and mask place as the RGB original.
    exif_rec = by_name["e_exif.jpg"]
    assert exif_rec["size"] == [120, 90] and exif_rec["faces"][0]["face_box"] == [40, 30, 80, 60]
    mask = np.asarray(Image.open(out / exif_rec["mask"])) > 0
    assert mask.shape == (90, 120) and mask[45, 60] and not mask[5, 5]
    assert (out / "a_rgb_overlay.png").is_file() and by_name["a_rgb.png"]["timings"]["segment_s"] >= 0


def test_huge_images_downscaled_and_bombs_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(path)
    image, notes = predict.load_photo(path, max_pixels=120_000)
    assert image.shape[0] * image.shape[1] <= 120_000 and image.shape[1] / image.shape[0] == pytest.approx(4 / 3, rel=0.02)
    assert "downscaled from 800x600" in notes[0]
    with pytest.raises(predict.PhotoError, match="decompression.bomb"):
        predict.load_photo(path, max_pixels=100_000, bomb_pixels=200_000)
    with pytest.raises(predict.PhotoError, match="no such file"):
        predict.collect_inputs([str(tmp_path / "missing*.jpg")])


def test_boxes_csv(tmp_path):
    csv = tmp_path / "dataset.csv"
    csv.write_text("filename,x1,y1,x2,y2,with_mask\n000000.jpg,149,0,513,393,TRUE\n000000.jpg,9,8,7,142,FALSE\n")
    boxes = facelib.load_boxes_csv(csv)
    assert [(b.x1, b.y1, b.x2, b.y2) for b in boxes["000000.jpg"]] == [(149, 0, 513, 393), (7, 8, 9, 142)]
    (tmp_path / "bad.csv").write_text("name,a\nx,1\n")
    with pytest.raises(ValueError, match="expected a CSV header"):
        facelib.load_boxes_csv(tmp_path / "bad.csv")


def test_haar_detector_finds_a_real_masked_face(data_mirror):
    path = sorted((data_mirror / "maskedfacenet-seg500" / "testing" / "CWM" / "images").glob("*.jpg"))[0]
    image = np.asarray(Image.open(path).convert("RGB"))
    labels = np.asarray(Image.open(path.parent.parent / "masks" / f"{path.stem}_gt.png"))
    boxes = facelib.create_detector("haar:frontalface_alt2").detect(image)
    assert boxes and facelib.box_iou(boxes[0], facelib.mask_bbox(labels > 0)) > 0.3


def test_cli_main_with_saved_folder(tmp_path, monkeypatch):
    """`predict.main` end to end with a save_pretrained folder and the whole-image fallback."""
    from abanet_lib.core.config import RunConfig
    from abanet_lib.app.export import save_pretrained

    monkeypatch.setattr("abanet_lib.app.export.build_model", lambda name, kw: BrightnessModel())
    save_pretrained(BrightnessModel(), RunConfig(model="stand-in", image_size=32), tmp_path / "model")
    Image.fromarray(np.full((40, 40, 3), 250, np.uint8)).save(tmp_path / "white.png")
    code = predict.main([str(tmp_path / "white.png"), "--run", str(tmp_path / "model"), "--out",
                         str(tmp_path / "out"), "--detector", "haar:frontalface_default", "--device", "cpu"])
    record = json.loads((tmp_path / "out" / "predictions.jsonl").read_text())
    assert code == 0 and record["status"] == "no-face" and record["mask_area_px"] == 1600
