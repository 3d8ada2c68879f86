"""Issue 11: every bad input and fault gets a one-line error naming the file or option, nothing
is lost, nothing is silently wrong. Each test replays a case of the fault-and-bad-input probe
(and fails on the code before the fix); plus issue 10's "say what you loaded" for train and
predict.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from abanet_lib import cli
from abanet_lib.config import RunConfig, get_scale
from abanet_lib.data import DataError, list_folder_pairs, list_samples, read_image
from abanet_lib.train import NonFiniteLossError, checkpoint_dir, train
from engine_standins import NaNAfter, TinyNet, bce, blob_data, tiny_config

pytestmark = pytest.mark.usefixtures("single_thread")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _main(capsys, argv) -> tuple[int, str, str]:
    """cli.main as a user runs it: parse errors exit through SystemExit."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------
# Fixtures: fake finished records (no training), photos
# ---------------------------------------------------------------------------------------
def _smoke_cfg(**changes) -> RunConfig:
    return get_scale("smoke").base_config(model="unet_plain", device="cpu", **changes).with_model(
        None, base_channels=4)


def _fake_record(cfg: RunConfig, *, weights: bool = False, train_seconds: float = 12.4) -> Path:
    """A finished run record as registry writes it, without training (weights optional)."""
    from abanet_lib import registry
    from abanet_lib.train import build_model, seed_everything

    folder = registry.run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    metrics = {"run_id": cfg.run_id, "model": cfg.model, "scale": cfg.scale, "n_test": 8, "n_train": 16,
               "test": {"iou": 0.4321, "f1": 0.5432}, "trained": True, "epochs_run": 1, "best_epoch": 1,
               "train_seconds": train_seconds, "resumed_from_epoch": 0, "checkpoint": None,
               "provenance": {"date_utc": "2026-01-02T03:04:05+00:00", "git_commit": "0123abc",
                              "device": {"device": "cpu", "cpu_model": "Probe CPU"}}}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    pd.DataFrame({"epoch": [1], "train_loss": [0.5], "val_loss": [0.5], "val_iou": [0.4], "lr": [1e-4],
                  "seconds": [train_seconds], "img_per_s": [1.3]}).to_csv(folder / "history.csv", index=False)
    pd.DataFrame({"name": ["a"], "iou": [0.4321]}).to_csv(folder / "per_image.csv", index=False)
    if weights:
        seed_everything(cfg.seed)
        ckpt = checkpoint_dir(cfg) / "best.pt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": build_model(cfg).state_dict(), "epoch": 1}, ckpt)
    return folder


def _photo(path, value: int = 250, size=(48, 64)):
    rng = np.random.default_rng(0)
    image = rng.integers(20, 60, size=(*size, 3), dtype=np.uint8)
    image[10:30, 20:40] = value
    Image.fromarray(image).save(path)
    return path


class BrightnessModel(nn.Module):
    def forward(self, x):
        return 4.0 * (x[:, :1] - 0.5)


class BrightBoxDetector:
    name = "bright-box"

    def detect(self, image):
        from abanet_lib import faces as facelib

        box = facelib.mask_bbox(image.mean(axis=2) > 200)
        return [box] if box is not None else []


@pytest.fixture()
def segmenter():
    from abanet_lib import predict

    return predict.Segmenter(BrightnessModel(), image_size=32, label="stand-in", trained=True)


# ---------------------------------------------------------------------------------------
# Data lost: predict into an --out that holds results
# ---------------------------------------------------------------------------------------
def _records(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_predict_into_an_existing_out_keeps_every_record(tmp_path, segmenter):
    from abanet_lib import predict

    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a.mkdir(), b.mkdir()
    _photo(a / "x.png"), _photo(a / "y.png", value=230)
    _photo(b / "x.png", value=210)  # another photo with the same stem
    first = predict.predict_paths([a / "x.png", a / "y.png"], segmenter, out, detector=BrightBoxDetector(),
                                  progress=False)
    assert first["ok"] == 2
    x_mask = (out / "x_mask.png").read_bytes()
    second = predict.predict_paths([b / "x.png"], segmenter, out, detector=BrightBoxDetector(), progress=False)
    records = _records(out)
    assert [r["file"] for r in records] == [str(a / "x.png"), str(a / "y.png"), str(b / "x.png")]
    assert [r["mask"] for r in records] == ["x_mask.png", "y_mask.png", "x_2_mask.png"]
    assert (out / "x_mask.png").read_bytes() == x_mask  # the earlier photo's mask is untouched
    assert (second["kept"], second["replaced"], second["records"]) == (2, 0, 3)

    # The same photo again: its record and files are replaced, nothing duplicated.
    predict.predict_paths([a / "y.png"], segmenter, out, detector=BrightBoxDetector(), progress=False)
    records = _records(out)
    assert len(records) == 3 and [r["mask"] for r in records].count("y_mask.png") == 1

    # A failed retry keeps the earlier result (record and mask) and says what failed.
    (a / "x.png").write_text("now a text file")
    retry = predict.predict_paths([a / "x.png"], segmenter, out, detector=BrightBoxDetector(), progress=False)
    assert retry["failed"] == 1
    kept = {r["file"]: r for r in _records(out)}[str(a / "x.png")]
    assert kept["status"] == "ok" and "not an image" in kept["last_error"]
    assert (out / "x_mask.png").read_bytes() == x_mask and len(_records(out)) == 3


def test_predict_refuses_an_unreadable_predictions_file(tmp_path, segmenter, capsys):
    from abanet_lib import predict

    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text('{"file": "old.jpg", "status": "ok"}\nthis is not json\n')
    before = (out / "predictions.jsonl").read_bytes()
    photo = _photo(tmp_path / "p.png")
    with pytest.raises(predict.OutputFolderError, match=r"predictions.jsonl:2: unreadable record"):
        predict.predict_paths([photo], segmenter, out, detector=BrightBoxDetector(), progress=False)
    assert (out / "predictions.jsonl").read_bytes() == before and not (out / "p_mask.png").exists()


# ---------------------------------------------------------------------------------------
# Silent wrong results
# ---------------------------------------------------------------------------------------
def test_exif_orientation_one_decoding_path_for_training_and_predict(tmp_path):
    from abanet_lib import predict

    upright = np.full((48, 48, 3), 30, np.uint8)
    upright[:24, :24] = 240  # bright top-left quadrant
    mask = np.zeros((48, 48), np.uint8)
    mask[:24, :24] = 255  # annotated on the upright image
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; a viewer turns it 90 degrees clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1))).save(images / "face.jpg", exif=exif, quality=95)
    Image.fromarray(mask).save(masks / "face.png")

    sample = list_folder_pairs(images, masks)[0].load()
    inside, outside = sample.image[sample.mask].mean(), sample.image[~sample.mask].mean()
    assert inside > 200 and outside < 60  # the mask lies on the bright quadrant
    photo, notes = predict.load_photo(images / "face.jpg")
    np.testing.assert_array_equal(photo, read_image(images / "face.jpg"))  # same pixels everywhere
    assert notes == ["rotated upright by its EXIF orientation (6)"]


def _save_mask(path, array, mode):
    Image.fromarray(array, mode).save(path)


def test_four_channel_masks_decided_and_ambiguous_ones_refused(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    label = np.zeros((40, 40), np.uint8)
    label[5:20, 8:30] = 255
    for name in ("alpha", "opaque", "ambiguous", "la", "agree"):
        Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(images / f"{name}.png")
    white = np.full((40, 40, 3), 255, np.uint8)
    _save_mask(masks / "alpha.png", np.dstack([white, label]), "RGBA")  # label painted into the alpha
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = label
    _save_mask(masks / "opaque.png", np.dstack([red, np.full((40, 40), 255, np.uint8)]), "RGBA")
    other = np.zeros((40, 40, 3), np.uint8)
    other[25:35, 25:35] = 255
    _save_mask(masks / "ambiguous.png", np.dstack([other, label]), "RGBA")
    _save_mask(masks / "la.png", np.dstack([np.zeros((40, 40), np.uint8), label]), "LA")
    _save_mask(masks / "agree.png", np.dstack([np.dstack([label] * 3), label]), "RGBA")  # white on transparent

    refs = {r.name: r for r in list_folder_pairs(images, masks)}
    expected = label > 127
    for name in ("alpha", "opaque", "la", "agree"):
        got = refs[name].load().mask
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert got.sum() == 15 * 22
    with pytest.raises(DataError, match=r"ambiguous.png: ambiguous 4-channel mask.*430 of 1,600 pixels differ"):
        refs["ambiguous"].load()
    # label-image data sets (MaskedFace-Net: labels 0/1/2) refuse a label in the alpha channel
    from abanet_lib.data import binarize_mask

    with pytest.raises(DataError, match="maskedfacenet-seg500 masks are label images"):
        binarize_mask(np.dstack([white, label]), "maskedfacenet-seg500")


def test_data_fingerprint_names_sizes_hashes_and_one_digest(tmp_path):
    from abanet_lib.data import check_fingerprint, data_fingerprint, fingerprint_differences
    from abanet_lib.data import synthetic_samples, write_sample_folder

    images, masks = write_sample_folder(synthetic_samples(3, 40, seed=4), tmp_path / "set")
    refs = list_folder_pairs(images, masks)
    fp = data_fingerprint(refs)
    assert fp["version"] == 1 and fp["n_samples"] == 3
    first = refs[0]
    image_bytes, mask_bytes = first.image_path.read_bytes(), first.mask_path.read_bytes()
    assert fp["files"][0] == [first.source, first.name, first.image_path.name, len(image_bytes),
                              hashlib.sha256(image_bytes).hexdigest(), first.mask_path.name, len(mask_bytes),
                              hashlib.sha256(mask_bytes).hexdigest()]
    assert fp["sha256"] == hashlib.sha256(json.dumps(fp["files"], separators=(",", ":")).encode()).hexdigest()
    assert data_fingerprint(list(reversed(refs)) + [refs[1]]) == fp  # order and repeats do not matter
    assert fingerprint_differences(fp, fp) == []

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(refs[1].mask_path)  # the data changes under the run id
    changed = data_fingerprint(refs)
    assert changed["sha256"] != fp["sha256"]
    assert fingerprint_differences(fp, changed) == [f"1 sample(s) changed: folder/{refs[1].name} (mask)"]
    assert fingerprint_differences(fp, data_fingerprint(refs[:2])) == [
        f"1 sample(s) changed: folder/{refs[1].name} (mask)", f"1 sample(s) missing now: folder/{refs[2].name}"]
    with pytest.raises(DataError, match=r"run r-1: the data differs .*synthetic_001 \(mask\)"):
        check_fingerprint(fp, changed, "run r-1")
    check_fingerprint(None, changed, "an older run without a fingerprint")  # passes


def test_zero_epochs_refused_by_the_library_too(tmp_results):
    with pytest.raises(ValueError, match=r"epochs=0; expected at least 1"):
        train(tiny_config(epochs=0), tmp_results / "r", model=TinyNet(), criterion=bce, data=blob_data(),
              progress=False)
    assert not checkpoint_dir(tiny_config(epochs=0)).exists()


class InfBufferAfter(TinyNet):
    """A BatchNorm whose running variance turns infinite at the ``n``-th training call (the
    training loss stays finite: train mode uses batch statistics)."""

    def __init__(self, n: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.n, self.calls = n, 0

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        if self.training:
            self.calls += 1
            if self.calls >= self.n:  # a new tensor: the old one is saved for backward
                self.bn.running_var = torch.full_like(self.bn.running_var, float("inf"))
        return self.conv2(h)


class NaNInEvalAfter(TinyNet):
    """Finite in training; NaN logits from the ``n``-th evaluation call on."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            self.calls += 1
            if self.calls >= self.n:
                return out * float("nan")
        return out


def test_infinite_batchnorm_buffer_stops_before_the_checkpoint(tmp_results):
    cfg = tiny_config(epochs=3)
    torch.manual_seed(0)
    # 3 batches per epoch: call 5 is in epoch 2
    with pytest.raises(NonFiniteLossError, match=r"non-finite values in bn.running_var after epoch 2") as info:
        train(cfg, tmp_results / "bn", model=InfBufferAfter(5), criterion=bce, data=blob_data(), progress=False)
    last_path = checkpoint_dir(cfg) / "last.pt"
    assert f"The last good checkpoint is {last_path} (after epoch 1" in str(info.value)
    last = torch.load(last_path, weights_only=False)
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values()
                                      if v.is_floating_point())
    best = torch.load(checkpoint_dir(cfg) / "best.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in best["model"].values() if v.is_floating_point())


def test_validation_loss_guarded(tmp_results):
    cfg = tiny_config(epochs=3)
    torch.manual_seed(0)
    # 6 validation images in one batch: evaluation call 2 is epoch 2's validation
    with pytest.raises(NonFiniteLossError, match=r"validation loss is nan after epoch 2"):
        train(cfg, tmp_results / "val", model=NaNInEvalAfter(2), criterion=bce, data=blob_data(), progress=False)
    assert torch.load(checkpoint_dir(cfg) / "last.pt", weights_only=False)["epoch"] == 1
    assert len(pd.read_csv(tmp_results / "val" / "history.csv")) == 1


def test_nan_in_the_first_epoch_names_no_missing_checkpoint(tmp_results):
    cfg = tiny_config(epochs=2)
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, tmp_results / "first", model=NaNAfter(1), criterion=bce, data=blob_data(), progress=False)
    message = str(info.value)
    assert "epoch 1, batch 1" in message and "No checkpoint was written" in message
    assert "last.pt" not in message and not (checkpoint_dir(cfg) / "last.pt").exists()


def test_infinite_lr_refused_and_a_non_finite_checkpoint_is_not_resumed(tmp_results):
    with pytest.raises(ValueError, match=r"lr=inf; expected a finite learning rate"):
        train(tiny_config(lr=float("inf")), tmp_results / "lr", model=TinyNet(), criterion=bce,
              data=blob_data(), progress=False)
    cfg = tiny_config(epochs=2)

    def stop(info):
        raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_results / "r", model=TinyNet(), criterion=bce, data=blob_data(), progress=False,
              callbacks=[stop])
    last_path = checkpoint_dir(cfg) / "last.pt"
    state = torch.load(last_path, weights_only=False)
    state["model"]["conv1.bias"][0] = float("inf")  # as written by the old guard
    torch.save(state, last_path)
    with pytest.raises(NonFiniteLossError, match=r"last.pt \(epoch 1\) holds non-finite values in conv1.bias; "
                                                 r"it cannot be resumed"):
        train(cfg, tmp_results / "r", model=TinyNet(), criterion=bce, data=blob_data(), progress=False)


# ---------------------------------------------------------------------------------------
# Tracebacks: one line for deliberate errors, the traceback for bugs
# ---------------------------------------------------------------------------------------
def test_main_one_line_for_deliberate_errors_traceback_for_bugs(tmp_results, capsys, monkeypatch):
    from abanet_lib.registry import RunBusyError

    def raising(err):
        def command(args):
            raise err
        return command

    cases = [(DataError("/data/x.png: unreadable or truncated image\nexpected a JPEG"), 2),
             (RunBusyError("run abanet-1 is being trained by process 7"), 2),
             (NonFiniteLossError("run abanet-1: loss is nan at epoch 2, batch 3"), 2)]
    for err, expected in cases:
        monkeypatch.setitem(cli._COMMANDS, "list-runs", raising(err))
        code, out, stderr = _main(capsys, ["list-runs"])
        assert code == expected and _lines(stderr) == [f"error: {cli.one_line(err)}"], stderr
    assert cli.one_line(cases[0][0]) == "/data/x.png: unreadable or truncated image; expected a JPEG"

    def bug(args):
        return {}["missing"]

    monkeypatch.setitem(cli._COMMANDS, "list-runs", bug)
    code, _, stderr = _main(capsys, ["list-runs"])
    assert code == 1 and "Traceback (most recent call last)" in stderr
    assert _lines(stderr)[-1].startswith("error: unexpected KeyError: 'missing' (a bug")

    def library_value_error(args):
        return json.loads("{")  # a ValueError raised inside another library: a bug, not bad input

    monkeypatch.setitem(cli._COMMANDS, "list-runs", library_value_error)
    code, _, stderr = _main(capsys, ["list-runs"])
    assert code == 1 and "Traceback" in stderr and "JSONDecodeError" in _lines(stderr)[-1]

    monkeypatch.setitem(cli._COMMANDS, "list-runs", raising(DataError("/data/y.png: bad")))
    with pytest.raises(DataError, match="y.png: bad"):
        cli.main(["list-runs", "--debug"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(DataError):
        cli.main(["list-runs"])


def test_damaged_records_are_named_and_the_others_listed(tmp_results, capsys):
    good, bad_metrics, bad_config = (_smoke_cfg(seed=s) for s in (1, 2, 3))
    _fake_record(good)
    (_fake_record(bad_metrics) / "metrics.json").write_text('{"test": {"iou": 0.5')  # cut by a full disk
    (_fake_record(bad_config) / "config.json").write_text("")
    code, out, err = _main(capsys, ["list-runs"])
    assert code == 2
    assert good.run_id in out and bad_metrics.run_id not in out and bad_config.run_id not in out
    err_lines = _lines(err)
    assert len(err_lines) == 2
    assert all(line.startswith("error: damaged run record: ") for line in err_lines)
    assert any(f"{bad_metrics.run_id}/metrics.json" in line for line in err_lines)
    assert any(f"{bad_config.run_id}/config.json" in line for line in err_lines)

    code, _, err = _main(capsys, ["evaluate", "--run", bad_metrics.run_id])
    assert code == 2 and len(_lines(err)) == 1 and f"{bad_metrics.run_id}/metrics.json" in err
    code, _, err = _main(capsys, ["predict", str(_photo(tmp_results / "p.png")), "--run", bad_config.run_id,
                                  "--out", str(tmp_results / "out"), "--device", "cpu"])
    assert code == 2 and len(_lines(err)) == 1 and f"{bad_config.run_id}/config.json" in err
    saved = tmp_results / "saved"  # a save_pretrained folder whose config.json was cut
    saved.mkdir()
    (saved / "config.json").write_text("{")
    (saved / "model.safetensors").write_bytes(b"")
    code, _, err = _main(capsys, ["predict", str(tmp_results / "p.png"), "--run", str(saved), "--out",
                                  str(tmp_results / "out"), "--device", "cpu"])
    assert code == 2 and _lines(err) == [_lines(err)[0]] and f"{saved / 'config.json'} is not valid JSON" in err


def test_failed_model_construction_leaves_no_run_folder(tmp_results, data_mirror, capsys):
    from abanet_lib import registry

    argv = ["train", "--scale", "smoke", "--model", "unet_plain", "--device", "cpu", "--no-progress"]
    code, _, err = _main(capsys, argv + ["--model-kwargs", '{"base_channels": 0}'])
    cfg = _smoke_cfg().with_model(None, base_channels=0)
    assert code == 2 and _lines(err) == [_lines(err)[0]]
    assert f"run {cfg.run_id}: building model 'unet_plain'" in err and "base_channels" in err
    assert not registry.run_dir(cfg).exists() and not registry.staging_dir(cfg).exists()
    assert not checkpoint_dir(cfg).exists()
    # an option the factory does not have is refused before anything is made
    code, _, err = _main(capsys, argv + ["--model-kwargs", '{"channels": 4}'])
    assert code == 2 and _lines(err) == ["error: --model-kwargs: model 'unet_plain' has no option(s) channels; "
                                         "it accepts base_channels, pretrained"]
    assert not (tmp_results / "results" / "runs").exists() or not any(
        p for p in (tmp_results / "results" / "runs").iterdir() if not p.name.startswith("."))


# ---------------------------------------------------------------------------------------
# Unclear errors
# ---------------------------------------------------------------------------------------
def test_empty_data_folder_is_named(tmp_path):
    (tmp_path / "image").mkdir(), (tmp_path / "mask").mkdir()
    with pytest.raises(DataError, match=rf"{tmp_path / 'image'}: no image files .*\(the folder is empty\)"):
        list_samples("mfsd-sample", tmp_path)
    (tmp_path / "image" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"image: no image files .* among its 1 entries"):
        list_folder_pairs(tmp_path / "image", tmp_path / "mask")


def test_mask_size_mismatch_suggests_an_option_the_cli_has(tmp_path, capsys):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir(), masks.mkdir()
    Image.new("RGB", (64, 64)).save(images / "a.png")
    Image.new("L", (32, 32)).save(masks / "a.png")
    with pytest.raises(DataError) as info:
        list_folder_pairs(images, masks)[0].load()
    message = str(info.value)
    assert "train option --resize-masks true" in message and "resize_mismatched_masks=True" in message
    # the option exists, on the command line and in the run's configuration
    args = cli.build_parser(predict_options=False).parse_args(["train", "--scale", "smoke", "--resize-masks",
                                                               "true"])
    cfg = cli.config_from_args(args)
    assert cfg.resize_masks is True and cfg.run_id != get_scale("smoke").base_config().run_id
    assert get_scale("smoke").base_config().replace(resize_masks=False).run_id == \
        get_scale("smoke").base_config().run_id  # earlier runs keep their ids
    assert list_folder_pairs(images, masks, resize_mismatched_masks=True)[0].load().mask.shape == (64, 64)


# ---------------------------------------------------------------------------------------
# Every option, out of range: one line naming it, exit code 2
# ---------------------------------------------------------------------------------------
BAD_VALUES = {
    "train": {
        "--scale": "huge", "--model-kwargs": "[1, 2]", "--model": "no-such-model", "--loss": "focal,dice",
        "--loss-variant": "mine", "--focal-alpha": "1.5", "--focal-gamma": "-1", "--optimizer": "lbfgs",
        "--lr": "inf", "--weight-decay": "-0.1", "--momentum": "1", "--schedule": "linear", "--grad-clip": "0",
        "--batch-size": "0", "--image-size": "50", "--epochs": "0", "--train-datasets": "imagenet",
        "--eval-dataset": "imagenet", "--split": "random", "--n-folds": "1", "--fold": "-1",
        "--val-fraction": "1", "--max-train-images": "0", "--max-eval-images": "0",
        "--extra-train-images": "-5", "--resize-masks": "maybe", "--augment": "maybe", "--pretrained": "2",
        "--seed": "-1", "--precision": "fp8", "--channels-last": "sometimes", "--early-stopping": "0",
        "--device": "tpu", "--num-workers": "-1", "--max-batches": "0",
    },
    "evaluate": {"--run": "", "--save-predictions": "FILE", "--device": "cuda:99", "--precision": "fp64",
                 "--batch-size": "0"},
    "predict": {"--run": "", "--out": "FILE", "--detector": "yolo", "--boxes": "MISSING", "--margin": "-0.1",
                "--no-face": "maybe", "--threshold": "1", "--max-pixels": "10", "--device": "gpu"},
    "reproduce": {"--scale": "huge", "--only": "x1", "--from": "one", "--notebooks-dir": "MISSING",
                  "--out-dir": "FILE", "--kernel": "no-such-kernel-xyz", "--cell-timeout": "0"},
    "list-runs": {"--model": "smp:Nope:resnet34", "--scale": "huge"},
}
#: Cross-option values, each also one line naming the option.
MORE_BAD_VALUES = [
    ("train", ["--fold", "5"], "--fold"), ("train", ["--lr", "0"], "--lr"), ("train", ["--lr", "nan"], "--lr"),
    ("train", ["--epochs", "-1"], "--epochs"), ("train", ["--split", "given"], "--split"),
    ("train", ["--precision", "fp16", "--device", "cpu"], "--precision"),
    ("train", ["--model-kwargs", '{"nope": 1}'], "--model-kwargs"),
    ("evaluate", ["--precision", "fp16", "--device", "cpu"], "--precision"),
]


def _options(parser: argparse.ArgumentParser, command: str) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a.option_strings[-1] for a in sub._actions
            if a.option_strings and a.nargs != 0 and "--help" not in a.option_strings]


def test_every_cli_option_out_of_range_is_one_line_naming_it(tmp_results, capsys, monkeypatch):
    from abanet_lib import registry, reproduce

    def must_not_run(*args, **kwargs):
        raise AssertionError("reached the work with a bad option")

    monkeypatch.setattr(registry, "run_or_load", must_not_run)
    monkeypatch.setattr(reproduce, "reproduce", must_not_run)
    parser = cli.build_parser()
    for command, bad in BAD_VALUES.items():
        assert sorted(_options(parser, command)) == sorted(bad), f"{command}: give every option a bad value"
    a_file = tmp_results / "a_file.txt"
    a_file.write_text("x")
    photo = _photo(tmp_results / "photo.png")
    base = {"train": ["train", "--scale", "smoke"], "evaluate": ["evaluate", "--run", "abanet-000000000000"],
            "predict": ["predict", str(photo), "--run", "untrained:unet_plain@32", "--out",
                        str(tmp_results / "out")],
            "reproduce": ["reproduce", "--scale", "smoke"], "list-runs": ["list-runs"]}
    substitute = {"FILE": str(a_file), "MISSING": str(tmp_results / "missing")}
    cases = [(c, [opt, substitute.get(v, v)], opt) for c, bad in BAD_VALUES.items() for opt, v in bad.items()]
    cases += [(c, extra, opt) for c, extra, opt in MORE_BAD_VALUES]
    failures = []
    for command, extra, option in cases:
        code, out, err = _main(capsys, base[command] + extra)
        lines = _lines(err)
        if code != 2 or len(lines) != 1 or option not in lines[0]:
            failures.append(f"{command} {' '.join(extra)}: exit {code}, stderr {lines}")
    assert not failures, "\n".join(failures)
    assert len(cases) == 66  # the probe's option walk: 58 options + 8 combinations


def test_cli_choices_equal_the_library_lists():
    from abanet_lib import losses
    from abanet_lib.data.loaders import LISTERS
    from abanet_lib.devices import PRECISIONS
    from abanet_lib.train import OPTIMIZERS, SCHEDULES

    assert cli.LOSS_COMPONENTS == losses.COMPONENTS and cli.LOSS_VARIANTS == losses.VARIANTS
    assert cli.OPTIMIZERS == OPTIMIZERS and cli.SCHEDULES == SCHEDULES
    assert set(cli.DATASET_NAMES) == set(LISTERS) and tuple(cli.PRECISIONS) == tuple(PRECISIONS)
    import dataclasses

    # train_crops: set by abanet_lib.photo_model only (the generic train command cannot build those crops)
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"model_kwargs", "scale", "train_crops"}
    assert fields == set(cli.FIELD_TYPES)  # every option of train is validated


# ---------------------------------------------------------------------------------------
# Issue 10, item 5: say what you loaded
# ---------------------------------------------------------------------------------------
def test_train_on_a_finished_record_says_what_it_loaded(tmp_results, capsys, monkeypatch):
    from abanet_lib import registry

    cfg = _smoke_cfg(max_train_images=8, seed=3)
    _fake_record(cfg)
    monkeypatch.setattr(registry, "run_or_load", lambda *a, **k: pytest.fail("train retrained a finished run"))
    argv = ["train", "--scale", "smoke", "--model", "unet_plain", "--model-kwargs", '{"base_channels": 4}',
            "--max-train-images", "8", "--seed", "3", "--device", "cpu"]
    code, out, _ = _main(capsys, argv)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == (f"run {cfg.run_id}: loaded the finished record {registry.run_dir(cfg)} (nothing was "
                        "trained now); test iou 0.4321 f1 0.5432 (n=8)")
    assert lines[1] == "  trained 2026-01-02T03:04:05+00:00 on cpu (Probe CPU), 1 epoch(s), scale smoke, commit 0123abc"
    assert lines[2].startswith(f"  weights: NOT on this machine (looked for {checkpoint_dir(cfg) / 'best.pt'}")
    command = lines[3].removeprefix("  retrain: ")
    assert command.startswith("python -m abanet_lib train --scale smoke ") and command.endswith(" --force")
    args = cli.build_parser(predict_options=False).parse_args(shlex.split(command)[3:])
    assert args.force and cli.config_from_args(args).run_id == cfg.run_id  # the command retrains this run
    assert lines[4] == ("  expected time here: about 12 s (the record's train_seconds, measured on cpu "
                        "(Probe CPU))") or lines[4].startswith("  expected time here: about 12 s (the record's "
                                                               "train_seconds, measured on cpu (Probe CPU); "
                                                               "this machine would train on cuda")
    ckpt = checkpoint_dir(cfg) / "best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    code, out, _ = _main(capsys, argv)
    assert out.splitlines()[2] == f"  weights: on this machine ({ckpt})"


def test_predict_with_smoke_weights_warns_and_says_so_in_every_record(tmp_results, capsys):
    cfg = _smoke_cfg(seed=5)
    _fake_record(cfg, weights=True)
    photo = _photo(tmp_results / "face.png")
    out = tmp_results / "out"
    code, stdout, stderr = _main(capsys, ["predict", str(photo), "--run", cfg.run_id, "--out", str(out),
                                          "--detector", "haar:frontalface_default", "--device", "cpu"])
    assert code == 0
    assert "WARNING: " in stdout + stderr and "smoke-scale run" in stdout + stderr
    record = _records(out)[0]
    assert (record["weights"], record["model"], record["scale"], record["train_datasets"], record["trained"]) == \
        (cfg.run_id, "unet_plain", "smoke", ["mfsd-sample"], True)
    assert record["warning"].startswith(f"{cfg.run_id} holds weights of a smoke-scale run")
    # random weights say so too; weights of a real scale carry no warning
    code, _, _ = _main(capsys, ["predict", str(photo), "--run", "untrained:unet_plain@32", "--out",
                                str(tmp_results / "out2"), "--detector", "haar:frontalface_default"])
    record = _records(tmp_results / "out2")[0]
    assert code == 0 and record["trained"] is False and "random weights" in record["warning"]
    from abanet_lib import predict

    assert predict.weights_warning("abanet-1", True, "reduced") is None
