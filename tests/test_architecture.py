"""The package's folders are its layers: imports only go down, never in a circle, and at module top.

Layers, lowest first (a module may import its own layer and the ones below it):
``core`` < ``data`` < ``models`` < ``engine`` < ``app`` < ``paper`` < ``notebook``, ``ops``;
``cli.py`` (and ``__main__``) may import anything. A project import inside a function needs a
``# local import: <reason>`` comment on its line (a heavy optional dependency, or a command
line that must start without torch).

:data:`CHECKED` lists the modules held to these rules (folders or single files); extend it as
modules are brought in line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "abanet_lib"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS = {"core": 0, "data": 1, "models": 2, "engine": 3, "app": 4, "paper": 5, "notebook": 6, "ops": 6}
TOP = 7  # cli.py, __main__.py, the package __init__

#: Folders and files (relative to abanet_lib/) whose imports are checked.
CHECKED = ("core", "data", "models", "engine", "app", "paper", "notebook", "ops", "cli.py", "__main__.py",
           "__init__.py")

LOCAL_IMPORT_REASON = "# local import:"

#: Function-level imports another change is rewriting right now: (file, imported module).
#: engine/evaluate.py's ``preprocess`` is being replaced by the one preprocessing function.
PENDING: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package face (__version__, docstring) imports nothing: any layer may read it
        return 0
    return LAYERS.get(parts[1], TOP)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def checked_modules() -> dict[str, Path]:
    modules = all_modules()
    wanted = {}
    for entry in CHECKED:
        target = ROOT / entry
        for name, path in modules.items():
            if path == target or target in path.parents:
                wanted[name] = path
    return wanted


def project_imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every project import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        found.append((alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in child.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{source}.{alias.name}"
                    found.append((sub if sub in modules else source, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def violations(modules: dict[str, Path]) -> list[str]:
    """Upward imports, circles and unexplained function-level imports among ``modules``."""
    everything = all_modules()
    problems, graph = [], {}
    for name, path in modules.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        graph[name] = set()
        for target, lineno, local in project_imports(path, everything):
            where = f"{path.relative_to(ROOT.parent)}:{lineno}"
            if layer(target) > layer(name):
                problems.append(f"{where}: upward import of {target} (layer {layer(target)} > {layer(name)})")
            pending = (str(path.relative_to(ROOT.parent)), target) in PENDING
            if local and LOCAL_IMPORT_REASON not in lines[lineno - 1] and not pending:
                problems.append(f"{where}: function-level import of {target} without a "
                                f"'{LOCAL_IMPORT_REASON} <reason>' comment")
            if target != name and target in modules:
                graph[name].add(target)
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One representative circle per strongly connected component with more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_checked_modules_exist():
    modules = checked_modules()
    for entry in CHECKED:
        assert (ROOT / entry).exists(), f"CHECKED names {entry}, which does not exist"
    assert len(modules) >= len(CHECKED)


@pytest.mark.parametrize("entry", CHECKED)
def test_imports_go_down_without_circles_and_at_module_top(entry):
    target = ROOT / entry
    modules = {n: p for n, p in checked_modules().items() if p == target or target in p.parents}
    problems = violations(modules)
    assert not problems, "\n".join(problems)


def test_no_circle_across_the_checked_modules():
    assert not [p for p in violations(checked_modules()) if p.startswith("import circle")]


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    """The checker itself: an upward import, a bare local import and a circle are all reported."""
    fake = tmp_path / PACKAGE
    (fake / "core").mkdir(parents=True)
    (fake / "engine").mkdir()
    for folder in (fake, fake / "core", fake / "engine"):
        (folder / "__init__.py").write_text("")
    (fake / "core" / "a.py").write_text("from abanet_lib.engine import b\n")
    (fake / "core" / "c.py").write_text("def f():\n    from abanet_lib.core import a\n")
    (fake / "engine" / "b.py").write_text("from abanet_lib.core import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    problems = violations(all_modules())
    assert any("upward import of abanet_lib.engine.b" in p for p in problems)
    assert any("function-level import of abanet_lib.core.a" in p for p in problems)
    assert any(p.startswith("import circle") for p in problems)
