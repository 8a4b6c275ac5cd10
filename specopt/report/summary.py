"""Per-layer model summaries (torchinfo's table), taken after a spec has set ``requires_grad``.

Run after compiling, the table's trainable and non-trainable counts show the
spec's freezes. torchinfo (and numpy, which it imports without declaring it)
is the optional ``summary`` extra and is imported only when a summary is asked for.
"""

from __future__ import annotations

import re
from typing import Any

INSTALL_HINT = "pip install 'specopt[summary]'"
_DIM = re.compile(r"[0-9]+")


class SummaryError(Exception):
    """The summary could not be made: torchinfo is missing, or the forward pass failed."""


def parse_input_size(text: str) -> tuple[int, ...]:
    """Parse ``"3,224,224"`` into ``(1, 3, 224, 224)``: batch dimension 1 is prepended.

    Raises ``ValueError`` naming the problem for anything but comma-separated
    positive whole numbers.
    """
    parts = [part.strip() for part in text.split(",")]
    bad = [part for part in parts if not _DIM.fullmatch(part)]
    if bad:
        shown = ", ".join(f"'{part}'" for part in bad)
        raise ValueError(f"'{text}' is not a comma-separated list of whole numbers such as 3,224,224 "
                         f"(bad: {shown})")
    dims = tuple(int(part) for part in parts)
    if 0 in dims:
        raise ValueError(f"'{text}' has a zero dimension; every dimension must be at least 1")
    return (1,) + dims


def require_torchinfo() -> Any:
    """Import and return torchinfo; :class:`SummaryError` saying how to install it when it is missing."""
    try:
        import torchinfo
    except ImportError as exc:
        raise SummaryError(f"the model summary needs torchinfo and numpy ({exc}): {INSTALL_HINT}") from None
    return torchinfo


def summarize(model, input_size: tuple[int, ...] | None = None, device: str = "cpu") -> str:
    """torchinfo's per-layer table of ``model``, with trainable and non-trainable counts.

    Without ``input_size`` the table lists parameters only; with it (batch
    dimension included, see :func:`parse_input_size`) a forward pass on
    ``device`` adds output shapes. torchinfo moves the model to ``device``. A
    failing forward pass raises :class:`SummaryError` naming the input size.
    """
    torchinfo = require_torchinfo()
    if input_size is None:
        return str(torchinfo.summary(model, verbose=0))
    try:
        stats = torchinfo.summary(model, input_size=input_size, device=device, verbose=0)
    except Exception as exc:  # the forward pass is the model's own code: any failure is this input's
        cause = exc.__cause__ or exc
        shape = "(" + ", ".join(map(str, input_size)) + ")"
        raise SummaryError(f"the forward pass failed on an input of size {shape}: "
                           f"{type(cause).__name__}: {cause}") from None
    return str(stats)
