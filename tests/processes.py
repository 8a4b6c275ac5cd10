"""Running specopt in a fresh Python process, as a user's shell does.

The checkout (and any extra folders a test names) come first on the child's
``PYTHONPATH``; whatever ``PYTHONPATH`` the test run itself had stays after
them, so the suite also runs where the dependencies come from that variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent


def child_env(first: Sequence[Path | str] = ()) -> dict[str, str]:
    """This process's environment with ``first`` and the checkout put at the front of ``PYTHONPATH``."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(p) for p in first] + [str(ROOT)] + inherited
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def run_specopt(*args: str, cwd: Path | str = ROOT, first: Sequence[Path | str] = (),
                timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m specopt ARGS`` in ``cwd``, with ``first`` ahead of the checkout on the path."""
    return run_python(["-m", "specopt", *args], cwd=cwd, first=first, timeout=timeout)


def run_code(code: str, *args: str, cwd: Path | str = ROOT, first: Sequence[Path | str] = (),
             timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c CODE ARGS`` in ``cwd``, with ``first`` ahead of the checkout on the path."""
    return run_python(["-c", code, *args], cwd=cwd, first=first, timeout=timeout)


def run_python(argv: Sequence[str], cwd: Path | str, first: Sequence[Path | str],
               timeout: float) -> subprocess.CompletedProcess:
    """This interpreter with ``argv``, its output captured as text."""
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=child_env(first), capture_output=True,
                          text=True, timeout=timeout)
