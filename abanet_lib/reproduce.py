"""Run the numbered notebooks in order through papermill (``python -m abanet_lib reproduce``).

Each ``notebooks/NN_*.ipynb`` is executed with the kernel ``abanet`` (named explicitly, never
the notebook's stored default), parameter ``scale`` injected, working directory = the
notebook folder (as nbval), and ``ABANET_SCALE`` set for anything the notebook starts. The
executed copies go to ``executed/<scale>/`` (git-ignored), never over the sources. The first
failure stops the batch with :class:`NotebookFailed`, which names the notebook and the cell.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterable

from abanet_lib import paths

KERNEL_NAME = "abanet"
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
IPC_KERNEL_MANAGER = "abanet_lib.reproduce.IPCKernelManager"


def _ipc_kernel_manager():
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """The kernel manager papermill uses, on the ``ipc`` transport."""

        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def __getattr__(name: str):
    # built on first use: jupyter_client is only needed when notebooks are executed
    if name == "IPCKernelManager":
        cls = _ipc_kernel_manager()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def parameter_names(notebook: Path | str) -> list[str]:
    """Names assigned in the notebook's ``parameters`` cell (parsed with :mod:`ast`)."""
    import ast
    import json

    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell.get("source", [])))
            return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)]
    return []


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

    Returns:
        The executed notebooks' paths.

    Raises:
        NotebookFailed: a notebook raised (message names notebook, cell, error).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebooks = find_notebooks(notebooks_dir, only, start_from)
    out = Path(out_dir) if out_dir is not None else paths.executed_notebooks_dir() / scale
    out.mkdir(parents=True, exist_ok=True)
    executed = []
    previous = os.environ.get("ABANET_SCALE")
    os.environ["ABANET_SCALE"] = scale
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
            if progress:
                print(f"[{i}/{len(notebooks)}] {nb.name} done in {time.perf_counter() - t0:.0f}s -> {target}",
                      flush=True)
    finally:
        if previous is None:
            os.environ.pop("ABANET_SCALE", None)
        else:
            os.environ["ABANET_SCALE"] = previous
    return executed
