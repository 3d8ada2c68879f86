"""save_pretrained / from_pretrained round trip and ONNX parity (ABANet and a baseline at 64x64)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from abanet_lib.app import export
from abanet_lib.core.config import RunConfig

ONNX_TOL = 1e-4  # max abs difference of probabilities, onnxruntime vs PyTorch fp32


def _real_batch(size: int) -> torch.Tensor:
    """One real MFSD crop when the mirror is there, else a synthetic face, normalised (1,3,S,S)."""
    from abanet_lib.core import paths
    from abanet_lib.app.predict import Segmenter

    mirror = paths.data_mirror()
    crops = sorted((mirror / "mfsd-sample" / "image").glob("*.jpg"))[:1] if mirror else []
    if crops:
        from PIL import Image

        image = np.asarray(Image.open(crops[0]).convert("RGB"))
    else:
        from abanet_lib.data import synthetic_samples

        image = synthetic_samples(1, size=size, seed=0)[0].image
    return Segmenter(torch.nn.Identity(), size).preprocess([image])


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "torch-pickle"])
def test_save_load_round_trip_identical_outputs(tmp_path, safe):
    from abanet_lib.models import create_model

    cfg = RunConfig(image_size=32, scale="smoke").with_model("unet_plain", base_channels=8)
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.model_kwargs_dict)
    with torch.no_grad():  # make BN statistics non-default so they must round-trip too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    folder = export.save_pretrained(model, cfg, tmp_path / "shared", safe=safe)
    weights = "model.safetensors" if safe else "model.pt"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["README.md", "config.json", weights])
    config = json.loads((folder / "config.json").read_text())
    assert config["model_name"] == "unet_plain" and config["model_kwargs"] == {"base_channels": 8}
    assert config["image_size"] == 32 and config["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert config["run_id"] == cfg.run_id

    loaded, loaded_cfg = export.from_pretrained(folder)
    assert loaded_cfg == cfg and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_from_pretrained_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_name": "unet_plain"}))
    with pytest.raises(ValueError, match="missing key"):
        export.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["abanet", "smp:Unet:resnet34"])
def test_onnx_parity(tmp_path, name):
    from abanet_lib.models import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    path = export.export_onnx(model, tmp_path / "model.onnx", image_size=64)
    inputs = torch.cat([torch.randn(1, 3, 64, 64), _real_batch(64)])
    diff = export.onnx_parity(model, path, inputs)
    assert diff < ONNX_TOL, f"{name}: max abs probability difference {diff}"
    # Dynamic batch axis: a batch of 3 runs and gives (3, 1, 64, 64) logits.
    out = export.onnx_session(path).run(["logits"], {"images": np.zeros((3, 3, 64, 64), np.float32)})[0]
    assert out.shape == (3, 1, 64, 64)
