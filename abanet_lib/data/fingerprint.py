"""Fingerprint of the data a run actually used: file names, sizes and SHA256 of every image and mask.

A run id names a configuration, not the bytes it read: the ``mfsd`` set has no published
checksum list, and a local copy can be edited. :func:`data_fingerprint` records what was read;
:func:`fingerprint_differences` says, in words, what changed since (the registry stores the
first in ``metrics.json`` and compares on load).

Format (``version`` 1)::

    {"version": 1, "n_samples": N, "sha256": "<64 hex>",
     "files": [[source, name, image_file, image_bytes, image_sha256,
                mask_file, mask_bytes, mask_sha256], ...]}

``files`` is sorted by ``(source, name)`` and holds bare file names (no folders), so the
fingerprint is the same on every machine and for every copy of the data (local copy, mirror,
GPU bundle with the same files). ``sha256`` is the SHA256 of the canonical JSON of ``files``
(compact separators): one digest that changes when any name, size or content changes, or a
sample is added or removed. The order of ``refs`` does not matter; a sample listed twice
(e.g. in two parts of a split) counts once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from .samples import DataError

FINGERPRINT_VERSION = 1

# (resolved path, size, mtime_ns) -> sha256: each file is hashed once per process.
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    """``(size in bytes, sha256 hex)`` of a file (memoised on path, size and mtime).

    Raises:
        DataError: the file is missing or unreadable (message names it).
    """
    path = Path(path)
    try:
        st = os.stat(path)
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _HASH_MEMO:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(chunk):
                    h.update(block)
            _HASH_MEMO[key] = h.hexdigest()
    except OSError as err:
        raise DataError(f"{path}: cannot read it to fingerprint the data ({err.strerror or err}); "
                        "expected the file listed for the run") from None
    return st.st_size, _HASH_MEMO[key]


def data_fingerprint(refs: Iterable) -> dict:
    """Fingerprint of the samples ``refs`` (any :class:`~abanet_lib.data.SampleRef` list).

    Args:
        refs: the samples actually used (e.g. ``split.train + split.val + split.test``).

    Returns:
        ``{"version", "n_samples", "sha256", "files"}`` (see the module docstring).

    Raises:
        DataError: a listed file is missing or unreadable.
    """
    rows = {}
    for ref in refs:
        image_size, image_hash = file_sha256(ref.image_path)
        mask_size, mask_hash = file_sha256(ref.mask_path)
        row = [str(ref.source), str(ref.name), Path(ref.image_path).name, image_size, image_hash,
               Path(ref.mask_path).name, mask_size, mask_hash]
        rows[(row[0], row[1], row[2], row[5])] = row
    files = [rows[k] for k in sorted(rows)]
    return {"version": FINGERPRINT_VERSION, "n_samples": len(files), "sha256": _digest(files), "files": files}


def _digest(files: list) -> str:
    return hashlib.sha256(json.dumps(files, separators=(",", ":")).encode()).hexdigest()


def fingerprint_differences(recorded: dict, current: dict, limit: int = 5) -> list[str]:
    """What differs between two fingerprints, in words (empty when they match).

    Args:
        recorded: the fingerprint stored with a run.
        current: :func:`data_fingerprint` of the same samples now.
        limit: at most this many samples named per kind of change.

    Returns:
        Lines such as ``"2 sample(s) changed content: mfsd-sample/faceMsak_x (image), ..."``,
        ``"1 sample(s) missing now: ..."``, ``"3 sample(s) new: ..."``.
    """
    if recorded.get("sha256") == current.get("sha256"):
        return []
    if recorded.get("version") != current.get("version"):
        return [f"fingerprint version {recorded.get('version')!r} cannot be compared with "
                f"{current.get('version')!r}"]
    old = {(r[0], r[1]): r for r in recorded.get("files") or []}
    new = {(r[0], r[1]): r for r in current.get("files") or []}
    if not old:
        return [f"data digest {recorded.get('sha256')} differs from {current.get('sha256')} "
                "(the record keeps no file list to say which files changed)"]

    def name(key):
        return f"{key[0]}/{key[1]}"

    def listed(keys):
        keys = sorted(keys)
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        return ", ".join(keys[:limit]) + more

    lines = []
    missing = [name(k) for k in old if k not in new]
    added = [name(k) for k in new if k not in old]
    changed = []
    for k in old.keys() & new.keys():
        a, b = old[k], new[k]
        parts = [part for part, idx in (("image", (2, 3, 4)), ("mask", (5, 6, 7)))
                 if any(a[i] != b[i] for i in idx)]
        if parts:
            changed.append(f"{name(k)} ({' and '.join(parts)})")
    if changed:
        lines.append(f"{len(changed)} sample(s) changed: {listed(changed)}")
    if missing:
        lines.append(f"{len(missing)} sample(s) missing now: {listed(missing)}")
    if added:
        lines.append(f"{len(added)} sample(s) new: {listed(added)}")
    if not lines:  # same rows, different digest: the record itself was edited
        lines.append(f"data digest {recorded.get('sha256')} does not match its own file list")
    return lines


def check_fingerprint(recorded: dict | None, current: dict, what: str) -> None:
    """Raise :class:`DataError` naming ``what`` (e.g. ``"run abanet-0123 (results/runs/...)"``)
    when ``current`` differs from ``recorded``; a missing record (older runs) passes.
    """
    if not recorded:
        return
    diff = fingerprint_differences(recorded, current)
    if diff:
        raise DataError(f"{what}: the data differs from the data it was trained on: {'; '.join(diff)}; "
                        "restore the data or retrain with --force")
