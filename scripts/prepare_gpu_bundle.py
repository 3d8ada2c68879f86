#!/usr/bin/env python3
"""Prepare what the offline GPU machine needs: wheels in .whl/ and a small data copy.

Usage (from the project root, with network access to PyPI for the wheels):
    .venv/bin/python scripts/prepare_gpu_bundle.py            # wheels + data
    .venv/bin/python scripts/prepare_gpu_bundle.py --no-wheels # data only

Both folders are git-ignored; name them in the device call's ``carry`` list:
    carry=[".whl", ".gpu_bundle"]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abanet_lib.ops import gpu_bundle  # noqa: E402

LIMIT_BYTES = 64 * 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="project root (default: this checkout)")
    parser.add_argument("--no-wheels", action="store_true", help="skip downloading wheels")
    parser.add_argument("--no-data", action="store_true", help="skip the data copy")
    args = parser.parse_args(argv)
    report = gpu_bundle.prepare_bundle(args.root, wheels=not args.no_wheels, data=not args.no_data)
    print(json.dumps({k: v for k, v in report.items() if k != "datasets"}, indent=2))
    root = Path(args.root or gpu_bundle.paths.PROJECT_ROOT)
    total = sum(gpu_bundle.folder_size(root / d) for d in (".whl", ".gpu_bundle"))
    print(f"carried size (.whl + .gpu_bundle): {total / 2**20:.1f} MiB "
          f"(device limit {LIMIT_BYTES / 2**20:.0f} MiB incl. the tracked working tree)")
    if total > LIMIT_BYTES // 2:
        print("WARNING: the bundle takes more than half of the device transfer limit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
