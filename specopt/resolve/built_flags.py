"""The model as its code built it: ``requires_grad`` flags from before specopt changed them.

A compile sets ``requires_grad`` on the model. The next compile on the same
model must start from the model as its code built it, not from what the
previous spec did: a spec without a ``freeze`` line leaves nothing frozen,
and a parameter that the model's own code froze stays "frozen by model". So
the first time specopt changes a tensor's flag it records the flag it found,
and the flag it set. A flag that differs from the one specopt set was changed
by the user's code since, and then counts as built.

Nothing is stored on the user's objects: the records are keyed by ``id`` with a
weak reference that drops the record when the tensor goes away.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterable

# id(tensor) -> (weak reference to it, the flag its code built, the flag specopt set)
_RECORDS: dict[int, tuple[weakref.ref, bool, bool]] = {}


def built_requires_grad(tensor: Any) -> bool:
    """The ``requires_grad`` flag ``tensor`` has as its model's code built it."""
    record = _RECORDS.get(id(tensor))
    if record is None or record[0]() is not tensor:
        return bool(tensor.requires_grad)
    ref, built, set_by_us = record
    return built if tensor.requires_grad == set_by_us else bool(tensor.requires_grad)


def built_flags(tensors: Iterable[Any]) -> list[bool]:
    """:func:`built_requires_grad` of each tensor, in order."""
    if not _RECORDS:
        return [bool(t.requires_grad) for t in tensors]
    return [built_requires_grad(t) for t in tensors]


def set_requires_grad(tensor: Any, flag: bool) -> None:
    """Set ``tensor.requires_grad`` to ``flag``, recording the built flag the first time."""
    built = built_requires_grad(tensor)
    tensor.requires_grad_(flag)
    key = id(tensor)
    _RECORDS[key] = (weakref.ref(tensor, lambda _ref, key=key: _forget(key, _ref)), built, flag)


def _forget(key: int, ref: weakref.ref) -> None:
    record = _RECORDS.get(key)
    if record is not None and record[0] is ref:
        del _RECORDS[key]
