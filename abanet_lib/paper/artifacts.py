"""What a run record stores besides its scores, so that every table and figure renders from
``results/runs/`` alone (no weights, no live timing).

Written into the run's (staging) folder at the end of evaluation, before ``metrics.json``, by
:func:`record_artifacts`; read back by the tables and figures through :func:`read_speed`,
:func:`read_cross_domain`, :func:`read_figure_maps` and :func:`read_photo_demo`.

=====================  ========================================================================
``speed.json``         inference FPS at batch 1 and the run's input size, measured once right
                       after evaluation, with device, threads, precision and the machine's load
                       (Table 4's FPS column).
``cross_domain.json``  the run's scores on the *other* test set (MFSD <-> MaskedFace-Net), for the
                       runs of the synthetic-data table.
``figure_maps.npz``    ABANet's attention maps psi and every side-output probability map on the
                       figure crop (notebook 02), float16.
``photo_demo.npz``     whole-photo predictions on the first maskedfacenet-seg500 test photos
                       (notebook 14): face boxes, crop probabilities, pasted-back masks and IoU.
=====================  ========================================================================

Records made before these files existed get them from :func:`backfill` when the run's weights
are on the machine; where they are not, tables leave the cell empty and say why.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from abanet_lib.app import faces, predict
from abanet_lib.core import provenance
from abanet_lib.core.config import RunConfig, get_scale
from abanet_lib.core.io import atomic_write, atomic_write_json
from abanet_lib.data import list_samples
from abanet_lib.engine.assembly import build_split, seeded_subset
from abanet_lib.engine.evaluate import evaluate, measure_fps
from abanet_lib.engine.metrics import mask_iou
from abanet_lib.paper import model_catalog
from abanet_lib.paper.definitions import MASKEDFACENET
from abanet_lib.paper.experiments import experiments

SPEED_FILE = "speed.json"
CROSS_DOMAIN_FILE = "cross_domain.json"
FIGURE_MAPS_FILE = "figure_maps.npz"
PHOTO_DEMO_FILE = "photo_demo.npz"
#: Photos of the notebook-14 demo: the first ``PHOTO_DEMO_COUNT`` maskedfacenet-seg500 test photos.
PHOTO_DEMO_COUNT = 3
#: Face-box margin of the recorded photo demo (as ``predict``'s default).
PHOTO_DEMO_MARGIN = 0.25
#: Largest side of the crop probabilities stored for the demo figure.
PHOTO_DEMO_CROP_SIDE = 128


# ---------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------
def measure_speed(model: nn.Module, cfg: RunConfig, device: str | torch.device, warmup: int = 2,
                  repeats: int = 5) -> dict:
    """Inference FPS at batch 1 (random input at the run's size), with the conditions recorded."""
    result = measure_fps(model, cfg.image_size, device=device, batch_sizes=(1,), warmup=warmup,
                         repeats=repeats, precision=cfg.precision, channels_last=cfg.channels_last)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"fps": float(result["fps"]["1"]), "latency_ms": float(result["latency_ms"]["1"]), "batch_size": 1,
            "image_size": cfg.image_size, "precision": result["precision"], "warmup": warmup,
            "repeats": repeats, "device": result["device"], "threads": torch.get_num_threads(),
            "load_average_1min": load, "date_utc": provenance.utc_now()}


# ---------------------------------------------------------------------------------------
# Cross-domain scores (synthetic-data table)
# ---------------------------------------------------------------------------------------
def needs_cross_domain(cfg: RunConfig) -> bool:
    """True for the runs of the synthetic-data table of ``cfg``'s scale."""
    try:
        scale = get_scale(cfg.scale)
    except ValueError:
        return False
    return cfg.run_id in {c.run_id for c in experiments("synthetic", scale, device=cfg.device)}


def other_domain(cfg: RunConfig) -> str:
    """The test set a run was *not* scored on by default (MFSD-like <-> MaskedFace-Net)."""
    return get_scale(cfg.scale).eval_dataset if cfg.eval_dataset == MASKEDFACENET else MASKEDFACENET


def cross_test_refs(cfg: RunConfig, dataset: str) -> list:
    """Test references of ``dataset`` for run ``cfg``, containing no training image of the run."""
    if dataset == MASKEDFACENET:
        testing = [r for r in list_samples(MASKEDFACENET) if r.subset == "testing"]
        return seeded_subset(testing, cfg.max_eval_images, cfg.seed)
    scale = get_scale(cfg.scale)
    # seed 0: the split of the main rows, so every row is tested on the same MFSD fold
    mfsd_cfg = cfg.replace(eval_dataset=scale.eval_dataset, train_datasets=(scale.eval_dataset,),
                           split=scale.split, max_train_images=None, extra_train_images=None, seed=0)
    return list(build_split(mfsd_cfg).test)


def measure_cross_domain(model: nn.Module, cfg: RunConfig, device: str | torch.device) -> dict:
    """``{dataset: summary}`` of the model on the other domain's test set."""
    dataset = other_domain(cfg)
    refs = cross_test_refs(cfg, dataset)
    _, summary = evaluate(model, refs, cfg.image_size, device=device, precision=cfg.precision, progress=False)
    return {dataset: {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}}


# ---------------------------------------------------------------------------------------
# Figure maps (notebook 02) and the photo demo (notebook 14)
# ---------------------------------------------------------------------------------------
def has_attention_maps(model: nn.Module) -> bool:
    return hasattr(model, "last_attention") and hasattr(model, "output_names")


def measure_figure_maps(model: nn.Module, cfg: RunConfig) -> dict[str, np.ndarray]:
    """psi of every gated stage and every side output on the figure crop, as float16 arrays.

    Keys: ``image`` (uint8), ``mask`` (bool), ``psi_<stage>``, ``out_<name>``; ``label`` is a
    0-d string array naming the crop.
    """
    image, mask, label = model_catalog.sample_for_figures(cfg.image_size, seed=0)
    psi, probs = model_catalog.attention_and_side_outputs(model.float().cpu().eval(), image)
    arrays = {"image": image, "mask": mask, "label": np.array(label)}
    arrays.update({f"psi_{s}": np.asarray(a, np.float16) for s, a in psi.items()})
    arrays.update({f"out_{n}": np.asarray(p, np.float16) for n, p in probs.items()})
    return arrays


def measure_photo_demo(model: nn.Module, cfg: RunConfig, count: int = PHOTO_DEMO_COUNT) -> dict[str, np.ndarray]:
    """The whole-photo pipeline of ``predict`` on the first ``count`` MaskedFace-Net test photos."""
    segmenter = predict.Segmenter(model.float().cpu().eval(), cfg.image_size, label=cfg.run_id, trained=True)
    detector = faces.create_detector("auto")
    refs = [r for r in list_samples(MASKEDFACENET) if r.subset == "testing"][:count]
    return photo_demo_arrays(refs, segmenter, detector)


def photo_demo_arrays(refs: Sequence[Any], segmenter, detector, margin: float = PHOTO_DEMO_MARGIN,
                      threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Arrays of the photo demo, per photo i: ``name_i``, ``faces_i`` (predict's face records as
    JSON), ``crop_prob_i`` (first crop's probabilities, uint8, longer side at most
    PHOTO_DEMO_CROP_SIDE), ``mask_i`` and ``truth_i`` (bits of the pasted-back mask and the
    ground truth), ``shape_i`` and ``iou_i``."""
    out: dict[str, np.ndarray] = {"count": np.array(len(refs)), "detector": np.array(detector.name),
                                  "threshold": np.array(threshold),
                                  "margin": np.array(margin)}
    for i, ref in enumerate(refs):
        photo = predict.load_photo(ref.image_path)[0]
        truth = ref.load().mask.astype(bool)
        result = predict.predict_photo(photo, segmenter, detector, margin=margin, threshold=threshold)
        mask = result.mask(threshold)
        x1, y1, x2, y2 = result.faces[0]["crop_box"]
        crop_prob = result.prob[y1:y2, x1:x2]
        side = max(crop_prob.shape)
        if side > PHOTO_DEMO_CROP_SIDE:
            factor = PHOTO_DEMO_CROP_SIDE / side
            size = (max(1, round(crop_prob.shape[1] * factor)), max(1, round(crop_prob.shape[0] * factor)))
            crop_prob = np.asarray(Image.fromarray(crop_prob.astype(np.float32)).resize(size, Image.BILINEAR))
        out.update({
            f"name_{i}": np.array(Path(ref.image_path).name),
            f"faces_{i}": np.array(json.dumps(result.faces, sort_keys=True)),
            f"status_{i}": np.array(result.status),
            f"crop_prob_{i}": np.round(np.clip(crop_prob, 0, 1) * 255).astype(np.uint8),
            f"mask_{i}": np.packbits(mask), f"truth_{i}": np.packbits(truth),
            f"shape_{i}": np.array(mask.shape, np.int32),
            f"iou_{i}": np.array(mask_iou(mask, truth)),
        })
    return out


def unpack_photo_demo(arrays: dict) -> list[dict]:
    """One dict per demo photo: name, faces (list of dicts), status, crop_prob (float in [0, 1]),
    mask, truth (bool (H, W)) and iou."""
    photos = []
    for i in range(int(arrays["count"])):
        shape = tuple(int(v) for v in arrays[f"shape_{i}"])
        n = shape[0] * shape[1]
        photos.append({
            "name": str(arrays[f"name_{i}"]), "faces": json.loads(str(arrays[f"faces_{i}"])),
            "status": str(arrays[f"status_{i}"]),
            "crop_prob": arrays[f"crop_prob_{i}"].astype(np.float32) / 255.0,
            "mask": np.unpackbits(arrays[f"mask_{i}"])[:n].reshape(shape).astype(bool),
            "truth": np.unpackbits(arrays[f"truth_{i}"])[:n].reshape(shape).astype(bool),
            "iou": float(arrays[f"iou_{i}"]),
        })
    return photos


def wants_photo_demo(cfg: RunConfig) -> bool:
    """The photo demo is recorded for paper-default ABANet runs on the real crops (notebook 14's
    model when no ``--run`` is given)."""
    kw = cfg.model_kwargs_dict
    return (cfg.model == "abanet" and not kw and cfg.eval_dataset != MASKEDFACENET
            and cfg.scale != "smoke")


# ---------------------------------------------------------------------------------------
# Writing and reading
# ---------------------------------------------------------------------------------------
def record_artifacts(folder: Path, cfg: RunConfig, model: nn.Module, device: str | torch.device,
                     trained: bool = True) -> list[str]:
    """Write every artifact that applies to this run into ``folder``; return the file names.

    ``model`` must hold the run's final (best) weights. Called before ``metrics.json`` is written,
    so a complete record always has them.
    """
    folder = Path(folder)
    written = []
    _write_json(folder / SPEED_FILE, measure_speed(model, cfg, device))
    written.append(SPEED_FILE)
    if needs_cross_domain(cfg):
        _write_json(folder / CROSS_DOMAIN_FILE, measure_cross_domain(model, cfg, device))
        written.append(CROSS_DOMAIN_FILE)
    if trained and has_attention_maps(model):
        _write_npz(folder / FIGURE_MAPS_FILE, measure_figure_maps(model, cfg))
        written.append(FIGURE_MAPS_FILE)
    if trained and wants_photo_demo(cfg):
        _write_npz(folder / PHOTO_DEMO_FILE, measure_photo_demo(model, cfg))
        written.append(PHOTO_DEMO_FILE)
    model.to(device)
    return written


def backfill(run, model: nn.Module, only: Sequence[str] | None = None, device: str = "cpu") -> list[str]:
    """Add the artifacts a record made before they existed lacks (never overwrites a file).

    Args:
        run: a finished :class:`abanet_lib.engine.registry.Run`.
        model: the run's trained model (its own weights: never an untrained stand-in).
        only: restrict to these file names.
    """
    cfg, folder = run.config, Path(run.path)
    todo = {
        SPEED_FILE: lambda: _write_json(folder / SPEED_FILE, measure_speed(model, cfg, device)),
        CROSS_DOMAIN_FILE: lambda: needs_cross_domain(cfg) and _write_json(
            folder / CROSS_DOMAIN_FILE, measure_cross_domain(model, cfg, device)),
        FIGURE_MAPS_FILE: lambda: has_attention_maps(model) and _write_npz(
            folder / FIGURE_MAPS_FILE, measure_figure_maps(model, cfg)),
        PHOTO_DEMO_FILE: lambda: wants_photo_demo(cfg) and _write_npz(
            folder / PHOTO_DEMO_FILE, measure_photo_demo(model, cfg)),
    }
    written = []
    for name, make in todo.items():
        if (only is not None and name not in only) or (folder / name).exists():
            continue
        if make():
            written.append(name)
    return written


def read_speed(run) -> dict | None:
    return _read_json(Path(run.path) / SPEED_FILE)


def read_cross_domain(run) -> dict | None:
    return _read_json(Path(run.path) / CROSS_DOMAIN_FILE)


def read_figure_maps(run) -> dict | None:
    return _read_npz(Path(run.path) / FIGURE_MAPS_FILE)


def read_photo_demo(run) -> dict | None:
    return _read_npz(Path(run.path) / PHOTO_DEMO_FILE)


def _write_json(path: Path, obj: dict) -> bool:
    atomic_write_json(path, obj, indent=1, sort_keys=True)
    return True


def _write_npz(path: Path, arrays: dict) -> bool:
    atomic_write(path, lambda tmp: _savez(tmp, arrays))
    return True


def _savez(target: Path, arrays: dict) -> None:
    # np.savez appends ".npz" to names without it: write through an open file instead.
    with open(target, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _read_npz(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
