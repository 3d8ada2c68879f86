"""Shared pieces of the notebook generator scripts (``scripts/make_*notebook*.py``).

Every project notebook is nbformat v4, stored without outputs, with the ``abanet`` kernel,
exactly one code cell tagged ``parameters`` (papermill) and stable cell ids, so that
re-running a generator gives no diff.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

KERNELSPEC = {"name": "abanet", "display_name": "Python (abanet)", "language": "python"}
LANGUAGE_INFO = {"name": "python"}


def abanet_notebook(cells: list | None = None) -> nbformat.NotebookNode:
    """A notebook with the project's kernelspec and language_info and the given cells."""
    return new_notebook(cells=list(cells or []), metadata={"kernelspec": dict(KERNELSPEC),
                                                           "language_info": dict(LANGUAGE_INFO)})


def parameters_cell(source: str) -> nbformat.NotebookNode:
    """A code cell tagged ``parameters`` (plain values only; papermill overrides them)."""
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> Path:
    """Give the cells stable ids (``<first 2 chars of the file stem>-cell-NN``), validate, write.

    Returns:
        ``path``.
    """
    path = Path(path)
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives no diff
        cell["id"] = f"{path.stem[:2]}-cell-{i:02d}"
    nbformat.validate(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
