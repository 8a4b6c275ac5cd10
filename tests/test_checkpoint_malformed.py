"""A malformed checkpoint is a coded error before anything is loaded: the run it was loaded into is untouched.

Each case of issue 15 item 11 is a checkpoint that ``compiled.state_dict()``
wrote in the middle of a run of the step driver (AMP scaler, EMA, an
unfinished accumulation, an lr warmup in progress), then damaged in one
place. Loading it into a run of its own must raise a ``SpecError`` with a
code and leave the model, the optimizer, the scheduler, the EMA, the scaler
and the loop's counts bit for bit as they were: the run then continues
exactly as a twin that never tried to load it.
"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch

import specopt
import specopt.runtime.dcp
from loops import loss_of, make_net
from specopt.runtime.compiled import CheckpointError, CheckpointWarning

SPEC = """
optimizer adamw lr=1e-2
freeze backbone
unfreeze backbone.block1 at step 2 warmup 4 steps
accumulate 2
step every 3 steps x0.5
ema 0.9
"""
SAVED_AT = 7    # micro-batches before saving: 3 optimizer steps, one micro-batch of the 4th accumulated
TARGET_AT = 5   # micro-batches the run that loads has done: 2 steps, the warmup started, one accumulated
THEN = 11       # the run continues to here after the rejected load


def _compile(seed: int):
    model = make_net(seed)
    return model, specopt.compile(SPEC, model, scaler=torch.amp.GradScaler("cpu"))


def _run(model, compiled, start: int, stop: int) -> None:
    for k in range(start, stop):
        compiled.train_step(loss_of(model, k))


@pytest.fixture(scope="module")
def saved() -> dict:
    model, compiled = _compile(seed=0)
    _run(model, compiled, 0, SAVED_AT)
    state = compiled.state_dict()
    assert state["training"]["grads"] and state["training"]["ramps"] and state["training"]["ema"]
    return state


def _target():
    model, compiled = _compile(seed=1)
    _run(model, compiled, 0, TARGET_AT)
    return model, compiled


@pytest.fixture(scope="module")
def twin() -> dict:
    """The run that loads nothing, continued to THEN."""
    model, compiled = _target()
    _run(model, compiled, TARGET_AT, THEN)
    return _snapshot(model, compiled)


def _snapshot(model, compiled) -> dict:
    """Everything a load could change, copied: weights, flags, gradients, modes, optimizer, schedule, EMA, loop."""
    driver = compiled.driver
    return copy.deepcopy({
        "model": model.state_dict(), "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()], "modes": [m.training for m in model.modules()],
        "optimizer": compiled.optimizer.state_dict(),
        "scheduler": (compiled.scheduler.state_dict(), compiled.scheduler.get_last_lr()),
        "ema": (compiled.ema.state_dict(), driver.ema.updates),
        "scaler": driver.scaler.state_dict(),
        "loop": (driver.steps, driver.epochs, driver.micro, driver.board.fired,
                 {g: (r.start, r.length, r.scheduled) for g, r in driver.ramps.active.items()}),
    })


def _same(a, b, where: str = "") -> None:
    """Bit for bit: tensors by ``torch.equal`` and dtype, everything else by ``==``, through dicts and lists."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _edit(path: str, value=None, delete: bool = False):
    """An edit of the checkpoint: set (or delete) the entry at a path of keys separated by '/'."""
    def apply(state: dict) -> None:
        *parents, last = path.split("/")
        for key in parents:
            state = state[key]
        if delete:
            del state[last]
        else:
            state[last] = value(state[last]) if callable(value) else value
    return apply


# the cases of the issue, then others of the same kinds; each with the code it is reported with
CASES = {
    "training None": ("E511", _edit("training", None)),
    "training a string": ("E511", _edit("training", "step 3")),
    "requires_grad a list of flags": ("E511", _edit("training/requires_grad", lambda f: list(f.values()))),
    "a gradient of the wrong shape": ("E512", _edit("training/grads/head.weight", lambda g: g.flatten())),
    "a gradient of the wrong dtype": ("E512", _edit("training/grads/head.weight", lambda g: g.double())),
    "a ramp naming a missing group": ("E511", _edit("training/ramps", lambda r: {5: next(iter(r.values()))})),
    "an EMA without its weights": ("E513", _edit("training/ema/averaged", delete=True)),
    "an EMA missing one weight": ("E513", _edit("training/ema/averaged/module.head.weight", delete=True)),
    "a schedule without fingerprint": ("E510", _edit("scheduler/fingerprint", delete=True)),
    "optimizer state a string": ("E509", _edit("state/head.weight/exp_avg", "zeros")),
    "optimizer state without exp_avg": ("E509", _edit("state/head.weight/exp_avg", delete=True)),
    "a spec record that is not one": ("E514", _edit("spec", "optimizer adamw")),
    "a spec record without its hash": ("E514", _edit("spec/hash", delete=True)),
    # more of the same kinds
    "a step count that is a string": ("E511", _edit("training/steps", "3")),
    "fired statements not pairs": ("E511", _edit("training/fired", [2])),
    "an empty GradScaler state": ("E511", _edit("training/scaler", {})),
    "a warmup of length 0": ("E511", _edit("training/ramps", lambda r: {g: {**v, "length": 0.0}
                                                                         for g, v in r.items()})),
    "a warmup that starts in the future": ("E511", _edit("training/ramps", lambda r: {g: {**v, "start": 99}
                                                                                       for g, v in r.items()})),
    "gradients not a dict": ("E512", _edit("training/grads", [1.0])),
    "an EMA weight of another shape": ("E513", _edit("training/ema/averaged/module.head.bias", lambda t: t[:2])),
    "plateau counters not numbers": ("E510", _edit("scheduler/plateau", {"lr": {"best": "low"}})),
    "optimizer step a string": ("E509", _edit("state/head.bias/step", "3")),
    "exp_avg a single number": ("E509", _edit("state/head.bias/exp_avg", lambda t: t.sum())),
}


@pytest.mark.parametrize("code, edit", CASES.values(), ids=CASES.keys())
def test_a_malformed_checkpoint_is_a_coded_error_and_changes_nothing(code, edit, saved, twin):
    state = copy.deepcopy(saved)
    edit(state)
    model, compiled = _target()
    before = _snapshot(model, compiled)
    with pytest.raises(specopt.SpecError) as exc:
        compiled.load_state_dict(state)
    assert [d.code for d in exc.value.diagnostics] == [code], exc.value.render()
    assert isinstance(exc.value, CheckpointError)
    _same(_snapshot(model, compiled), before)
    _run(model, compiled, TARGET_AT, THEN)  # and nothing hidden changed: the run goes on as its twin's
    _same(_snapshot(model, compiled), twin)


def test_the_intact_checkpoint_loads_and_continues(saved):
    model, compiled = _target()
    compiled.load_state_dict(copy.deepcopy(saved))
    assert (compiled.steps, compiled.driver.micro) == (3, 1)
    _run(model, compiled, SAVED_AT, THEN)


def test_every_problem_is_reported_at_once(saved):
    state = copy.deepcopy(saved)
    for _, edit in (CASES["training None"], CASES["optimizer state without exp_avg"],
                    CASES["a schedule without fingerprint"], CASES["a spec record without its hash"]):
        edit(state)
    state["params"]["head.bias"]["shape"] = [7]
    with pytest.raises(CheckpointError) as exc:
        _target()[1].load_state_dict(state)
    assert sorted(d.code for d in exc.value.diagnostics) == ["E503", "E509", "E510", "E511", "E514"]


def test_a_statement_that_fired_under_another_spec_is_refused_before_anything_is_loaded(saved, twin):
    """The non-atomic case of the issue: E501 for the training state came after the optimizer state was loaded."""
    state = copy.deepcopy(saved)
    state["training"]["fired"] = [[0, "optimizer"]]
    model, compiled = _target()
    before = _snapshot(model, compiled)
    with pytest.raises(CheckpointError, match=r"statements differ.*\[E501\]"):
        compiled.load_state_dict(state, strict=False)
    _same(_snapshot(model, compiled), before)
    _run(model, compiled, TARGET_AT, THEN)
    _same(_snapshot(model, compiled), twin)


def test_a_non_strict_load_warns_about_a_malformed_spec_record_and_loads(saved):
    state = copy.deepcopy(saved)
    state["spec"] = None
    model, compiled = _target()
    with pytest.warns(CheckpointWarning, match=r"'spec' record is None, so which spec it was saved under cannot "):
        result = compiled.load_state_dict(state, strict=False)
    assert result.complete and compiled.steps == 3


def test_a_spec_record_that_is_absent_is_still_not_compared(saved):
    state = copy.deepcopy(saved)
    del state["spec"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _target()[1].load_state_dict(state).complete


def test_another_optimizers_kind_of_state_is_judged_by_that_optimizer():
    """SGD with momentum keeps momentum_buffer; state without it (saved without momentum) is refused, by name."""
    model = make_net()
    first = specopt.compile("optimizer sgd lr=0.1 momentum=0.9", model)
    _run(model, first, 0, 2)
    state = first.state_dict()
    state["state"]["head.weight"] = {"momentum_buffer": "none"}
    target = specopt.compile("optimizer sgd lr=0.1 momentum=0.9", make_net())
    with pytest.raises(CheckpointError, match=r"'head.weight' holds a str for 'momentum_buffer', where sgd keeps "
                                              r"a tensor of the parameter's shape \[3, 8\] \[E509\]"):
        target.load_state_dict(state)
    assert target.optimizer.state_dict()["state"] == {}


def test_state_an_optimizer_tolerates_is_not_refused():
    """SGD starts a momentum buffer saved as None afresh; L-BFGS keeps only what its last step reached."""
    model = make_net()
    first = specopt.compile("optimizer sgd lr=0.1 momentum=0.9", model)
    _run(model, first, 0, 2)
    state = first.state_dict()
    state["state"]["head.weight"] = {"momentum_buffer": None}
    assert specopt.compile("optimizer sgd lr=0.1 momentum=0.9", make_net()).load_state_dict(state).complete
    lbfgs = specopt.compile("optimizer lbfgs", make_net())
    saved = lbfgs.state_dict()
    saved["state"] = {"backbone.block0.0.weight": {"func_evals": 1, "n_iter": 0}}  # a step that met its tolerance
    assert specopt.compile("optimizer lbfgs", make_net()).load_state_dict(saved, strict=False).restored


# --- specopt.runtime.dcp ---------------------------------------------------------------------------------

DCP_SPEC = "optimizer adamw lr=1e-2\nfreeze head\nunfreeze head at step 1 warmup 3 steps\nstep every 2 steps x0.5\n"


def _dcp_saved(tmp_path, edit_record):
    """A DCP checkpoint whose specopt record ``edit_record`` changed (it returns the new record)."""
    import torch.distributed.checkpoint as dcp

    model = make_net()
    compiled = specopt.compile(DCP_SPEC, model)
    _run(model, compiled, 0, 3)
    state = specopt.runtime.dcp.state_dict(compiled)
    record = torch.load(io.BytesIO(state["specopt"]), weights_only=True)
    buffer = io.BytesIO()
    torch.save(edit_record(record), buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"optimizer": {**state, "specopt": buffer.getvalue()}}, checkpoint_id=tmp_path)
    return tmp_path


DCP_CASES = {
    "a record that is not a dict": ("E501", lambda r: ["adamw"]),
    "a layout that is not a dict": ("E501", lambda r: {**r, "layout": None}),
    "a layout naming no torch dtype": ("E501", lambda r: {**r, "layout": {n: {k: {**e, "dtype": "float99"}
                                                                              if "dtype" in e else e
                                                                              for k, e in v.items()}
                                                                          for n, v in r["layout"].items()}}),
    "training None": ("E511", lambda r: {**r, "training": None}),
    "a schedule without fingerprint": ("E510", lambda r: {**r, "scheduler": {**r["scheduler"], "fingerprint": 3}}),
    "optimizer step a string": ("E509", lambda r: {**r, "layout": {n: {**v, "step": {"value": "3"}}
                                                                   for n, v in r["layout"].items()}}),
}


@pytest.mark.parametrize("code, edit", DCP_CASES.values(), ids=DCP_CASES.keys())
def test_a_malformed_distributed_checkpoint_is_a_coded_error_and_changes_nothing(code, edit, tmp_path):
    path = _dcp_saved(tmp_path, edit)
    model = make_net(1)
    compiled = specopt.compile(DCP_SPEC, model)
    _run(model, compiled, 0, 2)
    before = _snapshot_plain(model, compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP without a process group
        with pytest.raises(specopt.SpecError) as exc:
            specopt.runtime.dcp.load(compiled, path)
    assert {d.code for d in exc.value.diagnostics} == {code}, exc.value.render()
    _same(_snapshot_plain(model, compiled), before)


def _snapshot_plain(model, compiled) -> dict:
    driver = compiled.driver
    return copy.deepcopy({"model": model.state_dict(), "requires_grad": [p.requires_grad for p in model.parameters()],
                          "optimizer": compiled.optimizer.state_dict(), "scheduler": compiled.scheduler.state_dict(),
                          "loop": (driver.steps, driver.micro, driver.board.fired, sorted(driver.ramps.active))})
