"""Several torch optimizers stepped, zeroed, scheduled, clipped and checkpointed as one.

A spec with ``optimizer muon for ...`` next to ``optimizer adamw ...`` builds
one torch optimizer per statement. :class:`CombinedOptimizer` holds them and is
itself a ``torch.optim.Optimizer``, so everything that expects one optimizer
(the clip hook, the scheduler, GradScaler, Lightning, the Hugging Face
Trainer, Accelerate) works unchanged:

* ``param_groups`` is the list of every part's groups, the same dict objects,
  so a scheduler that writes ``group["lr"]`` writes into the part; it is read
  from the parts each time, because loading a state dict gives a part new
  group dicts (the scheduler and lr warmups must write into those);
* ``step(closure)`` runs the closure once, then steps every part; step hooks
  (the clip hook) run once around the whole step, so one total norm is clipped
  over every parameter;
* ``state_dict()`` / ``load_state_dict()`` use torch's format, numbering the
  parameters across the parts in order, and ``state`` reads each part's state.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Iterator, Sequence

import torch


class CombinedOptimizer(torch.optim.Optimizer):
    """The optimizers ``parts``, in order, as one optimizer (see the module's docstring)."""

    def __init__(self, parts: Sequence[torch.optim.Optimizer]):
        params = [p for part in parts for g in part.param_groups for p in g["params"]]
        super().__init__([{"params": params}], {})  # torch's hooks and bookkeeping; the groups come next
        self.parts = list(parts)
        self.state = _PartsState(self.parts)  # type: ignore[assignment]

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        """Every part's param groups, in order: the dicts each part steps with now."""
        parts = self.__dict__.get("parts")
        if parts is None:  # torch's own constructor, before the parts are set
            return self.__dict__.setdefault("_constructor_groups", [])
        return [g for part in parts for g in part.param_groups]

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        if "parts" in self.__dict__:
            raise TypeError("the param groups of combined optimizers are their parts' (compiled.optimizers[k])")
        self.__dict__["_constructor_groups"] = groups

    def __repr__(self) -> str:
        return "CombinedOptimizer(" + ", ".join(type(p).__name__ for p in self.parts) + ")"

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Run ``closure`` (with gradients enabled) once, then step every part; return its loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero (or drop) the gradients of every part."""
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Not possible here: a new group must go to one of the parts (``compiled.optimizers``)."""
        if "parts" not in self.__dict__:  # torch's own constructor, before the parts are set
            return super().add_param_group(param_group)
        raise TypeError("add a param group to one of the combined optimizers (compiled.optimizers[k])")

    def state_dict(self) -> dict[str, Any]:
        """torch's format, with the parameters numbered across the parts in order."""
        state, groups, offset = {}, [], 0
        for part in self.parts:
            saved = part.state_dict()
            state.update({index + offset: value for index, value in saved["state"].items()})
            groups += [{**g, "params": [index + offset for index in g["params"]]} for g in saved["param_groups"]]
            offset += sum(len(g["params"]) for g in part.param_groups)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Split a state dict in torch's format over the parts and load each."""
        groups, offset = list(state_dict["param_groups"]), 0
        for part in self.parts:
            count = sum(len(g["params"]) for g in part.param_groups)
            mine, groups = groups[:len(part.param_groups)], groups[len(part.param_groups):]
            state = {index - offset: value for index, value in state_dict["state"].items()
                     if offset <= index < offset + count}
            part.load_state_dict({"state": state, "param_groups": [
                {**g, "params": [index - offset for index in g["params"]]} for g in mine]})
            offset += count


class _PartsState(MutableMapping):
    """Per-parameter optimizer state, read from and written to the part that holds the parameter."""

    def __init__(self, parts: Sequence[torch.optim.Optimizer]):
        self._parts = parts
        self._owner = {id(p): part for part in parts for g in part.param_groups for p in g["params"]}

    def _part(self, param) -> torch.optim.Optimizer:
        try:
            return self._owner[id(param)]
        except KeyError:
            raise KeyError(param) from None

    def __getitem__(self, param):
        return self._part(param).state[param]

    def __setitem__(self, param, value) -> None:
        self._part(param).state[param] = value

    def __delitem__(self, param) -> None:
        del self._part(param).state[param]

    def __iter__(self) -> Iterator:
        return (p for part in self._parts for p in part.state)

    def __len__(self) -> int:
        return sum(len(part.state) for part in self._parts)
