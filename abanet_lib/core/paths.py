"""Project paths, each overridable by an environment variable.

Notebooks run under papermill (cwd = caller) and nbval (cwd = notebook folder), so every
path is built from the package location, never from the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


#: Scales whose outputs are the committed record under ``results/``. Any other scale (``smoke``,
#: a test's scale) writes under the git-ignored ``.cache/results-<scale>/`` instead, so running a
#: notebook by hand at smoke scale can never overwrite a committed table, figure or run.
#: ``photo``: the runs of predict's shipped photo model (abanet_lib.paper.photo_model; no table lists them).
COMMITTED_SCALES = ("reduced", "paper", "gpu", "photo")


def results_dir(scale: str | None = None) -> Path:
    """Where outputs of ``scale`` live (``ABANET_RESULTS`` overrides every scale).

    Args:
        scale: the scale whose outputs are read or written; ``None`` = the committed record.
            A scale outside :data:`COMMITTED_SCALES` maps to ``.cache/results-<scale>/``.
    """
    if os.environ.get("ABANET_RESULTS"):
        return _env_path("ABANET_RESULTS", PROJECT_ROOT / "results")
    if scale is not None and str(scale) not in COMMITTED_SCALES:
        return PROJECT_ROOT / ".cache" / f"results-{scale}"
    return PROJECT_ROOT / "results"


def runs_dir(scale: str | None = None) -> Path:
    """One folder per finished run: ``results/runs/<run_id>/``."""
    return results_dir(scale) / "runs"


def all_runs_dirs() -> list[Path]:
    """Every folder that can hold run records: the committed one first, then each
    ``.cache/results-<scale>/runs`` (smoke runs), so a run id is found wherever its scale put it."""
    roots = [runs_dir()]
    if not os.environ.get("ABANET_RESULTS"):
        roots += sorted((PROJECT_ROOT / ".cache").glob("results-*/runs"))
    return roots


def tables_dir(scale: str | None = None) -> Path:
    return results_dir(scale) / "tables"


def figures_dir(scale: str | None = None) -> Path:
    return results_dir(scale) / "figures"


def benchmarks_dir() -> Path:
    """Measurements of speed and other machine-dependent facts (never read by a table)."""
    return results_dir() / "benchmarks"


def cache_dir() -> Path:
    """Git-ignored cache: checkpoints, prepared arrays, executed notebooks (``ABANET_CACHE``)."""
    return _env_path("ABANET_CACHE", PROJECT_ROOT / ".cache" / "abanet")


def data_root() -> Path:
    """Where data sets live locally (``ABANET_DATA``, default ``./data``, git-ignored)."""
    return _env_path("ABANET_DATA", PROJECT_ROOT / "data")


def data_mirror() -> Path | None:
    """Optional offline mirror to copy data sets from (``ABANET_DATA_MIRROR``)."""
    value = os.environ.get("ABANET_DATA_MIRROR")
    if value:
        return Path(value).expanduser().resolve()
    sibling = PROJECT_ROOT.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


def executed_notebooks_dir() -> Path:
    return PROJECT_ROOT / "executed"
