"""Peer libraries the tests compare against or run under (timm, Lightning, transformers, Accelerate).

They are optional test dependencies: a test imports its library through
:func:`peer`, which skips the test with the reason when the library is absent.

timm needs torchvision, and Lightning and transformers import it when it is
installed. The torchvision builds on PyPI are linked against CUDA builds of
torch: next to a CPU build of torch (as on the machines CI runs on) their
compiled operators cannot load, and importing torchvision then fails while it
registers Python helpers for two of those operators (``nms`` and ``qnms``).
:func:`repair_torchvision`, called once by ``conftest.py``, declares those
operator names first when (and only when) that happens, so the real libraries
import; the operators themselves stay unavailable, and no test calls them.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys

import pytest
import torch

_MISSING_OPERATOR = re.compile(r"operator torchvision::(\w+) does not exist")
declared: list[str] = []
_library: list = []


def repair_torchvision() -> None:
    """Make an installed torchvision whose compiled operators cannot load importable (see above)."""
    if importlib.util.find_spec("torchvision") is None:
        return
    for _ in range(16):
        try:
            importlib.import_module("torchvision")
            return
        except RuntimeError as exc:
            found = _MISSING_OPERATOR.search(str(exc))
            if found is None or found.group(1) in declared:
                return  # another problem: the tests that need torchvision skip with it
            if not _library:
                _library.append(torch.library.Library("torchvision", "FRAGMENT"))
            _library[0].define(f"{found.group(1)}(Tensor x) -> Tensor")
            declared.append(found.group(1))
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]


def peer(name: str):
    """The peer library ``name`` (a module path), or a skip naming why it cannot be had."""
    top = name.split(".")[0]
    if importlib.util.find_spec(top) is None:
        pytest.skip(f"{top} is an optional test dependency (pip install 'specopt[test]'); it is not installed",
                    allow_module_level=True)
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a peer library that cannot be imported here is a skip
        pytest.skip(f"{top} is installed but cannot be imported: {type(exc).__name__}: {exc}",
                    allow_module_level=True)
