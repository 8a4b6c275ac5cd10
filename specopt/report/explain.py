"""Explain: for each parameter, every statement that touched it, what each set, and the final values.

``explain(compiled)`` returns the explanation as data (dataclasses, with
``to_json()``); ``render_text`` prints it. An optional selector, written in the
spec language (``convolution2*``, ``@*Norm*``, ``ndim<2``), narrows it to the
parameters that selector picks; it is evaluated by resolving the one-statement
spec ``freeze SELECTOR`` against the model, so it matches exactly as it would
inside a spec, and a selector that selects nothing is the usual E301 error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from ..diagnostics import Diagnostic, Source, Span, SpecError
from ..plan.nodes import Relative
from ..plan.clauses import moment_text
from .resolution_report import format_value, jsonable, param_changes
from ..resolve.resolution import ModelIndex, Origin, ParamAssignment, Resolution, index_model, resolve
from ..language.parse import parse_text



class Compiled(Protocol):
    """What an explanation reads of a compiled spec (:class:`specopt.runtime.Compiled` has it)."""

    resolution: Resolution
    source: Source | None

SELECTOR_SOURCE = "<selector>"
_PREFIX = "freeze "
_SEPARATORS = ";#\n"


@dataclass(frozen=True)
class StatementRef:
    """A statement of the spec: its index in the plan, kind, label, position and source text.

    ``index`` is -1 for the model itself (a parameter created with ``requires_grad=False``).
    """

    index: int
    kind: str
    label: str
    line: int | None = None
    column: int | None = None
    text: str | None = None

    @property
    def where(self) -> str:
        """``line:col`` when the position is known, else the label."""
        return f"{self.line}:{self.column}" if self.line is not None else self.label


@dataclass(frozen=True)
class SetValue:
    """One thing a statement set on a parameter: ``frozen`` (True/False) or a hyperparameter.

    ``written`` is the value as the spec wrote it (``x10`` for a relative value,
    whose resolved number is ``value``); ``overridden_by`` names the later
    statement that replaced it, or is ``None`` when this value is final.
    """

    key: str
    value: Any
    written: str
    overridden_by: StatementRef | None = None


@dataclass(frozen=True)
class Touch:
    """A statement that selected the parameter, and what it set on it."""

    statement: StatementRef
    sets: tuple[SetValue, ...]


@dataclass(frozen=True)
class FinalValue:
    """A final hyperparameter value; ``set_by`` is ``None`` for the optimizer's default."""

    key: str
    value: Any
    set_by: StatementRef | None


@dataclass(frozen=True)
class TimedChange:
    """A point of the run where the parameter's state changes: the moment, the new state, who, and its warmup."""

    moment: str
    trainable: bool
    by: StatementRef
    warmup: str | None = None

    @property
    def text(self) -> str:
        """``from step 3: trainable (by unfreeze@2:1, lr warmup 500 steps)``."""
        ramp = f", lr warmup {self.warmup}" if self.warmup else ""
        return f"from {self.moment}: {'trainable' if self.trainable else 'frozen'} (by {self.by.label}{ramp})"


@dataclass(frozen=True)
class ParamExplanation:
    """Everything the spec did to one parameter, in statement order, and where it ended up."""

    name: str
    aliases: tuple[str, ...]
    shape: tuple[int, ...]
    numel: int
    touches: tuple[Touch, ...]
    frozen: bool
    frozen_by: StatementRef | None
    group: str | None
    group_index: int | None
    settings: tuple[FinalValue, ...]
    changes: tuple[TimedChange, ...] = ()
    optimizer: str | None = None


@dataclass(frozen=True)
class Explanation:
    """The explanation of a compiled spec: one entry per explained parameter, in model order."""

    spec: str | None
    selector: str | None
    total: int
    params: tuple[ParamExplanation, ...]

    def to_json(self) -> dict[str, Any]:
        """The explanation as JSON-ready data (tuples become lists, non-finite floats strings)."""
        return jsonable(asdict(self))


def explain(compiled: "Compiled", selector: str | None = None, model=None) -> Explanation:
    """Explain every parameter of ``compiled``, or only those ``selector`` picks.

    A selector is matched against ``model``, by default the module the spec was
    compiled against. Raises :class:`SpecError`
    when the selector is malformed or selects nothing.
    """
    resolution = compiled.resolution
    if selector is None:
        chosen = resolution.params
    else:
        chosen = tuple(_lookup(resolution, n) for n in select(compiled, selector, model))
    source = compiled.source
    params = tuple(_explain_param(p, resolution, source) for p in chosen)
    return Explanation(source.name if source else None, selector, len(resolution.params), params)


def select(compiled: "Compiled", selector: str, model) -> tuple[str, ...]:
    """Names of the parameters ``selector`` picks, in model order, matched exactly as in a spec.

    Errors (syntax, E301 "selects nothing" with the closest real names) are
    raised as :class:`SpecError` against the selector text itself.
    """
    index = _selector_index(model if model is not None else compiled.resolution.model)
    plan = _selector_plan(selector)
    defaults = {k: s.value for k, s in compiled.resolution.base.items()}
    try:
        probe = resolve(plan, index, defaults, None)
    except SpecError as exc:
        raise _against_selector(exc, selector) from None
    return tuple(p.info.name for p in probe.params if p.touched)


def _selector_plan(selector: str):
    bad = next((i for i, ch in enumerate(selector) if ch in _SEPARATORS), None)
    if bad is not None:
        shown = repr(selector[bad])[1:-1]
        raise SpecError([Diagnostic("E100", f"unexpected '{shown}' in a selector", Span(start=bad, end=bad + 1),
                                    "give selectors only, e.g. 'convolution2*', '@*Norm*' or 'ndim<2'")],
                        Source(selector, SELECTOR_SOURCE))
    try:
        return parse_text(_PREFIX + selector, SELECTOR_SOURCE)[0]
    except SpecError as exc:
        raise _against_selector(exc, selector) from None


def _selector_index(model) -> ModelIndex:
    if model is None:
        raise ValueError("this resolution has no model to match a selector against: pass model=")
    return index_model(model)


def _against_selector(exc: SpecError, selector: str) -> SpecError:
    """Re-anchor diagnostics of ``freeze SELECTOR`` onto the selector text alone."""
    shift = len(_PREFIX)

    def moved(d: Diagnostic) -> Diagnostic:
        if d.span is None:
            return d
        return replace(d, span=Span(start=max(0, d.span.start - shift), end=max(0, d.span.end - shift)))

    return SpecError([moved(d) for d in exc.diagnostics], Source(selector, SELECTOR_SOURCE))


def _lookup(resolution: Resolution, name: str) -> ParamAssignment:
    try:
        return resolution.param(name)
    except KeyError:
        raise ValueError(f"the model has a parameter '{name}' that the compiled spec does not know: "
                         "pass the module this spec was compiled against") from None


def _explain_param(p: ParamAssignment, resolution: Resolution, source: Source | None) -> ParamExplanation:
    touches = tuple(_touch(o, p, resolution, source) for o in p.touched)
    settings = tuple(FinalValue(k, s.value, _ref(s.origin, source) if s.origin else None)
                     for k, s in p.settings.items())
    group = resolution.groups[p.group].name if p.group is not None else None
    frozen_by = _ref(p.frozen_by, source) if p.frozen_by else None
    changes = tuple(TimedChange(moment_text(c.moment), c.trainable, _ref(c.by, source),
                                c.warmup.text if c.warmup is not None and c.trainable else None)
                    for c in param_changes(p, resolution))
    optimizer = resolution.slots[p.optimizer].info.name if p.optimizer is not None else None
    return ParamExplanation(p.info.name, p.info.aliases, p.info.shape, p.info.numel, touches,
                            p.frozen, frozen_by, group, p.group, settings, changes, optimizer)


def _touch(origin: Origin, p: ParamAssignment, resolution: Resolution, source: Source | None) -> Touch:
    stmt = resolution.plan.statements[origin.index]
    if stmt.kind == "layers":
        return _layer_touch(origin, stmt, p, resolution, source)
    if stmt.kind in ("freeze", "unfreeze"):
        frozen = stmt.kind == "freeze"
        written = "frozen" if frozen else "unfrozen"
        if stmt.timed:
            written += f" from {moment_text(stmt.at)}" + (f" (lr warmup {stmt.warmup.text})" if stmt.warmup else "")
        return Touch(_ref(origin, source), (SetValue("frozen", frozen, written, _overrider(p, origin, resolution, source)),))
    sets = []
    base = resolution.slots[p.optimizer].base if p.optimizer is not None else resolution.base
    for opt in stmt.options:
        if opt.key not in p.settings:
            continue  # an option of another optimizer of the spec: not this parameter's
        value, written = opt.value, format_value(opt.value)
        if isinstance(value, Relative):
            value, written = value.of(base[opt.key].value), f"x{value.factor:g}"
        sets.append(SetValue(opt.key, value, written, _later(p.settings[opt.key].origin, origin, source)))
    return Touch(_ref(origin, source), tuple(sets))


def _layer_touch(origin, stmt, p: ParamAssignment, resolution: Resolution, source: Source | None) -> Touch:
    """What a ``layers`` statement set at the parameter's depth: its lr factor, and a freeze below ``freeze_below``."""
    power = origin.top - origin.depth
    clamped = origin.scale != stmt.setting("decay") ** power
    written = f"x{origin.scale:g} (min_scale)" if clamped else f"x{stmt.setting('decay'):g}^{power}"
    final = p.settings["lr"]
    base = resolution.slots[p.optimizer or 0].base["lr"].value  # that of the optimizer training the parameter
    value = final.value if final.origin == origin else Relative(factor=origin.scale).of(base)
    sets = [SetValue("lr", value, written, _later(p.settings["lr"].origin, origin, source))]
    if origin.frozen:
        why = f"frozen (x{origin.scale:.3g} is below freeze_below={stmt.setting('freeze_below'):g})"
        sets.append(SetValue("frozen", True, why, _later(p.frozen_by, origin, source)))
    return Touch(_ref(origin, source), tuple(sets))


def _overrider(p: ParamAssignment, origin: Origin, resolution: Resolution,
               source: Source | None) -> StatementRef | None:
    """The statement overriding a freeze or unfreeze at every moment it applies, if one does.

    For one without ``at``: the statement deciding the state at the start, if
    another (a later one with ``at`` changes the state only from its moment on).
    For one with ``at``: a later statement without ``at`` selecting the parameter.
    """
    statements = resolution.plan.statements
    if not statements[origin.index].timed:
        return _later(p.frozen_by, origin, source)
    position = p.touched.index(origin)
    after = [o for o in p.touched[position + 1:]
             if o.kind in ("freeze", "unfreeze") and not statements[o.index].timed]
    return _ref(after[0], source) if after else None


def _later(final: Origin | None, origin: Origin, source: Source | None) -> StatementRef | None:
    """The statement that decided the final value, when it is not ``origin`` itself."""
    if final is None or final.index == origin.index:
        return None
    return _ref(final, source)


def _ref(origin: Origin, source: Source | None) -> StatementRef:
    if origin.index < 0 or source is None or origin.span is None:
        return StatementRef(origin.index, origin.kind, origin.label)
    line, column = source.line_col(origin.span.start)
    text = source.text[origin.span.start:origin.span.end].strip()
    return StatementRef(origin.index, origin.kind, origin.label, line, column, text)


# --- text ------------------------------------------------------------------------------------

def render_text(explanation: Explanation) -> str:
    """The explanation as the text ``specopt explain`` prints."""
    count = len(explanation.params)
    head = f"{explanation.spec or '<spec>'}: "
    if explanation.selector is None:
        head += f"{count} parameters"
    else:
        head += f"{count} of {explanation.total} parameters selected by '{explanation.selector}'"
    return "\n\n".join([head] + [_render_param(p) for p in explanation.params])


def _render_param(p: ParamExplanation) -> str:
    shape = "[" + ", ".join(map(str, p.shape)) + "]"
    lines = [f"{p.name}  shape {shape}, {p.numel:,} elements"]
    if p.aliases:
        lines.append("  also named: " + ", ".join(p.aliases))
    lines.append("  statements, in order:" if p.touches else "  statements: none selects it")
    for touch in p.touches:
        ref = touch.statement
        lines.append(f"    {ref.where:<7} {ref.text or ref.label}")
        lines += [f"            sets {_render_set(s)}" for s in touch.sets]
    lines.append("  final:")
    lines.append("    " + _render_state(p))
    pairs = [(f"{v.key}={format_value(v.value)}", _by(v.set_by)) for v in p.settings]
    width = max((len(a) for a, _ in pairs), default=0)
    lines += [f"    {a:<{width}}  {b}" for a, b in pairs]
    return "\n".join(lines)


def _render_set(s: SetValue) -> str:
    if s.key == "frozen":
        text = s.written
    elif s.written != format_value(s.value):
        text = f"{s.key}={s.written} (= {format_value(s.value)})"
    else:
        text = f"{s.key}={s.written}"
    if s.overridden_by is not None:
        text += f"  (overridden by {s.overridden_by.label})"
    return text


def _render_state(p: ParamExplanation) -> str:
    by = f" by {p.frozen_by.label}" if p.frozen and p.frozen_by else ""
    if p.frozen and p.group_index is None:
        return f"frozen{by}; in no param group, so these values are unused"
    start = f"frozen{by} at the start" if p.frozen else "trainable"
    lines = [f"{start}, param group [{p.group_index}] {p.group}, optimizer {p.optimizer}"]
    return "\n    ".join(lines + [c.text for c in p.changes])


def _by(ref: StatementRef | None) -> str:
    return "default" if ref is None else f"by {ref.label}"
