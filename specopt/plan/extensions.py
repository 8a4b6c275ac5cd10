"""Optimizers beyond the builtins: installed extensions and import paths named in specs.

Two ways lead to an optimizer that :data:`specopt.catalog.registry.OPTIMIZERS` lacks:

- **Extensions.** A package declares entry points in the group
  ``specopt.build.optimizers``. The entry point's name is the optimizer's spec name;
  its object is an :class:`~specopt.catalog.registry.OptimizerInfo` (which can be
  declared without importing torch, so ``specopt check`` stays torch-free) or an
  optimizer class, whose entry is derived from its constructor signature
  (:func:`info_from_class`; this imports the class's module). Entry points are
  scanned only when a spec names an optimizer that is not builtin, and each is
  loaded on first use; both are cached for the process (:func:`clear_cache`).
  A builtin always wins over an extension of the same name.
- **Import paths.** ``optimizer "package.module:Class" lr=1e-4`` names a class
  directly. Importing it runs code the spec names, so it is refused (E220)
  unless the caller allows imports; once allowed, the options are checked
  against the class's real constructor, like a builtin's.

The plan keeps an import path as plain data (its name holds the ``:``);
:func:`import_diagnostics` imports the class, with permission, when a spec is
parsed or compiled, and :func:`plan_optimizer_info` only reads what was imported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any, Sequence

from ..diagnostics import Diagnostic, SpecError, did_you_mean
from .options import written_name  # noqa: F401 (re-exported: the name as a spec writes it)
from ..catalog.registry import (DEFAULT_OPTIMIZER, KNOWN_BOUNDS, OPTIMIZERS, OptimizerInfo, OptionInfo,
                       check_kind, describe_kind, known_kind, shared_bounds)

ENTRY_POINT_GROUP = "specopt.optimizers"
ALLOW_IMPORT_HINT = ("allow it with --allow-import on the command line, or allow_import=True in Python: "
                     "specopt.load(path, allow_import=True), specopt.parse(text, allow_import=True) "
                     "or spec.compile(model, allow_import=True)")
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# Options whose meaning, and so whose range, is the same in every optimizer.
_UNIVERSAL_KEYS = frozenset({"lr", "weight_decay", "eps", "momentum", "betas"})
_IGNORED_TYPE_WORDS = frozenset({"typing", "union", "torch", "class", "builtins"})
_KEYWORDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)

_imported: dict[str, OptimizerInfo] = {}


class ExtensionProblem(Exception):
    """Why an extension or an import path cannot be used; ``code`` and ``hint`` go into its diagnostic."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E221"):
        super().__init__(message)
        self.hint = hint
        self.code = code


@dataclass(frozen=True)
class Extension:
    """An optimizer an installed package provides: its entry, or why it cannot be used."""

    name: str
    package: str
    reference: str
    info: OptimizerInfo | None = None
    problem: str | None = None
    hidden: bool = False


def clear_cache() -> None:
    """Forget scanned entry points, loaded extensions and imported classes (after ``sys.path`` changes)."""
    _entry_points.cache_clear()
    extension.cache_clear()
    _imported.clear()


# --- extensions through entry points ---------------------------------------------------------

@lru_cache(maxsize=1)
def _entry_points() -> dict[str, tuple[metadata.EntryPoint, ...]]:
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, []).append(ep)
    return {name: tuple(sorted(eps, key=_package)) for name, eps in found.items()}


def _package(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unnamed package"


def extension_names() -> list[str]:
    """The names of every installed extension optimizer; scans entry points but imports nothing."""
    return sorted(_entry_points())


@lru_cache(maxsize=None)
def extension(name: str) -> Extension | None:
    """The installed extension called ``name`` (its module imported on first use), or ``None``."""
    eps = _entry_points().get(name)
    if not eps:
        return None
    ep = eps[0]
    base = {"name": name, "package": _package(ep), "reference": ep.value}
    if len(eps) > 1:
        return Extension(**base, problem="several packages provide it: " + ", ".join(map(_package, eps)))
    try:
        return Extension(**base, info=_info_from_entry(ep, name))
    except ExtensionProblem as exc:
        return Extension(**base, problem=str(exc))


def installed_extensions() -> list[Extension]:
    """Every installed extension, loaded; those that a builtin hides are marked and not loaded."""
    out = []
    for name in extension_names():
        if name in OPTIMIZERS:
            ep = _entry_points()[name][0]
            out.append(Extension(name, _package(ep), ep.value, hidden=True))
        else:
            out.append(extension(name))
    return out


def _info_from_entry(ep: metadata.EntryPoint, name: str) -> OptimizerInfo:
    try:
        obj = ep.load()
    except Exception as exc:  # the package's own code failed: report it, never a traceback
        raise ExtensionProblem(f"loading {ep.value} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(obj, OptimizerInfo):
        _check_declared(obj, name)
        return obj
    if isinstance(obj, type):
        return info_from_class(obj, name, f"{obj.__module__}.{obj.__qualname__}")
    raise ExtensionProblem(f"{ep.value} is neither an OptimizerInfo nor an optimizer class")


def _check_declared(info: OptimizerInfo, name: str) -> None:
    problems = [] if info.name == name else [f"its OptimizerInfo is called '{info.name}', not '{name}'"]
    if "." not in info.target:
        problems.append(f"its target '{info.target}' is not a dotted path like package.module.Class")
    for o in info.options:
        if not isinstance(o, OptionInfo):
            problems.append(f"its options hold {o!r}, which is not an OptionInfo")
        elif not known_kind(o.kind):
            problems.append(f"option '{o.name}' has the unknown kind '{o.kind}'")
        elif not check_kind(o.kind, o.default):
            problems.append(f"the default of option '{o.name}' is not {describe_kind(o.kind)}")
        elif o.bounds not in KNOWN_BOUNDS:
            problems.append(f"option '{o.name}' has the unknown bounds '{o.bounds}'")
    if problems:
        raise ExtensionProblem("; ".join(problems))


# --- deriving an entry from a class ----------------------------------------------------------

def info_from_class(cls: type, name: str, target: str) -> OptimizerInfo:
    """Derive an :class:`OptimizerInfo` from an optimizer class's constructor signature.

    The first argument after ``self`` takes the parameters; every other keyword
    argument becomes an option, whose kind comes from its default and, where the
    default says too little (``None``, ints), from its annotation. An argument
    without a default is an error: a spec could not leave it out.
    """
    params = _constructor_options(cls, target)
    missing = [p.name for p in params if p.default is inspect.Parameter.empty]
    if missing:
        raise ExtensionProblem(f"{target} takes {', '.join(repr(m) for m in missing)} without a default",
                               "specopt sets only constructor arguments that have defaults; give them one")
    options = tuple(OptionInfo(p.name, option_kind(p.default, p.annotation), p.default,
                               shared_bounds(p.name) if p.name in _UNIVERSAL_KEYS else "")
                    for p in params)
    doc = (cls.__doc__ or "").strip()
    return OptimizerInfo(name, target, doc.splitlines()[0] if doc else target, options)


def _signature(cls: type, target: str) -> inspect.Signature:
    try:
        return inspect.signature(cls.__init__, eval_str=True)
    except ValueError as exc:
        raise ExtensionProblem(f"cannot read the constructor of {target}: {exc}") from None
    except Exception:  # evaluating an annotation failed (e.g. a name the module lacks): read it as text
        return inspect.signature(cls.__init__)


def _constructor_options(cls: type, target: str) -> list[inspect.Parameter]:
    params = list(_signature(cls, target).parameters.values())[1:]
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    if not positional or positional[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, *_KEYWORDS):
        raise ExtensionProblem(f"{target}'s constructor takes no argument for the parameters",
                               "an optimizer class is called as Class(param_groups, **options)")
    return [p for p in params[params.index(positional[0]) + 1:] if p.kind in _KEYWORDS]


def option_kind(default: Any, annotation: Any = inspect.Parameter.empty) -> str:
    """The value kind (see :class:`~specopt.catalog.registry.OptionInfo`) of an option with this default."""
    if isinstance(default, tuple):
        return _tuple_kind(default)
    names = _type_names(annotation)
    optional = "none" in names or default is None
    names.discard("none")
    if isinstance(default, bool):
        base = "bool"
    elif isinstance(default, int):
        base = "int" if names == {"int"} else "number"
    elif isinstance(default, float):
        base = "number"
    elif isinstance(default, str):
        base = "str"
    elif default is None:
        base = _kind_from_names(names)
    else:
        return "any"
    return base + "?" if optional and base != "any" else base


def _tuple_kind(default: tuple) -> str:
    parts = []
    for value in default:
        if value is None:
            parts.append("number?")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append("number")
        else:
            return "any"
    return "(" + ",".join(parts) + ")" if parts else "any"


def _type_names(annotation: Any) -> set[str]:
    if annotation is inspect.Parameter.empty:
        return set()
    text = annotation.__name__ if type(annotation) is type else str(annotation)
    words = {w.lower() for w in re.findall(r"[A-Za-z_]\w*", text)} - _IGNORED_TYPE_WORDS
    return {"none" if w in ("optional", "nonetype") else w for w in words}


def _kind_from_names(names: set[str]) -> str:
    if names in ({"bool"}, {"int"}, {"str"}):
        return next(iter(names))
    if names and names <= {"float", "int", "tensor"}:
        return "number"
    return "any"


# --- import paths named in specs -------------------------------------------------------------

def is_import_path(name: str) -> bool:
    """Whether an optimizer name is an import path (``package.module:Class``), not a registry name."""
    return ":" in name




def import_optimizer(path: str) -> OptimizerInfo:
    """Import the class an import path names and derive its entry; cached per path.

    This runs the module's code: call it only when the user allowed imports.
    """
    if path in _imported:
        return _imported[path]
    module_name, _, attr = path.partition(":")
    module = _import_module(module_name)
    cls = getattr(module, attr, None)
    if cls is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ExtensionProblem(f"module {module_name} has no '{attr}'", did_you_mean(attr, names))
    if not isinstance(cls, type):
        raise ExtensionProblem(f"{path} is not a class", "name an optimizer class")
    info = info_from_class(cls, path, f"{module_name}.{attr}")
    _imported[path] = info
    return info


def _import_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ExtensionProblem(f"cannot import {module_name}: {exc}", "install the package that "
                               "provides it, or add its folder to PYTHONPATH") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the module's own code failed, even by sys.exit: report it, never a traceback
        raise ExtensionProblem(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None


def import_diagnostics(statements: Sequence[Any], allow_import: bool, defer: bool = False) -> list[Diagnostic]:
    """Problems of an optimizer named by import path, given a spec's statements.

    Without ``allow_import`` the path is refused (E220) and nothing is
    imported; with it, the class is imported and every ``key=value`` of the
    optimizer and group statements is checked against its constructor. With
    ``defer`` only the form of the path is checked: nothing is refused or
    imported, for tools that read a spec without compiling it (``fmt``).
    Each statement checks itself against the class (``check_options``); in a
    spec with several optimizers, only that optimizer's own statement does
    (which groups reach it is known only against a model).
    """
    optimizers = [s for s in statements if s.kind == "optimizer"]
    diags = []
    for stmt in optimizers:
        if not is_import_path(stmt.name):
            continue
        try:
            _check_form(stmt.name)
            if defer:
                continue
            info = _permitted_import(stmt.name, allow_import)
        except ExtensionProblem as exc:
            diags.append(Diagnostic(exc.code, str(exc), stmt.name_span or stmt.span, exc.hint))
            continue
        checked = statements if len(optimizers) == 1 else [stmt]
        diags += [d for s in checked for d in s.check_options(info)]
    return diags


def _check_form(path: str) -> None:
    if not _IMPORT_PATH.fullmatch(path):
        raise ExtensionProblem(f"'{path}' is not an import path of the form package.module:Class",
                               'e.g. optimizer "mypkg.optim:Lion" lr=1e-4')


def _permitted_import(path: str, allow_import: bool) -> OptimizerInfo:
    if not allow_import:
        raise _refusal(path)
    return import_optimizer(path)


def _refusal(path: str) -> ExtensionProblem:
    return ExtensionProblem(f"optimizer '{path}' would import and run code, which a spec may do only "
                            "when allowed", ALLOW_IMPORT_HINT, code="E220")


def check_imports(plan: Any, allow_import: bool, source: Any = None) -> None:
    """Raise :class:`SpecError` when a plan's import-path optimizer is refused or does not fit its class."""
    errors = [d for d in import_diagnostics(plan.statements, allow_import) if d.severity == "error"]
    if errors:
        raise SpecError(errors, source)


# --- lookups for the plan --------------------------------------------------------------------

def find_optimizer(stmt: Any) -> tuple[OptimizerInfo | None, list[Diagnostic]]:
    """The entry an ``optimizer`` statement names (``None``: the default), for plan validation.

    Builtins first, then installed extensions: entry points are scanned only
    for a name that is not builtin. An import path gives ``(None, [])``: it is
    checked where the class is imported (:func:`import_diagnostics`).
    """
    if stmt is None:
        return OPTIMIZERS[DEFAULT_OPTIMIZER], []
    if stmt.name in OPTIMIZERS:
        return OPTIMIZERS[stmt.name], []
    if is_import_path(stmt.name):
        return None, []
    span = stmt.name_span or stmt.span
    ext = extension(stmt.name)
    if ext is None:
        return None, [_unknown_optimizer(stmt.name, span)]
    if ext.problem is not None:
        return None, [Diagnostic("E222", f"optimizer '{stmt.name}' from {ext.package} cannot be used: "
                                 f"{ext.problem}", span, "fix or uninstall the package; 'specopt list' "
                                 "shows every installed extension")]
    return ext.info, []


def _unknown_optimizer(name: str, span: Any) -> Diagnostic:
    names = [*OPTIMIZERS, *(n for n in extension_names() if n not in OPTIMIZERS)]
    hint = did_you_mean(name, names) or "known optimizers: " + ", ".join(names)
    if "." in name:
        hint += ('; a class from your own code is named by a quoted import path: '
                 'optimizer "package.module:Class"')
    return Diagnostic("E201", f"unknown optimizer '{name}'", span, hint)


def plan_optimizer_info(stmt: Any) -> OptimizerInfo:
    """The entry of a valid plan's optimizer. Never imports code a spec names: an import path
    that was not imported with permission raises the E220 refusal."""
    if stmt is not None and is_import_path(stmt.name):
        if stmt.name in _imported:
            return _imported[stmt.name]
        refusal = _refusal(stmt.name)
        raise SpecError([Diagnostic(refusal.code, str(refusal), stmt.name_span or stmt.span, refusal.hint)])
    info, diags = find_optimizer(stmt)
    if diags:
        raise SpecError(diags)
    return info
