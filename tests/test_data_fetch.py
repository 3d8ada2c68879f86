"""fetch(): local copy, mirror copy, checksum checks and the (offline-tested) download path."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile

import pytest

from abanet_lib.data import DATASETS, DataError, fetch, list_samples, synthetic_samples, verify_dataset
from abanet_lib.data import registry
from abanet_lib.data.synthetic import write_sample_folder


def _make_mfsd_like(folder, n=3):
    """A tiny data set in the mfsd-sample layout with its own SHA256SUMS; returns the patched spec."""
    samples = synthetic_samples(n, 40, seed=3)
    write_sample_folder(samples, folder, image_ext=".jpg")
    (folder / "images").rename(folder / "image")
    (folder / "masks").rename(folder / "mask")
    sums = {p.relative_to(folder).as_posix(): registry.sha256_file(p) for p in folder.rglob("*.*")}
    text = registry.format_sums(sums)
    (folder / "SHA256SUMS").write_text(text)
    return dataclasses.replace(DATASETS["mfsd-sample"], n_files=2 * n,
                               sums_sha256=hashlib.sha256(text.encode()).hexdigest())


@pytest.fixture()
def mirror_env(tmp_path, monkeypatch, tmp_results):
    mirror = tmp_path / "mirror"
    spec = _make_mfsd_like(mirror / "mfsd-sample")
    monkeypatch.setitem(DATASETS, "mfsd-sample", spec)
    monkeypatch.setenv("ABANET_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("ABANET_DATA", str(tmp_path / "data"))
    return tmp_path


def test_fetch_copies_from_mirror_and_caches_verification(mirror_env, monkeypatch):
    root = fetch("mfsd-sample")
    assert root == mirror_env / "data" / "mfsd-sample"
    assert len(list_samples("mfsd-sample")) == 3
    assert (root / "SHA256SUMS").is_file()

    def no_hashing(path, chunk=0):
        raise AssertionError(f"hashed {path} although nothing changed")

    monkeypatch.setattr(registry, "sha256_file", lambda p, chunk=0: (
        registry.hashlib.sha256((p).read_bytes()).hexdigest() if p.name == "SHA256SUMS" else no_hashing(p)))
    assert fetch("mfsd-sample") == root  # stamp hit: only SHA256SUMS itself is hashed


def test_checksum_mismatch_names_the_file(mirror_env):
    root = fetch("mfsd-sample")
    victim = root / "mask" / "synthetic_001.png"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match=r"checksum mismatch in 1 file\(s\): mask/synthetic_001.png"):
        fetch("mfsd-sample")


def test_tampered_mirror_is_rejected(mirror_env):
    sums = mirror_env / "mirror" / "mfsd-sample" / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("synthetic_000", "synthetic_00x"))
    with pytest.raises(DataError, match="SHA256SUMS: SHA256 .* differs from the pinned"):
        fetch("mfsd-sample")
    assert not (mirror_env / "data" / "mfsd-sample").exists()


def test_unlisted_and_missing_files(mirror_env):
    root = fetch("mfsd-sample")
    (root / "image" / "extra.jpg").write_bytes((root / "image" / "synthetic_000.jpg").read_bytes())
    with pytest.raises(DataError, match="not in SHA256SUMS: image/extra.jpg"):
        verify_dataset("mfsd-sample", root)
    (root / "image" / "extra.jpg").unlink()
    (root / "image" / "synthetic_002.jpg").unlink()
    with pytest.raises(DataError, match="missing: image/synthetic_002.jpg"):
        verify_dataset("mfsd-sample", root)


def _zip_of(folder, prefix):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{prefix}README.md", "readme")
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name != "SHA256SUMS":
                zf.write(p, prefix + "OtherNetwork/Dataset_Test/" + p.relative_to(folder).as_posix())
    return buf.getvalue()


def test_download_through_file_url(mirror_env, monkeypatch):
    src = mirror_env / "mirror" / "mfsd-sample"
    archive = mirror_env / "repo.zip"
    archive.write_bytes(_zip_of(src, "ABANet-a88261e/"))
    monkeypatch.setenv("ABANET_DATA_MIRROR", str(mirror_env / "no-mirror"))
    root = registry.download_dataset("mfsd-sample", mirror_env / "dl", url=archive.as_uri())
    assert (root / "SHA256SUMS").read_text() == (src / "SHA256SUMS").read_text()
    assert len(list_samples("mfsd-sample", root)) == 3

    # fetch() falls through to the download when there is neither a copy nor a mirror
    seen = []

    def opener(url):
        seen.append(url)
        return io.BytesIO(archive.read_bytes())

    root2 = fetch("mfsd-sample", mirror_env / "dl2", opener=opener)
    assert seen == ["https://codeload.github.com/sadjadrz/ABANet-Attention-boundary-aware-network-for-image-"
                    "segmentation/zip/a88261e45dcdf5597191b6abc01035beeb9c8d18"]
    assert len(list_samples("mfsd-sample", root2)) == 3


def test_download_of_wrong_content_fails(mirror_env, monkeypatch):
    src = mirror_env / "mirror" / "mfsd-sample"
    (src / "mask" / "synthetic_000.png").write_bytes(b"changed")
    payload = _zip_of(src, "x/")
    with pytest.raises(DataError, match="do not reproduce the pinned checksum list"):
        registry.download_dataset("mfsd-sample", mirror_env / "dl", opener=lambda url: io.BytesIO(payload))
    assert not (mirror_env / "dl").exists()
    with pytest.raises(DataError, match="download of 'mfsd-sample' failed"):
        registry.download_dataset("mfsd-sample", mirror_env / "dl", url=(mirror_env / "absent.zip").as_uri())


def test_find_prefix_without_subdir():
    infos = [zipfile.ZipInfo(n) for n in ["r-1/README.md", "r-1/data/training/CWM/images/00001.jpg",
                                          "r-1/data/testing/CWM/images/00002.jpg"]]
    assert registry._find_prefix(infos, DATASETS["maskedfacenet-seg500"]) == "r-1/data/"


def test_full_mfsd_missing_gives_manual_link(tmp_path, monkeypatch):
    monkeypatch.setenv("ABANET_DATA_MIRROR", str(tmp_path / "none"))
    with pytest.raises(DataError, match=r"(?s)https://github.com/sadjadrz/MFSD.*MSFD/1/face_crop_segmentation"):
        fetch("mfsd", tmp_path / "mfsd")


@pytest.mark.data
def test_real_mirror_verifies(data_mirror, tmp_results):
    for name in ("mfsd-sample", "maskedfacenet-seg500"):
        verify_dataset(name, data_mirror / name)
    assert DATASETS["mfsd-sample"].n_files == 440 and DATASETS["maskedfacenet-seg500"].n_files == 1000


def test_derived_copy_is_checked_against_its_own_list(tmp_path, monkeypatch, tmp_results):
    """A downsized copy (GPU bundle) verifies through DERIVED.json + its own SHA256SUMS."""
    import json

    original = tmp_path / "original"
    spec = _make_mfsd_like(original)
    monkeypatch.setitem(DATASETS, "mfsd-sample", spec)
    derived = tmp_path / "derived"
    _make_mfsd_like(derived, n=3)  # other bytes, own checksum list
    (derived / "image" / "synthetic_000.jpg").write_bytes(b"changed" * 50)
    sums = {p.relative_to(derived).as_posix(): registry.sha256_file(p)
            for p in derived.rglob("*.*") if p.name != "SHA256SUMS"}
    (derived / "SHA256SUMS").write_text(registry.format_sums(sums))
    with pytest.raises(DataError, match="differs from the pinned"):
        verify_dataset("mfsd-sample", derived, use_stamp=False)
    marker = derived / "DERIVED.json"
    marker.write_text(json.dumps({"source_checksums_sha256": spec.sums_sha256}))
    verify_dataset("mfsd-sample", derived, use_stamp=False)  # accepted
    victim = derived / "mask" / "synthetic_001.png"
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(DataError, match="checksum mismatch in 1 file"):
        verify_dataset("mfsd-sample", derived, use_stamp=False)
    marker.write_text(json.dumps({"source_checksums_sha256": "0" * 64}))
    with pytest.raises(DataError, match="DERIVED.json: derived from checksum list"):
        verify_dataset("mfsd-sample", derived, use_stamp=False)
