"""Optimizer classes named by a dotted path, and the defaults their constructors declare.

Used where an optimizer class must be read without building anything: by the
build stage, and by a checkpoint comparing the spec it was saved under with
the current one (:mod:`specopt.report.spec_changes`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any


def load_target(path: str) -> Any:
    """Import ``package.module.Name``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of an optimizer class's constructor, as the installed torch defines them."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params
            if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty}
