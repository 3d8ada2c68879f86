"""The device-resident batch path (GPU issue) checked on the CPU: same crops as the loader path
without augmentation, the same warp as the CPU augmentation, static shapes, no graph breaks."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from abanet_lib.data.device_batches import DeviceBatches, augment_batch
from abanet_lib.data.torch_data import SegmentationDataset


class _Arrays(SimpleNamespace):
    def __len__(self):
        return len(self.images)


def _arrays(n=10, size=16, seed=0):
    """Stand-in for PreparedArrays: what both paths read (images, masks)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = (rng.random((n, size, size)) > 0.5).astype(np.uint8)
    return _Arrays(images=images, masks=masks)


def test_unaugmented_batches_equal_the_loader_items():
    arrays = _arrays()
    batches = DeviceBatches(arrays, "cpu", batch_size=4, augment=False, seed=3, drop_last=False)
    dataset = SegmentationDataset(arrays, augment=False)
    assert len(batches) == 3
    index = torch.tensor([7, 2, 5])
    images, masks = batches.batch(index)
    for k, row in enumerate(index.tolist()):
        image, mask = dataset[row]
        torch.testing.assert_close(images[k], image, rtol=0, atol=1e-6)
        torch.testing.assert_close(masks[k], mask, rtol=0, atol=0)


def test_every_epoch_visits_each_crop_once_in_a_seeded_order():
    arrays = _arrays(n=9)
    arrays.images[:] = np.arange(9, dtype=np.uint8)[:, None, None, None]  # row id in every pixel
    batches = DeviceBatches(arrays, "cpu", batch_size=3, augment=False, seed=1)
    seen = [int(round(float(x))) for imgs, _ in batches.epoch(0)
            for x in (imgs[:, 0, 0, 0] * 0.229 + 0.485) * 255]
    assert sorted(seen) == list(range(9))
    again = [int(round(float(x))) for imgs, _ in batches.epoch(0) for x in (imgs[:, 0, 0, 0] * 0.229 + 0.485) * 255]
    other = [int(round(float(x))) for imgs, _ in batches.epoch(1) for x in (imgs[:, 0, 0, 0] * 0.229 + 0.485) * 255]
    assert seen == again and seen != other


def test_drop_last_keeps_every_batch_the_same_shape():
    batches = DeviceBatches(_arrays(n=10), "cpu", batch_size=4, augment=True, seed=0)
    shapes = {tuple(images.shape) for images, _ in batches.epoch(0)}
    assert len(batches) == 2 and shapes == {(4, 3, 16, 16)}


def test_flip_without_scale_is_an_exact_mirror():
    x = torch.rand(2, 3, 8, 8)
    m = (torch.rand(2, 1, 8, 8) > 0.5).float()
    draws = torch.tensor([[0.1, 0.0, 0.5, 0.5], [0.9, 0.0, 0.5, 0.5]])  # flip the first only
    out, mask = augment_batch(x, m, draws, torch.full((2, 3), 0.5), jitter=0.0)
    torch.testing.assert_close(out[0], x[0].flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(mask[0], m[0].flip(-1), rtol=0, atol=0)


def test_scale_and_corner_crop_match_the_cpu_augmentation():
    """Scale 1.25 (16 -> 20 px) and the top-left crop: the warp samples where interpolate + crop
    of :func:`augment_pair` does."""
    x = torch.rand(1, 3, 16, 16)
    draws = torch.tensor([[0.9, 1.0, 0.0, 0.0]])  # no flip, scale = max_scale, top = left = 0
    out, _ = augment_batch(x, torch.zeros(1, 1, 16, 16), draws, torch.full((1, 3), 0.5), jitter=0.0)
    expected = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)[:, :, :16, :16]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_masks_stay_binary_and_colour_jitter_stays_in_range():
    batches = DeviceBatches(_arrays(n=8), "cpu", batch_size=8, augment=True, seed=0)
    images, masks = next(batches.epoch(0))
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    raw = images * torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) + torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5


def test_augmentation_compiles_without_graph_breaks():
    """No data-dependent shapes or host syncs: capturable as one graph (what CUDA graphs need)."""
    explain = torch._dynamo.explain(augment_batch)(torch.rand(4, 3, 16, 16), torch.zeros(4, 1, 16, 16),
                                                   torch.rand(4, 4), torch.rand(4, 3))
    assert explain.graph_break_count == 0 and explain.graph_count == 1


def test_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DeviceBatches(_arrays(), "cpu", batch_size=0)
