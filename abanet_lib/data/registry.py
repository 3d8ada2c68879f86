"""Registry of named data sets and :func:`fetch` (local copy -> mirror -> download).

Integrity: each data set with a published file list pins, in code, the number of files and
the SHA256 of its ``SHA256SUMS`` file (lines ``<sha256>  ./<relative path>``, sorted by path
in byte order). A copy is *verified* when its ``SHA256SUMS`` has the pinned digest, lists the
pinned number of files, and every listed file has the listed hash. Hashing 60 MB of
MaskedFace-Net images on every call would be wasteful, so a successful verification writes a
stamp (size and mtime of every file) into ``cache_dir()/verified/``; while no file changes,
later calls skip the hashing.

Downloads (only when neither a local copy nor a mirror exists) fetch GitHub's codeload zip of
the pinned commit, extract the data set's folder, rebuild ``SHA256SUMS`` from the extracted
files and check it against the pinned digest.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from abanet_lib.core import paths
from abanet_lib.core.io import atomic_folder, atomic_write_text

from .samples import IMAGE_EXTENSIONS, DataError

#: The folder layout of a full MFSD download (error messages and the data set's description).
MFSD_LAYOUT = """\
MSFD/1/img/NNNNNN.jpg                      full photos
MSFD/1/face_crop/NNNNNN_K.jpg              K-th face crop of that photo
MSFD/1/face_crop_segmentation/NNNNNN_K.jpg binary mask of the crop (same name, JPEG)
MSFD/1/dataset.csv                         filename,x1,y1,x2,y2,with_mask (one row per face box)"""

log = logging.getLogger(__name__)

DERIVED_FILE = "DERIVED.json"
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class DatasetSpec:
    """What a named data set is and where it comes from.

    Attributes:
        name: registry key (also the folder name under the data root / mirror).
        layout: human-readable expected layout.
        n_files: number of files listed in ``SHA256SUMS`` (images + masks), or None.
        sums_sha256: SHA256 of the ``SHA256SUMS`` file, or None (no published list).
        repo, commit, subdir: GitHub origin (``owner/name``, commit, folder in the repo);
            ``subdir`` None means "find the folder holding the listed files".
        manual_url: where to download by hand when there is no automatic origin.
        n_samples: number of image/mask pairs (for messages and tests).
    """

    name: str
    layout: str
    n_files: int | None
    sums_sha256: str | None
    repo: str | None = None
    commit: str | None = None
    subdir: str | None = None
    manual_url: str | None = None
    n_samples: int | None = None
    licence: str = ""
    top_folders: tuple = ()

    @property
    def archive_url(self) -> str | None:
        """GitHub codeload zip of the pinned commit."""
        if not (self.repo and self.commit):
            return None
        return f"https://codeload.github.com/{self.repo}/zip/{self.commit}"


DATASETS: dict[str, DatasetSpec] = {
    "mfsd-sample": DatasetSpec(
        name="mfsd-sample",
        layout="image/NAME.jpg (RGB 250x250) + mask/NAME.jpg (8-bit JPEG, binarised > 127)",
        n_files=440,
        sums_sha256="97b25bdb821d98d5320c50c20158ba2a72abf0f0e2454ed90df3a169a414abf9",
        repo="sadjadrz/ABANet-Attention-boundary-aware-network-for-image-segmentation",
        commit="a88261e45dcdf5597191b6abc01035beeb9c8d18",
        subdir="OtherNetwork/Dataset_Test",
        n_samples=220,
        licence="MIT",
        top_folders=("image", "mask"),
    ),
    "maskedfacenet-seg500": DatasetSpec(
        name="maskedfacenet-seg500",
        layout=("{training,testing}/{CWM,IWM}/images/NNNNN.jpg (RGB 1024x1024) + "
                ".../masks/NNNNN_gt.png (labels 0/1/2; target = label 2)"),
        n_files=1000,
        sums_sha256="930685120bbe66445ac1841dadba4218d079696cff86dc20cf91f6085d416783",
        repo="baskoroadiw/MaskedFaceSegmentation-Dataset",
        commit="87897e1175d2c5e6cf75ca46962f3dc8b939a267",
        subdir=None,
        n_samples=500,
        licence="CC BY-NC-SA 4.0 (MaskedFace-Net images)",
        top_folders=("training", "testing"),
    ),
    "mfsd": DatasetSpec(
        name="mfsd",
        layout=MFSD_LAYOUT,
        n_files=None,
        sums_sha256=None,
        manual_url="https://github.com/sadjadrz/MFSD",
    ),
}


# ---------------------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------------------
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_sums(path: Path) -> dict[str, str]:
    """``SHA256SUMS`` -> ``{relative path: sha256}`` (``./`` prefix removed)."""
    sums = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}:{line_no}: bad line {line!r}; expected '<sha256>  ./<path>'")
        rel = parts[1].strip().lstrip("*")
        sums[rel[2:] if rel.startswith("./") else rel] = parts[0].lower()
    return sums


def format_sums(sums: dict[str, str]) -> str:
    """Canonical ``SHA256SUMS`` text (byte-order sorted paths, ``./`` prefix), as published."""
    return "".join(f"{sums[rel]}  ./{rel}\n" for rel in sorted(sums, key=lambda s: s.encode()))


def _stamp_path(name: str, root: Path) -> Path:
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return paths.cache_dir() / "verified" / f"{name}-{key}.json"


def _file_state(root: Path, rels) -> dict[str, list[int]]:
    state = {}
    for rel in rels:
        st = (root / rel).stat()
        state[rel] = [st.st_size, st.st_mtime_ns]
    return state


def verify_dataset(name: str, root: Path, use_stamp: bool = True) -> None:
    """Check a local copy of data set ``name`` against its pinned checksums.

    A *derived* copy (for example the downsized copy carried to a GPU machine, see
    :mod:`abanet_lib.ops.gpu_bundle`) has a ``DERIVED.json`` naming the pinned checksum list it was
    made from; its files are then checked against its own ``SHA256SUMS``.

    Raises:
        DataError: missing/tampered ``SHA256SUMS``, wrong file count, missing files, or files
            whose hash differs (all named in the message).
    """
    spec = DATASETS[name]
    root = Path(root)
    if spec.sums_sha256 is None:
        return
    sums_path = root / SUMS_FILE
    if not sums_path.is_file():
        raise DataError(f"{sums_path}: not found; expected the {name} checksum list ({spec.n_files} files)")
    digest = sha256_file(sums_path)
    derived = _derived_from_pinned(name, root)
    if digest != spec.sums_sha256 and not derived:
        raise DataError(f"{sums_path}: SHA256 {digest} differs from the pinned {spec.sums_sha256}; "
                        f"the copy of {name} was altered or is another version")
    sums = parse_sums(sums_path)
    if spec.n_files is not None and len(sums) != spec.n_files:
        raise DataError(f"{sums_path}: lists {len(sums)} files; expected {spec.n_files}")
    missing = sorted(rel for rel in sums if not (root / rel).is_file())
    if missing:
        raise DataError(f"{root}: {len(missing)} listed file(s) missing: {', '.join(missing[:20])}")

    unlisted = sorted(
        rel for rel in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if _is_data_file(rel) and rel not in sums
    )
    if unlisted:
        raise DataError(f"{root}: {len(unlisted)} image file(s) not in {SUMS_FILE}: {', '.join(unlisted[:20])}; "
                        f"expected exactly the {len(sums)} listed files")

    stamp = _stamp_path(name, root)
    state = _file_state(root, sums)
    if use_stamp and stamp.is_file():
        try:
            saved = json.loads(stamp.read_text())
            if saved.get("sums_sha256") == digest and saved.get("files") == state:
                return
        except (OSError, ValueError):
            pass
    bad = sorted(rel for rel, expected in sums.items() if sha256_file(root / rel) != expected)
    if bad:
        raise DataError(f"{root}: checksum mismatch in {len(bad)} file(s): {', '.join(bad[:20])}"
                        f"{' ...' if len(bad) > 20 else ''}; expected the hashes listed in {sums_path}")
    atomic_write_text(stamp, json.dumps({"sums_sha256": digest, "root": str(root.resolve()), "files": state}))


def _derived_from_pinned(name: str, root: Path) -> bool:
    """True when ``root/DERIVED.json`` says the copy was made from the pinned version of ``name``."""
    marker = root / DERIVED_FILE
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{marker}: unreadable ({err}); expected JSON with 'source_checksums_sha256'") from err
    if info.get("source_checksums_sha256") != DATASETS[name].sums_sha256:
        raise DataError(f"{marker}: derived from checksum list {info.get('source_checksums_sha256')!r}, "
                        f"not the pinned {DATASETS[name].sums_sha256} of {name}")
    return True


# ---------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------
def _present(name: str, root: Path) -> bool:
    if not root.is_dir():
        return False
    if name == "mfsd":
        return any((c / "face_crop").is_dir() for c in (root / "MSFD" / "1", root / "1", root))
    return any(p for p in root.iterdir() if not p.name.startswith("."))


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary sibling, so a broken copy never looks complete."""
    atomic_folder(dst, lambda tmp: shutil.copytree(src, tmp))


def fetch(name: str, root: Path | None = None, download: bool = True,
          opener=urllib.request.urlopen) -> Path:
    """Return a verified local folder of data set ``name``.

    Order: (1) ``root`` (default ``paths.data_root()/name``) if present -> verified and
    returned (a failed check raises; local data is never overwritten); (2) a copy of
    ``paths.data_mirror()/name`` (verified before and after copying); (3) the public origin
    (GitHub zip of the pinned commit) when ``download`` is True; (4) full MFSD has no
    automatic origin: an error gives the manual-download link and the layout.

    Args:
        name: a key of :data:`DATASETS`.
        root: destination / existing folder.
        download: allow step (3).
        opener: ``urllib.request.urlopen``-like callable (tests pass a stand-in).

    Raises:
        DataError: unknown name, verification failure, or no source available.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    root = Path(root) if root is not None else paths.data_root() / name
    if _present(name, root):
        verify_dataset(name, root)
        return root
    mirror = paths.data_mirror()
    if mirror is not None and _present(name, mirror / name):
        verify_dataset(name, mirror / name)
        log.info("copying %s from the mirror %s to %s", name, mirror / name, root)
        _copy_tree(mirror / name, root)
        verify_dataset(name, root)
        return root
    if spec.archive_url is None:
        raise DataError(
            f"{root}: data set {name!r} not found and it cannot be downloaded automatically.\n"
            f"Download it by hand from {spec.manual_url} (Google Drive zip), unpack it so that this "
            f"layout exists under {root}:\n{spec.layout}"
        )
    if not download:
        raise DataError(f"{root}: data set {name!r} not found locally or in the mirror ({mirror}); "
                        "downloading is disabled")
    download_dataset(name, root, opener=opener)
    return root


def download_dataset(name: str, root: Path, url: str | None = None, opener=urllib.request.urlopen) -> Path:
    """Download the pinned GitHub zip, extract the data set folder into ``root``, verify it.

    Args:
        name: a key of :data:`DATASETS` with a GitHub origin.
        root: destination folder (replaced only after a successful check).
        url: override of the archive URL (tests use ``file://``).
        opener: ``urlopen``-like callable returning a readable response.

    Raises:
        DataError: network failure, the archive lacks the files, or the rebuilt
            ``SHA256SUMS`` does not have the pinned digest.
    """
    spec = DATASETS[name]
    url = url or spec.archive_url
    log.info("downloading %s from %s", name, url)
    try:
        with opener(url) as response:
            payload = response.read()
    except Exception as exc:  # urllib raises several types; all mean "could not download"
        raise DataError(f"{url}: download of {name!r} failed ({type(exc).__name__}: {exc}); "
                        f"expected the zip of {spec.repo}@{spec.commit}") from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile:
        raise DataError(f"{url}: not a zip archive ({len(payload)} bytes); expected GitHub's codeload zip") from None

    files = [i for i in archive.infolist() if not i.is_dir()]
    prefix = _find_prefix(files, spec)
    if prefix is None:
        raise DataError(f"{url}: no folder matching the {name} layout ({spec.layout}) inside the archive")

    root = Path(root)

    def extract(tmp: Path) -> None:
        sums = {}
        for info in files:
            if not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix):]
            if not _is_data_file(rel) or (spec.top_folders and Path(rel).parts[0] not in spec.top_folders):
                continue
            if ".." in Path(rel).parts:
                raise DataError(f"{url}: unsafe path {info.filename!r} in the archive")
            data = archive.read(info)
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            sums[rel] = hashlib.sha256(data).hexdigest()
        text = format_sums(sums)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != spec.sums_sha256:
            raise DataError(
                f"{url}: the {len(sums)} extracted files (expected {spec.n_files}) do not reproduce the "
                f"pinned checksum list of {name} (digest {digest}, expected {spec.sums_sha256})"
            )
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / SUMS_FILE).write_text(text)

    atomic_folder(root, extract)
    verify_dataset(name, root)
    return root


def _is_data_file(rel: str) -> bool:
    return bool(rel) and not any(part.startswith(".") for part in Path(rel).parts) \
        and Path(rel).suffix.lower() in IMAGE_EXTENSIONS


def _find_prefix(files, spec: DatasetSpec) -> str | None:
    """Archive path prefix of the data set folder (``<repo>-<commit>/<subdir>/``)."""
    names = [i.filename for i in files]
    if spec.subdir:
        for n in names:
            top = n.split("/", 1)[0]
            prefix = f"{top}/{spec.subdir.strip('/')}/"
            if any(m.startswith(prefix) for m in names):
                return prefix
        return None
    # no fixed folder: the deepest folder that holds both training/ and testing/
    candidates = set()
    for n in names:
        parts = n.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in ("training", "testing"):
                candidates.add("/".join(parts[:i]) + "/" if i else "")
    for prefix in sorted(candidates, key=len):
        if any(m.startswith(prefix + "training/") for m in names) and \
                any(m.startswith(prefix + "testing/") for m in names):
            return prefix
    return None
