"""Tables and figures about the models themselves (notebook 02): sizes, costs, the gated decoder.

Everything here builds models through :func:`abanet_lib.models.create_model`; nothing trains.
Parameters and FLOPs are counted by :mod:`abanet_lib.models.inspect` (FLOPs: 2 x
multiply-accumulates of convolutions and matrix products, batch 1, eval mode); papers often
quote multiply-accumulates as "FLOPs", i.e. half of these numbers.
"""
from __future__ import annotations

import inspect as pyinspect
import math
import warnings
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from abanet_lib.data import image_to_tensor, list_samples, resize_pair, synthetic_samples
from abanet_lib.models import create_model, describe_model, list_models
from abanet_lib.models.base import main_output
from abanet_lib.models.smp_models import SmpSegmentationModel
from abanet_lib.models.inspect import count_flops, count_parameters, describe_stages

#: models worth showing when a scale allows only a few
QUICK_MODELS = ("abanet", "abanet_official", "smp:Unet:resnet34", "unet_plain")


def _shape_model(model: nn.Module | str, **kw) -> tuple[nn.Module, torch.device]:
    """A model for shape-only passes: a factory name is built on the meta device (no weights,
    no arithmetic, so a 256x256 pass costs nothing); a module is used where it lives."""
    if isinstance(model, str):
        with torch.device("meta"):
            return create_model(model, **kw), torch.device("meta")
    return model, next(model.parameters()).device


def total_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not), by :func:`abanet_lib.models.inspect.count_parameters`."""
    return count_parameters(model, gradients=False)["total"]


def model_table(names: Iterable[str] | None = None, image_size: int = 256, flops: bool = True,
                seed: int = 0, prebuilt: dict[str, nn.Module] | None = None) -> pd.DataFrame:
    """One row per model: name, description, parameters, FLOPs at ``image_size``.

    Args:
        names: factory names (default: every name of :func:`list_models`).
        image_size: square input side for the FLOP count.
        flops: count FLOPs (builds the real model; else a fast meta-device build).
        seed: weight seed (FLOPs of Mask R-CNN depend on the number of detections).
        prebuilt: already built models by name (saves building them again).

    Returns:
        DataFrame with columns ``model``, ``params_M``, ``GFLOPs``, ``trainable``, ``note``,
        ``description`` (GFLOPs is NaN for GrabCut, which is not a network).
    """
    rows = []
    for name in (list(names) if names is not None else list_models()):
        torch.manual_seed(seed)
        if prebuilt and name in prebuilt:
            model = prebuilt[name]
        elif flops:
            model = create_model(name)
        else:
            with torch.device("meta"):
                model = create_model(name)
        trainable = bool(model.trainable)
        gflops = (count_flops(model, image_size, random_input=True, on_error="nan") / 1e9
                  if flops and trainable else math.nan)
        note = ""
        if isinstance(model, SmpSegmentationModel) and image_size < model.min_side:  # PAN: padded up
            note = f"input zero-padded to {model.min_side}x{model.min_side}"
        elif name == "maskrcnn":
            note = "FLOPs depend on the number of detections"
        rows.append({"model": name, "params_M": total_parameters(model) / 1e6, "GFLOPs": gflops,
                     "trainable": trainable, "note": note, "description": describe_model(name)})
        del model
    return pd.DataFrame(rows)


def parameters_by_block(model: nn.Module) -> pd.DataFrame:
    """Parameters of each top-level block (child module), with its share of the total."""
    total = total_parameters(model)
    rows = [{"block": name, "type": type(child).__name__, "params": total_parameters(child)}
            for name, child in model.named_children()]
    own = total - sum(r["params"] for r in rows)
    if own:
        rows.append({"block": "(direct parameters)", "type": "", "params": own})
    df = pd.DataFrame(rows)
    df["share_%"] = 100.0 * df["params"] / max(total, 1)
    return df


def stage_table(model: nn.Module | str, image_size: int) -> pd.DataFrame:
    """Tensor shapes stage by stage at a (1, 3, S, S) input.

    Uses :func:`abanet_lib.models.inspect.describe_stages`, else (a model it cannot run) a hook
    table of every top-level block (and every decoder stage and gate).
    A factory name is built on the meta device (shapes only, instant at any size).
    """
    model, device = _shape_model(model)
    try:
        return describe_stages(model, image_size)
    except Exception as err:  # e.g. a model that needs real weights: use the hook table
        warnings.warn(f"describe_stages failed ({err}); using catalog's hook table", stacklevel=2)
    records: list[dict] = []

    def hook(name):
        def record(module, inputs, output):
            out = main_output(output) if isinstance(output, (tuple, list)) else output
            shapes = [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]
            records.append({"module": name, "type": type(module).__name__,
                            "input": shapes[0] if shapes else None,
                            "output": tuple(out.shape) if isinstance(out, torch.Tensor) else None})
        return record

    handles = []
    for name, child in model.named_modules():
        depth = name.count(".")
        if name and (depth == 0 or (depth == 1 and name.split(".")[0] in ("decoder", "gates"))):
            handles.append(child.register_forward_hook(hook(name)))
    _probe_forward(model, image_size, device, handles)
    return pd.DataFrame(records)


def _probe_forward(model: nn.Module, image_size: int, device, handles: list) -> None:
    """One eval-mode forward of a (1, 3, S, S) random image, to fire the shape hooks.

    The model's train/eval mode is restored and the hook ``handles`` removed afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def decoder_table(model: nn.Module | str, image_size: int = 256, **model_kw) -> pd.DataFrame:
    """The decoder as a table: stage, resolution, channels in/out, gate, side output.

    Works for models with ``decoder`` (a ModuleDict ``stage{k}d`` run as whole modules),
    optional ``gates`` and ``side_heads`` (ABANet, BASNet); shapes come from forward hooks.
    A factory name (with ``model_kw``) is built on the meta device (shapes only).

    Returns:
        DataFrame with columns ``decoder_stage`` ("6d".."1d"), ``paper_stage`` (1..6),
        ``resolution`` (e.g. "32x32"), ``channels_in``, ``channels_out``, ``skip`` (encoder
        stage h_k), ``gated`` (paper stage of the gate or "-"), ``side_output``.
    """
    model, device = _shape_model(model, **model_kw)
    if not hasattr(model, "decoder"):
        raise ValueError(f"decoder_table: {type(model).__name__} has no 'decoder' attribute")
    seen: dict[str, tuple] = {}

    def recorder(key):
        def record(module, inputs, output) -> None:  # returning None keeps the output
            seen.setdefault(key, (tuple(inputs[0].shape), tuple(output.shape)))
        return record

    handles = [m.register_forward_hook(recorder(key)) for key, m in model.decoder.items()]
    _probe_forward(model, image_size, device, handles)
    if not seen:
        raise ValueError(f"decoder_table: {type(model).__name__} does not run its decoder stages as "
                         "whole modules (e.g. ABANetOfficial); no stage was recorded")
    gated = model.gated_encoder_stages  # only the ABANet family runs its decoder stages as modules
    heads = set(model.side_heads.keys())
    rows = []
    for key, (shape_in, shape_out) in seen.items():
        k = int("".join(c for c in key if c.isdigit()))
        rows.append({"decoder_stage": f"{k}d", "paper_stage": 7 - k,
                     "resolution": f"{shape_out[-2]}x{shape_out[-1]}",
                     "channels_in": shape_in[1], "channels_out": shape_out[1], "skip": f"h{k}",
                     "gated": f"yes (paper stage {gated[k]})" if k in gated else "-",
                     "side_output": f"d{k}" if f"d{k}" in heads else "-"})
    return pd.DataFrame(rows)


def unused_parameters(model: nn.Module, image_size: int = 32) -> pd.DataFrame:
    """Parameters that receive no gradient from a forward/backward of all outputs.

    The pass runs in eval mode (batch 1 works at any size; the graph is the same as in train
    mode) with ``return_all=True`` where the model supports it, else in train mode.

    Returns:
        DataFrame (``parameter``, ``shape``, ``count``), one row per unused tensor.
    """
    all_outputs = "return_all" in pyinspect.signature(model.forward).parameters
    was_training = model.training
    model.train(not all_outputs)
    model.zero_grad(set_to_none=True)
    try:
        x = torch.randn(1 if all_outputs else 2, 3, image_size, image_size)
        out = model(x, return_all=True) if all_outputs else model(x)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        sum(o.float().mean() for o in outs).backward()
    finally:
        model.train(was_training)
    rows = [{"parameter": n, "shape": tuple(p.shape), "count": p.numel()}
            for n, p in model.named_parameters() if p.grad is None]
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows, columns=["parameter", "shape", "count"])


def released_code_departures(paper: nn.Module | None = None, official: nn.Module | None = None,
                             unused: pd.DataFrame | None = None) -> pd.DataFrame:
    """Where the released ABANet code departs from the paper (facts from the official-code
    notes), with the parameter counts of both variants computed here.

    Args:
        paper, official: already built ``abanet`` / ``abanet_official`` models (built if None).
        unused: :func:`unused_parameters` of ``official`` (computed if None).
    """
    torch.manual_seed(0)
    paper = paper if paper is not None else create_model("abanet")
    official = official if official is not None else create_model("abanet_official")
    unused = unused if unused is not None else unused_parameters(official)
    p_paper, p_off = total_parameters(paper) / 1e6, total_parameters(official) / 1e6
    rows = [
        ("gated skips", "gates on paper stages 4, 5, 6 (Table 6)",
         "gates on the 3 finest skips (h3, h2, h1): the same skips"),
        ("use of the gated skip", "concatenated with the upsampled decoder features",
         "replaces the decoder path below stage 4d (deep features reach fine stages only via psi)"),
        ("gate input g", "previous decoder stage output",
         "stage 4d features after its middle conv (512 ch), then the gated outputs"),
        ("parameters", f"{p_paper:.2f} M (this project's paper variant)",
         f"{p_off:.2f} M, of which {unused['count'].sum() / 1e6:.2f} M receive no gradient"),
        ("focal loss", "alpha 0.3, gamma 2, on logits",
         "sigmoid applied twice, alpha 0.25 on negatives only, detached modulating factor"),
        ("SSIM constants", "C1 = 0.012, C2 = 0.032 (typos)", "C1 = 0.01^2, C2 = 0.03^2"),
        ("training", "batch 8, Adam 1e-4, 256x256", "batch 1, Adam 1e-3, random crop 224, 8,000 iterations"),
        ("evaluation", "MAE, F-beta, S-measure, FPS reported", "per-image mean of acc/F1/IoU/P/R only"),
    ]
    return pd.DataFrame(rows, columns=["aspect", "paper", "released code"])


# ------------------------------------------------------------------------------ figures
def sample_for_figures(image_size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """One masked-face crop: the first mfsd-sample image when the mirror is present, else a
    synthetic one. Returns (image (S,S,3) uint8, mask (S,S) bool, label)."""
    try:
        ref = list_samples("mfsd-sample")[0]
        sample = ref.load()
        label = f"mfsd-sample: {sample.name}"
    except Exception:  # no data mirror / not downloaded: fall back to a fake face
        sample = synthetic_samples(1, image_size, seed)[0]
        label = "synthetic sample (no data set available)"
    image, mask = resize_pair(sample.image, sample.mask, image_size)
    return image, mask.astype(bool), label


def attention_and_side_outputs(model: nn.Module, image: np.ndarray) -> tuple[dict, dict]:
    """Run ABANet on one uint8 image and return (paper stage -> psi (h, w) array,
    output name -> probability map (H, W) array)."""
    model.eval()
    with torch.no_grad():
        outputs = model(image_to_tensor(np.array(image, copy=True))[None], return_all=True)
    names = model.output_names()
    probs = {n: torch.sigmoid(o[0, 0]).numpy() for n, o in zip(names, outputs)}
    psi = {s: p[0, 0].float().numpy() for s, p in sorted(model.last_attention.items())}
    return psi, probs


def plot_attention_and_sides(image: np.ndarray, mask: np.ndarray, psi: dict, probs: dict, title: str):
    """Figure: the image, its mask, every attention map psi and every output probability map."""
    import matplotlib.pyplot as plt  # local import: matplotlib is slow to import and only plots need it

    panels = [("image", image, None), ("ground truth", mask, "gray")]
    panels += [(f"psi, paper stage {s} ({a.shape[0]}x{a.shape[1]})", a, "magma") for s, a in psi.items()]
    panels += [(f"output {n}", p, "gray") for n, p in probs.items()]
    ncols = 5
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.7 * nrows), squeeze=False)
    for ax, (label, arr, cmap) in zip(axes.flat, panels):
        kwargs = {"vmin": 0, "vmax": 1} if cmap else {}
        ax.imshow(arr, cmap=cmap, **kwargs)
        ax.set_title(label, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_model_costs(table: pd.DataFrame, image_size: int):
    """Scatter of parameters (M) against GFLOPs, one labelled point per model."""
    import matplotlib.pyplot as plt  # local import: matplotlib is slow to import and only plots need it

    data = table.dropna(subset=["GFLOPs"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(data["params_M"], data["GFLOPs"], s=18)
    for _, row in data.iterrows():
        ax.annotate(row["model"].replace("smp:", ""), (row["params_M"], row["GFLOPs"]), fontsize=6,
                    xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(f"GFLOPs at {image_size}x{image_size} (batch 1)")
    ax.set_title("Model size and cost")
    fig.tight_layout()
    return fig
