"""Splits, prepared arrays, the torch Dataset, transforms and synthetic samples."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from abanet_lib.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    DataWarning,
    SampleRef,
    SegmentationDataset,
    list_samples,
    normalize,
    prepare_arrays,
    resize_pair,
    split_samples,
    synthetic_refs,
    synthetic_samples,
)


def _refs(n_groups=40, sizes=(1, 2, 3)):
    refs, k = [], 0
    for g in range(n_groups):
        for _ in range(sizes[g % len(sizes)]):
            refs.append(SampleRef(Path(f"i{k}.jpg"), Path(f"m{k}.png"), f"s{k:03d}", f"g{g}", "fake",
                                  subset="training" if g % 5 else "testing"))
            k += 1
    return refs


def test_groupkfold_disjoint_complete_deterministic():
    refs = _refs()
    tests = []
    for fold in range(5):
        sp = split_samples(refs, "groupkfold", n_folds=5, fold=fold, seed=7, val_fraction=0.2)
        assert not sp.groups("train") & sp.groups("test")
        assert not sp.groups("val") & sp.groups("test") and not sp.groups("train") & sp.groups("val")
        assert len(sp.train) + len(sp.val) + len(sp.test) == len(refs)
        assert abs(len(sp.val) - 0.2 * (len(refs) - len(sp.test))) <= 3
        tests += [r.name for r in sp.test]
    assert sorted(tests) == sorted(r.name for r in refs)  # every sample tested exactly once
    a = split_samples(refs, "groupkfold", 5, 2, seed=7)
    b = split_samples(list(reversed(refs)), "groupkfold", 5, 2, seed=7)
    assert [r.name for r in a.test] == [r.name for r in b.test] and a.val == b.val
    c = split_samples(refs, "groupkfold", 5, 2, seed=8)
    assert [r.name for r in a.test] != [r.name for r in c.test]


def test_paper_proportions_and_given():
    refs = _refs(n_groups=300, sizes=(1, 1, 2))
    sp = split_samples(refs, "paper", seed=0)
    n = len(refs)
    for part, count in zip(("train", "val", "test"), (8500, 2500, 1758)):
        assert abs(len(getattr(sp, part)) - n * count / 12758) <= 2
    assert not sp.groups("train") & sp.groups("test")
    given = split_samples(refs, "given", seed=0, val_fraction=0.1)
    assert all(r.subset == "testing" for r in given.test)
    assert all(r.subset == "training" for r in given.train + given.val)
    with pytest.raises(ValueError, match="unknown split scheme"):
        split_samples(refs, "random")
    with pytest.raises(ValueError, match="fold"):
        split_samples(refs, "groupkfold", n_folds=5, fold=5)


@pytest.mark.data
def test_real_groupkfold_keeps_people_apart(data_mirror):
    refs = list_samples("mfsd-sample", data_mirror / "mfsd-sample")
    sp = split_samples(refs, "groupkfold", n_folds=5, fold=0, seed=0)
    assert not sp.groups("train") & sp.groups("test")
    assert 40 <= len(sp.test) <= 48
    zhang = {part for part in ("train", "val", "test") if "zhangyixing" in sp.groups(part)}
    assert len(zhang) == 1


def test_resize_and_normalize():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, 30:] = 200
    mask = np.zeros((40, 60), bool)
    mask[:20] = True
    img, m = resize_pair(image, mask, 20)
    assert img.shape == (20, 20, 3) and m.shape == (20, 20) and m.dtype == bool
    assert m[:10].all() and not m[10:].any()
    x = torch.ones(2, 3, 4, 4) * torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(normalize(x), torch.zeros_like(x), atol=1e-6)
    y = normalize(np.ones((3, 2, 2), np.float32))
    np.testing.assert_allclose(y[:, 0, 0], (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), rtol=1e-6)


def test_synthetic_deterministic():
    a, b = synthetic_samples(3, 48, seed=5), synthetic_samples(3, 48, seed=5)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) for x, y in zip(a, b))
    assert not np.array_equal(a[0].image, synthetic_samples(3, 48, seed=6)[0].image)
    for s in a:
        assert s.image.shape == (48, 48, 3) and 0.05 < s.mask.mean() < 0.5
        assert s.mask[:16].sum() == 0  # mask only on the lower part of the face


def test_prepare_arrays_cache_and_dataset(tmp_results):
    refs = synthetic_refs(tmp_results / "syn", n=6, size=48, seed=0)
    arrays = prepare_arrays(refs, 32)
    assert arrays.images.shape == (6, 32, 32, 3) and arrays.masks.shape == (6, 32, 32)
    assert isinstance(arrays.images, np.memmap) and set(np.unique(arrays.masks)) <= {0, 1}
    assert arrays.folder.parent == tmp_results / "cache" / "prepared"
    np.testing.assert_array_equal(arrays.native_sizes, [[48, 48]] * 6)
    again = prepare_arrays(refs, 32)
    assert again.folder == arrays.folder and np.array_equal(again.images, arrays.images)
    assert prepare_arrays(refs, 24).folder != arrays.folder
    assert refs[0].load().mask.shape == (48, 48)  # native masks stay reachable

    ds = SegmentationDataset(arrays, augment=False)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.shape == (1, 32, 32)
    expected = (torch.from_numpy(np.array(arrays.images[0])).permute(2, 0, 1) / 255.0
                - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)
    assert torch.equal(y[0], torch.from_numpy(np.array(arrays.masks[0])).float())

    aug = SegmentationDataset(arrays, augment=True, seed=3)
    aug.set_epoch(0)
    a1, m1 = aug[1]
    a2, m2 = aug[1]
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert set(m1.unique().tolist()) <= {0.0, 1.0}
    aug.set_epoch(1)
    assert not torch.equal(aug[1][0], a1)

    clone = pickle.loads(pickle.dumps(aug))
    assert len(pickle.dumps(aug)) < 20_000  # the cache path travels, not the arrays
    clone.set_epoch(0)
    assert torch.equal(clone[1][0], a1)


def test_prepare_arrays_bad_files(tmp_results):
    refs = synthetic_refs(tmp_results / "syn", n=4, size=48, seed=0)
    refs[2].image_path.write_bytes(b"broken")
    with pytest.raises(DataError, match="synthetic_002.png: unreadable"):
        prepare_arrays(refs, 32)
    with pytest.warns(DataWarning, match="skipped 1"):
        arrays = prepare_arrays(refs, 32, on_error="skip")
    assert arrays.names == ["synthetic_000", "synthetic_001", "synthetic_003"]
    assert "synthetic_002.png" in arrays.report.skipped[0][0]
    from PIL import Image

    Image.new("L", (48, 48)).save(refs[3].mask_path)
    with pytest.warns(DataWarning, match="1 empty mask"):
        arrays = prepare_arrays(refs, 32, on_error="skip")
    assert arrays.report.empty_masks == ["synthetic_003"] and arrays.coverage[-1] == 0.0
