"""Loaders, decoding rules and bad input of abanet_lib.data."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from abanet_lib.data import (
    DataError,
    DataWarning,
    binarize_mask,
    group_from_name,
    list_folder_pairs,
    list_mfsd,
    list_samples,
    read_image,
    read_mfsd_boxes,
    synthetic_samples,
    write_sample_folder,
)


# --------------------------------------------------------------------------- real data
@pytest.mark.data
def test_mfsd_sample_real(data_mirror):
    refs = list_samples("mfsd-sample", data_mirror / "mfsd-sample")
    assert len(refs) == 220
    assert len({r.name for r in refs}) == 220
    by_name = {r.name: r for r in refs}
    # both spellings of a person share one group; the t1 batch token is not a person
    assert by_name["faceMsak_zhangyixing_0_0_2"].group == "zhangyixing"
    assert by_name["facemsak_wuyifan_0_0_0"].group == "wuyifan"
    assert by_name["faceMsak_t1_JaredPolis_0003"].group == by_name["faceMsak_t1_JaredPolis_0007"].group == "jaredpolis"
    assert by_name["faceMsak_t1_5905_1_2"].group == "faceMsak_t1_5905_1_2"
    assert sum(r.group == "zhangyixing" for r in refs) == 8
    s = by_name["faceMsak_zhangyixing_0_0_2"].load()
    assert s.image.shape == (250, 250, 3) and s.image.dtype == np.uint8
    assert s.mask.dtype == bool and s.mask.shape == (250, 250)
    raw = np.asarray(Image.open(by_name["faceMsak_zhangyixing_0_0_2"].mask_path))
    np.testing.assert_array_equal(s.mask, raw > 127)
    assert 0.05 < s.mask.mean() < 0.9


@pytest.mark.data
def test_maskedfacenet_real(data_mirror):
    refs = list_samples("maskedfacenet-seg500", data_mirror / "maskedfacenet-seg500")
    assert len(refs) == 500
    assert sum(r.subset == "training" for r in refs) == 450
    assert sum(r.category == "CWM" for r in refs) == 300
    r = refs[0]
    assert r.name == f"{r.category}_{r.group}" and r.mask_path.name == f"{r.group}_gt.png"
    s = r.load()
    labels = np.asarray(Image.open(r.mask_path))
    assert set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_array_equal(s.mask, labels == 2)
    assert s.image.shape == (1024, 1024, 3)


# --------------------------------------------------------------------------- rules
@pytest.mark.parametrize("stem,group", [
    ("faceMsak_liushishi_0_0_5", "liushishi"),
    ("FACEMSAK_LiuShiShi_1_0_2", "liushishi"),
    ("faceMsak_t1_CarrieLam_0002", "carrielam"),
    ("faceMsak_t1_14_1", "faceMsak_t1_14_1"),
    ("faceMask1_ttt_117_1_2", "faceMask1_ttt_117_1_2"),
    ("000123_2", "000123"),
    ("holiday", "holiday"),
])
def test_group_from_name(stem, group):
    assert group_from_name(stem) == group


def test_binarize_rules():
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(binarize_mask(grey, "mfsd"), [[False, False, True, True]])
    labels = np.array([[0, 1, 2, 2]], dtype=np.uint8)
    np.testing.assert_array_equal(binarize_mask(labels, "maskedfacenet-seg500"), [[False, False, True, True]])
    np.testing.assert_array_equal(binarize_mask(np.array([[0, 1]], np.uint8), "folder"), [[False, True]])
    np.testing.assert_array_equal(binarize_mask(np.array([[0, 65535, 30000]], np.uint16), "folder"),
                                  [[False, True, False]])
    red = np.zeros((1, 2, 3), np.uint8)
    red[0, 1, 0] = 200
    np.testing.assert_array_equal(binarize_mask(red, "folder"), [[False, True]])


def _pair_dir(tmp_path, n=4, size=48, **kw):
    return write_sample_folder(synthetic_samples(n, size, seed=1), tmp_path / "set", **kw)


def test_folder_pairs_suffix_and_groups(tmp_path):
    images, masks = _pair_dir(tmp_path, image_ext=".jpg", mask_suffix="_gt")
    refs = list_folder_pairs(images, masks)
    assert [r.name for r in refs] == [f"synthetic_{i:03d}" for i in range(4)]
    assert all(r.mask_path.name == f"{r.name}_gt.png" for r in refs)
    s = refs[1].load()
    assert s.mask.sum() == synthetic_samples(4, 48, seed=1)[1].mask.sum()


def test_image_conversions(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, 2))
    rgba = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    # alpha is composited on white (the one rule of training, evaluation and predict)
    alpha = rgba[:, :, 3:].astype(np.float64) / 255.0
    composited = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    assert np.abs(read_image(tmp_path / "a.png").astype(np.float64) - composited).max() <= 1.0
    Image.fromarray(rgba[:, :, :3]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (40, 50, 3)
    g16 = (grey.astype(np.uint16) * 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], grey)


# --------------------------------------------------------------------------- bad input
def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        list_folder_pairs(tmp_path / "nope", tmp_path)
    with pytest.raises(DataError, match="MSFD/1/face_crop"):
        list_mfsd(tmp_path)


def test_unpaired_files_raise_or_skip(tmp_path):
    images, masks = _pair_dir(tmp_path)
    (masks / "synthetic_000.png").unlink()
    Image.new("L", (48, 48)).save(masks / "orphan.png")
    with pytest.raises(DataError, match="synthetic_000.png: image without mask"):
        list_folder_pairs(images, masks)
    with pytest.warns(DataWarning, match="skipped 2"):
        refs = list_folder_pairs(images, masks, on_error="skip")
    assert len(refs) == 3
    reasons = dict(refs.report.skipped)
    assert "image without mask" in reasons[str(images / "synthetic_000.png")]
    assert "mask without image" in reasons[str(masks / "orphan.png")]


def test_truncated_and_unreadable(tmp_path):
    images, masks = _pair_dir(tmp_path, image_ext=".jpg")
    path = images / "synthetic_002.jpg"
    path.write_bytes(path.read_bytes()[:200])
    (images / "synthetic_003.jpg").write_text("not an image")
    refs = list_folder_pairs(images, masks)
    with pytest.raises(DataError, match=r"synthetic_002.jpg: unreadable or truncated"):
        refs[2].load()
    with pytest.raises(DataError, match=r"synthetic_003.jpg: unreadable"):
        refs[3].load()


def test_small_image_and_size_mismatch(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir(), masks.mkdir()
    Image.new("RGB", (20, 40)).save(images / "tiny.png")
    Image.new("L", (20, 40)).save(masks / "tiny.png")
    Image.new("RGB", (64, 64)).save(images / "big.png")
    m = np.zeros((32, 32), np.uint8)
    m[:16] = 255
    Image.fromarray(m).save(masks / "big.png")
    refs = {r.name: r for r in list_folder_pairs(images, masks)}
    with pytest.raises(DataError, match="tiny.png: image is 20x40.*at least 32"):
        refs["tiny"].load()
    with pytest.raises(DataError, match="big.png: mask is 32x32.*64x64"):
        refs["big"].load()
    resized = {r.name: r for r in list_folder_pairs(images, masks, resize_mismatched_masks=True)}["big"].load()
    assert resized.mask.shape == (64, 64) and resized.mask[:32].all() and not resized.mask[32:].any()


def test_empty_mask_allowed(tmp_path):
    images, masks = _pair_dir(tmp_path, n=2)
    Image.new("L", (48, 48)).save(masks / "synthetic_000.png")
    s = list_folder_pairs(images, masks)[0].load()
    assert s.mask.sum() == 0


def test_mfsd_full_layout_and_boxes(tmp_path):
    base = tmp_path / "MSFD" / "1"
    samples = synthetic_samples(3, 40, seed=2)
    for s, name in zip(samples, ["000001_0", "000001_1", "000002_0"]):
        s.name = name
    write_sample_folder(samples, base, image_ext=".jpg")
    (base / "images").rename(base / "face_crop")
    (base / "masks").rename(base / "face_crop_segmentation")
    (base / "dataset.csv").write_text(
        "filename,x1,y1,x2,y2,with_mask\n000001.jpg,149,0,513,393,TRUE\n000001.jpg,0,128,7,142,FALSE\n"
        "000002.jpg,1,2,3,4,TRUE\n")
    refs = list_samples("mfsd", tmp_path)
    assert [r.group for r in refs] == ["000001", "000001", "000002"]
    boxes = read_mfsd_boxes(tmp_path)
    assert len(boxes["000001.jpg"]) == 2 and boxes["000001.jpg"][0].width == 364
    assert [b.with_mask for b in boxes["000001.jpg"]] == [True, False]
    (base / "dataset.csv").write_text("filename,x1,y1,x2,y2,with_mask\n000001.jpg,a,0,5,5,TRUE\n")
    with pytest.raises(DataError, match="dataset.csv:2: bad row"):
        read_mfsd_boxes(base / "dataset.csv")


def test_unknown_dataset():
    with warnings.catch_warnings():
        with pytest.raises(DataError, match="unknown data set"):
            list_samples("imagenet", "/tmp")
