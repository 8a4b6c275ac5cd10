"""Optimizer checkpoints through ``torch.distributed.checkpoint`` (DCP), restored by name.

    specopt.dcp.save(compiled, "ckpt/step-1000")                  # every rank calls it
    result = specopt.dcp.load(compiled, "ckpt/step-1000")         # into this spec, by name

Under FSDP2 each rank holds a shard of every parameter and of its optimizer
state (DTensors). :func:`state_dict` lays the state out the way
``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` does
(``{"state": {name: {...}}, "param_groups": [...]}``, keyed by the parameter's
fully qualified name, wrapper segments left out), so that DCP writes each
shard once and reads it back resharded, and so that torch's
``set_optimizer_state_dict`` can load it too. Beside it, under ``"specopt"``,
lies the rest of ``compiled.state_dict()`` as one serialised record: the
optimizer's name, every parameter's shape and dtype, the spec and its hash,
the schedule's and the loop's position, and the layout of each state tensor.

:func:`load` reads that record first, allocates a target for the saved state
of each parameter this spec trains (shaped like the parameter: a DTensor with
its sharding under FSDP2), lets DCP fill it, and then hands everything to
``compiled.load_state_dict``. A changed spec is therefore restored exactly as
a single-process checkpoint is: by name, a parameter this spec freezes is
skipped, each group's hyperparameters come from this spec, and the same
E501-E505 checks and the ``strict`` flag apply. torch's
``set_optimizer_state_dict`` is not used for that last step because it
restores the saved param groups, hyperparameters included.

Not supported here: an EMA (its averaged weights are a model of their own;
save ``compiled.ema`` with DCP as a model) and saving in the middle of an
accumulation (save after the step).
"""

from __future__ import annotations

import io
from typing import Any

import torch

from .checkpoint_checks import dcp_record_diagnostics
from .compiled import CheckpointError, Compiled, LoadResult
from ..diagnostics import Diagnostic

RECORD = "specopt"


def state_dict(compiled: Compiled) -> dict[str, Any]:
    """This rank's part of the checkpoint, for ``torch.distributed.checkpoint.save`` under a key of yours."""
    full = compiled.state_dict()
    trained = _trained(compiled)
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    layout: dict[str, dict[str, Any]] = {}
    for name, entry in full.pop("state").items():
        tensors[name] = {k: v for k, v in entry.items() if isinstance(v, torch.Tensor)}
        layout[name] = {k: _layout(v, trained[name]) for k, v in entry.items()}
    _check_plain(full)
    full["layout"] = layout
    buffer = io.BytesIO()
    torch.save(full, buffer)
    return {"state": tensors, "param_groups": _param_groups(compiled.optimizer), RECORD: buffer.getvalue()}


def save(compiled: Compiled, checkpoint_id, key: str = "optimizer", **options) -> None:
    """``torch.distributed.checkpoint.save({key: state_dict(compiled)}, checkpoint_id=..., **options)``."""
    import torch.distributed.checkpoint as dcp

    dcp.save({key: state_dict(compiled)}, checkpoint_id=checkpoint_id, **options)


def load(compiled: Compiled, checkpoint_id, key: str = "optimizer", strict: bool = True,
         **options) -> LoadResult:
    """Restore what :func:`save` wrote into ``compiled``, by name; every rank calls it.

    ``strict`` and the result are those of :meth:`Compiled.load_state_dict`;
    ``options`` go to ``torch.distributed.checkpoint.load``.
    """
    import torch.distributed.checkpoint as dcp

    record = _read_record(checkpoint_id, key, compiled, options)
    problems = dcp_record_diagnostics(record)  # before any tensor is read; the rest load_state_dict checks
    if problems:
        raise CheckpointError(problems, compiled.source)
    layout = record.pop("layout")
    targets, values = _targets(compiled, record, layout)
    if targets:
        dcp.load({key: {"state": targets}}, checkpoint_id=checkpoint_id, **options)
    state = {name: {**targets.get(name, {}), **values.get(name, {})} for name in layout}
    return compiled.load_state_dict({**record, "state": state}, strict=strict)


def _trained(compiled: Compiled) -> dict[str, torch.Tensor]:
    return {n: p for g in compiled.optimizer.param_groups for n, p in zip(g["param_names"], g["params"])}


def _layout(value: Any, param: torch.Tensor) -> dict[str, Any]:
    """How to allocate a saved state value: shaped like its parameter, a tensor of its own, or a plain value."""
    if not isinstance(value, torch.Tensor):
        return {"value": value}
    like = tuple(value.shape) == tuple(param.shape) and type(value) is type(param.data)
    return {"like_param": like, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}


def _param_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """The param groups as ``get_optimizer_state_dict`` keys them: parameters by name."""
    return [{**{k: v for k, v in g.items() if k != "params"}, "params": list(g["param_names"])}
            for g in optimizer.param_groups]


def _check_plain(record: dict[str, Any]) -> None:
    """Refuse what the record cannot hold: tensors (an EMA, gradients of an unfinished accumulation)."""
    training = record.get("training") or {}
    if training.get("ema") is not None:
        raise ValueError("specopt.dcp cannot save the EMA of an 'ema' statement: its averaged weights are "
                         "a model of their own; save compiled.ema with torch.distributed.checkpoint as a model, "
                         "or use compiled.state_dict() without DCP")
    if "grads" in training:
        raise ValueError("specopt.dcp saves between optimizer steps: this run is in the middle of an "
                         "accumulation; save after the step")


def _read_record(checkpoint_id, key: str, compiled: Compiled, options: dict) -> dict[str, Any]:
    """The record :func:`state_dict` wrote; E501 when the checkpoint holds none under ``key``."""
    import torch.distributed.checkpoint as dcp

    reader = options.get("storage_reader") or dcp.FileSystemReader(checkpoint_id)
    if f"{key}.{RECORD}" not in reader.read_metadata().state_dict_metadata:
        raise CheckpointError([Diagnostic("E501", f"not a specopt checkpoint: the distributed checkpoint at "
                                          f"{checkpoint_id} has no '{key}.{RECORD}' record", None,
                                          "save it with specopt.dcp.save, and load it with the key it was "
                                          "saved under (key=...)")], compiled.source)
    target = {key: {RECORD: b""}}
    dcp.load(target, checkpoint_id=checkpoint_id, **options)
    return torch.load(io.BytesIO(target[key][RECORD]), weights_only=True)


def _targets(compiled: Compiled, record: dict, layout: dict) -> tuple[dict, dict]:
    """Tensors for DCP to fill, for the saved parameters this spec trains whose shape and dtype still
    fit; and each saved parameter's plain values. A parameter that no longer fits gets no tensors, so
    that ``load_state_dict`` reports it (E503) from the record."""
    trained = _trained(compiled)
    canonical = {n: p.info.name for p in compiled.resolution.params for n in p.info.names}
    records = record.get("params", {})
    targets: dict[str, dict[str, torch.Tensor]] = {}
    values: dict[str, dict[str, Any]] = {}
    for name, entries in layout.items():
        values[name] = {k: e["value"] for k, e in entries.items() if "value" in e}
        param = trained.get(canonical.get(name, name))
        if param is None or not _fits(records.get(name), param):
            continue
        targets[name] = {k: _allocate(e, param) for k, e in entries.items() if "value" not in e}
    return {n: t for n, t in targets.items() if t}, values


def _fits(recorded: dict | None, param: torch.Tensor) -> bool:
    return recorded is None or (list(recorded["shape"]) == list(param.shape)
                                and recorded["dtype"] == str(param.dtype).removeprefix("torch."))


def _allocate(entry: dict[str, Any], param: torch.Tensor) -> torch.Tensor:
    dtype = getattr(torch, entry["dtype"])
    if entry["like_param"]:
        return torch.empty_like(param.detach(), dtype=dtype)
    return torch.empty(entry["shape"], dtype=dtype)
