#!/usr/bin/env python3
"""Training and inference throughput of our ABANet path against the released code's step.

Contenders, built in the same process on the same random input (batch ``--batch``, square
``--image-size``):

* ``released``: :class:`released_step.ReleasedStep` (released graph, fp32, NCHW, plain loss,
  plain Adam; inference computes all eight outputs under ``no_grad``);
* ``ours``: the paper-variant ABANet as our trainer runs it: channels_last (``ours/NCHW``
  keeps that choice measured), bf16 autocast where
  the device runs bf16 natively (:func:`abanet_lib.core.devices.resolve_precision` "auto"), our
  :class:`~abanet_lib.engine.losses.HybridLoss`, Adam (fused where the device supports it);
  inference under ``torch.inference_mode`` with the main output only (eval mode skips the
  deep-supervision heads);
* ``ours+compile`` (``--compile``, default on CUDA only): the same with ``torch.compile``.

Measurements alternate between contenders (the order flips every round, so a change in machine
load hits all of them alike); each timing is one step, synchronised on CUDA; the reported
figure is the median over ``--iters`` rounds, after warm-up steps. Ratios are ours / released
in images per second.

    .venv/bin/python benchmarks/bench_speed.py                 # CPU, 128x128, batch 8
    python3 benchmarks/bench_speed.py --device cuda --iters 30 # GPU
    .venv/bin/python benchmarks/bench_speed.py --quick         # 32x32, 1 round, no files

Writes ``results/benchmarks/speed_<device>.json`` and ``.md`` (machine, threads, load average,
torch version, GPU name, per-contender medians and ratios).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from abanet_lib.core import paths  # noqa: E402
from abanet_lib.core.devices import (describe_device, resolve_device, resolve_precision,  # noqa: E402
                                synchronize, to_memory_format)
from abanet_lib.models import create_model  # noqa: E402
from abanet_lib.models.inspect import count_flops  # noqa: E402
from released_step import ReleasedStep  # noqa: E402

TARGETS = {"cpu": 2.0, "cuda": 2.5}
#: Dense bf16 tensor-core peaks (TFLOP/s, vendor data sheets, SXM parts, no sparsity), matched
#: against the CUDA device name; a device not listed reports no percentage.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
#: The issue's target share of that peak at the best batch.
PEAK_SHARE_TARGET = 0.30


def bf16_peak_tflops(cuda_name: str | None) -> float | None:
    """The device's dense bf16 peak in TFLOP/s (None: unknown device or CPU)."""
    for key, peak in BF16_PEAK_TFLOPS.items():
        if cuda_name and key in cuda_name:
            return peak
    return None


def training_flops_per_image(image_size: int) -> float:
    """Forward FLOPs of the paper-variant ABANet (eval graph, one image) times 3: backward costs
    about twice the forward. The training graph adds small deep-supervision heads, so this
    slightly under-counts (a conservative share of peak)."""
    return 3.0 * count_flops(create_model("abanet"), image_size)
#: The --quick setting: checks the plumbing in seconds; its numbers mean nothing.
QUICK = dict(image_size=32, batch=2, iters=1, warmup=0, infer_iters=1, other_format=False)


# ---------------------------------------------------------------------------------------
# Our step
# ---------------------------------------------------------------------------------------
def _adam(params, device: torch.device, lr: float) -> tuple[torch.optim.Optimizer, str]:
    """Adam, fused when this torch supports it on ``device`` (one kernel per step)."""
    params = list(params)
    try:
        opt = torch.optim.Adam(params, lr=lr, fused=True)
        return opt, "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True), "foreach"


class OurStep:
    """Our paper-variant ABANet as the project's trainer and evaluator run it.

    Args:
        device: torch device.
        precision: ``"auto"`` (bf16 where native), ``"bf16"`` or ``"fp32"``.
        channels_last: channels_last memory format for weights and inputs.
        compile: wrap the model in ``torch.compile`` (True, or a mode such as
            ``"max-autotune-no-cudagraphs"``).
        lr, seed: Adam learning rate, initialisation seed.
    """

    #: cuDNN autotuning, as our trainer sets it (``devices.configure_backends``).
    cudnn_benchmark = True

    def __init__(self, device: torch.device, precision: str = "auto", channels_last: bool = True,
                 compile: bool | str = False, lr: float = 1e-4, seed: int = 0):
        from abanet_lib.engine.losses import HybridLoss
        from abanet_lib.models import create_model

        torch.manual_seed(seed)
        self.device = device
        self.channels_last = channels_last
        self.precision = resolve_precision(precision, device)
        model = to_memory_format(create_model("abanet").to(device), channels_last)
        self.model = model
        self.criterion = HybridLoss(variant="paper")
        self.optimizer, self.optimizer_kind = _adam(model.parameters(), device, lr)
        mode = compile if isinstance(compile, str) and compile != "default" else None
        if compile:
            import torch._inductor.config as inductor_config

            # Inference graphs (no grad) get weights folded as constants (conv+BN folding,
            # weight prepacking); valid for evaluation after training, as measured here.
            inductor_config.freezing = True
        self.forward = torch.compile(model, mode=mode) if compile else model
        self.compiled = compile
        self.name = (f"ours (ABANet paper, {self.precision.name}, "
                     f"{'channels_last' if channels_last else 'NCHW'}, Adam {self.optimizer_kind}"
                     f"{', torch.compile' + (f' {mode}' if mode else '') if compile else ''})")

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        return to_memory_format(images, self.channels_last)

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            outputs = self.forward(self._prep(images))
        loss = self.criterion(outputs, masks)  # float32 inside, autocast off
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with torch.inference_mode(), self.precision.autocast():
            return torch.sigmoid(self.forward(self._prep(images)).float())


# ---------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------
def _timed(fn, device: torch.device, cudnn_benchmark: bool = False) -> float:
    torch.backends.cudnn.benchmark = cudnn_benchmark  # per contender: the release left it off
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def measure_alternating(contenders: dict, fn_name: str, images, masks, iters: int, warmup: int,
                        device: torch.device, verbose: bool = False) -> dict[str, list[float]]:
    """Seconds per step of each contender, interleaved round by round (order flips each round)."""
    names = list(contenders)
    calls = {n: (lambda c=contenders[n]: getattr(c, fn_name)(images, masks) if fn_name == "train_step"
                 else c.infer(images)) for n in names}
    bench = {n: getattr(contenders[n], "cudnn_benchmark", False) for n in names}
    for _ in range(warmup):
        for n in names:
            _timed(calls[n], device, bench[n])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(iters):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(_timed(calls[n], device, bench[n]))
        if verbose:
            print(f"  {fn_name} round {r + 1}/{iters}: "
                  + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names), flush=True)
    return times


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_benchmark(device: str = "auto", image_size: int = 128, batch: int = 8, iters: int = 5,
                  warmup: int = 1, infer_iters: int | None = None, compile: bool | None = None,
                  precision: str = "auto", threads: int | None = None, seed: int = 0,
                  channels_last: bool | None = None, other_format: bool = True,
                  verbose: bool = False) -> dict:
    """Measure and return the result dict (see module docstring); writes nothing.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        image_size, batch: input shape (batch, 3, image_size, image_size).
        iters: timed training rounds (each contender once per round).
        warmup: untimed steps per contender before timing (training and inference).
        infer_iters: timed inference rounds (default ``2 * iters``).
        compile: add the ``ours+compile`` contender (default: on CUDA only); a string is
            passed to ``torch.compile`` as its mode.
        precision: our precision (``"auto"`` = bf16 where native).
        threads: torch CPU threads (default: torch's choice).
        channels_last: our memory format (default True, as ``RunConfig.channels_last``).
        other_format: add the contender ``ours/<other format>`` (the memory format not chosen),
            so the choice stays measured.
        verbose: print every round's timings.
    """
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    compile = (dev.type == "cuda") if compile is None else compile
    infer_iters = infer_iters or 2 * iters
    load_before = _load()
    t_start = time.perf_counter()

    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, image_size, image_size, generator=gen).to(dev)
    masks = (torch.rand(batch, 1, image_size, image_size, generator=gen) > 0.6).float().to(dev)

    channels_last = True if channels_last is None else channels_last
    contenders = {"released": ReleasedStep(dev, seed=seed),
                  "ours": OurStep(dev, precision, channels_last=channels_last, seed=seed)}
    if other_format:
        alt = "NCHW" if channels_last else "channels_last"
        contenders[f"ours/{alt}"] = OurStep(dev, precision, channels_last=not channels_last, seed=seed)
    build_s = {}
    if compile:
        t0 = time.perf_counter()
        contenders["ours+compile"] = OurStep(dev, precision, channels_last=channels_last, compile=compile,
                                             seed=seed)
        build_s["ours+compile"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train_times = measure_alternating(contenders, "train_step", images, masks, iters, warmup, dev, verbose)
    train_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    infer_times = measure_alternating(contenders, "infer", images, masks, infer_iters, warmup, dev, verbose)
    infer_wall = time.perf_counter() - t0

    def summarise(times: dict[str, list[float]]) -> dict:
        out = {}
        for name, ts in times.items():
            med = statistics.median(ts)
            out[name] = {"median_s": med, "img_per_s": batch / med, "min_s": min(ts), "max_s": max(ts),
                         "n": len(ts)}
        base = out["released"]["img_per_s"]
        for name in out:
            out[name]["ratio_vs_released"] = out[name]["img_per_s"] / base
        return out

    train = summarise(train_times)
    infer = summarise(infer_times)
    peak = bf16_peak_tflops(describe_device(dev).get("cuda_name"))
    flops_per_image = training_flops_per_image(image_size)
    for entry in train.values():
        entry["tflops"] = entry["img_per_s"] * flops_per_image / 1e12
        entry["share_of_bf16_peak"] = entry["tflops"] / peak if peak else None
    best_train = max((n for n in train if n != "released"), key=lambda n: train[n]["img_per_s"])
    best_infer = max((n for n in infer if n != "released"), key=lambda n: infer[n]["img_per_s"])
    target = TARGETS.get(dev.type, 2.0)
    result = {
        "device": dev.type,
        "machine": describe_device(dev),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "torch_threads": torch.get_num_threads(),
        "image_size": image_size,
        "batch": batch,
        "iters_train": iters,
        "iters_infer": infer_iters,
        "warmup": warmup,
        "contenders": {n: c.name for n, c in contenders.items()},
        "our_precision": contenders["ours"].precision.name,
        "train": train,
        "infer": infer,
        "best_train": {"contender": best_train, "ratio": train[best_train]["ratio_vs_released"]},
        "best_infer": {"contender": best_infer, "ratio": infer[best_infer]["ratio_vs_released"]},
        "target_ratio": target,
        "meets_target": {"train": train[best_train]["ratio_vs_released"] >= target,
                         "infer": infer[best_infer]["ratio_vs_released"] >= target},
        "compile_build_s": build_s,
        "training_flops_per_image": flops_per_image,
        "bf16_peak_tflops": peak,
        "wall_s": {"train": train_wall, "infer": infer_wall, "total": time.perf_counter() - t_start},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return result


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
def to_markdown(result: dict) -> str:
    m = result["machine"]
    hw = m.get("cuda_name") or m.get("cpu_model")
    lines = [
        f"# Speed: our ABANet path vs the released step ({result['device']})",
        "",
        f"- Machine: {hw}; CPU {m.get('cpu_model')} ({m.get('cpu_count')} logical CPUs, "
        f"capability {m.get('cpu_capability')}), torch {m.get('torch_version')}, "
        f"{result['torch_threads']} torch threads",
        f"- Load average before/after: {result['load_average_before']} / {result['load_average_after']}"
        " (the CPU is shared; alternating rounds spread load changes over all contenders)",
        f"- Input: batch {result['batch']}, {result['image_size']}x{result['image_size']}; "
        f"medians of {result['iters_train']} training and {result['iters_infer']} inference rounds "
        f"after {result['warmup']} warm-up step(s) each; date {result['date_utc']}",
        "",
        f"- Training FLOPs per image: {result['training_flops_per_image'] / 1e9:.2f} GFLOP (3 x the eval "
        f"forward); bf16 peak of this device: "
        f"{result['bf16_peak_tflops'] if result['bf16_peak_tflops'] else 'not listed'} TFLOP/s",
        "",
        "| contender | train img/s | x released | train TFLOP/s | % of bf16 peak | infer img/s | x released |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, desc in result["contenders"].items():
        t, i = result["train"][name], result["infer"][name]
        share = f"{100 * t['share_of_bf16_peak']:.1f}" if t["share_of_bf16_peak"] is not None else "-"
        lines.append(f"| {desc} | {t['img_per_s']:.2f} | {t['ratio_vs_released']:.2f} | {t['tflops']:.3f} | "
                     f"{share} | {i['img_per_s']:.2f} | {i['ratio_vs_released']:.2f} |")
    tgt = result["target_ratio"]
    lines += ["", f"Target on {result['device']}: >= {tgt}x. Best training ratio "
              f"{result['best_train']['ratio']:.2f}x ({result['best_train']['contender']}), "
              f"best inference ratio {result['best_infer']['ratio']:.2f}x "
              f"({result['best_infer']['contender']}).", ""]
    return "\n".join(lines)


def write_results(result: dict, out_dir: Path | None = None, tag: str = "") -> tuple[Path, Path]:
    """Write ``speed_<device>[_<tag>].json`` and ``.md`` into ``out_dir`` (default results/benchmarks)."""
    out_dir = Path(out_dir or paths.results_dir() / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"speed_{result['device']}" + (f"_{tag}" if tag else "")
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(to_markdown(result))
    return json_path, md_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=None, help="timed training rounds (CPU 5, CUDA 30)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (CPU 1, CUDA 5)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--compile", dest="compile", action="store_true", default=None)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode for ours+compile (e.g. max-autotune-no-cudagraphs)")
    parser.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                        help="our memory format (default: channels_last)")
    parser.add_argument("--nchw", dest="channels_last", action="store_false")
    parser.add_argument("--no-other-format", dest="other_format", action="store_false",
                        help="skip the contender with the other memory format")
    parser.add_argument("--quick", action="store_true", help="32x32, batch 2, 1 round, nothing written")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    args = parser.parse_args(argv)
    cuda = resolve_device(args.device).type == "cuda"
    if args.compile_mode and args.compile is not False:
        args.compile = args.compile_mode
    if args.quick:
        result = run_benchmark(args.device, **QUICK, compile=False if args.compile is None else args.compile,
                               precision=args.precision, threads=args.threads,
                               channels_last=args.channels_last)
    else:
        result = run_benchmark(args.device, args.image_size, args.batch,
                               iters=args.iters or (30 if cuda else 4),
                               warmup=args.warmup if args.warmup is not None else (5 if cuda else 1),
                               compile=args.compile, precision=args.precision, threads=args.threads,
                               channels_last=args.channels_last, other_format=args.other_format,
                               verbose=True)
    print(to_markdown(result))
    if not args.quick:
        for path in write_results(result, args.out_dir, args.tag):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
