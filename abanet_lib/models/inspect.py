"""Inspection helpers: stage-by-stage shapes, parameter counts and FLOPs of a model.

The forward passes run on a copy of the model on PyTorch's ``meta`` device (shapes only, no
arithmetic), so they take well under a second even for the 87 M-parameter ABANet; if an
operator has no meta implementation they fall back to a real CPU pass on a copy.
"""
from __future__ import annotations

import copy
import inspect
import math
import warnings
from typing import Callable

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from abanet_lib.models.base import main_output

_CONTAINERS = (nn.ModuleDict, nn.ModuleList)


def _copy_to(model: nn.Module, device: str) -> nn.Module:
    clone = copy.deepcopy(model)
    return clone.to(device)


def _run_on_copy(model: nn.Module, fn: Callable[[nn.Module, str], object]) -> object:
    """Run ``fn(copy, device)`` on a meta copy, or on a CPU copy when meta is unsupported."""
    try:
        return fn(_copy_to(model, "meta"), "meta")
    except (NotImplementedError, RuntimeError):
        return fn(_copy_to(model, "cpu"), "cpu")


def stage_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks reported by :func:`describe_stages`: top-level children, with containers
    (ModuleDict/ModuleList and the ``Encoder``) expanded one level."""
    blocks = []
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS) or type(child).__name__ == "Encoder":
            blocks += [(f"{name}.{sub}", m) for sub, m in child.named_children()]
        else:
            blocks.append((name, child))
    return blocks


def _shape(value) -> tuple | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(value[0].shape)
    return None


def describe_stages(model: nn.Module, image_size: int | tuple[int, int] = 256,
                    batch: int = 1) -> pd.DataFrame:
    """Tensor shapes and parameters block by block, in execution order.

    Args:
        model: any module mapping (N, 3, H, W) to outputs.
        image_size: input side (or (H, W)).
        batch: N of the probe input.

    Returns:
        DataFrame with columns ``block``, ``type``, ``calls`` (0 = built but never run),
        ``input_shape``, ``output_shape`` (of the first call; for gates the gated skip; for a
        block the released-code graph runs piecewise, the output of its last part run),
        ``params``. Blocks never called come last. The forward uses ``return_all=True`` when
        the model accepts it, so side heads are included.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size

    def probe(clone: nn.Module, device: str) -> pd.DataFrame:
        clone.eval()
        records: dict[str, dict] = {}
        order: list[str] = []
        handles = []

        def make_hook(name: str, is_block: bool):
            def hook(module, inputs, output):
                rec = records[name]
                if name not in order:
                    order.append(name)
                    rec["input_shape"] = _shape(inputs[-1] if inputs else None)
                if is_block:
                    rec["calls"] += 1
                    if rec["calls"] == 1:
                        rec["output_shape"] = _shape(output)
                elif rec["calls"] == 0:
                    # block run piecewise (released-code graph): keep its last part's output
                    rec["output_shape"] = _shape(output)
                    rec["parts_run"] = True
            return hook

        for name, block in stage_blocks(clone):
            records[name] = {"block": name, "type": type(block).__name__, "calls": 0,
                             "input_shape": None, "output_shape": None,
                             "params": sum(p.numel() for p in block.parameters()),
                             "parts_run": False}
            handles.append(block.register_forward_hook(make_hook(name, True)))
            for child in block.children():
                handles.append(child.register_forward_hook(make_hook(name, False)))
        kwargs = {"return_all": True} if "return_all" in inspect.signature(clone.forward).parameters else {}
        try:
            with torch.no_grad():
                clone(torch.zeros(batch, 3, h, w, device=device), **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        for rec in records.values():
            if rec["calls"] == 0 and rec.pop("parts_run"):
                rec["calls"] = 1
            rec.pop("parts_run", None)
        names = order + [n for n in records if n not in order]
        return pd.DataFrame([records[n] for n in names])

    return _run_on_copy(model, probe)


def count_parameters(model: nn.Module, image_size: int = 64, batch: int = 1,
                     gradients: bool = True) -> dict[str, int]:
    """Total, trainable and no-gradient parameter counts: the package's one parameter counter.

    "no_grad" counts trainable parameters whose ``.grad`` is still None after one train-mode
    forward/backward of a (batch, 3, image_size, image_size) input with the loss = sum of the
    means of all outputs, i.e. parameters that are built but not part of the graph. With
    ``gradients=False`` there is no pass (any module, e.g. one block) and no "no_grad" entry.
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not gradients:
        return {"total": total, "trainable": trainable}

    def backward(clone: nn.Module, device: str) -> int:
        clone.train()
        for p in clone.parameters():
            p.grad = None
        out = clone(torch.zeros(batch, 3, image_size, image_size, device=device))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        sum(o.float().mean() for o in outs).backward()
        return sum(p.numel() for p in clone.parameters() if p.requires_grad and p.grad is None)

    no_grad = _run_on_copy(model, backward) if trainable else 0
    return {"total": total, "trainable": trainable, "no_grad": int(no_grad)}


def count_flops(model: nn.Module, image_size: int | tuple[int, int] = 256, batch: int = 1, *,
                random_input: bool = False, on_error: str = "raise") -> int | float:
    """FLOPs of one eval-mode forward (torch FlopCounterMode: a multiply-add counts as 2): the
    package's one FLOP counter.

    Only matmul/convolution-type operators are counted (BN, ReLU, interpolation are not).

    Args:
        random_input: probe with ``torch.randn`` (drawn from the global RNG) instead of zeros;
            for models whose work depends on the content (Mask R-CNN's detections).
        on_error: ``"raise"``, or ``"nan"`` to warn and return ``math.nan`` for a model that
            cannot run at this size (a table row then says so).
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    make = torch.randn if random_input else torch.zeros

    def flops(clone: nn.Module, device: str) -> int:
        clone.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            main_output(clone(make(batch, 3, h, w, device=device)))
        return int(counter.get_total_flops())

    if on_error == "raise":
        return _run_on_copy(model, flops)
    try:
        return _run_on_copy(model, flops)
    except Exception as err:  # a model that cannot be traced at this size: say so in the table
        warnings.warn(f"count_flops: {type(model).__name__} at {image_size}: {err}", stacklevel=2)
        return math.nan
