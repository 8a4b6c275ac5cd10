"""The statement kinds: one class each, declaring its keyword, role, form, parsing and checks.

A statement kind lives in one place. Its class says what the statement is for
(``role``), how a spec writes it (``syntax``, ``summary``, ``example``, used by
hints, ``specopt list`` and the docs), which grammar rule produces it
(``<keyword>_stmt`` in ``grammar/specopt.lark``; :meth:`Statement.from_parse`
builds the node from that rule's children), whether a spec may hold it once
(:meth:`Statement.unique_key`) and what is wrong with it (:meth:`Statement.check`).
``tests/test_statements.py`` fails when a kind is missing from the grammar, the
plan's union, the docs or the formatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt

from .clauses import check_clauses, read_clauses
from ..diagnostics import Diagnostic, Span, did_you_mean
from .nodes import UNIT_WORDS, Length, Node, Option, Term, factor_value
from .options import check_group_options, check_options, written_name
from ..catalog.registry import CLIP_MODES, OptimizerInfo, check_bounds, parse_clip_mode
from .selectors import selector_problems


@dataclass(frozen=True)
class Parts:
    """A statement rule's children (tokens, values, nodes), its span, and helpers to read tokens.

    ``offset`` is where the statement starts in the whole text; ``whole_number``
    reads a token as a whole number, reporting one too long for Python.
    """

    children: list
    span: Span
    offset: int
    whole_number: Callable[[str, Span], int]

    def span_of(self, token) -> Span:
        """The span of a token, shifted into the whole text."""
        return Span(start=self.offset + token.start_pos, end=self.offset + token.end_pos)

    def whole(self, token) -> int:
        """A token read as a whole number."""
        return self.whole_number(str(token), self.span_of(token))

    def unit(self, token) -> str:
        """A unit word (``epochs``, ``step``) as ``epoch`` or ``step``."""
        return UNIT_WORDS[str(token)]


@dataclass(frozen=True)
class CheckContext:
    """What a statement's checks may look at: the plan's statements and the optimizers' entries.

    ``optimizer`` is the entry of the optimizer that takes the parameters no
    ``for`` gives another one; ``optimizers`` holds every optimizer statement's
    entry, in order. An entry is ``None`` when it cannot be looked up yet (an
    import path, checked once its class is imported) or is unknown.
    """

    statements: tuple
    optimizer: OptimizerInfo | None
    optimizers: tuple = ()

    def info_of(self, stmt) -> OptimizerInfo | None:
        """The entry of one optimizer statement."""
        found = [info for s, info in self.optimizers if s is stmt]
        return found[0] if found else self.optimizer

    @property
    def every(self) -> list[OptimizerInfo]:
        """The known entries of every optimizer the spec builds, the default first."""
        infos = [self.optimizer] + [info for s, info in self.optimizers if s.selectors]
        return [info for info in infos if info is not None]


class Statement(Node):
    """Base of every statement kind."""

    keyword: ClassVar[str]
    role: ClassVar[str]
    syntax: ClassVar[str]
    summary: ClassVar[str]
    example: ClassVar[str]
    unique: ClassVar[bool] = False

    def unique_key(self) -> tuple[str, str] | None:
        """``(key, what)`` when a spec may hold only one statement with this key; ``what`` names it."""
        return (self.keyword, f"'{self.keyword}' statement") if self.unique else None

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        """Everything wrong with this statement on its own or against the optimizer."""
        return []

    def check_options(self, info: OptimizerInfo) -> list[Diagnostic]:
        """The checks that need the optimizer's entry; run again once an import path is imported."""
        return []

    @classmethod
    def from_parse(cls, parts: Parts) -> "Statement":
        """Build the node from its grammar rule's children (see :class:`specopt.language.parse.Parts`)."""
        raise NotImplementedError


class OptimizerStatement(Statement):
    """``optimizer NAME key=value ...``: the optimizer and its base hyperparameters.

    A ``name`` holding ``:`` is an import path (``package.module:Class``, written
    quoted in a spec); its options are checked when the class is imported
    (:mod:`specopt.plan.extensions`), not here.
    """

    keyword: ClassVar[str] = "optimizer"
    role: ClassVar[str] = "optimizer"
    syntax: ClassVar[str] = 'optimizer NAME|"mod:Class" [for SELECTOR ...] [key=value ...]'
    summary: ClassVar[str] = ("Choose the optimizer and its base hyperparameters (default: adam, lr=1e-3); "
                              "with 'for', a second optimizer for the parameters selected.")
    example: ClassVar[str] = "optimizer adamw lr=3e-4 betas=(0.9, 0.95)"

    kind: Literal["optimizer"] = "optimizer"
    name: str
    name_span: Span | None = None
    selectors: tuple[Term, ...] = ()
    options: tuple[Option, ...] = ()

    @property
    def name_text(self) -> str:
        """The name as written in a spec: an import path is quoted."""
        return written_name(self.name)

    @property
    def takes_rest(self) -> bool:
        """Whether this optimizer takes every trainable parameter no ``for`` gives another one."""
        return not self.selectors

    def unique_key(self) -> tuple[str, str] | None:
        return ("optimizer", "'optimizer' statement without 'for'") if self.takes_rest else None

    def check_options(self, info: OptimizerInfo) -> list[Diagnostic]:
        return check_options(self.options, info, group=False)

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        info = ctx.info_of(self)
        return check_selectors(self.selectors) + (self.check_options(info) if info else [])

    @classmethod
    def from_parse(cls, parts: Parts) -> "OptimizerStatement":
        name, *rest = parts.children
        selectors = tuple(rest.pop(0)) if rest and isinstance(rest[0], list) else ()
        text = str(name)[1:-1] if name.type == "STRING" else str(name)
        return cls(name=text, name_span=parts.span_of(name), selectors=selectors, options=tuple(rest),
                   span=parts.span)


class FreezeStatement(Statement):
    """``freeze SELECTORS [at MOMENT] [norms=eval|train]``: the selected parameters are not trained.

    With ``at`` (``at epoch 3``, ``at step 2000``, ``at 50%``) the statement
    applies from that point of the run on; ``norms=eval`` also keeps the norm
    layers of the selection in eval mode (see :mod:`specopt.plan.clauses`).
    """

    keyword: ClassVar[str] = "freeze"
    role: ClassVar[str] = "selection"
    syntax: ClassVar[str] = "freeze SELECTOR ... [at epoch N|step N|P%] [norms=eval|train]"
    summary: ClassVar[str] = ("Stop training the selected parameters (requires_grad=False, kept out of "
                              "the optimizer), from the start or from a point of the run.")
    example: ClassVar[str] = "freeze cnn.VGG_16.convolution1_*"

    kind: Literal["freeze"] = "freeze"
    selectors: tuple[Term, ...] = Field(min_length=1)
    at: Length | None = None
    warmup: Length | None = None
    norms: str | None = None
    norms_span: Span | None = None

    @property
    def freezes(self) -> bool:
        """Whether the statement freezes (``True``) or unfreezes what it selects."""
        return self.kind == "freeze"

    @property
    def timed(self) -> bool:
        """Whether the statement applies from a point of the run on rather than from the start."""
        return self.at is not None

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        return check_selectors(self.selectors) + check_clauses(self)

    @classmethod
    def from_parse(cls, parts: Parts) -> "FreezeStatement":
        selectors, *clauses = parts.children
        return cls(selectors=tuple(selectors), span=parts.span, **read_clauses(clauses, parts))


class UnfreezeStatement(FreezeStatement):
    """``unfreeze SELECTORS [at MOMENT [warmup LENGTH]] [norms=eval|train]``: train the selected parameters again.

    It overrides an earlier freeze; ``warmup`` ramps the learning rate of the
    parameters it unfreezes at its moment linearly from 0 over ``LENGTH``.
    """

    keyword: ClassVar[str] = "unfreeze"
    syntax: ClassVar[str] = "unfreeze SELECTOR ... [at epoch N|step N|P% [warmup LENGTH]] [norms=eval|train]"
    summary: ClassVar[str] = ("Train the selected parameters again, overriding an earlier freeze; from a "
                              "point of the run, with an optional lr warmup.")
    example: ClassVar[str] = "unfreeze encoder.layer.11 at step 2000 warmup 500 steps"

    kind: Literal["unfreeze"] = "unfreeze"


class GroupStatement(Statement):
    """``group [NAME:] SELECTORS key=value ...``: overrides for the selected parameters."""

    keyword: ClassVar[str] = "group"
    role: ClassVar[str] = "selection"
    syntax: ClassVar[str] = "group [NAME:] SELECTOR ... key=value ..."
    summary: ClassVar[str] = ("Override hyperparameters for the selected parameters; x0.1 scales the "
                              "base value.")
    example: ClassVar[str] = "group convolution2* lr=1e-3"

    kind: Literal["group"] = "group"
    name: str | None = None
    selectors: tuple[Term, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = check_selectors(self.selectors)
        if not self.options:
            return diags + [Diagnostic("E210", "group sets no hyperparameter", self.span,
                                       "add key=value pairs, e.g. lr=1e-3 or weight_decay=0")]
        if len(ctx.every) > 1:
            return diags + check_group_options(self.options, ctx.every)
        return diags + (self.check_options(ctx.optimizer) if ctx.optimizer else [])

    def check_options(self, info: OptimizerInfo) -> list[Diagnostic]:
        return check_options(self.options, info, group=True)

    @classmethod
    def from_parse(cls, parts: Parts) -> "GroupStatement":
        children = parts.children
        first = children[0]
        label = str(first)[:-1] if getattr(first, "type", None) == "LABEL" else None
        rest = children[1:] if label is not None else children
        return cls(name=label, selectors=tuple(rest[0]), options=tuple(rest[1:]), span=parts.span)


class ClipStatement(Statement):
    """``clip MODE MAX``: gradient clipping by a p-norm (``l2``, ``l1``, ``inf``, ``lP``) or by value."""

    keyword: ClassVar[str] = "clip"
    role: ClassVar[str] = "clip"
    syntax: ClassVar[str] = "clip l2|l1|inf|lP|value MAX"
    summary: ClassVar[str] = "Clip gradients before every optimizer step, by total norm or by value."
    example: ClassVar[str] = "clip l2 20"
    unique: ClassVar[bool] = True

    kind: Literal["clip"] = "clip"
    mode: str
    max: StrictFloat

    @property
    def norm_type(self) -> float | None:
        """The p of the norm, or ``None`` for clipping by value (or an invalid mode)."""
        return parse_clip_mode(self.mode)

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = []
        if self.mode != "value" and self.norm_type is None:
            names = [m for m in CLIP_MODES if m != "lP"]
            diags.append(Diagnostic("E211", f"unknown clip mode '{self.mode}'", self.span,
                                    did_you_mean(self.mode, names) or
                                    "use l2, l1, inf, lP for a decimal P > 0 (e.g. l3 or l1.5), or value"))
        why = check_bounds(">0", self.max)
        if why:
            diags.append(Diagnostic("E207", f"clip maximum {why}, got {self.max:g}", self.span))
        if ctx.optimizer is not None and ctx.optimizer.sparse_gradients:
            diags.append(Diagnostic("E218", f"{ctx.optimizer.name} trains on sparse gradients, which torch "
                                    "cannot clip", self.span, "drop the clip statement, or use an optimizer "
                                    "for dense gradients"))
        return diags

    @classmethod
    def from_parse(cls, parts: Parts) -> "ClipStatement":
        mode, value = parts.children
        return cls(mode=str(mode), max=float(value), span=parts.span)


class StepStatement(Statement):
    """``step every N [epochs|steps] xGAMMA``: the learning rate times GAMMA every N (StepLR).

    The same as ``schedule step every N epochs xGAMMA``; the unit defaults to epochs.
    """

    keyword: ClassVar[str] = "step"
    role: ClassVar[str] = "schedule"
    syntax: ClassVar[str] = "step every N [epochs|steps] xGAMMA"
    summary: ClassVar[str] = "Multiply the learning rate by GAMMA every N epochs (or steps): StepLR."
    example: ClassVar[str] = "step every 10 x0.1"

    kind: Literal["step"] = "step"
    every: StrictInt
    unit: Literal["epoch", "step"] = "epoch"
    gamma: StrictFloat

    @property
    def hyper(self) -> str:
        """The hyperparameter this schedule moves: always the learning rate."""
        return "lr"

    @property
    def text(self) -> str:
        """The statement as a spec writes it."""
        unit = f" {self.unit}{'' if self.every == 1 else 's'}"
        return f"step every {self.every}{unit} x{self.gamma:g}"

    def unique_key(self) -> tuple[str, str]:
        return ("schedule lr", "schedule for 'lr'")

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = []
        if self.every < 1:
            diags.append(Diagnostic("E207", f"step interval must be at least 1, got {self.every}", self.span))
        why = check_bounds(">0", self.gamma)
        if why:
            diags.append(Diagnostic("E207", f"step factor {why}, got {self.gamma:g}", self.span))
        return diags

    @classmethod
    def from_parse(cls, parts: Parts) -> "StepStatement":
        every, *unit, factor = parts.children
        return cls(every=parts.whole(every), unit=parts.unit(unit[0]) if unit else "epoch",
                   gamma=factor_value(str(factor)), span=parts.span)


class RunStatement(Statement):
    """``run N epochs|steps``: how long the whole run is, for phases given as a share of it."""

    keyword: ClassVar[str] = "run"
    role: ClassVar[str] = "timing"
    syntax: ClassVar[str] = "run N epochs|steps"
    summary: ClassVar[str] = ("The length of the run, for schedule phases in % or without a length "
                              "(the caller may give it at compile time instead).")
    example: ClassVar[str] = "run 90 epochs"
    unique: ClassVar[bool] = True

    kind: Literal["run"] = "run"
    length: Length

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        if self.length.unit == "percent":
            return [Diagnostic("E212", "the run's length is in epochs or steps, not a percentage", self.span,
                               "e.g. run 90 epochs or run 100000 steps")]
        return _positive_whole(self.length.value, "the run's length", self.span)

    @classmethod
    def from_parse(cls, parts: Parts) -> "RunStatement":
        return cls(length=parts.children[0], span=parts.span)


class StepsPerEpochStatement(Statement):
    """``steps_per_epoch N``: optimizer steps in one epoch, to convert epochs to steps."""

    keyword: ClassVar[str] = "steps_per_epoch"
    role: ClassVar[str] = "timing"
    syntax: ClassVar[str] = "steps_per_epoch N"
    summary: ClassVar[str] = ("Optimizer steps per epoch, when schedule lengths mix epochs and steps "
                              "(the caller may give it at compile time instead).")
    example: ClassVar[str] = "steps_per_epoch 500"
    unique: ClassVar[bool] = True

    kind: Literal["steps_per_epoch"] = "steps_per_epoch"
    steps: StrictInt

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        return _positive_whole(self.steps, "steps per epoch", self.span)

    @classmethod
    def from_parse(cls, parts: Parts) -> "StepsPerEpochStatement":
        return cls(steps=parts.whole(parts.children[0]), span=parts.span)


def _positive_whole(value: Any, what: str, span: Span | None) -> list[Diagnostic]:
    if not math.isfinite(value) or value != int(value) or value < 1:
        return [Diagnostic("E207", f"{what} must be a whole number of at least 1, got {value:g}", span)]
    return []


def check_selectors(terms: tuple[Term, ...]) -> list[Diagnostic]:
    """E208 for intersections of complements only, E209 for patterns that cannot be matched."""
    diags = []
    for term in terms:
        if all(a.negated for a in term.atoms) and len(term.atoms) > 1:
            diags.append(Diagnostic("E208", "an intersection needs at least one positive selector",
                                    term.span, "write 'a & !b' to exclude b from a"))
        for atom in term.atoms:
            diags += [Diagnostic("E209", f"bad selector '{atom.text}': {why}", atom.span, hint)
                      for why, hint in selector_problems(atom.kind, atom.pattern)]
    return diags
