"""The code base keeps its shape: stage packages in pipeline order, no import circles, docstrings, readable modules.

Imports count wherever they stand, inside functions and under ``TYPE_CHECKING`` too: a circle that only closes
at run time is still a circle a reader has to hold in their head.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "specopt"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 500
STAGES = ["catalog", "plan", "language", "resolve", "report", "runtime", "build", "integrations", "cli"]
TOP_LEVEL = {"__init__", "__main__", "diagnostics", "spec", "lightning", "hf", "accelerate", "dcp"}


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {_name(p): p for p in MODULES}


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, wherever the import statement stands."""
    here, is_package = _name(path), path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, here, is_package)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in NAMES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in NAMES:
                target = target.rpartition(".")[0]
            if target and target != here:
                found.add(target)
    return found


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


GRAPH = {name: _imports(path) for name, path in NAMES.items()}


def _circles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return groups


def test_no_import_circles():
    assert not _circles(), "import circles:\n" + "\n".join(" ".join(g) for g in _circles())


def _stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else None


def test_stages_import_only_earlier_stages():
    backwards = sorted(f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps
                       if _stage(a) in STAGES and _stage(b) in STAGES
                       and STAGES.index(_stage(b)) > STAGES.index(_stage(a)))
    assert not backwards, "imports against the pipeline's order:\n" + "\n".join(backwards)


def test_top_level_is_small_and_stages_are_packages():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, f"modules at specopt/'s top level beyond the API and shims: {sorted(top - TOP_LEVEL)}"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(STAGES), sorted(packages ^ set(STAGES))


def _one_letter_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def test_no_two_modules_a_letter_apart():
    stems = sorted({p.stem for p in MODULES if not p.stem.startswith("__")})
    close = [(a, b) for i, a in enumerate(stems) for b in stems[i + 1:] if _one_letter_apart(a, b)]
    assert not close, close


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_every_module_and_public_function_has_a_docstring(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{_name(path)} has no module docstring"
    missing = [node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
               and not ast.get_docstring(node)]
    assert not missing, f"{_name(path)}: no docstring on {missing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_modules_stay_readable(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("name", ["lightning", "hf", "accelerate", "dcp"])
def test_documented_import_paths_are_the_modules_themselves(name):
    import importlib

    shim = importlib.import_module(f"specopt.{name}")
    assert shim.__name__.startswith(("specopt.integrations.", "specopt.runtime.")), shim.__name__


def test_the_runtime_never_reads_spec_text_or_the_command_line():
    """What runs while training works from the plan as data; reading text and the CLI are earlier and later."""
    reaching = sorted(f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps
                      if _stage(a) == "runtime" and (_stage(b) in ("language", "cli") or b == "specopt.spec"))
    assert not reaching, reaching
