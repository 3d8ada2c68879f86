"""ONNX Runtime (CPU) throughput next to PyTorch fp32 and bf16, for ABANet and a baseline.

For each model (random weights; speed does not depend on them) and batch size it measures
images/s of: PyTorch fp32, PyTorch bf16 autocast, ONNX Runtime fp32 (CPUExecutionProvider),
all on the same input, plus the max abs probability difference ORT vs PyTorch fp32.
PyTorch runs on ``--device`` (default CPU, so the comparison with ORT's CPU provider is fair);
both use the same number of threads.

Writes ``results/benchmarks/onnx.{json,md}`` with machine info.

    .venv/bin/python benchmarks/bench_onnx.py --size 128 --models abanet smp:Unet:resnet34
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from abanet_lib.app import export
from abanet_lib.core import paths
from abanet_lib.models import create_model
from abanet_lib.models.base import main_output


def _timed(fn, warmup: int, min_seconds: float, min_repeats: int) -> float:
    """Mean seconds per call after ``warmup`` calls, over >= min_repeats calls and >= min_seconds."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while n < min_repeats or time.perf_counter() - start < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def _machine(device: torch.device) -> dict:
    import onnxruntime as ort

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": ort.__version__, "pytorch_device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def bench_model(name: str, size: int, batch_sizes: list[int], device: torch.device, threads: int,
                min_seconds: float) -> dict:
    torch.manual_seed(0)
    model = create_model(name).eval()
    n_params = sum(p.numel() for p in model.parameters())
    out = {"model": name, "params_m": round(n_params / 1e6, 2), "image_size": size, "batches": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_onnx(model, Path(tmp) / "model.onnx", size)
        out["onnx_mb"] = round(path.stat().st_size / 2**20, 1)
        session = export.onnx_session(path, threads=threads)
        out["parity_max_abs_prob_diff"] = export.onnx_parity(model, path, torch.randn(2, 3, size, size))
        model = model.to(device)
        for bs in batch_sizes:
            x = torch.randn(bs, 3, size, size)
            xd, xn = x.to(device), x.numpy()
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

            def torch_fp32():
                with torch.no_grad():
                    main_output(model(xd))
                sync()

            def torch_bf16():
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                    main_output(model(xd))
                sync()

            def ort_fp32():
                session.run(["logits"], {"images": xn})

            row = {}
            for label, fn in (("pytorch_fp32", torch_fp32), ("pytorch_bf16", torch_bf16), ("onnxruntime_fp32", ort_fp32)):
                seconds = _timed(fn, warmup=2, min_seconds=min_seconds, min_repeats=3)
                row[label] = {"img_per_s": round(bs / seconds, 2), "ms_per_batch": round(1000 * seconds, 1)}
                print(name, bs, label, row[label], flush=True)
            out["batches"][str(bs)] = row
    return out


def write(report: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "onnx.json").write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    lines = ["# ONNX Runtime vs PyTorch inference throughput", "",
             f"Input {report['image_size']}x{report['image_size']}, random weights and inputs, images/s "
             f"(higher is better). PyTorch on `{m['pytorch_device']}`, ONNX Runtime on the CPU provider; "
             f"{m['torch_threads']} threads each.", "",
             "| model | params (M) | batch | PyTorch fp32 | PyTorch bf16 | ONNX Runtime fp32 | ORT / PyTorch fp32 | max abs prob diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        for bs, row in r["batches"].items():
            ratio = row["onnxruntime_fp32"]["img_per_s"] / row["pytorch_fp32"]["img_per_s"]
            lines.append(f"| {r['model']} | {r['params_m']} | {bs} | {row['pytorch_fp32']['img_per_s']} | "
                         f"{row['pytorch_bf16']['img_per_s']} | {row['onnxruntime_fp32']['img_per_s']} | "
                         f"{ratio:.2f}x | {r['parity_max_abs_prob_diff']:.1e} |")
    lines += ["", f"Machine: {m['cpu']} ({m['cpu_count']} logical CPUs; 1-min load average "
                  f"{m['load_average_1min']} while measuring), {m['platform']}; torch {m['torch']}, "
                  f"onnxruntime {m['onnxruntime']}" + (f"; GPU {m['gpu']}" if "gpu" in m else "") + ".",
              "bf16 on a CPU without native bf16 (AVX-512 BF16/AMX) is emulated and slower than fp32. "
              "On a shared machine the numbers vary from run to run; compare within one table."]
    (folder / "onnx.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["abanet", "smp:Unet:resnet34"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's thread count")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None, help="default results/benchmarks")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    report = {"image_size": args.size, "machine": _machine(device),
              "models": [bench_model(n, args.size, args.batch_sizes, device, threads, args.min_seconds)
                         for n in args.models]}
    report["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    write(report, args.out or paths.results_dir() / "benchmarks")


if __name__ == "__main__":
    main()
