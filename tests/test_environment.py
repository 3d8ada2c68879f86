"""pyproject.toml and environment.yml list the same packages; notebooks are stored clean."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name


def _pyproject_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r) for r in reqs}


def _environment_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or item == "pip" or item.startswith("python="):
                continue
            names.add(_name(item))
    return names


def test_environment_yml_matches_pyproject():
    pyproject, env = _pyproject_packages(), _environment_packages()
    assert pyproject - env == set(), f"in pyproject.toml but not environment.yml: {sorted(pyproject - env)}"
    assert env - pyproject == set(), f"in environment.yml but not pyproject.toml: {sorted(env - pyproject)}"


def test_torch_pins_admit_local_wheels():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"torch>=[\d.]+,<=2\.14\.1"', text)
    assert re.search(r'"torchvision>=[\d.]+,<=0\.29\.1"', text)


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), f"{path.name}: stored with outputs"
    assert all(c.get("execution_count") is None for c in code), f"{path.name}: stored with execution counts"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}"
    assert "ABANET_SCALE" in "".join(tagged[0]["source"]), f"{path.name}: scale must default from ABANET_SCALE"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "abanet", f"{path.name}: kernel must be 'abanet'"
    assert re.match(r"\d\d_[a-z0-9_]+\.ipynb$", path.name)


def test_readme_scale_table_matches_the_scale_presets():
    """The README's scale table states each preset's image size and epochs as configured."""
    from abanet_lib.core.config import SCALES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines()
            if line.startswith("| `") and line.count("|") >= 4}
    for name in ("reduced", "paper"):
        scale = SCALES[name]
        size = f"{scale.image_size}x{scale.image_size}"
        assert size in rows[name], f"README scale row {name!r} should say {size}"
    assert f"{SCALES['reduced'].epochs} epochs" in rows["reduced"]


def test_readme_states_the_size_of_the_reduced_list(monkeypatch):
    """The README's budget section names as many runs as the reduced experiment list has."""
    from abanet_lib.paper import experiments as E

    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): None)  # count rows, build nothing
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    n = len(E.all_experiments("reduced"))
    assert re.search(rf"list has {n} runs", readme.replace("\n", " ")), f"README should say 'list has {n} runs'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_papermill_reads_every_parameter_without_a_warning(path, caplog):
    """papermill parses the parameters cell to check `-p` names; a line it cannot parse (e.g. a
    comment holding "=") prints "Unable to parse line" on every run and hides that parameter."""
    import ast
    import logging

    from papermill.translators import PythonTranslator

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        parsed = [p.name for p in PythonTranslator.inspect({"source": source})]
    assert "Unable to parse" not in caplog.text, caplog.text
    assert sorted(parsed) == sorted(assigned), f"{path.name}: papermill misses {set(assigned) - set(parsed)}"
