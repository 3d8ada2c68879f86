"""Metric throughput: batched torch MetricAccumulator vs per-image sklearn.

Evaluates the five confusion metrics (IoU, F1, precision, recall, accuracy) of N maps of
S x S pixels, once with ``MetricAccumulator(full=False)`` (one batched torch pass) and once
with per-image sklearn calls (``jaccard_score``, ``f1_score``, ``precision_score``,
``recall_score``, ``accuracy_score``), in the same process; also times the full accumulator
(every metric incl. F-beta/E/S-measure and boundary metrics) for reference. Reports medians
over repeats and writes ``results/benchmarks/metrics_throughput.json`` and ``.md``.

Usage:
    .venv/bin/python benchmarks/bench_metrics.py [--n 256] [--size 256] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abanet_lib.core import paths  # noqa: E402
from abanet_lib.engine.metrics import MetricAccumulator  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_maps(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ellipse masks and noisy probability maps, (n, size, size)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * 0.6 - 0.3
    radius = torch.rand(n, 2, generator=g) * 0.4 + 0.3
    dist = ((yy - centre[:, 0, None, None]) / radius[:, 0, None, None]) ** 2 + \
           ((xx - centre[:, 1, None, None]) / radius[:, 1, None, None]) ** 2
    gt = dist <= 1
    prob = torch.sigmoid(4 * (1 - dist) + torch.randn(n, size, size, generator=g))
    return prob, gt


def time_it(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sklearn-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: sklearn is single-threaded too)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/benchmarks)")
    args = parser.parse_args(argv)

    import sklearn
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score, precision_score, recall_score

    torch.set_num_threads(args.threads)
    prob, gt = make_maps(args.n, args.size)
    prob_np, gt_np = prob.numpy(), gt.numpy()

    def torch_confusion():
        acc = MetricAccumulator(full=False)
        acc.update(prob, gt)
        return acc.summary()

    def torch_full():
        acc = MetricAccumulator(full=True)
        acc.update(prob, gt)
        return acc.summary()

    def sklearn_confusion():
        rows = []
        for p, g in zip(prob_np, gt_np):
            y_true, y_pred = g.ravel(), p.ravel() >= 0.5
            rows.append([jaccard_score(y_true, y_pred), f1_score(y_true, y_pred),
                         precision_score(y_true, y_pred), recall_score(y_true, y_pred),
                         accuracy_score(y_true, y_pred)])
        return np.mean(rows, axis=0)

    torch_confusion()  # warm-up
    t_torch, torch_times = time_it(torch_confusion, args.repeats)
    t_full, full_times = time_it(torch_full, max(1, args.repeats // 2))
    t_sklearn, sklearn_times = time_it(sklearn_confusion, args.sklearn_repeats)

    ours = torch_confusion()
    theirs = sklearn_confusion()
    max_diff = max(abs(ours[k] - v) for k, v in zip(("iou", "f1", "precision", "recall", "accuracy"), theirs))

    result = {
        "n_maps": args.n,
        "size": args.size,
        "repeats": args.repeats,
        "sklearn_repeats": args.sklearn_repeats,
        "torch_confusion_s": t_torch,
        "torch_full_s": t_full,
        "sklearn_confusion_s": t_sklearn,
        "torch_confusion_maps_per_s": args.n / t_torch,
        "torch_full_maps_per_s": args.n / t_full,
        "sklearn_confusion_maps_per_s": args.n / t_sklearn,
        "speedup_confusion": t_sklearn / t_torch,
        "speedup_full_vs_sklearn_confusion": t_sklearn / t_full,
        "target_speedup": 50,
        "max_abs_difference_vs_sklearn": float(max_diff),
        "raw_times_s": {"torch_confusion": torch_times, "torch_full": full_times, "sklearn_confusion": sklearn_times},
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "device": "cpu",
        },
    }
    out_dir = args.out or (paths.results_dir() / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    md = f"""# Metric throughput: batched torch vs per-image sklearn

{args.n} maps of {args.size}x{args.size} on CPU, torch with {args.threads} thread(s), five confusion metrics (IoU, F1, precision, recall,
accuracy) at threshold 0.5. Medians over {args.repeats} (torch) and {args.sklearn_repeats} (sklearn)
repeats, same process. `full` = every metric of `MetricAccumulator` (confusion, MAE, F-beta
curve, S-measure, E-measure, boundary F, Boundary IoU).

| method | median time (s) | maps / s |
|---|---|---|
| `MetricAccumulator(full=False)` (torch, batched) | {t_torch:.4f} | {args.n / t_torch:.0f} |
| `MetricAccumulator(full=True)` (torch, batched) | {t_full:.4f} | {args.n / t_full:.0f} |
| sklearn, per image (5 calls) | {t_sklearn:.4f} | {args.n / t_sklearn:.1f} |

Speed-up on the confusion metrics: **{t_sklearn / t_torch:.0f}x** (target >= 50x).
Full accumulator vs sklearn confusion metrics only: {t_sklearn / t_full:.1f}x.
Largest difference between the two means: {max_diff:.1e}.

Machine: {m['cpu_model']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, 1-min load
average {m['load_average_1min']:.1f} at the end (shared machine), torch {m['torch']},
sklearn {m['sklearn']}, Python {m['python']}.
"""
    (out_dir / "metrics_throughput.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    main()
