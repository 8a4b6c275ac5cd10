"""Checkpoints that explain themselves: the spec a checkpoint was saved under, and what changed since.

``compiled.state_dict()["spec"]`` records the spec's text, its name, the plan
as data (``specopt.language.plan_data.dump_plan``: no positions, so reformatting or moving
lines changes nothing) and a hash of that plan. Loading the checkpoint under
a spec whose plan hashes differently resolves the saved plan against the same
model (nothing is built, nothing changes) and reports, in the words of
``specopt diff``, what changed for which parameters, before any state is
loaded: with ``strict`` as error E505, otherwise as a ``CheckpointWarning``.
A checkpoint saved before specopt recorded its spec is not compared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..language.plan_data import dump_plan, parse_data
from ..diagnostics import Diagnostic, Source, SpecError
from .diff import diff_resolutions, render_text
from ..language.parse import parse_text
from ..plan.plan import Plan
from ..resolve.resolution import index_model, resolve
from ..plan.extensions import plan_optimizer_info
from ..resolve.owners import slot_statements
from ..catalog.targets import constructor_defaults, load_target

HINT = ("load with strict=False to restore the state by name under this spec (its values apply from now "
        "on), or resume with the spec the checkpoint was saved with")


def plan_hash(plan: Plan) -> str:
    """A hash of what a plan means: its statements as data, without positions or comments."""
    text = json.dumps(dump_plan(plan), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_record(plan: Plan, source: Source | None) -> dict[str, Any]:
    """What a checkpoint records about the spec it was saved under."""
    return {"name": source.name if source else None, "text": source.text if source else None,
            "format": source.format if source else None, "hash": plan_hash(plan), "plan": dump_plan(plan)}


@dataclass(frozen=True)
class SpecChange:
    """A checkpoint saved under another spec: the two hashes and the report of what changed.

    ``diff`` is the :class:`specopt.report.diff.SpecDiff` of the saved spec against
    this one, or ``None`` when the saved spec cannot be resolved against this
    model (``report`` then says why).
    """

    saved_name: str
    saved_hash: str
    hash: str
    report: str
    diff: Any = None

    @property
    def headline(self) -> str:
        """One line: the checkpoint's spec and the two plans' hashes."""
        return (f"the checkpoint was saved under another spec ({self.saved_name}, plan {self.saved_hash}; "
                f"this spec's plan is {self.hash})")

    def describe(self) -> str:
        """The warning's text: which specs, and what changed for which parameters."""
        return f"{self.headline}; what changed:\n{self.report}"

    def diagnostic(self) -> Diagnostic:
        """E505, for a strict load: the headline, then how to go on and what changed."""
        return Diagnostic("E505", self.headline, None, f"{HINT}; what changed:\n{self.report}")


def saved_under_another_spec(state: Mapping[str, Any], plan: Plan) -> bool:
    """Whether ``state`` records the spec it was saved under, and that spec's plan is not ``plan``."""
    saved = state.get("spec") if isinstance(state, Mapping) else None
    return isinstance(saved, Mapping) and isinstance(saved.get("hash"), str) and saved["hash"] != plan_hash(plan)


def spec_change(state: Mapping[str, Any], compiled) -> SpecChange | None:
    """What changed between the spec ``state`` was saved under and ``compiled``'s, or ``None``."""
    saved = state.get("spec") if isinstance(state, Mapping) else None
    if not isinstance(saved, Mapping) or not isinstance(saved.get("hash"), str):
        return None
    ours = plan_hash(compiled.resolution.plan)
    if saved["hash"] == ours:
        return None
    name = str(saved.get("name") or "<checkpoint>")
    diff, report = _compare(saved, compiled, name)
    if diff is not None and diff.empty:
        return None  # written differently, trains this model the same (e.g. `optimizer adam` and no statement)
    return SpecChange(name, saved["hash"], ours, report, diff)


def _compare(saved: Mapping[str, Any], compiled, name: str) -> tuple[Any, str]:
    """The saved plan resolved against the compiled model and diffed with this resolution, as text."""
    resolution = compiled.resolution
    ours = compiled.source.name if compiled.source else "this spec"
    try:
        plan, source = _saved_plan(saved, name)
        defaults = [constructor_defaults(load_target(plan_optimizer_info(s).target)) for s in slot_statements(plan)]
        before = resolve(plan, index_model(resolution.model), defaults, source)
        diff = diff_resolutions(before, resolution, f"{name} (checkpoint)", ours if ours != name else f"{ours} (now)")
    except (SpecError, ValueError, TypeError, ImportError, AttributeError) as exc:
        why = exc.diagnostics[0].message if isinstance(exc, SpecError) else str(exc)
        return None, f"  (the saved spec cannot be compared with this one against this model: {why})"
    text = render_text(diff, type(resolution.model).__name__)
    return diff, "\n".join("  " + line if line else "" for line in text.splitlines())


def _saved_plan(saved: Mapping[str, Any], name: str):
    """The saved spec, from its text where the checkpoint holds it (so reports name its lines),
    else from the plan's data."""
    text, fmt = saved.get("text"), saved.get("format")
    if isinstance(text, str) and fmt in ("json", "yaml"):
        return parse_data(text, fmt, name)
    if isinstance(text, str) and fmt == "spec":
        return parse_text(text, name)
    return parse_data(json.dumps(saved.get("plan")), "json", name)
