"""The code base keeps its shape: no import cycles between modules, docstrings, modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "specopt"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_LINES = 560  # about 500; a module past this is split along its seams


def _runtime_imports(tree: ast.Module) -> set[str]:
    """The package's modules this one imports when it runs (``if TYPE_CHECKING:`` blocks aside)."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return found


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def test_no_import_cycles():
    graph = {p.stem: _runtime_imports(ast.parse(p.read_text())) for p in MODULES}
    cycles = []

    def visit(start, node, path):
        for dep in sorted(graph.get(node, ())):
            if dep == start:
                cycles.append(" -> ".join(path + [dep]))
            elif dep not in path and dep in graph and dep > start:
                visit(start, dep, path + [dep])

    for module in sorted(graph):
        visit(module, module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_module_and_public_function_has_a_docstring(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    missing = [node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
               and not ast.get_docstring(node)]
    assert not missing, f"{path.name}: no docstring on {missing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_modules_stay_readable(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
