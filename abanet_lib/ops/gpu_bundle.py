"""Build what a GPU machine without internet needs to run our experiments.

The GPU machine has Python 3.12 with torch, torchvision, timm, pandas, ... preinstalled but
no internet. Two things travel with the working tree (both git-ignored, max 64 MiB in all):

* ``.whl/``: wheels of the Python packages our library imports that the machine lacks
  (found by scanning ``abanet_lib`` for imports, plus their missing requirements), pinned
  to the versions installed here;
* ``.gpu_bundle/data/``: a downsized copy of the data sets in the layout the data layer
  reads (``mfsd-sample`` as is; ``maskedfacenet-seg500`` resized from 1024 to 256 px).
  Each derived folder gets its own ``SHA256SUMS`` (of the derived files) and a
  ``DERIVED.json`` manifest saying where it came from and how it was changed.

Entry point: ``scripts/prepare_gpu_bundle.py``.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata as metadata
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from abanet_lib.core import paths
from abanet_lib.core.provenance import git_commit, git_dirty

#: Distributions the GPU image already holds (its package list, read 2026-11-17), normalised.
GPU_PREINSTALLED = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow
pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo
pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov
pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests
rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3
uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())

#: Modules only notebooks/CLI helpers use; batch training on the GPU never imports them.
NOT_NEEDED_FOR_TRAINING = frozenset({"papermill", "nbformat", "nbval", "ipykernel", "jupyterlab",
                                      "IPython", "pytest"})

#: (data set, longest side of the derived copy or None to copy as is).
BUNDLED_DATASETS = (("mfsd-sample", None), ("maskedfacenet-seg500", 256))

MANIFEST_NAME = "DERIVED.json"
CHECKSUM_NAME = "SHA256SUMS"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def normalise_name(name: str) -> str:
    """PEP 503 normalisation: ``Segmentation_Models.PyTorch`` -> ``segmentation-models-pytorch``."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------------------------------
# Wheels
# ---------------------------------------------------------------------------------------
def imported_top_modules(package_dir: Path) -> set[str]:
    """Top-level module names imported anywhere in ``package_dir`` (absolute imports only)."""
    modules: set[str] = set()
    for py in sorted(Path(package_dir).rglob("*.py")):
        try:
            tree = ast.parse(py.read_text(encoding="utf-8"), filename=str(py))
        except (SyntaxError, UnicodeDecodeError):
            continue  # a file being edited by someone else; its imports are rescanned next time
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                modules.add(node.args[0].value.split(".")[0])
    return modules


def _requirements(dist: str) -> list[str]:
    """Names of the unconditional requirements of an installed distribution."""
    names = []
    for req in metadata.requires(dist) or []:
        if "extra ==" in req.replace("extra==", "extra =="):
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match:
            names.append(match.group(1))
    return names


def missing_distributions(package_dir: Path | None = None) -> dict[str, str]:
    """Distributions our library needs that the GPU image lacks, with the versions installed here.

    Args:
        package_dir: the package to scan (default: ``abanet_lib``).

    Returns:
        ``{normalised distribution name: version}``, requirements included (transitively),
        the GPU's preinstalled packages, the standard library and notebook-only tools excluded.
    """
    package_dir = Path(package_dir or paths.PROJECT_ROOT / "abanet_lib")
    module_to_dists = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    todo: list[str] = []
    for module in sorted(imported_top_modules(package_dir)):
        if module in stdlib or module == package_dir.name or module in NOT_NEEDED_FOR_TRAINING:
            continue
        todo.extend(module_to_dists.get(module, []))
    needed: dict[str, str] = {}
    while todo:
        dist = normalise_name(todo.pop())
        if dist in needed or dist in GPU_PREINSTALLED or dist.startswith("nvidia-"):
            continue
        try:
            needed[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue  # optional import guarded by try/except in our code, not installed here
        todo.extend(_requirements(dist))
    needed.pop(normalise_name("abanet_lib"), None)
    return dict(sorted(needed.items()))


def download_wheels(dists: dict[str, str], dest: Path, python_version: str = "3.12") -> list[Path]:
    """Download one wheel per distribution for CPython ``python_version`` on manylinux x86-64.

    A wheel already in ``dest`` for the same name and version is reused (no network).

    Raises:
        RuntimeError: pip could not find a matching wheel (the message names the package).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wheels = []
    for dist, version in dists.items():
        stem = f"{dist.replace('-', '_')}-{version}-"
        existing = [w for w in dest.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if not existing:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--python-version", python_version,
                   "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                   "--platform", "manylinux2014_x86_64", "--platform", "any",
                   "-d", str(dest), f"{dist}=={version}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"pip download {dist}=={version} failed:\n{proc.stderr[-2000:]}")
            existing = [w for w in dest.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if not existing:
            raise RuntimeError(f"no wheel named {stem}*.whl appeared in {dest}")
        wheels.extend(existing)
    # Two versions of one package would break `pip install --target`: drop stale ones.
    keep = {w.resolve() for w in wheels}
    for stale in dest.glob("*.whl"):
        if stale.resolve() not in keep:
            stale.unlink()
    return sorted(wheels)


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> int:
    """Write ``folder/SHA256SUMS`` in the mirror's format (``<hex>  ./rel/path``); returns count."""
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.name not in (CHECKSUM_NAME, MANIFEST_NAME))
    lines = [f"{sha256_file(p)}  ./{p.relative_to(folder).as_posix()}" for p in files]
    (folder / CHECKSUM_NAME).write_text("\n".join(lines) + "\n")
    return len(files)


def _is_mask(rel: Path) -> bool:
    return bool({"mask", "masks"} & {part.lower() for part in rel.parts[:-1]})


def _resize_one(src: Path, dst: Path, size: int, is_mask: bool) -> None:
    """Resize one file so that its longest side is ``size`` (masks nearest, images area)."""
    from PIL import Image

    with Image.open(src) as im:
        im.load()
        scale = size / max(im.size)
        new = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        dst.parent.mkdir(parents=True, exist_ok=True)
        if is_mask:
            # nearest keeps the label values (0/1/2) exact; lossless PNG keeps them exact on disk
            im.resize(new, Image.NEAREST).save(dst, format="PNG", optimize=True)
        else:
            im.convert("RGB").resize(new, Image.BOX if scale < 1 else Image.BICUBIC).save(
                dst, format="JPEG", quality=90)


def derive_dataset(src: Path, dst: Path, max_side: int | None, workers: int = 2) -> dict:
    """Copy (``max_side=None``) or downsize one data set folder, keeping names and layout.

    Masks stay PNG (``*_gt.png``) or, when the source masks are JPEG (mfsd-sample), are only
    ever copied unchanged. Writes ``SHA256SUMS`` of the derived files and ``DERIVED.json``.

    Returns:
        The manifest dict (also written to ``dst/DERIVED.json``).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"derive_dataset: source folder {src} does not exist")
    if dst.exists():
        shutil.rmtree(dst)
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name != CHECKSUM_NAME)
    if max_side is None:
        for p in files:
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
    else:
        def work(p: Path) -> None:
            rel = p.relative_to(src)
            target = dst / rel
            if p.suffix.lower() not in _IMAGE_SUFFIXES:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, target)
            elif _is_mask(rel):
                if p.suffix.lower() != ".png":
                    raise ValueError(f"derive_dataset: mask {p} is not PNG; resizing a JPEG mask "
                                     "would add compression noise (copy this data set as is)")
                _resize_one(p, target, max_side, is_mask=True)
            else:
                _resize_one(p, target.with_suffix(p.suffix), max_side, is_mask=False)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, files))
    n_files = write_checksums(dst)
    manifest = {
        "derived_from": str(src),
        "source_checksums_sha256": sha256_file(src / CHECKSUM_NAME) if (src / CHECKSUM_NAME).exists() else None,
        "operation": "copy" if max_side is None else
                     f"resize longest side to {max_side} px (images JPEG q90, area filter; masks PNG nearest)",
        "max_side": max_side,
        "n_files": n_files,
        "note": "derived copy for the offline GPU machine; SHA256SUMS lists the derived files",
    }
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def source_folder(name: str) -> Path:
    """Where to read data set ``name`` from: the offline mirror, else ``data_root()``."""
    candidates = [m / name for m in (paths.data_mirror(),) if m is not None] + [paths.data_root() / name]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"data set {name!r} not found in {[str(c) for c in candidates]}; "
                            "set ABANET_DATA_MIRROR to the folder holding it")


def folder_size(path: Path) -> int:
    """Bytes of all files under ``path`` (0 when missing)."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def prepare_bundle(root: Path | None = None, datasets=BUNDLED_DATASETS, wheels: bool = True,
                   data: bool = True, log=print) -> dict:
    """Build ``.whl/`` and ``.gpu_bundle/data/`` under ``root`` (default: the project root).

    Returns:
        ``{"wheels": [names], "datasets": {name: manifest}, "bytes": {...}, "total_bytes": int}``.
    """
    root = Path(root or paths.PROJECT_ROOT)
    report: dict = {"wheels": [], "datasets": {}, "bytes": {}}
    if wheels:
        dists = missing_distributions()
        log(f"packages missing on the GPU image: {dists}")
        report["wheels"] = [w.name for w in download_wheels(dists, root / ".whl")]
        report["bytes"][".whl"] = folder_size(root / ".whl")
    if data:
        for name, max_side in datasets:
            src = source_folder(name)
            log(f"{name}: {'copy' if max_side is None else f'resize to {max_side} px'} from {src}")
            report["datasets"][name] = derive_dataset(src, root / ".gpu_bundle" / "data" / name, max_side)
        report["bytes"][".gpu_bundle"] = folder_size(root / ".gpu_bundle")
    # The copy sent to the GPU machine has no .git: record which commit it is.
    (root / ".gpu_bundle").mkdir(parents=True, exist_ok=True)
    commit = git_commit() + ("+dirty" if git_dirty() else "")
    (root / ".gpu_bundle" / "COMMIT").write_text(commit + "\n")
    report["commit"] = commit
    report["total_bytes"] = sum(report["bytes"].values())
    return report
