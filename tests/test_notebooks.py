"""The notebooks teach: every one states the paper's claim, has the method (equations where the
paper has them), reads its result from the numbers, and ends with exercises; the executed
copies for readers are scrubbed so re-rendering gives the same bytes; the viewers degrade to a
static figure headless."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _markdown(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown")


def _code(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")


def _nb(number: str) -> Path:
    return next(p for p in NOTEBOOKS if p.name.startswith(number + "_"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_notebook_has_claim_method_and_exercises(path):
    text = _markdown(path)
    assert re.search(r"^## What to try", text, re.M), f"{path.name}: needs a '## What to try' section"
    exercises = re.split(r"^## What to try", text, flags=re.M)[1]
    assert len(re.findall(r"^\d\. ", exercises, re.M)) >= 2, f"{path.name}: 'What to try' needs 2-4 numbered exercises"
    assert re.search(r"(paper, Section|Section \d|Table \d|Figure \d|Not in the paper|\*\*Not a table)", text), \
        f"{path.name}: state the paper's claim with its section/table number"
    assert "$" in text, f"{path.name}: the method needs at least one equation (LaTeX)"
    assert "Reading the table:" not in text, f"{path.name}: the generic footer is replaced by a reading of the numbers"


@pytest.mark.parametrize("number, needles", [
    ("02", [r"\psi^\top", r"W_g", r"W_x", "(7-s)"]),
    ("03", [r"\beta^2 = 0.3", "MAE", "S_m"]),
    ("04", [r"\beta^2 = 0.3", "MAE", "S_m", "IoU"]),
    ("06", [r"d_k = \mathrm{IoU}_k(A) - \mathrm{IoU}_k(B)", r"t_{0.975,\,n-1}\,\frac{s_d}{\sqrt n}", "Welch"]),
    ("10", [r"\gamma", r"\alpha", r"C_1 = 0.01^2", r"C_2 = 0.03^2", r"\sum_{n=1}^{N}"]),
])
def test_the_papers_equations_are_written_out(number, needles):
    text = _markdown(_nb(number))
    missing = [n for n in needles if n not in text]
    assert not missing, f"notebook {number} lacks {missing}"


@pytest.mark.parametrize("number", ["04", "05", "06", "07", "08", "09", "10", "12", "13"])
def test_table_notebooks_read_their_result_from_the_frame(number):
    code = _code(_nb(number))
    assert "views.reading(" in code and "views.show_table(" in code
    assert "table_markdown(" not in code, "wide markdown tables are replaced by views.show_table"


@pytest.mark.parametrize("number", ["06", "07", "08", "09", "10"])
def test_ablation_notebooks_show_their_config_changes(number):
    code = _code(_nb(number))
    assert "views.config_changes(" in code and "views.effects(" in code
    assert _markdown(_nb(number)).count("## The knob") == 1


def test_ablation_notebooks_differ_in_their_prose():
    texts = [_markdown(_nb(n)) for n in ("06", "07", "08", "09", "10")]
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize("number", ["02", "03", "11"])
def test_viewers_are_offered(number):
    assert "widgets." in _code(_nb(number))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_cell_ids_are_stable_and_unique(path):
    ids = [c.get("id") for c in _cells(path)]
    assert all(ids), f"{path.name}: every cell needs an id"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate cell ids"
    assert all(re.fullmatch(rf"{path.name[:2]}-[a-z0-9-]+", i) for i in ids), \
        f"{path.name}: ids are '<NN>-<name>' so an edit never renumbers other cells: {ids}"


# --------------------------------------------------------------------------- executed copies
def _executed_example(tmp_path: Path, start: str, seconds: float) -> dict:
    root = str(ROOT)
    return {
        "cells": [
            {"cell_type": "code", "execution_count": 3, "id": "01-a",
             "metadata": {"papermill": {"start_time": start, "end_time": start, "duration": seconds,
                                        "status": "completed", "exception": False},
                          "execution": {"iopub.execute_input": start}},
             "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": [f"wrote {root}/results/x.png\n", "ok\n"]},
                 {"output_type": "stream", "name": "stderr", "text": ["epoch 1: 100%|##| 3/3 [00:01<00:00, 2.1it/s]\n"]},
                 {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                  "data": {"text/plain": [f"PosixPath('{root}/results')"],
                           "application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}},
             ],
             "source": ["print(1)"]},
        ],
        "metadata": {"papermill": {"parameters": {"scale": "reduced"}, "start_time": start, "end_time": start,
                                   "duration": seconds, "input_path": f"{root}/notebooks/x.ipynb",
                                   "output_path": f"{tmp_path}/x.ipynb", "environment_variables": {}},
                     "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
                     "language_info": {"name": "python", "version": "3.11.2"},
                     "kernelspec": {"name": "abanet", "display_name": "Python (abanet)", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_published_copies_are_scrubbed_and_byte_identical(tmp_path):
    from abanet_lib.paper.reproduce import publish_notebook

    a, b = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    a.write_text(json.dumps(_executed_example(tmp_path, "2026-01-01T00:00:00", 1.5)))
    b.write_text(json.dumps(_executed_example(tmp_path, "2026-02-03T04:05:06", 9.25)))
    out_a = publish_notebook(a, tmp_path / "pub" / "a.ipynb").read_text()
    out_b = publish_notebook(b, tmp_path / "pub" / "b.ipynb").read_text()
    assert out_a == out_b, "two renderings that differ only in timings must give the same bytes"
    for volatile in ("start_time", "end_time", "duration", "2026-", "execution_count\": 3", str(ROOT),
                     "it/s", "widget-view", "widget-state", "input_path"):
        assert volatile not in out_a, f"{volatile!r} left in the published copy"
    nb = json.loads(out_a)
    assert nb["metadata"]["papermill"] == {"parameters": {"scale": "reduced"}}
    assert "<project>/results/x.png" in "".join(nb["cells"][0]["outputs"][0]["text"])


def test_publishing_refuses_files_over_the_limit(tmp_path):
    from abanet_lib.paper.reproduce import publish_notebook

    nb = _executed_example(tmp_path, "t", 1.0)
    nb["cells"][0]["outputs"].append({"output_type": "display_data", "metadata": {},
                                      "data": {"text/plain": "A" * 2_000_000}})
    src = tmp_path / "big.ipynb"
    src.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="MB"):
        publish_notebook(src, tmp_path / "pub" / "big.ipynb")


def test_published_images_are_compacted_deterministically():
    import base64
    import io

    from PIL import Image

    from abanet_lib.paper.reproduce import PUBLISHED_IMAGE_WIDTH, compact_png

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 1600, 3), dtype=np.uint8)).save(buffer, format="PNG")
    raw = base64.b64encode(buffer.getvalue()).decode()
    small = compact_png(raw)
    assert small == compact_png(raw) and len(small) < len(raw)
    image = Image.open(io.BytesIO(base64.b64decode(small)))
    assert image.width == PUBLISHED_IMAGE_WIDTH and image.height == 150


# --------------------------------------------------------------------------- viewers
def _fake_maps(size: int = 16) -> dict:
    mask = np.zeros((size, size), bool)
    mask[4:12, 4:12] = True
    soft = mask.astype(np.float32) * 0.8 + 0.1
    return {"image": np.zeros((size, size, 3), np.uint8), "mask": mask, "label": np.array("fake crop"),
            "psi_6": np.full((size // 2, size // 2), 0.5, np.float16),
            "out_refined": soft.astype(np.float16), "out_bridge": np.full((size, size), 0.4, np.float16)}


def test_viewer_mode_follows_the_environment(monkeypatch):
    from abanet_lib.notebook import widgets

    monkeypatch.setenv(widgets.MODE_ENV, "static")
    assert widgets.interactive() is False
    monkeypatch.setenv(widgets.MODE_ENV, "auto")
    assert widgets.interactive() is False  # no IPython kernel in pytest


def test_side_output_viewer_degrades_to_a_figure(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from abanet_lib.notebook import widgets

    monkeypatch.setenv(widgets.MODE_ENV, "static")
    fig = widgets.side_output_viewer(_fake_maps())
    assert "IoU 1.000" in fig.axes[3].get_title()
    curves = widgets.threshold_curves(_fake_maps(), [0.3, 0.5, 0.95])
    assert curves.loc[0.5, "output refined"] == 1.0 and curves.loc[0.95, "output refined"] == 0.0
