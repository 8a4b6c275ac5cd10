"""Running specopt in a child process under a 4 GiB memory limit, and checking that it ends cleanly.

Input that would make specopt grab memory without bound then fails the test
(the child gets a MemoryError) instead of straining the machine. The limit is
on the memory the child allocates (``RLIMIT_DATA``: its heap and anonymous
mappings), not on its address space: a CUDA build of torch maps over 4 GiB of
shared libraries (cuBLAS, cuDNN...) at import, which an address-space limit
of 4 GiB refuses before specopt runs, while what it allocates stays near
0.8 GiB (0.2 GiB for a CPU build).
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

from processes import ROOT, child_env

MEMORY_LIMIT = 4 << 30
_EXCEPTION_LINE = re.compile(r"^(\[rank\d+\]: )?[\w.]*(Error|Exception|Interrupt|Exit)\b.*$", re.MULTILINE)


def limit_memory() -> None:
    """Limit the memory this process allocates (``preexec_fn`` of a child)."""
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(*args: str, cwd: Path | str = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m specopt ARGS`` under the memory limit, output captured as text."""
    return subprocess.run([sys.executable, "-m", "specopt", *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory)


def assert_clean(out: subprocess.CompletedProcess, status: int, *expected: str) -> None:
    """The exit status is ``status``, no traceback or bare exception line, and stderr says each of ``expected``."""
    assert out.returncode == status, out.stderr[-3000:]
    for stream in (out.stdout, out.stderr):
        assert "Traceback" not in stream and not _EXCEPTION_LINE.search(stream), stream[-3000:]
    for text in expected:
        assert text in out.stderr, out.stderr[-3000:]
