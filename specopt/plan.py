"""The plan: immutable Pydantic models for a parsed spec, validated as a whole.

A :class:`Plan` is what every later stage consumes. Each node keeps the source
span it came from. Constructing a plan runs :func:`check_plan`, so a ``Plan``
value is always valid: the same checks apply whether the plan came from spec
text or from JSON. A plan round-trips through JSON and publishes a JSON Schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .diagnostics import Diagnostic, Span, SpecError, did_you_mean
from .extensions import find_optimizer, plan_optimizer_info, written_name
from .registry import OptimizerInfo, check_bounds, check_kind, describe_kind
from .selectors import selector_problems


class Node(BaseModel):
    """Base of every plan node: frozen, strict about unknown fields, with an optional source span."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    span: Span | None = None


class Relative(Node):
    """A value relative to the base: ``x0.1`` means 0.1 times the optimizer's base value."""

    factor: float

    def of(self, base: float) -> float:
        """The value for ``base``, rounded to 15 significant digits so that 0.7 x 0.1 is 0.07."""
        return float(f"{base * self.factor:.15g}")


Scalar = Union[bool, int, float, str, None]
Value = Union[Scalar, Relative, tuple[Scalar, ...]]


class Option(Node):
    """One ``key=value`` pair; ``span`` covers the key, ``value_span`` the value."""

    key: str
    value: Value
    value_span: Span | None = None


class Selector(Node):
    """One selector atom: a name glob, a module-class glob (``@``) or a rank test (``ndim``).

    ``owner`` (``@@``) tests only the class of the module that owns the parameter
    directly, rather than every module above it. ``ignore_case`` (flag ``/i``)
    matches a name or class glob ignoring case; ``first_name`` (flag ``/first``)
    lets a name or class atom see only a tied tensor's first name, not its aliases.
    """

    kind: Literal["name", "class", "ndim"]
    pattern: str
    anchored: bool = False
    negated: bool = False
    optional: bool = False
    owner: bool = False
    ignore_case: bool = False
    first_name: bool = False

    @model_validator(mode="after")
    def _form(self) -> "Selector":
        if self.anchored and self.kind != "name":
            raise ValueError("'anchored' (^) applies to name selectors only")
        if self.owner and self.kind != "class":
            raise ValueError("'owner' (@@) applies to class selectors only")
        if self.kind == "ndim" and (self.ignore_case or self.first_name):
            raise ValueError("a rank test takes no flags (ignore_case, first_name)")
        if "/" in self.pattern and self.kind != "ndim":
            raise ValueError("a pattern cannot hold '/', which starts the flags in spec text: "
                             "set ignore_case or first_name instead")
        return self

    @property
    def text(self) -> str:
        """The selector as written in a spec, its flags in the order ``/i,first``."""
        prefix = ("!" if self.negated else "") + ("~" if self.optional else "")
        body = {"name": ("^" if self.anchored else "") + self.pattern,
                "class": ("@@" if self.owner else "@") + self.pattern, "ndim": "ndim" + self.pattern}[self.kind]
        flags = [flag for flag, on in (("i", self.ignore_case), ("first", self.first_name)) if on]
        return prefix + body + ("/" + ",".join(flags) if flags else "")


class Term(Node):
    """An intersection of selector atoms (``a & b & !c``)."""

    atoms: tuple[Selector, ...] = Field(min_length=1)


class OptimizerStatement(Node):
    """``optimizer NAME key=value ...``: the optimizer and its base hyperparameters.

    A ``name`` holding ``:`` is an import path (``package.module:Class``, written
    quoted in a spec); its options are checked when the class is imported
    (:mod:`specopt.extensions`), not here.
    """

    kind: Literal["optimizer"] = "optimizer"
    name: str
    name_span: Span | None = None
    options: tuple[Option, ...] = ()

    @property
    def name_text(self) -> str:
        """The name as written in a spec: an import path is quoted."""
        return written_name(self.name)


class FreezeStatement(Node):
    """``freeze SELECTORS`` or ``unfreeze SELECTORS``."""

    kind: Literal["freeze", "unfreeze"]
    selectors: tuple[Term, ...] = Field(min_length=1)


class GroupStatement(Node):
    """``group [NAME:] SELECTORS key=value ...``: overrides for the selected parameters."""

    kind: Literal["group"] = "group"
    name: str | None = None
    selectors: tuple[Term, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()


class ClipStatement(Node):
    """``clip MODE MAX``: gradient clipping by a p-norm (``l2``, ``l1``, ``inf``, ``lP``) or by value."""

    kind: Literal["clip"] = "clip"
    mode: str
    max: float

    @property
    def norm_type(self) -> float | None:
        """The p of the norm, or ``None`` for clipping by value (or an invalid mode)."""
        return parse_clip_mode(self.mode)


class StepStatement(Node):
    """``step every N [epochs|steps] xGAMMA``: StepLR."""

    kind: Literal["step"] = "step"
    every: int
    unit: Literal["epoch", "step"] = "epoch"
    gamma: float


Statement = Annotated[
    Union[OptimizerStatement, FreezeStatement, GroupStatement, ClipStatement, StepStatement],
    Field(discriminator="kind"),
]


class Plan(Node):
    """A whole spec: its statements in source order. Always valid once constructed."""

    version: Literal[1] = 1
    statements: tuple[Statement, ...] = ()

    @model_validator(mode="after")
    def _validate(self) -> "Plan":
        errors = [d for d in check_plan(self) if d.severity == "error"]
        if errors:
            raise SpecError(errors)
        return self

    @property
    def optimizer(self) -> OptimizerStatement | None:
        """The ``optimizer`` statement, if the spec has one."""
        return next((s for s in self.statements if s.kind == "optimizer"), None)

    @property
    def optimizer_info(self) -> OptimizerInfo:
        """The registry entry of the chosen optimizer (the default when none is named).

        An import path must have been imported with permission first (see
        :func:`specopt.extensions.import_diagnostics`); otherwise this raises the refusal.
        """
        return plan_optimizer_info(self.optimizer)

    @property
    def clip(self) -> ClipStatement | None:
        """The ``clip`` statement, if any."""
        return next((s for s in self.statements if s.kind == "clip"), None)

    @property
    def schedule(self) -> StepStatement | None:
        """The schedule statement, if any."""
        return next((s for s in self.statements if s.kind == "step"), None)


def parse_clip_mode(mode: str) -> float | None:
    """Return the norm type of a clip mode (``l2`` → 2.0, ``l1.5`` → 1.5, ``inf`` → inf).

    ``None`` for ``value`` and for anything that is not a clip mode: a norm mode
    is ``inf``, ``linf`` or ``l`` followed by a positive decimal number (digits
    with an optional fractional part).
    """
    if mode in ("inf", "linf"):
        return float("inf")
    match = _NORM_MODE.fullmatch(mode)
    if match is None:
        return None
    p = float(match.group(1))
    return p if 0 < p < float("inf") else None  # so many digits that float() gives inf: not a p


_NORM_MODE = re.compile(r"l([0-9]+(?:\.[0-9]+)?)")


# --- whole-plan checks -----------------------------------------------------------------------

def check_plan(plan: Plan) -> list[Diagnostic]:
    """Return every problem of a plan: unknown names and keys, bad values, duplicates, bad selectors."""
    diags = _check_singletons(plan)
    stmt = plan.optimizer
    info, lookup_problems = find_optimizer(stmt)
    diags += lookup_problems
    if stmt is not None and info is not None:
        diags += check_options(stmt.options, info, group=False)
    for s in plan.statements:
        if s.kind in ("freeze", "unfreeze", "group"):
            diags += _check_selectors(s.selectors)
        if s.kind == "group":
            diags += _check_group(s, info)
        elif s.kind == "clip":
            diags += _check_clip(s)
        elif s.kind == "step":
            diags += _check_step(s)
    return diags


def _check_singletons(plan: Plan) -> list[Diagnostic]:
    diags, seen = [], set()
    for s in plan.statements:
        if s.kind in ("optimizer", "clip", "step"):
            if s.kind in seen:
                diags.append(Diagnostic("E202", f"a second '{s.kind}' statement", s.span,
                                        f"a spec has at most one '{s.kind}' statement; remove one"))
            seen.add(s.kind)
    return diags


def check_options(options: tuple[Option, ...], info: OptimizerInfo, group: bool) -> list[Diagnostic]:
    """Check ``key=value`` options against an optimizer's registry entry."""
    diags, seen = [], set()
    for opt in options:
        if opt.key in seen:
            diags.append(Diagnostic("E203", f"'{opt.key}' is given twice", opt.span,
                                    "each key may appear once per statement"))
            continue
        seen.add(opt.key)
        diags += _check_option(opt, info, group)
    return diags


def _check_option(opt: Option, info: OptimizerInfo, group: bool) -> list[Diagnostic]:
    spec = info.option(opt.key)
    if spec is None:
        hint = did_you_mean(opt.key, [o.name for o in info.options]) or (
            f"{info.name} takes: " + ", ".join(o.name for o in info.options))
        return [Diagnostic("E204", f"{info.name} has no option '{opt.key}'", opt.span, hint)]
    if group and not spec.per_group:
        return [Diagnostic("E205", f"'{opt.key}' applies to the whole optimizer, not to a group",
                           opt.span, "set it on the optimizer statement: optimizer "
                           f"{written_name(info.name)} {opt.key}=...")]
    value_span = opt.value_span or opt.span
    if isinstance(opt.value, Relative):
        if not group or spec.kind != "number":
            where = ("only in group statements, for numeric keys" if not group else
                     f"only for numeric keys; '{opt.key}' takes {describe_kind(spec.kind)}")
            return [Diagnostic("E206", f"a relative value (x{opt.value.factor:g}) is allowed {where}",
                               value_span, "relative values scale a numeric base value inside 'group', "
                               "e.g. group head.* lr=x0.1")]
        why = check_bounds(">=0", opt.value.factor)
        return [Diagnostic("E207", f"factor for '{opt.key}' {why}", value_span)] if why else []
    if not check_kind(spec.kind, opt.value):
        return [Diagnostic("E206", f"'{opt.key}' takes {describe_kind(spec.kind)}, not "
                           f"{_show(opt.value)}", value_span)]
    why = check_bounds(spec.bounds, opt.value)
    return [Diagnostic("E207", f"'{opt.key}' {why}, got {_show(opt.value)}", value_span)] if why else []


def _show(value: Value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, Relative):
        return f"x{value.factor:g}"
    return repr(value) if isinstance(value, float) else str(value)  # repr keeps 20.0 apart from 20


def _check_selectors(terms: tuple[Term, ...]) -> list[Diagnostic]:
    diags = []
    for term in terms:
        if all(a.negated for a in term.atoms) and len(term.atoms) > 1:
            diags.append(Diagnostic("E208", "an intersection needs at least one positive selector",
                                    term.span, "write 'a & !b' to exclude b from a"))
        for atom in term.atoms:
            diags += [Diagnostic("E209", f"bad selector '{atom.text}': {why}", atom.span, hint)
                      for why, hint in selector_problems(atom.kind, atom.pattern)]
    return diags


def _check_group(s: GroupStatement, info: OptimizerInfo | None) -> list[Diagnostic]:
    if not s.options:
        return [Diagnostic("E210", "group sets no hyperparameter", s.span,
                           "add key=value pairs, e.g. lr=1e-3 or weight_decay=0")]
    return check_options(s.options, info, group=True) if info else []


def _check_clip(s: ClipStatement) -> list[Diagnostic]:
    diags = []
    if s.mode != "value" and s.norm_type is None:
        names = ["l2", "l1", "inf", "value"]
        diags.append(Diagnostic("E211", f"unknown clip mode '{s.mode}'", s.span,
                                did_you_mean(s.mode, names) or
                                "use l2, l1, inf, lP for a decimal P > 0 (e.g. l3 or l1.5), or value"))
    why = check_bounds(">0", s.max)
    if why:
        diags.append(Diagnostic("E207", f"clip maximum {why}, got {s.max:g}", s.span))
    return diags


def _check_step(s: StepStatement) -> list[Diagnostic]:
    diags = []
    if s.every < 1:
        diags.append(Diagnostic("E207", f"step interval must be at least 1, got {s.every}", s.span))
    why = check_bounds(">0", s.gamma)
    if why:
        diags.append(Diagnostic("E207", f"step factor {why}, got {s.gamma:g}", s.span))
    return diags

