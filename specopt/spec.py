"""The embedding API: parse or load a spec, then compile it against a model.

Parsing needs no torch; ``Spec.compile`` imports it on first use.
"""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, Source, Span, SpecError
from .extensions import check_imports
from .parse import parse_text
from .plan import Plan

if TYPE_CHECKING:
    from .compiled import Compiled
    from .resolve import Resolution

_CHUNK = 1 << 16
_SHOWN = 120


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec: its plan, the source it came from, and whether it may import code.

    ``allow_import`` records the caller's permission to import an optimizer
    class named by import path (``optimizer "package.module:Class"``).
    """

    plan: Plan
    source: Source
    allow_import: bool = False

    def compile(self, model, allow_import: bool = False, *, epochs: int | None = None,
                steps: int | None = None, steps_per_epoch: int | None = None, scaler=None) -> "Compiled":
        """Resolve against ``model`` and build its optimizer, scheduler, clipper and step driver.

        ``allow_import=True`` allows an import-path optimizer here even if the
        spec was parsed without permission. The run's length (``epochs`` or
        ``steps``) and ``steps_per_epoch`` are needed by schedules with phases
        given as a share of the run, or in epochs when others are in steps, and
        by ``at`` moments and warmups written the same way; given here, they
        win over the spec's ``run`` and ``steps_per_epoch``. ``scaler``, a
        ``torch.amp.GradScaler``, is what ``compiled.train_step`` scales losses with.
        """
        from .build import compile_plan
        from .timing import plan_timing

        check_imports(self.plan, self.allow_import or allow_import, self.source)
        timing = plan_timing(self.plan, epochs, steps, steps_per_epoch)
        return compile_plan(self.plan, model, self.source, timing, scaler)

    def resolve(self, model, allow_import: bool = False) -> "Resolution":
        """The per-parameter assignment and param groups, without building anything or changing the model.

        Works on models built on the meta device, so a spec can be checked
        against a very large model without allocating its weights.
        """
        from .build import resolve_model

        check_imports(self.plan, self.allow_import or allow_import, self.source)
        return resolve_model(self.plan, model, self.source)


def parse(text: str, name: str = "<string>", allow_import: bool = False, defer_imports: bool = False) -> Spec:
    """Parse spec text; raise :class:`SpecError` listing every problem in it.

    An optimizer named by import path is refused (E220) unless ``allow_import``:
    importing it runs the module's code. ``defer_imports`` accepts such a path
    without importing it or checking its options, for tools that only read the
    text (``specopt fmt``); compiling or resolving the spec applies the gate.
    """
    plan, source = parse_text(text, name, allow_import, defer_imports)
    return Spec(plan, source, allow_import)


def load(path: str | Path, allow_import: bool = False) -> Spec:
    """Read and parse a spec file (UTF-8); ``allow_import`` as for :func:`parse`.

    A ``.json``, ``.yaml`` or ``.yml`` file holds a plan as data (see :mod:`specopt.data`).
    """
    if Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
        from .data import load_data  # imported here: data imports this module

        return Spec(*load_data(path, allow_import), allow_import)
    return parse(read_spec_text(path), str(path), allow_import)


def read_spec_text(path: str | Path) -> str:
    """Read a spec file as UTF-8; undecodable bytes (E104) and oversized files (E102) are positioned errors.

    At most a little more than the size limit is read, so a huge file or
    ``/dev/zero`` costs no more than a file just over the limit.
    """
    return decode_spec(read_spec_bytes(path), str(path))


def read_spec_bytes(path: str | Path) -> bytes:
    """The bytes of a spec file, reading only as far as needed to find it is over the size limit (E102)."""
    limit = sys.modules[parse_text.__module__].MAX_SOURCE_CHARS  # read when called: tests lower it
    counter = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    chunks, chars = [], 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            chunks.append(chunk)
            chars += len(counter.decode(chunk))
            if chars > limit:
                head = b"".join(chunks)[:_SHOWN].decode("utf-8-sig", errors="replace")  # for line 1 only
                raise SpecError([Diagnostic("E102", f"spec is too large (more than {limit} characters, "
                                            "the limit)", Span(start=0, end=0),
                                            "split the spec, or check that the right file was passed")],
                                Source(head, str(path)))
    return b"".join(chunks)


def decode_spec(data: bytes, name: str) -> str:
    """Decode a spec file's bytes as UTF-8 (a byte-order mark is dropped); bad bytes are E104."""
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        at = len(data[:exc.start].decode("utf-8", errors="replace"))
        raise SpecError([Diagnostic("E104", f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                                    Span(start=at, end=at + 1), "save the spec as UTF-8 text")],
                        Source(text, name)) from None


def compile(text: str, model, allow_import: bool = False, **options) -> "Compiled":
    """Parse, plan, resolve and build in one call; ``allow_import`` as for :func:`parse`.

    ``options`` are ``epochs``, ``steps``, ``steps_per_epoch`` and ``scaler``, as for :meth:`Spec.compile`.
    A spec with errors is still matched against ``model``, so a selector that
    selects nothing is reported together with the other errors.
    """
    try:
        spec = parse(text, allow_import=allow_import)
    except SpecError as exc:
        raise with_model_checks(exc, model) from None
    return spec.compile(model, **options)


def with_model_checks(exc: SpecError, model) -> SpecError:
    """``exc`` with the selector errors its readable statements have against ``model`` added."""
    if not exc.statements or model is None:
        return exc
    from .resolve import selection_diagnostics

    found = [d for d in selection_diagnostics(exc.statements, model) if d not in exc.diagnostics]
    return SpecError(list(exc.diagnostics) + found, exc.source, exc.statements) if found else exc
