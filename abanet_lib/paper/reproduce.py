"""Run the numbered notebooks in order through papermill (``python -m abanet_lib reproduce``).

Each ``notebooks/NN_*.ipynb`` is executed with the kernel ``abanet`` (named explicitly, never
the notebook's stored default), parameter ``scale`` injected, working directory = the
notebook folder (as nbval), and ``ABANET_SCALE`` set for anything the notebook starts. The
executed copies go to ``executed/<scale>/`` (git-ignored), never over the sources. The first
failure stops the batch with :class:`NotebookFailed`, which names the notebook and the cell.

With ``publish=True`` (the default for the committed reduced scale) each executed copy is also
written, scrubbed by :func:`scrub_notebook`, to ``results/notebooks/`` so GitHub shows every
table and figure inline: no execution metadata (papermill's timings, start/end times,
durations, kernel and machine details), no execution counts, machine paths replaced by
``<project>`` / ``<home>``, widget state dropped (the viewers draw a static figure headless,
``ABANET_WIDGETS=static``), images at the notebooks' modest dpi. Rendering twice from the same
records gives the same bytes; a copy over :data:`MAX_PUBLISHED_BYTES` raises.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Iterable

import papermill as pm
from jupyter_client.manager import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from PIL import Image

from abanet_lib.core import paths

KERNEL_NAME = "abanet"
#: Scales whose executed copies are committed (under ``results/notebooks/``).
PUBLISHED_SCALES = ("reduced",)
#: Largest executed copy that may be committed.
MAX_PUBLISHED_BYTES = 1_000_000
_NUMBERED = re.compile(r"^(\d{2})_.+\.ipynb$")


class NotebookFailed(RuntimeError):
    """A notebook failed; the message names it, the cell, and the error.

    Attributes:
        notebook: the source notebook.
        executed: the executed copy (holds the traceback in the failing cell's output).
        cell_index: index of the failing cell in the executed copy (None if unknown).
        cell_source: that cell's code.
    """

    def __init__(self, message: str, notebook: Path, executed: Path, cell_index: int | None = None,
                 cell_source: str = ""):
        super().__init__(message)
        self.notebook, self.executed = notebook, executed
        self.cell_index, self.cell_source = cell_index, cell_source


#: Local kernels talk over IPC sockets: no network port, and no "running over TCP without
#: encryption" warning from every kernel start.
IPC_KERNEL_MANAGER = "abanet_lib.paper.reproduce.IPCKernelManager"


class IPCKernelManager(AsyncKernelManager):
    """The kernel manager papermill uses, on the ``ipc`` transport."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)


def parameter_names(notebook: Path | str) -> list[str]:
    """Names assigned in the notebook's ``parameters`` cell (parsed with :mod:`ast`)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell.get("source", [])))
            return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)]
    return []


def published_notebooks_dir(scale: str | None = None) -> Path:
    """``results/notebooks/`` for the committed scale (follows ``ABANET_RESULTS``; a smoke
    scale maps under ``.cache/``, as every output of :func:`abanet_lib.core.paths.results_dir`)."""
    return paths.results_dir(scale) / "notebooks"


#: Output lines that change from run to run (timings, progress-bar rates), removed from copies.
_VOLATILE_LINE = re.compile(
    r"(\d+(\.\d+)?\s*(s|sec|seconds|min)\b.*(elapsed|remaining|it/s|s/it|img/s))"
    r"|(\b\d+(\.\d+)?(it/s|s/it)\b)"
    r"|(\[\d{2}:\d{2}(<\d{2}:\d{2})?)"
    r"|(\b\d+(\.\d+)?\s*(photos|images|img)/s\b)"  # throughput lines (predict's summary)
)


def _machine_paths() -> list[tuple[str, str]]:
    pairs = [(str(paths.PROJECT_ROOT), "<project>")]
    for var, name in (("ABANET_RESULTS", "<results>"), ("ABANET_CACHE", "<cache>"), ("ABANET_DATA", "<data>"),
                      ("ABANET_DATA_MIRROR", "<data mirror>")):
        if os.environ.get(var):
            pairs.append((str(Path(os.environ[var]).resolve()), name))
            pairs.append((os.environ[var], name))
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.append((home, "<home>"))
    return sorted(set(pairs), key=lambda kv: -len(kv[0]))


def _scrub_text(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def scrub_notebook(nb: dict, pairs: list[tuple[str, str]] | None = None) -> dict:
    """Remove what changes between two renderings of the same records (in place; returned).

    Drops notebook- and cell-level execution metadata (papermill's ``start_time``,
    ``end_time``, ``duration``, ``status``, ``exception``; ``execution`` timestamps;
    ``widgets`` state), execution counts, stderr streams of progress bars and timing lines,
    and replaces machine paths (project, results, cache, data, home) by placeholders.
    Parameters injected by papermill are kept (they say how the copy was made).
    """
    pairs = _machine_paths() if pairs is None else pairs
    meta = nb.setdefault("metadata", {})
    pm_meta = meta.get("papermill", {})
    meta["papermill"] = {"parameters": pm_meta.get("parameters", {})} if pm_meta else {}
    if not meta["papermill"]:
        meta.pop("papermill")
    for key in ("widgets", "execution"):
        meta.pop(key, None)
    meta.get("language_info", {}).pop("version", None)
    for cell in nb.get("cells", []):
        cmeta = cell.setdefault("metadata", {})
        if "injected-parameters" in cmeta.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill gives it a random id on every run
        for key in ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled"):
            cmeta.pop(key, None)
        if cell.get("cell_type") != "code":
            continue
        cell["execution_count"] = None
        kept = []
        for out in cell.get("outputs", []):
            if "execution_count" in out:
                out["execution_count"] = None
            if out.get("output_type") == "stream":
                if out.get("name") == "stderr":
                    continue  # warnings and progress bars: volatile, and not what a reader needs
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                lines = [ln for ln in text.splitlines(keepends=True) if not _VOLATILE_LINE.search(ln)]
                if not lines:
                    continue
                out["text"] = _scrub_text("".join(lines), pairs)
            data = out.get("data")
            if data:
                data.pop("application/vnd.jupyter.widget-view+json", None)
                if isinstance(data.get("image/png"), str):
                    data["image/png"] = compact_png(data["image/png"])
                for mime in list(data):
                    if mime.startswith("text/") or mime.endswith("json") and isinstance(data[mime], str):
                        value = data[mime]
                        value = "".join(value) if isinstance(value, list) else value
                        data[mime] = _scrub_text(value, pairs)
                if not data:
                    continue
            out.get("metadata", {}).pop("execution", None)
            if out.get("output_type") == "error":
                out["traceback"] = [_scrub_text(t, pairs) for t in out.get("traceback", [])]
            previous = kept[-1] if kept else None
            if (out.get("output_type") == "stream" and previous is not None
                    and previous.get("output_type") == "stream" and previous.get("name") == out.get("name")):
                # how a kernel splits one cell's prints into chunks depends on timing: merge them
                previous["text"] = "".join(previous["text"]) + "".join(out["text"])
                continue
            kept.append(out)
        cell["outputs"] = kept
    return nb


#: Inline figures of published copies: at most this wide, 256-colour palette PNGs (a reader on
#: GitHub sees them at about this size anyway; full-resolution PNGs live in results/figures).
PUBLISHED_IMAGE_WIDTH = 800


def compact_png(b64: str, max_width: int = PUBLISHED_IMAGE_WIDTH) -> str:
    """A smaller, deterministic re-encoding of a base64 PNG output (same input, same bytes)."""
    image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, max(1, round(image.height * max_width / image.width))), Image.LANCZOS)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii") + "\n"


def publish_notebook(executed: Path | str, target: Path | str, max_bytes: int = MAX_PUBLISHED_BYTES) -> Path:
    """Write a scrubbed copy of ``executed`` to ``target`` (JSON, indent 1, as the sources).

    Raises:
        ValueError: the scrubbed copy is larger than ``max_bytes``.
    """
    nb = json.loads(Path(executed).read_text(encoding="utf-8"))
    text = json.dumps(scrub_notebook(nb), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if len(text.encode("utf-8")) > max_bytes:
        raise ValueError(f"publish_notebook: {Path(executed).name} is {len(text.encode()) / 1e6:.2f} MB after "
                         f"scrubbing, over the {max_bytes / 1e6:.1f} MB limit for committed files")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def default_notebooks_dir() -> Path:
    return paths.PROJECT_ROOT / "notebooks"


def find_notebooks(notebooks_dir: Path | str | None = None, only: Iterable[str] | None = None,
                   start_from: str | None = None) -> list[Path]:
    """Numbered notebooks ``NN_*.ipynb`` in run order.

    Args:
        notebooks_dir: folder to search (default ``notebooks/``).
        only: keep these numbers (e.g. ``["03", "5"]``).
        start_from: skip notebooks numbered below this.

    Raises:
        FileNotFoundError: folder missing, or nothing matches the selection.
    """
    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir() if _NUMBERED.match(p.name))
    if only:
        wanted = {_number(x) for x in only}
        found = [p for p in found if _number(p.name[:2]) in wanted]
    if start_from is not None:
        found = [p for p in found if _number(p.name[:2]) >= _number(start_from)]
    if not found:
        raise FileNotFoundError(f"no notebook NN_*.ipynb in {folder} matches only={list(only or [])} "
                                f"from={start_from}")
    return found


def _number(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"notebook number must be digits like '03', got {text!r}") from None


def reproduce(
    scale: str,
    only: Iterable[str] | None = None,
    start_from: str | None = None,
    notebooks_dir: Path | str | None = None,
    out_dir: Path | str | None = None,
    kernel_name: str = KERNEL_NAME,
    cell_timeout: int | None = None,
    progress: bool = True,
    train_missing: bool = True,
    publish: bool | None = None,
    publish_dir: Path | str | None = None,
) -> list[Path]:
    """Execute the selected notebooks in order; stop at the first failure.

    Args:
        scale: ``smoke``, ``reduced`` or ``paper`` (injected as the ``scale`` parameter).
        only, start_from, notebooks_dir: selection (see :func:`find_notebooks`).
        out_dir: executed copies (default ``executed/<scale>/``).
        kernel_name: Jupyter kernel (``abanet``).
        cell_timeout: per-cell limit in seconds (None: no limit).
        progress: print one line per notebook.
        train_missing: injected into the notebooks; False renders tables from finished runs
            only (missing rows read "not run") instead of training them.
        publish: also write scrubbed copies for readers (:func:`publish_notebook`); default:
            True for the scales of :data:`PUBLISHED_SCALES`.
        publish_dir: where those go (default ``results/notebooks/``).

    Returns:
        The executed notebooks' paths.

    Raises:
        NotebookFailed: a notebook raised (message names notebook, cell, error).
    """
    notebooks = find_notebooks(notebooks_dir, only, start_from)
    out = Path(out_dir) if out_dir is not None else paths.executed_notebooks_dir() / scale
    out.mkdir(parents=True, exist_ok=True)
    executed = []
    if publish is None:
        publish = scale in PUBLISHED_SCALES
    published = Path(publish_dir) if publish_dir is not None else published_notebooks_dir(scale)
    previous = {k: os.environ.get(k) for k in ("ABANET_SCALE", "ABANET_WIDGETS")}
    os.environ["ABANET_SCALE"] = scale
    os.environ["ABANET_WIDGETS"] = "static"  # headless: the viewers draw their default state
    try:
        for i, nb in enumerate(notebooks, start=1):
            target = out / nb.name
            if progress:
                print(f"[{i}/{len(notebooks)}] {nb.name} (scale={scale}) ...", flush=True)
            t0 = time.perf_counter()
            parameters = {"scale": scale}
            if "train_missing" in parameter_names(nb):  # only notebooks that train
                parameters["train_missing"] = train_missing
            try:
                pm.execute_notebook(str(nb), str(target), kernel_name=kernel_name, parameters=parameters,
                                    cwd=str(nb.parent), progress_bar=False, execution_timeout=cell_timeout,
                                    kernel_manager_class=IPC_KERNEL_MANAGER)
            except PapermillExecutionError as err:
                source = (err.source or "").strip()
                excerpt = "\n".join("    " + line for line in source.splitlines()[:8])
                raise NotebookFailed(
                    f"notebook {nb.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                    f"{err.ename}: {err.evalue}\n  cell source:\n{excerpt}\n  executed copy with the "
                    f"traceback: {target}",
                    notebook=nb, executed=target, cell_index=err.cell_index, cell_source=source,
                ) from None
            except Exception as err:  # kernel died, bad JSON, missing kernel ...
                raise NotebookFailed(f"notebook {nb.name} could not be executed: {type(err).__name__}: {err}",
                                     notebook=nb, executed=target) from err
            executed.append(target)
            if publish:
                publish_notebook(target, published / nb.name)
            if progress:
                print(f"[{i}/{len(notebooks)}] {nb.name} done in {time.perf_counter() - t0:.0f}s -> {target}",
                      flush=True)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return executed
