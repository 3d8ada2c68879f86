"""Pure helpers of benchmarks/grabcut_rect.py on synthetic maps with known answers."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def gr(load_benchmark):
    return load_benchmark("grabcut_rect")


@pytest.fixture()
def lower_mask():
    mask = np.zeros((10, 10), bool)
    mask[4:, :] = True  # rows 4..9, full width: 60 pixels
    return mask


def test_rect_pixels_round_like_grabcut_mask(gr):
    # 0.10*64 = 6.4 -> 6, 0.45*64 = 28.8 -> 29, 0.90*64 = 57.6 -> 58, 1.0*64 -> 64
    assert gr.rect_pixels((0.10, 0.45, 0.90, 1.00), 64, 64) == (6, 29, 58, 64)
    assert gr.rect_mask((0.10, 0.45, 0.90, 1.00), 64, 64).sum() == 52 * 35


def test_fraction_outside_iou_and_ceiling(gr, lower_mask):
    rect = (0.10, 0.50, 0.90, 1.00)  # columns 1..8, rows 5..9: 40 pixels, all on the mask
    assert gr.fraction_outside(lower_mask, rect) == pytest.approx(20 / 60, abs=1e-12)
    assert gr.iou(gr.rect_mask(rect, 10, 10), lower_mask) == pytest.approx(40 / 60, abs=1e-12)
    assert gr.best_iou_inside(lower_mask, rect) == pytest.approx(40 / 60, abs=1e-12)
    assert gr.fraction_outside(lower_mask, (0.0, 0.4, 1.0, 1.0)) == 0.0
    assert gr.iou(gr.rect_mask((0.0, 0.4, 1.0, 1.0), 10, 10), lower_mask) == 1.0
    assert np.isnan(gr.fraction_outside(np.zeros((10, 10), bool), rect))
    assert gr.iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_bbox_and_percentile_rect(lower_mask):
    from abanet_lib.models.grabcut import fit_rect_fraction, mask_box_fraction, rect_from_boxes

    assert mask_box_fraction(lower_mask) == (0.0, 0.4, 1.0, 1.0)
    m = np.zeros((8, 4), bool)
    m[2:5, 1:3] = True
    assert mask_box_fraction(m) == (0.25, 0.25, 0.75, 0.625)
    assert mask_box_fraction(np.zeros((3, 3), bool)) is None
    boxes = [(0.0, 0.2, 0.8, 0.9), (0.1, 0.4, 1.0, 1.0), (0.2, 0.6, 0.9, 0.95)]
    assert rect_from_boxes(boxes, 0, 100) == (0.0, 0.2, 1.0, 1.0)
    assert rect_from_boxes(boxes, 50, 50) == (0.1, 0.4, 0.9, 0.95)
    # fitted on masks: empty masks are skipped; none with a pixel is an error
    assert fit_rect_fraction([lower_mask, m, np.zeros((5, 5), bool)], 0, 100) == (0.0, 0.25, 1.0, 1.0)
    with pytest.raises(ValueError, match="no training mask"):
        fit_rect_fraction([np.zeros((5, 5), bool)])


def test_upsample_hard_map_matches_block_pattern(gr):
    fg = np.array([[True, False], [False, False]])
    up = gr.upsample_hard_map(fg, 4, 4)
    expected = np.zeros((4, 4), bool)
    expected[:2, :2] = True
    np.testing.assert_array_equal(up, expected)


def test_grabcut_never_labels_outside_the_rectangle(gr):
    import cv2

    from abanet_lib.models.grabcut import grabcut_mask

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    image[16:, :] = (200, 40, 40)  # a red lower half
    rect = (0.10, 0.45, 0.90, 1.00)
    fg = grabcut_mask(image, rect, 2)
    assert fg.any()
    assert not (fg & ~gr.rect_mask(rect, 32, 32)).any()
    # reseeded per call: the same image gives the same mask whatever OpenCV drew in between
    cv2.setRNGSeed(12345)
    cv2.randu(np.zeros((100, 100), np.float32), 0, 1)
    np.testing.assert_array_equal(grabcut_mask(image, rect, 2), fg)
