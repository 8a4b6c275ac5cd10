"""Statements about the training loop around the optimizer: ``accumulate``, ``ema`` and ``device``.

    accumulate 4
    ema 0.9999 warmup=true every=4 buffers=false device=cpu
    device cuda:1

They play the role ``training``: the step driver (:mod:`specopt.runtime.driver`), the
averaged copy of the model (:mod:`specopt.runtime.ema`) and where the model lives
(:mod:`specopt.runtime.devices`) read them. Like every statement kind, each class
declares its form, parsing and checks; none needs torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import StrictFloat, StrictInt

from ..diagnostics import Diagnostic, Span, did_you_mean
from .nodes import Option, show_value
from ..catalog.registry import check_bounds
from .statements import CheckContext, Parts, Statement

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hpu", "npu", "mtia", "xla")
MAX_ACCUMULATE = 1_000_000_000  # far past any real run; a loss divided by more than 2**63 overflows torch
MAX_DEVICE_INDEX = 127  # torch numbers a type's devices with a signed byte


class AccumulateStatement(Statement):
    """``accumulate N``: one optimizer step every N micro-batches; each loss is divided by N."""

    keyword: ClassVar[str] = "accumulate"
    role: ClassVar[str] = "training"
    syntax: ClassVar[str] = "accumulate N"
    summary: ClassVar[str] = ("Accumulate gradients over N micro-batches per optimizer step "
                              "(compiled.train_step divides each loss by N).")
    example: ClassVar[str] = "accumulate 4"
    unique: ClassVar[bool] = True

    kind: Literal["accumulate"] = "accumulate"
    count: StrictInt

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        if self.count < 1:
            return [Diagnostic("E207", f"accumulate needs at least 1 micro-batch per step, got {self.count}",
                               self.span)]
        if self.count > MAX_ACCUMULATE:
            shown = f"{self.count:,}" if self.count < 10 ** 15 else f"{self.count:.3g}"
            return [Diagnostic("E207", f"accumulate takes at most {MAX_ACCUMULATE:,} micro-batches per step, got "
                               f"{shown}", self.span, "the optimizer steps once every N micro-batches")]
        return []

    @classmethod
    def from_parse(cls, parts: Parts) -> "AccumulateStatement":
        return cls(count=parts.whole(parts.children[0]), span=parts.span)


@dataclass(frozen=True)
class EmaSetting:
    """One setting of the ``ema`` statement: its value kind, default, range and meaning."""

    name: str
    kind: str
    default: Any
    bounds: str
    summary: str


EMA_SETTINGS: dict[str, EmaSetting] = {s.name: s for s in (
    EmaSetting("warmup", "bool", False, "", "warm the decay up as timm's ModelEmaV3: "
               "min(decay, 1 - (1 + (t - 1) / gamma) ^ -power) after optimizer step t"),
    EmaSetting("power", "number", 2 / 3, ">0", "the warmup's power (timm's warmup_power)"),
    EmaSetting("gamma", "number", 1.0, ">0", "the warmup's time scale in steps (timm's warmup_gamma)"),
    EmaSetting("every", "int", 1, ">=1", "update the average every N optimizer steps"),
    EmaSetting("buffers", "bool", True, "", "average floating-point buffers (running statistics) too; "
               "false copies them"),
    EmaSetting("device", "device", None, "", "where the averaged copy lives (default: with the model)"),
)}


class EmaStatement(Statement):
    """``ema DECAY [key=value ...]``: keep an exponential moving average of the model's weights."""

    keyword: ClassVar[str] = "ema"
    role: ClassVar[str] = "training"
    syntax: ClassVar[str] = "ema DECAY [warmup=true] [power=P] [gamma=G] [every=N] [buffers=false] [device=D]"
    summary: ClassVar[str] = ("Keep an exponential moving average of the weights, updated after "
                              "optimizer steps (compiled.ema).")
    example: ClassVar[str] = "ema 0.9999 warmup=true"
    unique: ClassVar[bool] = True

    kind: Literal["ema"] = "ema"
    decay: StrictFloat
    options: tuple[Option, ...] = ()

    def setting(self, name: str) -> Any:
        """The value of a setting: as written, or its default."""
        found = next((o for o in self.options if o.key == name), None)
        return EMA_SETTINGS[name].default if found is None else found.value

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = []
        why = check_bounds("[0,1)", self.decay)
        if why:
            diags.append(Diagnostic("E207", f"the ema decay {why}, got {self.decay:g}", self.span,
                                    "typical decays are 0.999 to 0.9999"))
        seen: set[str] = set()
        for opt in self.options:
            if opt.key in seen:
                diags.append(Diagnostic("E203", f"'{opt.key}' is given twice", opt.span, "give each setting once"))
            seen.add(opt.key)
            diags += _check_setting(opt)
        return diags

    @classmethod
    def from_parse(cls, parts: Parts) -> "EmaStatement":
        decay, *settings = parts.children
        options = tuple(_option(tree, parts) for tree in settings)
        return cls(decay=float(str(decay)), options=options, span=parts.span)


def _option(tree, parts: Parts) -> Option:
    key, value = tree.children
    text = str(value)
    if value.type == "NUMBER":
        parsed: Any = float(text) if any(c in text for c in ".eE") else parts.whole(value)
    else:
        parsed = {"true": True, "false": False}.get(text.lower(), text)
    return Option(key=str(key), value=parsed, span=parts.span_of(key), value_span=parts.span_of(value))


def _check_setting(opt: Option) -> list[Diagnostic]:
    info = EMA_SETTINGS.get(opt.key)
    if info is None:
        return [Diagnostic("E231", f"ema has no setting '{opt.key}'", opt.span,
                           did_you_mean(opt.key, EMA_SETTINGS) or "ema takes: " + ", ".join(EMA_SETTINGS))]
    span = opt.value_span or opt.span
    value = opt.value
    if info.kind == "device":
        return check_device_name(value, span, allow_auto=False)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {"bool": isinstance(value, bool), "number": number,
            "int": number and float(value).is_integer()}[info.kind]
    if not fits:
        return [Diagnostic("E206", f"'{opt.key}' takes {_KINDS[info.kind]}, not {show_value(value)}", span)]
    why = check_bounds(info.bounds, value) if info.bounds else None
    return [Diagnostic("E207", f"'{opt.key}' {why}, got {show_value(value)}", span)] if why else []


_KINDS = {"bool": "true or false", "number": "a number", "int": "a whole number"}


class DeviceStatement(Statement):
    """``device cpu|cuda|cuda:N|mps|...|auto``: move the model there before the optimizer is built."""

    keyword: ClassVar[str] = "device"
    role: ClassVar[str] = "training"
    syntax: ClassVar[str] = "device cpu|cuda[:N]|mps|xpu[:N]|auto"
    summary: ClassVar[str] = ("Move the model to this device before building the optimizer "
                              "(auto: the accelerator if there is one, else cpu).")
    example: ClassVar[str] = "device cuda:1"
    unique: ClassVar[bool] = True

    kind: Literal["device"] = "device"
    device: str

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        return check_device_name(self.device, self.span, allow_auto=True)

    @classmethod
    def from_parse(cls, parts: Parts) -> "DeviceStatement":
        return cls(device=str(parts.children[0]), span=parts.span)


def check_device_name(value: Any, span: Span | None, allow_auto: bool) -> list[Diagnostic]:
    """E232 unless ``value`` names a device: a device type, optionally ``:index`` (or ``auto``);
    E235 for an index no device of that type can have."""
    if allow_auto and value == "auto":
        return []
    text = value if isinstance(value, str) else show_value(value)
    kind, colon, index = text.partition(":")
    if kind in DEVICE_TYPES and (not colon or _INDEX.fullmatch(index)):
        return _check_index(text if len(text) <= 24 else text[:21] + "...", kind, index, span) if colon else []
    if kind in DEVICE_TYPES and index.isascii() and index.isdigit():
        return [Diagnostic("E232", f"'{text}' is not a device", span, f"write {kind}:{index.lstrip('0') or 0}")]
    names = DEVICE_TYPES + (("auto",) if allow_auto else ())
    meant = _DEVICE_SYNONYMS.get(kind.lower())
    hint = f"did you mean '{meant}'?" if meant else did_you_mean(kind, names)
    return [Diagnostic("E232", f"'{text}' is not a device", span,
                       hint or "devices: " + ", ".join(names) + ", with :N for an index")]


_INDEX = re.compile(r"0|[1-9][0-9]*")


def _check_index(text: str, kind: str, index: str, span: Span | None) -> list[Diagnostic]:
    if kind == "cpu" and index != "0":
        return [Diagnostic("E235", f"there is no device {text}: the CPU is one device, cpu (or cpu:0)", span,
                           "write cpu")]
    if len(index) > len(str(MAX_DEVICE_INDEX)) or int(index) > MAX_DEVICE_INDEX:
        return [Diagnostic("E235", f"there is no device {text}: torch numbers the devices of a type 0 to "
                           f"{MAX_DEVICE_INDEX}", span, f"write {kind} for the current one, or its number")]
    return []


_DEVICE_SYNONYMS = {"gpu": "cuda", "nvidia": "cuda", "rocm": "cuda", "metal": "mps", "tpu": "xla"}
