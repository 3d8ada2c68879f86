"""Device and numeric-precision choices, in one place.

``precision="auto"`` means bf16 autocast wherever the hardware runs bf16 natively (CUDA,
and CPUs with AVX-512 BF16 / AMX), fp32 otherwise. ``"fp16"`` (CUDA only) adds a
``GradScaler``; ``"fp32"`` turns autocast off for bit-exact, reproducible runs.

Determinism: on CPU in fp32 a fixed seed gives identical weights and metrics for a fixed
thread count. bf16 autocast on CPU is deterministic for the same machine and thread count
too, but its rounding differs from fp32, so bf16 and fp32 runs differ in the last digits of
the metrics. On CUDA, cuDNN autotuning (``benchmark=True``) picks algorithms by timing, so
GPU runs are repeatable only to a few 1e-3 of IoU; pass ``deterministic=True`` for exactness.
"""
from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device to run on.

    Args:
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``, or a ``torch.device``.

    Raises:
        ValueError: CUDA requested but not available, or an unknown device name.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'") from err


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matmuls/convs natively (AVX-512 BF16 or AMX)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return "avx512_bf16" in _cpu_flags() or "amx_bf16" in _cpu_flags()


@dataclass(frozen=True)
class Precision:
    """Resolved numeric precision for one device.

    Attributes:
        name: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        device_type: ``"cpu"`` or ``"cuda"``.
        dtype: autocast dtype, or ``None`` for fp32.
        use_scaler: fp16 needs a ``GradScaler`` against gradient underflow.
    """

    name: str
    device_type: str
    dtype: torch.dtype | None
    use_scaler: bool

    def autocast(self):
        """Context manager for forward passes (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.use_scaler)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Turn a precision request into what runs on ``device``.

    Args:
        precision: one of ``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``.
        device: the device from :func:`resolve_device`.

    Raises:
        ValueError: unknown precision, or fp16 asked on CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    kind = device.type
    if precision == "auto":
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_supports_bf16() else "fp32"
    if precision == "fp32":
        return Precision("fp32", kind, None, False)
    if precision == "bf16":
        return Precision("bf16", kind, torch.bfloat16, False)
    if kind != "cuda":
        raise ValueError("precision 'fp16' needs CUDA; on CPU use 'bf16' or 'fp32'")
    return Precision("fp16", kind, torch.float16, True)


def to_memory_format(x: torch.Tensor | torch.nn.Module, channels_last: bool):
    """Move a 4-D tensor or a module to channels_last when asked (other tensors unchanged)."""
    if not channels_last:
        return x
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA) so timings are honest; no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """Speed switches: cuDNN autotuning and TF32 on CUDA unless ``deterministic``."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic


def describe_device(device: str | torch.device | None = "auto") -> dict:
    """What the run executed on (no host names or user data).

    Returns:
        dict with ``device``, ``cpu_model``, ``cpu_count``, ``torch_threads``,
        ``cpu_capability``, ``cpu_bf16``, ``cuda_name``, ``cuda_version``,
        ``torch_version``, ``platform``.
    """
    dev = resolve_device(device)
    info = {
        "device": str(dev),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": _cpu_capability(),
        "cpu_bf16": cpu_supports_bf16(),
        "cuda_name": None,
        "cuda_version": torch.version.cuda,
        "torch_version": torch.__version__,
        "platform": f"{platform.system()} {platform.machine()} Python {platform.python_version()}",
    }
    if dev.type == "cuda":
        info["cuda_name"] = torch.cuda.get_device_name(dev)
    return info


def _cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:
        return "unknown"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()
