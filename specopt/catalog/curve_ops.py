"""The ops namespaces the closed forms of :mod:`specopt.catalog.schedule_curves` compute with, for one time or many.

``SCALAR`` evaluates at one time with plain floats and :mod:`math`;
:func:`array_ops` evaluates at many times at once over numpy, torch float64
or any namespace with ``cos``, ``floor``, ``log``, ``sqrt``, ``where`` and
``clip``. This module never imports torch or numpy: callers pass them in.

Values past the float range: a schedule that grows (``step every 1 x10``,
``exponential x2``, restarts with ``decay x2``) would pass the largest float,
where Python's ``10.0 ** 400`` raises ``OverflowError``. Here such a power is
``inf``, never an error, and so is a level built from one; a param group's
value past the float range is the largest float, ``MAX`` (about 1.8e308),
never ``inf`` or ``nan``, so JSON can hold it (:func:`specopt.catalog.schedule_curves.group_values`).
A group whose base is 0 stays at 0. Compiling refuses a schedule that gets
there within a run of known length (E223); a run of unknown length holds
``MAX`` from then on, and the scheduler warns once (W316).
"""

from __future__ import annotations

import math
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

MAX = sys.float_info.max
"""The largest float: the value of a schedule past the float range."""


def cap(x: float) -> float:
    """``x``, or ``MAX`` where it is past the float range (``inf``, or the ``nan`` of ``inf × 0``)."""
    return x if x <= MAX else MAX


class _ScalarOps:
    """The ops namespace for one time: floats and :mod:`math`."""

    cos = staticmethod(math.cos)
    log = staticmethod(math.log)
    sqrt = staticmethod(math.sqrt)
    cap = staticmethod(cap)

    @staticmethod
    def floor(x: float) -> float:
        return float(math.floor(x))

    @staticmethod
    def where(cond: bool, x: Any, y: Any) -> Any:
        return x if cond else y

    @staticmethod
    def clip(x: float, lo: float, hi: float | None) -> float:
        return max(x, lo) if hi is None else min(max(x, lo), hi)

    @staticmethod
    def power(base: float, exponent: float) -> float:
        """``base ** exponent``, ``inf`` where that is past the float range."""
        try:
            return base ** exponent
        except OverflowError:
            return math.inf


SCALAR = _ScalarOps()


class _ArrayOps:
    """The ops namespace over arrays of times, from an array namespace (numpy, torch, ...)."""

    def __init__(self, xp: Any, like: Any):
        self.xp, self.like, self._zero = xp, like, None
        self.cos, self.log, self.sqrt, self.floor = xp.cos, xp.log, xp.sqrt, xp.floor

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            x = self.full(x)  # one array fixes the dtype (torch would make two numbers float32)
        return self.xp.where(cond, x, y)

    def clip(self, x: Any, lo: float, hi: float | None) -> Any:
        return self.xp.clip(x, lo, hi)

    def full(self, x: Any) -> Any:
        """``x`` as an array shaped like the times (a float becomes a constant array of their dtype)."""
        if not isinstance(x, (int, float)):
            return x
        if self._zero is None:
            self._zero = self.like * 0.0
        return self._zero + x

    def cap(self, x: Any) -> Any:
        """``x`` with every value past the float range (``inf``, ``nan``) replaced by ``MAX``."""
        if isinstance(x, (int, float)):
            return cap(x)
        return self.xp.where(x <= MAX, x, self.full(MAX))

    def power(self, base: float, exponent: Any) -> Any:
        """``base ** exponent`` elementwise, ``inf`` where that is past the float range."""
        if isinstance(exponent, (int, float)):
            return SCALAR.power(base, exponent)
        with quiet_overflow():
            return base ** exponent


@contextmanager
def quiet_overflow() -> Iterator[None]:
    """Silence numpy's warnings about values that pass the float range (``inf``, and ``nan`` from it).

    Past the float range is meant there: :meth:`_ArrayOps.cap` makes it ``MAX``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def array_ops(xp: Any, like: Any) -> _ArrayOps:
    """The ops namespace for arrays of namespace ``xp`` shaped and typed like ``like``."""
    return _ArrayOps(xp, like)
