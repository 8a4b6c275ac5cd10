"""The embedding API: parse or load a spec, then compile it against a model.

Parsing needs no torch; ``Spec.compile`` imports it on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, Source, Span, SpecError
from .parse import parse_text
from .plan import Plan

if TYPE_CHECKING:
    from .compiled import Compiled


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec: its plan and the source it came from."""

    plan: Plan
    source: Source

    def compile(self, model) -> "Compiled":
        """Resolve against ``model`` and build its optimizer, scheduler and clipper."""
        from .build import compile_plan

        return compile_plan(self.plan, model, self.source)


def parse(text: str, name: str = "<string>") -> Spec:
    """Parse spec text; raise :class:`SpecError` listing every problem in it."""
    plan, source = parse_text(text, name)
    return Spec(plan, source)


def load(path: str | Path) -> Spec:
    """Read and parse a spec file (UTF-8)."""
    return parse(read_spec_text(path), str(path))


def read_spec_text(path: str | Path) -> str:
    """Read a spec file as UTF-8; undecodable bytes are a positioned error, not a traceback."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        at = len(data[:exc.start].decode("utf-8", errors="replace"))
        raise SpecError([Diagnostic("E104", f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                                    Span(start=at, end=at + 1), "save the spec as UTF-8 text")],
                        Source(text, str(path))) from None


def compile(text: str, model) -> "Compiled":
    """Parse, plan, resolve and build in one call."""
    return parse(text).compile(model)
