"""Plan nodes shared by every statement kind: values, options, selectors and lengths of time.

Every node is a frozen Pydantic model that keeps the source span it came from
(character offsets; line and column are computed only when a diagnostic is
rendered). The statement kinds themselves live in :mod:`specopt.plan.statements`.
"""

from __future__ import annotations

import math
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, model_validator

from ..diagnostics import Span


class Node(BaseModel):
    """Base of every plan node: frozen, strict about unknown fields, with an optional source span.

    Numbers and flags are strict (``StrictFloat``, ``StrictInt``, ``StrictBool``): a plan
    written as data says ``0.9``, not ``"0.9"``, and ``1``, not ``true``, as spec text must.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    span: Span | None = None


class Relative(Node):
    """A value relative to the base: ``x0.1`` means 0.1 times the optimizer's base value."""

    factor: StrictFloat

    def of(self, base: float) -> float:
        """The value for ``base``, rounded to 15 significant digits so that 0.7 x 0.1 is 0.07."""
        return float(f"{base * self.factor:.15g}")


def factor_value(text: str) -> float:
    """The number a factor as written stands for: ``x0.1`` is 0.1, ``x0.75^3`` is 0.75 cubed.

    A power is rounded to 15 significant digits, as :meth:`Relative.of` rounds,
    so that ``x0.1^2`` is 0.01. One too large for a float is ``inf`` (and
    ``x0^-1`` too), which the range checks then report.
    """
    base, caret, power = text[1:].partition("^")
    if not caret:
        return float(base)
    try:
        return float(f"{float(base) ** float(power):.15g}")
    except (OverflowError, ZeroDivisionError):
        return math.inf


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
    anchored: StrictBool = False
    negated: StrictBool = False
    optional: StrictBool = False
    owner: StrictBool = False
    ignore_case: StrictBool = False
    first_name: StrictBool = False

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


UNIT_WORDS = {"step": "step", "steps": "step", "epoch": "epoch", "epochs": "epoch"}


class Length(Node):
    """A span of training time: ``500 steps``, ``5 epochs`` or ``80%`` of the run."""

    value: StrictFloat
    unit: Literal["step", "epoch", "percent"]

    @property
    def text(self) -> str:
        """The length as a spec writes it."""
        if self.unit == "percent":
            return f"{self.value:g}%"
        return f"{self.value:g} {self.unit}{'' if self.value == 1 else 's'}"


class Milestones(Node):
    """Points in time, counted from the start of a phase: ``30,60,90 epochs``."""

    values: tuple[StrictFloat, ...] = Field(min_length=1)
    unit: Literal["step", "epoch"]

    @property
    def text(self) -> str:
        """The milestones as a spec writes them."""
        return ",".join(f"{v:g}" for v in self.values) + f" {self.unit}s"


def show_value(value) -> str:
    """A parsed value as a spec would write it: ``true``, ``none``, ``"text"``, ``x0.1``, ``(0.9, 0.999)``."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(show_value(v) for v in value) + ")"
    if isinstance(value, Relative):
        return f"x{value.factor:g}"
    if isinstance(value, (Length, Milestones)):
        return value.text
    return repr(value) if isinstance(value, float) else str(value)  # repr keeps 20.0 apart from 20
