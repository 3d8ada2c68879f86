"""Project paths, each overridable by an environment variable.

Notebooks run under papermill (cwd = caller) and nbval (cwd = notebook folder), so every
path is built from the package location, never from the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def results_dir() -> Path:
    """Committed outputs: tables, figures, run folders (``ABANET_RESULTS``)."""
    return _env_path("ABANET_RESULTS", PROJECT_ROOT / "results")


def runs_dir() -> Path:
    """One folder per finished run: ``results/runs/<run_id>/``."""
    return results_dir() / "runs"


def tables_dir() -> Path:
    return results_dir() / "tables"


def figures_dir() -> Path:
    return results_dir() / "figures"


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
