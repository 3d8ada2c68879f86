"""Trainer: seeds, resume equivalence, NaN guard, optimizers, early stopping, devices."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from abanet_lib.core import devices
from abanet_lib.engine import train as train_mod
from abanet_lib.engine.assembly import build_optimizer, build_scheduler
from abanet_lib.engine.checkpoints import NonFiniteLossError, checkpoint_dir
from abanet_lib.engine.train import train
from engine_standins import NaNAfter, TinyNet, bce, blob_data, tiny_config


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def kill_after_first(info):
    """A training callback that simulates a kill right after epoch 1's checkpoint."""
    if info.epoch == 1:
        raise KeyboardInterrupt


def test_same_seed_same_metrics_and_weights(tmp_results):
    cfg = tiny_config(epochs=2)
    runs = []
    for name in ("a", "b"):
        torch.manual_seed(0)  # the injected model's initial weights
        runs.append(train(cfg, tmp_results / name, model=TinyNet(), criterion=bce, data=blob_data(),
                          progress=False, resume=False))
    r1, r2 = runs
    assert r1.history[["train_loss", "val_loss", "val_iou"]].equals(r2.history[["train_loss", "val_loss", "val_iou"]])
    assert _same(_weights(r1.model), _weights(r2.model))
    torch.manual_seed(0)
    other = train(cfg.replace(seed=1), tmp_results / "c", model=TinyNet(), criterion=bce, data=blob_data(),
                  progress=False)
    assert other.history["train_loss"].iloc[0] != r1.history["train_loss"].iloc[0]


def test_history_columns_values_and_best_checkpoint(tmp_results):
    cfg = tiny_config(epochs=3)
    torch.manual_seed(0)
    res = train(cfg, tmp_results / "run", model=TinyNet(deep_supervision=True), criterion=bce,
                data=blob_data(), progress=False)
    hist = pd.read_csv(tmp_results / "run" / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3]
    for col in ("train_loss", "val_loss", "val_iou", "lr", "seconds", "img_per_s"):
        assert col in hist.columns
    assert (hist["img_per_s"] > 0).all() and (hist["val_iou"].between(0, 1)).all()
    # deep supervision: the loss sums two BCE terms (> ln 2 at start would be ~1.4)
    assert hist["train_loss"].iloc[0] > 0.9
    assert res.best_epoch == int(hist["val_iou"].idxmax()) + 1
    assert res.best_val_iou == pytest.approx(hist["val_iou"].max())
    best = torch.load(checkpoint_dir(cfg) / "best.pt", weights_only=False)
    assert best["epoch"] == res.best_epoch
    assert _same(best["model"], _weights(res.model))
    last = torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)
    assert last["epoch"] == 3 and len(last["history"]) == 3
    # training improves on this easy task
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]


def test_resume_after_kill_matches_uninterrupted_run(tmp_results, monkeypatch):
    cfg = tiny_config(epochs=3, schedule="cosine", optimizer="adam")
    torch.manual_seed(123)
    full = train(cfg, tmp_results / "full", model=TinyNet(), criterion=bce, data=blob_data(),
                 progress=False, resume=False)
    full_last = torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)

    torch.manual_seed(123)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_results / "killed", model=TinyNet(), criterion=bce, data=blob_data(),
              progress=False, resume=False, callbacks=[kill_after_first])
    assert torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)["epoch"] == 1
    # disturb every RNG in between, as a new process would
    torch.manual_seed(999), np.random.seed(999)
    resumed = train(cfg, tmp_results / "killed", model=TinyNet(), criterion=bce, data=blob_data(),
                    progress=False)
    assert resumed.resumed_from == 1
    resumed_last = torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)
    assert _same(full_last["model"], resumed_last["model"])
    pd.testing.assert_frame_equal(full.history.drop(columns=["seconds", "img_per_s"]),
                                  resumed.history.drop(columns=["seconds", "img_per_s"]))
    assert resumed.best_epoch == full.best_epoch and resumed.best_val_iou == full.best_val_iou


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_checkpoint(tmp_results):
    cfg = tiny_config(epochs=3)
    # 12 training images, batch 4: 3 batches per epoch; call 5 = epoch 2, batch 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 2"):
        train(cfg, tmp_results / "nan", model=NaNAfter(5), criterion=bce, data=blob_data(), progress=False)
    last = torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert len(pd.read_csv(tmp_results / "nan" / "history.csv")) == 1


def test_early_stopping_and_untrainable_models(tmp_results):
    cfg = tiny_config(epochs=5, lr=0.0, early_stopping=1)  # lr 0: val IoU never improves
    res = train(cfg, tmp_results / "es", model=TinyNet(), criterion=bce, data=blob_data(), progress=False)
    assert res.stopped_early and res.epochs_run == 2 and res.best_epoch == 1

    frozen = TinyNet()
    frozen.trainable = False
    before = _weights(frozen)
    res = train(tiny_config(), tmp_results / "gc", model=frozen, criterion=bce, data=None, progress=False)
    assert not res.trained and res.history.empty and _same(before, _weights(res.model))


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamax", torch.optim.Adamax),
                                      ("rmsprop", torch.optim.RMSprop), ("sgd", torch.optim.SGD)])
def test_optimizers_follow_config(name, cls):
    cfg = tiny_config(optimizer=name, lr=0.01, weight_decay=1e-4, momentum=0.8)
    opt = build_optimizer(cfg, TinyNet().parameters())
    assert isinstance(opt, cls)
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 1e-4
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.8


def test_schedules_and_bad_names():
    cfg = tiny_config(epochs=4, schedule="cosine", lr=1.0)
    opt = build_optimizer(cfg, TinyNet().parameters())
    sched = build_scheduler(cfg, opt)
    lrs = []
    for _ in range(4):
        opt.step(), sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(1, 5)])
    step_cfg = cfg.replace(schedule="step", epochs=6)
    opt = build_optimizer(step_cfg, TinyNet().parameters())
    sched = build_scheduler(step_cfg, opt)
    for _ in range(2):
        opt.step(), sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert build_scheduler(cfg.replace(schedule="none"), opt) is None
    with pytest.raises(ValueError, match="optimizer 'lbfgs'"):
        build_optimizer(cfg.replace(optimizer="lbfgs"), TinyNet().parameters())
    with pytest.raises(ValueError, match="schedule 'poly'"):
        build_scheduler(cfg.replace(schedule="poly"), opt)


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert devices.resolve_precision("fp32", cpu).dtype is None
    assert devices.resolve_precision("bf16", cpu).dtype == torch.bfloat16
    auto = devices.resolve_precision("auto", cpu)
    assert auto.name == ("bf16" if devices.cpu_supports_bf16() else "fp32")
    with pytest.raises(ValueError, match="fp16"):
        devices.resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        devices.resolve_precision("fp8", cpu)
    assert devices.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    info = devices.describe_device("cpu")
    assert info["device"] == "cpu" and info["torch_version"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()


def test_bf16_channels_last_training_runs_finite(tmp_results):
    if not devices.cpu_supports_bf16():
        pytest.skip("CPU without native bf16")
    cfg = tiny_config(epochs=1, precision="bf16", channels_last=True)
    res = train(cfg, tmp_results / "bf16", model=TinyNet(), criterion=bce, data=blob_data(), progress=False)
    assert res.precision == "bf16"
    assert np.isfinite(res.history["train_loss"]).all()
    assert res.model.conv1.weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_batch_iou_reference_values():
    prob = torch.zeros(2, 1, 4, 4)
    masks = torch.zeros(2, 1, 4, 4)
    prob[0, 0, :2] = 0.9      # 8 predicted pixels
    masks[0, 0, :1] = 1       # 4 true pixels, all inside
    ious = train_mod.batch_iou(prob, masks)
    assert ious.tolist() == pytest.approx([0.5, 1.0])  # second: both empty -> 1


class _BlobArrays:
    """What a PreparedArrays holds for the trainer: uint8 crops and {0, 1} masks."""

    def __init__(self, n: int, size: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 80, (n, size, size, 3), dtype=np.uint8)
        self.masks = np.zeros((n, size, size), dtype=np.uint8)
        for i in range(n):
            top, left = rng.integers(0, size // 2, 2)
            self.masks[i, top:top + size // 2, left:left + size // 2] = 1
            self.images[i][self.masks[i] == 1] += 150

    def __len__(self):
        return len(self.images)


def _array_data(augment: bool):
    from abanet_lib.data.torch_data import SegmentationDataset
    from abanet_lib.engine.assembly import TrainingData

    return TrainingData(train=SegmentationDataset(_BlobArrays(8), augment=augment),
                        val=SegmentationDataset(_BlobArrays(4, seed=1)))


def test_batches_on_device_train_like_the_loader_on_one_full_batch(tmp_results):
    """Unaugmented, with the whole set in one batch, the order cannot matter: the device path's
    step is the loader path's step (same loss, same weights, within float tolerance)."""
    cfg = tiny_config(epochs=2, batch_size=8)
    results = []
    for on_device in (False, True):
        torch.manual_seed(0)
        results.append(train(cfg.replace(batches_on_device=on_device), tmp_results / str(on_device),
                             model=TinyNet(), criterion=bce, data=_array_data(augment=False),
                             progress=False, resume=False))
    loader, device = results
    np.testing.assert_allclose(device.history["train_loss"], loader.history["train_loss"], rtol=1e-5)
    for k, v in _weights(loader.model).items():
        torch.testing.assert_close(_weights(device.model)[k], v, rtol=1e-4, atol=1e-5)
    assert cfg.replace(batches_on_device=True).run_id != cfg.run_id  # other draws: another run


def test_batches_on_device_augmented_training_learns_and_resumes_identically(tmp_results):
    cfg = tiny_config(epochs=3, batch_size=4, batches_on_device=True)
    torch.manual_seed(0)
    full = train(cfg, tmp_results / "full", model=TinyNet(), criterion=bce, data=_array_data(True),
                 progress=False, resume=False)
    assert full.history["train_loss"].iloc[-1] < full.history["train_loss"].iloc[0]
    assert np.isfinite(full.history["train_loss"]).all()
    full_last = torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)

    # epoch e's batches follow (seed, e): a run killed after epoch 1 and resumed is the same run
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_results / "killed", model=TinyNet(), criterion=bce, data=_array_data(True),
              progress=False, resume=False, callbacks=[kill_after_first])
    torch.manual_seed(999), np.random.seed(999)
    resumed = train(cfg, tmp_results / "killed", model=TinyNet(), criterion=bce, data=_array_data(True),
                    progress=False)
    assert resumed.resumed_from == 1
    assert _same(full_last["model"], torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)["model"])
    pd.testing.assert_frame_equal(full.history.drop(columns=["seconds", "img_per_s"]),
                                  resumed.history.drop(columns=["seconds", "img_per_s"]))


def test_batches_on_device_is_refused_for_distributed_runs(tmp_results, monkeypatch):
    monkeypatch.setattr(train_mod, "join_process_group",
                        lambda backend: (train_mod.ProcessGroup(rank=0, world_size=2, backend="gloo"),
                                         torch.device("cpu")))
    with pytest.raises(ValueError, match="batches_on_device is for single-process runs"):
        train(tiny_config(batches_on_device=True), tmp_results / "ddp", model=TinyNet(), criterion=bce,
              data=_array_data(False), progress=False, distributed=True)


def test_abanet_training_loss_traces_as_one_graph():
    """The forward + hybrid loss of a training step has no graph break, so on a GPU it can be
    captured whole (torch.compile mode="reduce-overhead" / CUDA graphs). It had four: the
    losses switched autocast off through a wrapper class that dynamo cannot trace."""
    from abanet_lib.core.config import RunConfig
    from abanet_lib.engine.assembly import build_criterion
    from abanet_lib.models import create_model

    torch.manual_seed(0)
    step = train_mod.TrainingLoss(create_model("abanet").train(), build_criterion(RunConfig()))
    explain = torch._dynamo.explain(step)(torch.randn(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float())
    assert explain.graph_break_count == 0 and explain.graph_count == 1
