"""Two CPU processes (gloo) with DDP (``train(distributed=True)``) match one process of the same loop
with the same global batch."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from abanet_lib.core.config import RunConfig
from abanet_lib.engine.train import rank_share

#: fp32, no augmentation, fixed seed: DDP averages per-process gradients, which only changes the
#: floating-point summation order. SGD keeps that rounding at float32 level (measured ~1e-7);
#: Adam's first steps move every weight by +-lr whatever the gradient's size, so a gradient
#: near 0 that rounds to the other sign gives ~lr differences (3e-4 measured with lr 1e-3).
WEIGHT_TOL = 1e-5
METRIC_TOL = 1e-5


def _cfg() -> RunConfig:
    return RunConfig(model="unet_plain", image_size=32, batch_size=4, epochs=2, lr=0.05, optimizer="sgd", augment=False,
                     precision="fp32", channels_last=False, device="cpu", seed=3, scale="smoke")


def _tiny_model():
    from abanet_lib.models.unet_plain import UNet

    torch.manual_seed(0)
    return UNet(base_channels=4, depth=2, norm="instance")  # BN-free: SyncBatchNorm needs CUDA


def _data():
    from abanet_lib.data.torch_data import PreparedArrays, SegmentationDataset
    from abanet_lib.engine.assembly import TrainingData

    rng = np.random.default_rng(0)
    n = 14
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((n, 32, 32), np.uint8)
    for i in range(n):  # a bright-ish square per image, the "mask"
        y, x = rng.integers(0, 16, 2)
        masks[i, y:y + 14, x:x + 14] = 1
        images[i, y:y + 14, x:x + 14] = np.clip(images[i, y:y + 14, x:x + 14], 150, 255)

    def arrays(rows):
        return PreparedArrays(images=images[rows], masks=masks[rows], refs=[None] * len(rows),
                              native_sizes=np.full((len(rows), 2), 32), coverage=masks[rows].mean((1, 2)))

    # 10 training images with global batch 4 -> batches 4, 4, 2 (the last one uneven per rank).
    return TrainingData(train=SegmentationDataset(arrays(list(range(10)))),
                        val=SegmentationDataset(arrays(list(range(10, 14)))))


def _worker(rank: int, world_size: int, port: int, cache: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), ABANET_CACHE=cache)
    torch.set_num_threads(1)
    import torch.distributed as dist

    from abanet_lib.engine.train import train

    result = train(_cfg(), os.path.join(cache, "run"), model=_tiny_model(), data=_data(), distributed=True,
                   backend="gloo", progress=False, resume=False)
    if rank == 0:
        torch.save({"state": result.model.state_dict(), "history": result.history.to_dict("list"),
                    "extra": result.extra}, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank_share_covers_every_item_once():
    for n in range(1, 9):
        parts = [list(range(n))[rank_share(n, r, 3)] for r in range(3)]
        assert sum(parts, []) == list(range(n)) and max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.timeout(120)
def test_two_process_gloo_matches_one_process(tmp_path, monkeypatch):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "cache_ddp"), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=False)
    assert ddp["extra"] == {"world_size": 2, "backend": "gloo"}

    # The reference: the engine's own 1-process loop, same config, weights and data.
    from abanet_lib.engine.train import train

    monkeypatch.setenv("ABANET_CACHE", str(tmp_path / "cache_one"))
    torch.set_num_threads(1)
    single = train(_cfg(), tmp_path / "run_one", model=_tiny_model(), data=_data(), progress=False,
                   resume=False)
    one_state = single.model.state_dict()
    diffs = {k: float((one_state[k].float() - v.float()).abs().max()) for k, v in ddp["state"].items()}
    assert max(diffs.values()) < WEIGHT_TOL, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    # The weights really moved (2 epochs x 3 steps of Adam at lr 1e-3), so the match is not trivial.
    start = _tiny_model().state_dict()
    assert max(float((one_state[k] - start[k]).abs().max()) for k in start) > 1e-3
    for key in ("train_loss", "val_loss", "val_iou"):
        np.testing.assert_allclose(ddp["history"][key], single.history[key].to_list(), atol=METRIC_TOL, rtol=0)
