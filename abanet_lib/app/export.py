"""Share a trained model: a self-describing folder (Hub layout) and ONNX.

Folder layout written by :func:`save_pretrained` (the layout of a Hugging Face Hub model
repository, so the folder can be uploaded as is; loading needs no network)::

    config.json          model name + kwargs, image size, normalisation, RunConfig, provenance
    model.safetensors    the state dict (``model.pt`` when safetensors is not installed)
    README.md            a short model card

:func:`export_onnx` writes a graph mapping normalised images (N, 3, S, S) to logits
(N, 1, S, S) (the main output only, eval mode), with a dynamic batch axis.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from abanet_lib import __version__
from abanet_lib.core.config import RunConfig
from abanet_lib.engine.assembly import build_network
from abanet_lib.data import transforms
from abanet_lib.models.base import main_output

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
TORCH_NAME = "model.pt"
#: ImageNet statistics, the normalisation every model of the project is trained with (one home:
#: :mod:`abanet_lib.data.transforms`).
IMAGENET_MEAN, IMAGENET_STD = transforms.IMAGENET_MEAN, transforms.IMAGENET_STD


def _has_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
        return True
    except ImportError:
        return False


def save_pretrained(model: nn.Module, cfg: RunConfig, folder: str | os.PathLike,
                    extra: dict | None = None, safe: bool | None = None) -> Path:
    """Write ``model`` and its config into ``folder`` (created; existing files replaced).

    Args:
        model: a trained model built by ``create_model(cfg.model, **cfg.model_kwargs_dict)``.
        cfg: the run's configuration (its model name, kwargs and image size are recorded).
        extra: more JSON-able facts for config.json (e.g. metrics, run id).
        safe: force safetensors (True) or torch pickle (False); default safetensors when installed.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safe = _has_safetensors() if safe is None else safe
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if safe:
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory: store each once, independent copies.
        save_file({k: v.clone() for k, v in state.items()}, str(folder / SAFETENSORS_NAME),
                  metadata={"format": "pt"})
        (folder / TORCH_NAME).unlink(missing_ok=True)
    else:
        torch.save(state, folder / TORCH_NAME)
        (folder / SAFETENSORS_NAME).unlink(missing_ok=True)
    config = {
        "abanet_format": FORMAT_VERSION,
        "model_name": cfg.model,
        "model_kwargs": cfg.model_kwargs_dict,
        "image_size": cfg.image_size,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "input": "RGB scaled to [0, 1], then (x - mean) / std, shape (N, 3, S, S)"},
        "output": "logits (N, 1, S, S); sigmoid > 0.5 = mask",
        "weights": SAFETENSORS_NAME if safe else TORCH_NAME,
        "run_id": cfg.run_id,
        "run_config": cfg.to_dict(),
        "library": {"abanet_lib": __version__, "torch": torch.__version__},
    }
    config.update(extra or {})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    (folder / "README.md").write_text(_model_card(config))
    return folder


def is_pretrained_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by :func:`save_pretrained`."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and ((path / SAFETENSORS_NAME).is_file()
                                               or (path / TORCH_NAME).is_file())


def read_config(folder: str | os.PathLike) -> dict:
    """The config.json of a saved folder, validated."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json; expected a folder written by save_pretrained")
    config = json.loads(path.read_text())
    missing = {"model_name", "model_kwargs", "image_size", "run_config"} - set(config)
    if missing:
        raise ValueError(f"{path}: missing key(s) {sorted(missing)}; not an abanet save_pretrained folder")
    return config


def build_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Build an architecture without downloading weights (the engine's :func:`build_network`)."""
    return build_network(name, kwargs, pretrained=False)


def from_pretrained(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, RunConfig]:
    """Load a folder written by :func:`save_pretrained`; no network access.

    Returns:
        ``(model in eval mode on device, RunConfig)``.

    Raises:
        FileNotFoundError / ValueError: the folder lacks config.json or weights, or they do not fit.
    """
    folder = Path(folder)
    config = read_config(folder)
    cfg = RunConfig.from_dict(config["run_config"])
    model = build_model(config["model_name"], config["model_kwargs"])
    if (folder / SAFETENSORS_NAME).is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / SAFETENSORS_NAME))
    elif (folder / TORCH_NAME).is_file():
        state = torch.load(folder / TORCH_NAME, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: neither {SAFETENSORS_NAME} nor {TORCH_NAME} found")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{folder}: weights do not fit model {config['model_name']!r} "
                         f"with kwargs {config['model_kwargs']}: {err}") from err
    return model.to(device).eval(), cfg


# ---------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------
class _MainLogits(nn.Module):
    """Wrap a model so the graph returns only the main logits (N, 1, H, W)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


def export_onnx(model: nn.Module, path: str | os.PathLike, image_size: int, opset: int = 17,
                dynamic_batch: bool = True) -> Path:
    """Export ``model`` (eval mode, fp32, CPU) to ONNX.

    Args:
        model: (N, 3, S, S) normalised images -> logits (N, 1, S, S) (or a tuple, main first).
        path: output ``.onnx`` file.
        image_size: S of the traced input (the graph keeps H, W fixed).
        opset: ONNX opset.
        dynamic_batch: make the batch axis dynamic.

    Returns:
        The path written. Input name ``images``, output name ``logits``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper = _MainLogits(model).eval().float().cpu()
    dummy = torch.zeros(1, 3, image_size, image_size)
    axes = {"images": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape checks in forward() become constants of the traced graph (fixed S): expected.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The current (torch.export-based, dynamo=True) exporter needs onnxscript, which no
            # offline wheel here provides; the TorchScript exporter is kept on purpose (parity
            # is tested), so its deprecation notice says nothing the user can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(wrapper, (dummy,), str(path), input_names=["images"],
                              output_names=["logits"], opset_version=opset,
                              dynamic_axes=axes, dynamo=False)
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU InferenceSession for ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: nn.Module, path: str | os.PathLike, inputs: torch.Tensor) -> float:
    """Max abs difference of probabilities, ONNX Runtime vs PyTorch fp32, on ``inputs`` (N,3,S,S)."""
    model = model.eval().float().cpu()
    with torch.no_grad():
        ref = torch.sigmoid(main_output(model(inputs.float()))).numpy()
    logits = onnx_session(path).run(["logits"], {"images": inputs.float().numpy()})[0]
    got = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return float(np.abs(got - ref).max())




def _model_card(config: dict) -> str:
    run = config["run_config"]
    return (f"---\nlibrary_name: abanet_lib\ntags: [image-segmentation, masked-face, abanet]\n---\n"
            f"# {config['model_name']} for mask-region segmentation\n\n"
            f"Binary segmentation of the face-mask region in a face crop (ABANet companion).\n\n"
            f"- input: {config['normalization']['input']}, S = {config['image_size']}\n"
            f"- output: {config['output']}\n"
            f"- run id: `{config['run_id']}`; scale `{run.get('scale')}`, trained on "
            f"{run.get('train_datasets')} for {run.get('epochs')} epochs\n\n"
            f"```python\nfrom abanet_lib.app.export import from_pretrained\n"
            f"model, cfg = from_pretrained('path/to/this/folder')\n```\n")
