"""Shared fixtures: real data mirror when present, generated fixtures otherwise."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from abanet_lib.core import paths  # noqa: E402


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """The offline data mirror; skips (visibly) when it is absent."""
    mirror = paths.data_mirror()
    if mirror is None or not mirror.is_dir():
        pytest.skip("real data mirror not found (set ABANET_DATA_MIRROR to ../shared/data)")
    return mirror


@pytest.fixture()
def tmp_results(tmp_path, monkeypatch) -> Path:
    """Redirect results/ and the cache into a temporary folder."""
    monkeypatch.setenv("ABANET_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ABANET_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module's tests, restored afterwards.

    Tiny tensors gain nothing from threads, and on the shared 2-core test machine two
    threads oversubscribe badly. Use with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as a module (benchmarks import their siblings by name)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark():
    """The loader of benchmark scripts: ``load_benchmark("bench_speed")``."""
    return _load_benchmark
