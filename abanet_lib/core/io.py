"""Files that are never seen half-written, and locks between processes: the package's one home for both.

* :func:`atomic_write` (and :func:`atomic_save`, :func:`atomic_csv`, :func:`atomic_write_text`,
  :func:`atomic_write_json`): a file is written under a temporary sibling name, then renamed
  over its final name, so a reader sees the old file or the new one, never a partial one.
* :func:`atomic_folder`: the same for a folder (filled in a temporary sibling, then renamed).
* :func:`try_lock` / :func:`hold_lock`: a lock file holding ``"<pid> <host> <time>"``, written in
  full under a private name (in the folder above) and hard-linked into place (which fails when
  the lock exists), so a reader never sees an empty lock. A lock left by a dead process on this host can be taken
  over.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import torch


# ---------------------------------------------------------------------------------------
# Atomic files
# ---------------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``.

    Readers never see a half-written file; a crash leaves the old file (or none) in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)  # a partial file only eats the space that is short
        free = shutil.disk_usage(path.parent).free
        # torch.save reports a full disk as "unexpected pos ..." (a RuntimeError), PIL as a bare OSError
        raise OSError(f"could not write {path}: {err} ({free / 2**30:.2f} GiB free on that disk; "
                      f"an ABANet run needs about 1.5 GiB for its checkpoints while it trains)") from err
    os.replace(tmp, path)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` written atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_csv(df: pd.DataFrame, path: Path) -> None:
    """A data frame as CSV without index, written atomically."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def atomic_write_text(path: Path, text: str) -> None:
    """A text file written atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, obj: Any, **dumps: Any) -> None:
    """``json.dumps(obj, **dumps)`` plus a final newline, written atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps) + "\n")


def atomic_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(tmp)`` on a fresh temporary folder beside ``folder``, then rename it to ``folder``
    (replacing an existing one); on failure nothing is left behind and ``folder`` is unchanged."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        fill(tmp / "d")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp / "d", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------------------
class LockBusyError(RuntimeError):
    """Another live process holds the lock."""


def process_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_owner(lock: Path) -> tuple[int, str]:
    """``(pid, host)`` written in a lock file; ``(-1, this host)`` when unreadable."""
    try:
        pid_text, host = (Path(lock).read_text().split() + ["", ""])[:2]
        return int(pid_text), host
    except (OSError, ValueError):
        return -1, socket.gethostname()


def try_lock(lock: Path, take_over_stale: bool = True) -> bool:
    """Create the lock file ``lock`` (``"<pid> <host> <time>"``) unless it exists.

    Args:
        take_over_stale: a lock whose process is gone (same host) is removed and taken; False
            keeps every existing lock (a lock that marks a claimed job).

    Returns:
        True when this process now holds the lock; False when another holds it.
    """
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    # The private copy lives one folder up, so a listing of the locks folder only shows locks.
    mine = lock.parent.parent / f".{lock.parent.name}.{lock.name}.{os.getpid()}.pending"
    mine.write_text(f"{os.getpid()} {host} {time.time():.0f}\n")
    try:
        for _attempt in range(2):
            try:
                os.link(mine, lock)
                return True
            except FileExistsError:
                pid, lock_host = lock_owner(lock)
                if take_over_stale and lock_host == host and (pid <= 0 or not process_alive(pid)):
                    lock.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                return False
        return False
    finally:
        mine.unlink(missing_ok=True)


@contextlib.contextmanager
def hold_lock(lock: Path, busy: Callable[[int, str], str],
              error: type[LockBusyError] = LockBusyError) -> Iterator[Path]:
    """Hold the lock file ``lock`` for the block (see :func:`try_lock`), then remove it.

    Args:
        busy: ``(pid, host) -> message`` of the error raised when a live process holds the lock.
        error: that error's class (a :class:`LockBusyError`).
    """
    lock = Path(lock)
    if not try_lock(lock):
        pid, host = lock_owner(lock)
        raise error(busy(pid, host))
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
