"""What the installed torch offers, read from its source files without importing it.

``specopt check``, ``list`` and ``fmt`` never import torch (it takes seconds),
yet the builtin optimizers and their options must be those of the torch that
is installed, not of the one specopt was written against. This module finds
torch's package folder (``importlib.util.find_spec`` does not run it), reads
``torch/version.py`` for the version and, for a class such as
``torch.optim.SGD``, follows ``torch/optim/__init__.py`` to the module that
defines it and reads the keyword defaults of its ``__init__`` from the syntax
tree. Module-level constants (Muon's ``DEFAULT_A``) are resolved; anything
that is not a literal makes the reading fail, and the caller then imports the
class instead (:func:`constructor_defaults` returns ``None``).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=None)
def torch_folder() -> Path | None:
    """The installed torch's package folder, or ``None`` when there is none (or no source on disk)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or ()) if spec else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=None)
def torch_version() -> str | None:
    """The installed torch's version string (``2.13.0+cpu``), or ``None`` when it cannot be read."""
    import sys

    tree = _tree(torch_folder() / "version.py") if torch_folder() else None
    value = _constants(tree).get("__version__") if tree else None
    if isinstance(value, str):
        return value
    value = getattr(sys.modules.get("torch"), "__version__", None)  # imported from where no source lies
    return value if isinstance(value, str) else None


def version_tuple(version: str | None) -> tuple[int, ...]:
    """``2.13.0+cpu`` as ``(2, 13, 0)``; the leading numbers only (``()`` for ``None``)."""
    match = re.match(r"\d+(?:\.\d+)*", version or "")
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


@lru_cache(maxsize=None)
def defines(target: str) -> bool:
    """Whether the installed torch's package ``torch.x.y`` (its ``__init__.py``) names ``Class``."""
    module, _, name = target.rpartition(".")
    return _defining_module(module, name) is not None


@lru_cache(maxsize=None)
def constructor_defaults(target: str) -> dict[str, Any] | None:
    """The keyword defaults of ``torch.x.Class.__init__`` (``self`` and the parameters aside), from source.

    ``None`` when the source does not say plainly: the class is missing, its
    constructor is inherited, or a default is not a literal or a module constant.
    """
    package, _, name = target.rpartition(".")
    module = _defining_module(package, name)
    tree = _tree(_module_file(module)) if module else None
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None) if tree else None
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None) if cls else None
    if init is None:
        return None
    try:
        return _keyword_defaults(init.args, _constants(tree))
    except ValueError:
        return None


def _keyword_defaults(args: ast.arguments, constants: dict[str, Any]) -> dict[str, Any]:
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return {a.arg: _literal(d, constants) for a, d in pairs if a.arg not in ("self", "params")}


def _literal(node: ast.expr, constants: dict[str, Any]) -> Any:
    """A default's value: a literal, possibly built from the module's constants (ValueError otherwise)."""
    class Substitute(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.AST:
            if name.id not in constants:
                raise ValueError(f"default refers to {name.id}")
            return ast.Constant(constants[name.id])

    return ast.literal_eval(Substitute().visit(ast.parse(ast.unparse(node), mode="eval").body))


def _constants(tree: ast.Module) -> dict[str, Any]:
    """The module-level names assigned a literal (``EPS = 1e-7``, ``__version__: str = "2.9.0"``)."""
    found = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _defining_module(package: str, name: str) -> str | None:
    """The module ``package/__init__.py`` imports ``name`` from (``torch.optim.sgd`` for SGD), or ``None``."""
    tree = _tree(_module_file(package, package=True))
    for node in tree.body if tree else ():
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name) for a in node.names):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            return ".".join(base + ([node.module] if node.module else []))
    return None


def _module_file(module: str, package: bool = False) -> Path | None:
    folder = torch_folder()
    parts = module.split(".")
    if folder is None or parts[0] != "torch":
        return None
    path = folder.joinpath(*parts[1:])
    return path / "__init__.py" if package else path.with_suffix(".py")


@lru_cache(maxsize=64)
def _tree(path: Path | None) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8")) if path else None
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
