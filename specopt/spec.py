"""The embedding API: parse or load a spec, then compile it against a model.

Parsing needs no torch; ``Spec.compile`` imports it on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Source, SpecError
from .plan.extensions import check_imports
from .language.parse import parse_text
from .plan.plan import Plan
from .language.sources import read_spec_text  # noqa: F401 (part of the API: spec files as text)

if TYPE_CHECKING:
    from .runtime.compiled import Compiled
    from .resolve.resolution import Resolution



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
        from .build.assemble import compile_plan
        from .plan.timing import plan_timing

        check_imports(self.plan, self.allow_import or allow_import, self.source)
        timing = plan_timing(self.plan, epochs, steps, steps_per_epoch, self.source)
        return compile_plan(self.plan, model, self.source, timing, scaler)

    def resolve(self, model, allow_import: bool = False) -> "Resolution":
        """The per-parameter assignment and param groups, without building anything or changing the model.

        Works on models built on the meta device, so a spec can be checked
        against a very large model without allocating its weights.
        """
        from .build.assemble import resolve_model

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

    A ``.json``, ``.yaml`` or ``.yml`` file holds a plan as data (see :mod:`specopt.language.plan_data`).
    """
    if Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
        from .language.plan_data import load_data  # imported here: data imports this module

        return Spec(*load_data(path, allow_import), allow_import)
    return parse(read_spec_text(path), str(path), allow_import)


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
    from .resolve.resolution import selection_diagnostics

    found = [d for d in selection_diagnostics(exc.statements, model) if d not in exc.diagnostics]
    return SpecError(list(exc.diagnostics) + found, exc.source, exc.statements) if found else exc
