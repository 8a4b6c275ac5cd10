"""The ``layers`` statement: layer-wise learning-rate decay, as BEiT, MAE and ConvNeXt fine-tune.

    layers cls_token pos_embed patch_embed then blocks.* with ^norm decay=0.75

The statement lists *slots* joined by ``then``; each slot is selectors. A slot
whose selectors have wildcards stands for one layer per module they match,
ordered by the numbers the wildcards capture (:mod:`specopt.plan.captures`); a slot
without wildcards is one layer. ``with SELECTORS`` after a slot moves more
parameters into its layers. Parameters no slot selects form one more layer,
on top. Depths count from 0 in slot order, and a parameter at depth ``d`` gets
``lr=x(decay ^ (top - d))``, at least ``min_scale``; ``freeze_below=S`` freezes
every layer whose scale is below ``S``. Which layer each parameter is in
depends on the model (:mod:`specopt.resolve.layer_depths`); this module holds the form
and the checks that need no model.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .captures import capture_count, capture_problems
from ..diagnostics import Diagnostic, Span, did_you_mean
from .nodes import Node, Option, Relative, Term, show_value
from ..catalog.registry import OptimizerInfo, check_bounds
from .selectors import selector_problems
from .statements import CheckContext, Parts, Statement, check_selectors

# Each setting: its bounds (see registry.check_bounds), its default and what it does.
LAYER_SETTINGS: dict[str, tuple[str, float | None, str]] = {
    "decay": ("(0,1]", None, "the lr factor from one layer to the one below it (timm's layer_decay)"),
    "min_scale": ("[0,1]", 0.0, "no layer's lr factor falls below this (timm's min_scale)"),
    "freeze_below": ("(0,1]", None, "freeze every layer whose lr factor is below this (timm's no_opt_scale)"),
}


class Slot(Node):
    """One slot of a ``layers`` statement: its selectors, and the ``with`` selectors that join its layers."""

    selectors: tuple[Term, ...] = Field(min_length=1)
    joins: tuple[Term, ...] = ()


class LayersStatement(Statement):
    """``layers SLOT [then SLOT ...] decay=D [min_scale=S] [freeze_below=S]``: layer-wise lr decay.

    A slot is ``SELECTOR ... [with SELECTOR ...]``. The statement sets ``lr``
    (relative to the base) of every parameter, at its place among the
    statements, as a ``group`` would; ``freeze_below`` also freezes.
    """

    keyword: ClassVar[str] = "layers"
    role: ClassVar[str] = "selection"
    syntax: ClassVar[str] = "layers SELECTOR ... [with SELECTOR ...] [then ...] decay=D [min_scale=S] [freeze_below=S]"
    summary: ClassVar[str] = ("Layer-wise lr decay: slots joined by then, numbered from 0; a layer at depth d "
                              "gets lr=x(D^(top-d)), the parameters no slot selects are the top layer.")
    example: ClassVar[str] = "layers cls_token pos_embed patch_embed then blocks.* with ^norm decay=0.75"

    kind: Literal["layers"] = "layers"
    slots: tuple[Slot, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()

    @property
    def selectors(self) -> tuple[Term, ...]:
        """Every selector of the statement: each slot's, then its ``with`` selectors, slot by slot."""
        return tuple(t for slot in self.slots for t in slot.selectors + slot.joins)

    def setting(self, name: str) -> float | None:
        """A setting's value as written, or its default (``None`` for ``freeze_below``: nothing frozen)."""
        found = next((o.value for o in self.options if o.key == name), None)
        return LAYER_SETTINGS[name][1] if found is None else found

    def scale(self, depth: int, top: int) -> float:
        """The lr factor of the layer at ``depth`` when the top layer is at ``top``: timm's layer scale."""
        return max(self.setting("min_scale"), self.setting("decay") ** (top - depth))

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = check_selectors(self.selectors) + _check_settings(self)
        if not any(d.code == "E209" for d in diags):
            diags += [d for slot in self.slots for d in _check_slot(slot)]
        return diags + (self.check_options(ctx.optimizer) if ctx.optimizer else [])

    def check_options(self, info: OptimizerInfo) -> list[Diagnostic]:
        if info.option("lr") is None:
            return [Diagnostic("E204", f"{info.name} has no option 'lr' for layers to scale", self.span,
                               "layer-wise decay scales each layer's learning rate")]
        return []

    @classmethod
    def from_parse(cls, parts: Parts) -> "LayersStatement":
        slots = [_slot(tree, parts) for tree in parts.children if getattr(tree, "data", None) == "slot"]
        options = tuple(c for c in parts.children if isinstance(c, Option))
        return cls(slots=tuple(slots), options=options, span=parts.span)


def _slot(tree, parts: Parts) -> Slot:
    selectors, *joins = tree.children
    span = Span(start=parts.offset + tree.meta.start_pos, end=parts.offset + tree.meta.end_pos)
    return Slot(selectors=tuple(selectors), joins=tuple(joins[0]) if joins else (), span=span)


def _check_settings(stmt: LayersStatement) -> list[Diagnostic]:
    diags, seen = [], set()
    for opt in stmt.options:
        if opt.key in seen:
            diags.append(Diagnostic("E203", f"'{opt.key}' is given twice", opt.span, "give each setting once"))
        seen.add(opt.key)
        diags += _check_setting(opt)
    if "decay" not in seen:
        diags.append(Diagnostic("E234", "layers needs decay=D, the lr factor from one layer to the one below",
                                stmt.span, "e.g. decay=0.75 (BEiT and MAE fine-tune ViT-B with 0.65)"))
    return diags


def _check_setting(opt: Option) -> list[Diagnostic]:
    if opt.key not in LAYER_SETTINGS:
        return [Diagnostic("E234", f"layers has no setting '{opt.key}'", opt.span,
                           did_you_mean(opt.key, LAYER_SETTINGS) or "layers takes: " + ", ".join(LAYER_SETTINGS))]
    span, value = opt.value_span or opt.span, opt.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a relative value" if isinstance(value, Relative) else show_value(value)
        return [Diagnostic("E206", f"'{opt.key}' takes a number, not {what}", span)]
    why = check_bounds(LAYER_SETTINGS[opt.key][0], value)
    return [Diagnostic("E207", f"'{opt.key}' {why}, got {show_value(value)}", span)] if why else []


def capturing(term: Term):
    """The atoms of a term whose wildcards give its modules an order: positive name atoms with wildcards."""
    return [a for a in term.atoms if a.kind == "name" and not a.negated and _wild(a.pattern)]


def _wild(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def term_text(term: Term) -> str:
    """A term as a spec writes it: ``a & !b``."""
    return " & ".join(a.text for a in term.atoms)


def _check_slot(slot: Slot) -> list[Diagnostic]:
    """E233 for wildcards that cannot order layers or join them."""
    diags, counts = [], {}
    for term in slot.selectors + slot.joins:
        atoms = capturing(term)
        if len(atoms) > 1:
            diags.append(_unordered(term, f"'{atoms[0].text}' and '{atoms[1].text}' both have wildcards, so "
                                    "which one orders the layers is ambiguous",
                                    "keep the wildcards in one selector of the intersection"))
        for atom in atoms:
            problems = capture_problems(atom.pattern) if not selector_problems("name", atom.pattern) else []
            diags += [_unordered(atom, why, "name each level with '*': blocks.*, layers.*.blocks.*")
                      for why in problems]
        if atoms and not diags:
            counts[id(term)] = capture_count(atoms[0].pattern)
    if diags:
        return diags
    own = {counts.get(id(t), 0) for t in slot.selectors}
    if len(own) > 1:
        return [_unordered(slot, "the selectors of one slot must capture as many numbers each (they number "
                           "the same layers)", "put selectors with other wildcards in a slot of their own, "
                           "joined by 'then'")]
    return [_unordered(t, f"'{term_text(t)}' captures {_numbers(counts[id(t)])}, but its slot numbers its "
                       f"layers by {_numbers(max(own))}", "a with selector captures the first numbers of the "
                       "layer it joins, e.g. layers.*.downsample joins layers.*.blocks.*")
            for t in slot.joins if counts.get(id(t), 0) > max(own)]


def _numbers(count: int) -> str:
    return {0: "no number", 1: "one number"}.get(count, f"{count} numbers")


def _unordered(node, why: str, hint: str) -> Diagnostic:
    return Diagnostic("E233", f"layers cannot be ordered: {why}", node.span, hint)
