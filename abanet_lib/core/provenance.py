"""Where and with what a result was produced (no host names, no user data)."""
from __future__ import annotations

import datetime as _dt
import os
import subprocess
from importlib import metadata

import torch

from abanet_lib.core import paths
from abanet_lib.core.devices import describe_device

#: Distributions whose versions change numbers (recorded in every metrics.json).
TRACKED_PACKAGES = ("torch", "torchvision", "segmentation-models-pytorch", "numpy", "abanet_lib")


#: Set where the code runs outside git (a working-tree copy on a GPU machine).
COMMIT_ENV = "ABANET_GIT_COMMIT"


def git_commit() -> str:
    """The repository's HEAD commit; outside git ``$ABANET_GIT_COMMIT`` or ``"unknown"``."""
    out = _git("rev-parse", "HEAD")
    return out or os.environ.get(COMMIT_ENV) or "unknown"


#: Paths whose uncommitted changes can change results (code and environment files).
CODE_PATHS = ("abanet_lib", "pyproject.toml", "environment.yml")


def git_dirty() -> bool | None:
    """True when the library code differs from HEAD (modified or new, non-ignored files
    under :data:`CODE_PATHS`); None when git is unavailable."""
    if _git("rev-parse", "HEAD") is None:
        return None
    out = _git("status", "--porcelain", "--", *CODE_PATHS)
    return None if out is None else bool(out)


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` for absent ones)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def utc_now() -> str:
    """ISO-8601 UTC timestamp, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def collect(device: str | torch.device | None = "auto", **extra) -> dict:
    """Everything recorded next to a result.

    Args:
        device: the device the run used.
        **extra: added as is (e.g. ``wall_seconds``, ``scale``).
    """
    info = {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "packages": package_versions(),
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "date_utc": utc_now(),
    }
    info.update(extra)
    return info


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
