"""Parameters that join during the run train like the hand-written loop, in every implementation.

The reference is the hand-written ULMFiT loop: a layer that starts training
later gets its own torch optimizer (same class, implementation and
hyperparameters) the first time it trains, so it starts from empty state as if
it had just been added; a layer frozen and unfrozen again keeps its state, as
torch keeps the state of a parameter whose gradient is ``None``. specopt holds
every parameter in one optimizer from the start; its run must equal the
reference bit for bit, for every builtin optimizer with state, every
implementation the optimizer has, every way a parameter joins (``unfreeze ...
at`` a step, an epoch or a share of the run, with and without ``warmup``, and
after a ``freeze ... at``), in the step driver and in a loop of its own.

Fused SGD with momentum is the case that crashed: torch starts the momentum
buffers of a fused group all at once (``is_first_step`` holds only when no
parameter of the group has one), so a parameter joining a group whose others
had stepped met ``TypeError: expected Tensor ... got NoneType``.
"""

from __future__ import annotations

import copy
import functools
import io
import math

import pytest
import torch
from torch import nn

import specopt
from specopt.runtime.implementation import choose_implementation, fused_momentum_guard
from specopt.catalog.registry import OPTIMIZERS
from specopt.catalog.targets import load_target

STEPS, PER_EPOCH = 9, 3

# Options that give each optimizer's state a part in the update (momentum, averaging, amsgrad...).
SETTINGS = {
    "sgd": [dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.9, nesterov=True)],
    "adam": [dict(lr=0.01, amsgrad=True, weight_decay=0.01)],
    "adamw": [dict(lr=0.01)],
    "adagrad": [dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)],
    "rmsprop": [dict(lr=0.01, momentum=0.9, centered=True)],
    "adadelta": [dict(lr=1.0, weight_decay=0.01)],
    "adamax": [dict(lr=0.01)],
    "nadam": [dict(lr=0.01)],
    "radam": [dict(lr=0.01)],
    "asgd": [dict(lr=0.01, t0=2)],
    "rprop": [dict(lr=0.01)],
    "adafactor": [dict(lr=0.01)],
    "muon": [dict(lr=0.02)],
    "sparse_adam": [dict(lr=0.01)],
}
# Builtins outside the matrix, and why; every other builtin must be in SETTINGS.
ELSEWHERE = {"lbfgs": "one param group and one history over the flat gradient: test_lbfgs_... below"}

# The spec's lines, and whether layer 0 trains from a number of optimizer steps done on (3 steps an epoch).
JOINS = {
    "at step": ("freeze 0; unfreeze 0 at step 2", {0: False, 2: True}),
    "at epoch": ("freeze 0; unfreeze 0 at epoch 1", {0: False, 3: True}),
    "at % of epochs": ("run 3 epochs; freeze 0; unfreeze 0 at 40%", {0: False, 6: True}),  # epoch 1.2: fires at 2
    "at % of steps": ("run 9 steps; freeze 0; unfreeze 0 at 30%", {0: False, 3: True}),  # step 2.7: fires at 3
    "again": ("freeze 0 at step 2; unfreeze 0 at step 5", {0: True, 2: False, 5: True}),
}
WARMUP = 2


def _implementations(name: str) -> list[str]:
    """The implementations torch 2.13 has for a builtin, as the registry lists its flags."""
    info = OPTIMIZERS[name]
    return (["fused"] if info.option("fused") else []) + (["foreach"] if info.option("foreach") else []) \
        + ["single-tensor"]


def _flags(name: str, implementation: str) -> dict:
    """The spec's flags that pin ``implementation`` (fused is the automatic choice; one implementation: none)."""
    if implementation == "fused" or len(_implementations(name)) == 1:
        return {}
    return {"foreach": implementation == "foreach"}


def _cases():
    for name, settings in SETTINGS.items():
        for k, options in enumerate(settings):
            for implementation in _implementations(name):
                yield pytest.param(name, options, implementation, id=f"{name}{k or ''}-{implementation}")


def test_every_builtin_optimizer_is_in_the_matrix():
    assert set(SETTINGS) | set(ELSEWHERE) == set(OPTIMIZERS)


# --- models and data ---------------------------------------------------------------------------

class _Sparse(nn.Module):
    """Two sparse embeddings named like the layers of the dense model (SparseAdam takes only sparse gradients)."""

    def __init__(self):
        super().__init__()
        self.add_module("0", nn.Embedding(7, 3, sparse=True))
        self.add_module("2", nn.Embedding(7, 3, sparse=True))

    def forward(self, x):
        return getattr(self, "0")(x) * torch.tanh(getattr(self, "2")(x))


def _model(name: str, device: str = "cpu") -> nn.Module:
    return copy.deepcopy(_first_model(name == "sparse_adam", name != "muon")).to(device)


@functools.cache
def _first_model(sparse: bool, bias: bool) -> nn.Module:
    torch.manual_seed(0)
    if sparse:
        return _Sparse()
    return nn.Sequential(nn.Linear(3, 4, bias=bias), nn.Tanh(), nn.Linear(4, 2, bias=bias))  # Muon: no bias


def _loss(model, name: str, step: int | None) -> torch.Tensor:
    """The loss of batch ``step``; ``None`` is a batch whose gradients overflow, so a GradScaler skips it."""
    gen = torch.Generator().manual_seed(step or 0)
    if name == "sparse_adam":
        x = torch.randint(0, 7, (5,), generator=gen)
    else:
        x = torch.randn(5, 3, generator=gen) if step is not None else torch.full((5, 3), math.inf)
    return model(x.to(next(model.parameters()).device)).pow(2).mean()


def _layer(model, index: int) -> list[nn.Parameter]:
    return list(getattr(model, str(index)).parameters())


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in model.parameters()]


def _assert_same(ours, reference):
    for p, q in zip(ours, reference, strict=True):
        assert torch.equal(p, q), (p - q).abs().max().item()


# --- the hand-written reference --------------------------------------------------------------

def _trains(moments: dict[int, bool], done: int) -> bool:
    """Whether layer 0 trains in the step after ``done`` optimizer steps."""
    return moments[max(k for k in moments if k <= done)]


@functools.cache
def _reference(name: str, options: tuple, implementation: str, join: str, warmup: int | None,
               device: str = "cpu", clip: float | None = None):
    """Layer 2 trains throughout; layer 0 gets an optimizer of its own the first time it trains."""
    model, cls, options, moments = _model(name, device), _class(name), dict(options), JOINS[join][1]
    kwargs = {**options, **({"fused": True} if implementation == "fused" else _flags(name, implementation))}
    head, body, joined = cls(_layer(model, 2), **kwargs), None, None
    for done in range(STEPS):
        trains = _trains(moments, done)
        joined = (done if joined is None else joined) if trains else None
        for p in _layer(model, 0):
            p.requires_grad_(trains)
            p.grad = None
        if trains and body is None:
            body = cls(_layer(model, 0), **kwargs)
        if body is not None and warmup is not None:
            body.param_groups[0]["lr"] = options["lr"] * _ramp(joined, done, warmup)
        _loss(model, name, done).backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        for optimizer in (head, body):
            if optimizer is not None:
                optimizer.step()
                optimizer.zero_grad()
    return _weights(model)


def _class(name: str) -> type:
    return load_target(OPTIMIZERS[name].target)


def _ramp(joined: int | None, done: int, warmup: int) -> float:
    """The warmup's factor on layer 0's lr: 0 in the first step after it joins at a moment of the run."""
    if not joined:  # frozen now, or trainable from the start
        return 1.0
    return min(1.0, (done - joined) / warmup)


# --- specopt's run -----------------------------------------------------------------------------

def _spec(name: str, options: dict, implementation: str, join: str, warmup: int | None) -> str:
    flags = {**options, **_flags(name, implementation)}
    text = " ".join(f"{k}={str(v).lower()}" for k, v in flags.items())
    lines = JOINS[join][0].split("; ")
    if warmup is not None:
        lines[-1] += f" warmup {warmup} steps"
    return f"optimizer {name} {text}; " + "; ".join(lines)


def _run(spec: str, name: str, loop: str, device: str = "cpu", scaler=None, batches=None):
    """Train on ``batches`` (0 to 8 by default) in ``loop``, closing an epoch every 3 batches."""
    model = _model(name, device)
    compiled = specopt.compile(spec, model, steps_per_epoch=PER_EPOCH, scaler=scaler if loop == "driver" else None)
    for i, step in enumerate(range(STEPS) if batches is None else batches):
        if loop == "driver":
            compiled.train_step(_loss(model, name, step))
        elif scaler is not None:
            _scaled_step(compiled, model, name, step, scaler)
        else:
            _own_step(compiled, model, name, step, loop == "closure")
        if (i + 1) % PER_EPOCH == 0:
            compiled.end_epoch()
    return compiled, _weights(model)


def _own_step(compiled, model, name: str, step: int, closure: bool) -> None:
    def evaluate():
        compiled.optimizer.zero_grad()
        loss = _loss(model, name, step)
        loss.backward()
        return loss

    if closure:
        compiled.optimizer.step(evaluate)
    else:
        evaluate()
        compiled.optimizer.step()
    compiled.after_step()


def _scaled_step(compiled, model, name: str, step: int, scaler) -> None:
    """A loop of its own with a GradScaler: ``scaler.step`` unscales inside the fused kernel."""
    compiled.optimizer.zero_grad()
    scaler.scale(_loss(model, name, step)).backward()
    before = scaler.get_scale()
    scaler.step(compiled.optimizer)
    scaler.update()
    compiled.after_step(stepped=scaler.get_scale() >= before)


# --- the matrix --------------------------------------------------------------------------------

# Every join through the step driver; the loop of its own fires events in after_step() and end_epoch().
LOOPS = [(join, "driver") for join in JOINS] + [("at step", "own loop"), ("at epoch", "own loop")]


@pytest.mark.parametrize("warmup", [None, WARMUP], ids=["", "warmup"])
@pytest.mark.parametrize("join, loop", LOOPS, ids=[f"{j}-{l}" for j, l in LOOPS])
@pytest.mark.parametrize("name, options, implementation", list(_cases()))
def test_a_joining_layer_trains_like_the_hand_written_loop(name, options, implementation, join, loop, warmup):
    spec = _spec(name, options, implementation, join, warmup)
    compiled, ours = _run(spec, name, loop)
    assert compiled.implementation.name == implementation, compiled.implementation.describe()
    _assert_same(ours, _reference(name, tuple(options.items()), implementation, join, warmup))


# --- fused SGD in the other loops people run ---------------------------------------------------

SGD = dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
SGD_SPEC = _spec("sgd", SGD, "fused", "at step", None)


@pytest.mark.parametrize("loop", ["driver", "own loop"])
@pytest.mark.parametrize("join, skipped", [("again", (0,)), ("at step", (3,)), ("at step", (0, 3))],
                         ids=["first step", "first after the join", "both"])
def test_steps_a_grad_scaler_skips_start_no_momentum(join, skipped, loop):
    """A skipped step leaves no momentum behind, at the start of the run and right after a join.

    torch's fused SGD allocates the buffers of a group's first step before its
    kernel, which then skips the update and leaves them uninitialised.
    """
    batches = list(range(STEPS))
    for i in skipped:
        batches.insert(i, None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    compiled, ours = _run(_spec("sgd", SGD, "fused", join, None), "sgd", loop, scaler=scaler, batches=batches)
    assert compiled.steps == STEPS and scaler.get_scale() == 2.0 ** (10 - len(skipped))
    _assert_same(ours, _reference("sgd", tuple(SGD.items()), "fused", join, None))


def test_a_closure_and_a_clip_see_the_joining_layer_like_the_hand_written_loop():
    """Under ``step(closure)`` the gradients exist only inside the step; the clip runs before the update."""
    compiled, ours = _run(SGD_SPEC + "; clip l2 0.05", "sgd", "closure")
    assert compiled.clipper.attached
    _assert_same(ours, _reference("sgd", tuple(SGD.items()), "fused", "at step", None, clip=0.05))


@pytest.mark.parametrize("cut", [1, 2, 3, 6])
def test_a_run_resumed_before_or_after_the_join_is_bitwise_identical(cut):
    uninterrupted = _run(SGD_SPEC, "sgd", "driver")[1]
    model = _model("sgd")
    first = specopt.compile(SGD_SPEC, model, steps_per_epoch=PER_EPOCH)
    for step in range(cut):
        first.train_step(_loss(model, "sgd", step))
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "compiled": first.state_dict()}, saved)
    saved.seek(0)
    checkpoint = torch.load(saved, weights_only=False)
    model = _model("sgd")
    model.load_state_dict(checkpoint["model"])
    second = specopt.compile(SGD_SPEC, model, steps_per_epoch=PER_EPOCH)
    second.load_state_dict(checkpoint["compiled"])
    for step in range(cut, STEPS):
        second.train_step(_loss(model, "sgd", step))
    _assert_same(_weights(model), uninterrupted)


def test_fused_sgd_beside_another_optimizer_takes_a_joining_layer():
    spec = ("optimizer adam lr=0.01; optimizer sgd for ndim==2 lr=0.1 momentum=0.9 dampening=0.1; "
            "freeze 0; unfreeze 0 at step 2")
    compiled, ours = _run(spec, "sgd", "driver")
    assert [i.name for i in compiled.implementations] == ["fused", "fused"]
    model = _model("sgd")
    weights = [[getattr(model, k).weight] for k in "02"]
    biases = [[getattr(model, k).bias] for k in "02"]
    sgd, adam = dict(lr=0.1, momentum=0.9, dampening=0.1, fused=True), dict(lr=0.01, fused=True)
    optimizers = [torch.optim.SGD(weights[1], **sgd), torch.optim.Adam(biases[1], **adam)]
    for p in _layer(model, 0):
        p.requires_grad_(False)
    for step in range(STEPS):
        if step == 2:
            for p in _layer(model, 0):
                p.requires_grad_(True)
            optimizers += [torch.optim.SGD(weights[0], **sgd), torch.optim.Adam(biases[0], **adam)]
        _loss(model, "sgd", step).backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad()
    _assert_same(ours, _weights(model))


def test_without_a_place_to_start_momentum_apart_fused_is_not_chosen_for_sgd(monkeypatch):
    def init_group(self, group, params, grads):  # a torch whose SGD gathers a group's tensors differently
        raise AssertionError("not called")

    monkeypatch.setattr(torch.optim.SGD, "_init_group", init_group)
    assert not fused_momentum_guard()
    chosen = choose_implementation(OPTIMIZERS["sgd"], _layer(_model("sgd"), 0), {})
    assert chosen.name == "single-tensor" and "join during the run" in chosen.reason
    assert choose_implementation(OPTIMIZERS["adam"], _layer(_model("adam"), 0), {}).name == "fused"


# --- L-BFGS: one group, one history --------------------------------------------------------------

def test_lbfgs_takes_a_joining_layer_like_the_hand_written_loop():
    """L-BFGS keeps one history over the flat gradient of its one group, frozen parameters counted as zeros."""
    compiled, ours = _run("optimizer lbfgs max_iter=3; freeze 0; unfreeze 0 at step 2", "lbfgs", "closure")
    model = _model("lbfgs")
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=3)
    for step in range(STEPS):
        for p in _layer(model, 0):
            p.requires_grad_(step >= 2)

        def evaluate(step=step):
            optimizer.zero_grad()
            loss = _loss(model, "lbfgs", step)
            loss.backward()
            return loss

        optimizer.step(evaluate)
    _assert_same(ours, _weights(model))


# --- on a GPU -----------------------------------------------------------------------------------

CUDA_CASES = [c for c in _cases() if c.values[2] != "single-tensor" and c.values[0] in ("sgd", "adam", "adamw")]


@pytest.mark.cuda
@pytest.mark.parametrize("warmup", [None, WARMUP], ids=["", "warmup"])
@pytest.mark.parametrize("join", ["at step", "again"])
@pytest.mark.parametrize("name, options, implementation", CUDA_CASES)
def test_on_cuda_a_joining_layer_trains_like_the_hand_written_loop(name, options, implementation, join, warmup):
    compiled, ours = _run(_spec(name, options, implementation, join, warmup), name, "driver", "cuda")
    assert compiled.implementation.name == implementation
    _assert_same(ours, _reference(name, tuple(options.items()), implementation, join, warmup, "cuda"))


@pytest.mark.cuda
def test_on_cuda_steps_a_grad_scaler_skips_start_no_momentum():
    batches = [None, 0, 1, None, *range(2, STEPS)]
    compiled, ours = _run(SGD_SPEC, "sgd", "driver", "cuda", torch.amp.GradScaler("cuda", init_scale=2.0**10),
                          batches)
    assert compiled.steps == STEPS
    _assert_same(ours, _reference("sgd", tuple(SGD.items()), "fused", "at step", None, "cuda"))
