"""Model references on the command line: ``pkg.mod:Net``, ``path/to/file.py:Net``, ``mod:make(3, width=64)``.

Loading a reference imports the user's module, which runs its code, and calls
the class or factory it names. Whatever that code raises (``sys.exit`` included,
``KeyboardInterrupt`` aside) becomes a :class:`ModelRefError`, and so does a
factory that returns something other than a ``torch.nn.Module``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import keyword
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import did_you_mean


class ModelRefError(Exception):
    """A model reference that cannot be loaded; the message says why."""


def load_model(ref: str) -> Any:
    """Import and build the model a reference names; classes and factories are called."""
    target, call = _split(ref)
    module_part, _, attr = target.rpartition(":")
    if not module_part or not attr:
        raise ModelRefError(f"'{ref}' is not MODULE:NAME or FILE.py:NAME (e.g. mypkg.models:Net)")
    obj = _attribute(_import(module_part), attr, ref)
    if call is None and _is_module_instance(obj):
        return obj
    if not callable(obj):
        raise ModelRefError(f"{ref} is neither a model, a model class nor a factory")
    args, kwargs = call if call is not None else ((), {})
    model = _run(lambda: obj(*args, **kwargs), f"building the model {ref}")
    if not _is_module_instance(model):
        raise ModelRefError(f"{ref} returned {kind_of(model)}, not a torch.nn.Module")
    return model


def _split(ref: str) -> tuple[str, tuple[tuple, dict] | None]:
    if not ref.endswith(")") or "(" not in ref:
        return ref, None
    head = ref[:ref.index("(")]
    try:
        node = ast.parse("f" + ref[ref.index("("):], mode="eval").body
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError) as exc:
        raise ModelRefError(f"the arguments in '{ref}' must be Python literals ({exc})") from None
    return head, (args, kwargs)


def _import(module_part: str):
    if module_part.endswith(".py"):
        return _import_file(Path(module_part), module_part)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")
    return _run(lambda: importlib.import_module(module_part), f"importing {module_part}", module_part)


def _import_file(path: Path, what: str):
    """Import a file as ``import <stem>`` from its folder would, so qualified class names match.

    When that name already belongs to another module, the file gets a name of
    its own (``specopt_user_<stem>``, numbered if need be) rather than replacing
    it; the same file imported before is reused, as ``import`` would.
    """
    if not path.is_file():
        raise ModelRefError(f"no such file: {what}")
    name = file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        _run(lambda: spec.loader.exec_module(module), f"importing {what}", what)
    except ModelRefError:
        del sys.modules[name]
        raise
    return module


def file_module_name(path: Path) -> str:
    """The module name a model file is imported under: its stem, unless another module has it."""
    stem = path.stem
    importable = stem.isidentifier() and not keyword.iskeyword(stem)
    candidates = itertools.chain([stem] if importable else [], [f"specopt_user_{stem}"],
                                 (f"specopt_user_{stem}_{i}" for i in itertools.count(2)))
    return next(n for n in candidates if n not in sys.modules or _is_file(sys.modules[n], path))


def _is_file(module, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path.resolve()


def _run(action, doing: str, module: str | None = None):
    """Run user code; anything it raises but KeyboardInterrupt becomes a :class:`ModelRefError`.

    ``doing`` says what ran (``importing models``); a module that is not found
    is reported as such when ``module`` names the one being imported.
    """
    try:
        return action()
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as exc:
        if module is not None:
            raise ModelRefError(f"cannot import {module}: {exc}") from None
        raise ModelRefError(f"{doing} failed: {_describe(exc)}") from None
    except SystemExit as exc:
        raise ModelRefError(f"{doing} called sys.exit({exc.code!r})") from None
    except BaseException as exc:
        raise ModelRefError(f"{doing} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _attribute(module, attr: str, ref: str) -> Any:
    obj = module
    for part in attr.split("."):
        missing = object()
        found = _run(lambda: getattr(obj, part, missing), f"reading {part} of {ref}")
        if found is missing:
            names = [n for n in dir(module) if not n.startswith("_")]
            hint = did_you_mean(part, names)
            raise ModelRefError(f"{ref}: no '{part}' in {module.__name__}" + (f"; {hint}" if hint else ""))
        obj = found
    return obj


def _is_module_instance(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def kind_of(value: Any) -> str:
    """What ``value`` is, for a message: ``None``, ``the class X``, or ``a X`` / ``an X`` after its type."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    name = type(value).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name
