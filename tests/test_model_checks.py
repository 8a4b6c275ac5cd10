"""Checks of the model before anything changes: what user code and torch would refuse, as diagnostics.

A ``--model`` whose code fails, exits or returns something other than a module
is a one-line usage error; ``Spec.compile`` and ``Spec.resolve`` refuse what is
not a module (E405) or has no parameters (E406); unfreezing an integer
parameter is E407 and changing ``requires_grad`` inside
``DistributedDataParallel`` is E408, both before the model changes; an
import-path optimizer that raises anything is E404. Command-line cases run
under the 4 GiB address-space limit of ``tests/limited.py``.
"""

from __future__ import annotations

import sys

import pytest
from limited import assert_clean, run_limited

import specopt
from specopt.diagnostics import SpecError


def codes(exc: SpecError) -> list[str]:
    return [d.code for d in exc.diagnostics]


# --- models: anything the user's code does is a one-line error -----------------------------------

USER_CODE = '''
import sys
import torch
from torch import nn


class Stop(BaseException):
    pass


def not_a_model():
    return {"weight": torch.ones(2)}


def exits():
    sys.exit(3)


def stops():
    raise Stop("model code gave up")


class WithPositions(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.position_ids = nn.Parameter(torch.arange(4), requires_grad=False)


class Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2)]  # a plain list: not registered


class Picky(torch.optim.SGD):
    def __init__(self, params, lr=0.1):
        raise KeyError("picky wants no parameters")


class Quits(torch.optim.SGD):
    def __init__(self, params, lr=0.1):
        sys.exit("optimizer gave up")
'''


@pytest.fixture
def user_code(tmp_path):
    """A folder holding user_models.py (the models above), exit_on_import.py and a few specs."""
    (tmp_path / "user_models.py").write_text(USER_CODE)
    (tmp_path / "exit_on_import.py").write_text("import sys\nsys.exit(4)\n")
    (tmp_path / "freeze.opt").write_text("freeze fc\n")
    return tmp_path


@pytest.mark.parametrize("ref, message", [
    ("user_models:not_a_model", "user_models:not_a_model returned a dict, not a torch.nn.Module"),
    ("user_models:exits", "building the model user_models:exits called sys.exit(3)"),
    ("user_models:stops", "building the model user_models:stops failed: Stop: model code gave up"),
    ("exit_on_import.py:Model", "importing exit_on_import.py called sys.exit(4)"),
    ("exit_on_import:Model", "importing exit_on_import called sys.exit(4)"),
])
def test_model_code_that_fails_is_a_usage_error(user_code, ref, message):
    out = run_limited("compile", "freeze.opt", "--model", ref, cwd=user_code)
    assert_clean(out, 2, f"specopt: error: {message}\n")
    assert out.stderr.count("\n") == 1


def test_api_refuses_what_is_not_a_module(seed_model):
    spec = specopt.parse("freeze cnn")
    for wrong in (list(seed_model.parameters()), None, type(seed_model)):
        for entry in (spec.compile, spec.resolve):
            with pytest.raises(SpecError) as info:
                entry(wrong)
            assert codes(info.value) == ["E405"] and "not a torch.nn.Module" in info.value.diagnostics[0].message
    assert all(p.requires_grad for p in seed_model.parameters())


def test_api_names_the_class_passed_instead_of_an_instance(seed_model):
    with pytest.raises(SpecError) as info:
        specopt.parse("freeze cnn").compile(type(seed_model))
    assert "the class Network" in info.value.diagnostics[0].message
    assert "Network(...)" in info.value.diagnostics[0].hint


def test_a_model_without_parameters_says_so(user_code):
    import torch

    for model in (torch.nn.Identity(), torch.nn.Sequential()):
        for entry in ("compile", "resolve"):
            with pytest.raises(SpecError) as info:
                getattr(specopt.parse("optimizer sgd"), entry)(model)
            assert codes(info.value) == ["E406"] and "has no parameters" in str(info.value)
    out = run_limited("compile", "freeze.opt", "--model", "user_models:Layers", cwd=user_code)
    assert_clean(out, 1, "the model (Layers) has no parameters [E406]")


@pytest.mark.parametrize("optimizer, message", [
    ("Picky", "user_models.Picky rejected the optimizer: KeyError: 'picky wants no parameters'"),
    ("Quits", "user_models.Quits rejected the optimizer: SystemExit: optimizer gave up"),
])
def test_an_import_path_optimizer_that_raises_anything_is_e404(user_code, optimizer, message):
    sys.path.insert(0, str(user_code))
    try:
        import user_models

        model = user_models.WithPositions()
        with pytest.raises(SpecError) as info:
            specopt.parse(f'optimizer "user_models:{optimizer}"\nfreeze fc.bias', allow_import=True).compile(model)
    finally:
        sys.path.remove(str(user_code))
        sys.modules.pop("user_models", None)
    [diag] = info.value.diagnostics
    assert diag.code == "E404" and diag.message == message and diag.span.start == 0
    assert model.fc.bias.requires_grad


def test_an_import_path_optimizer_that_exits_from_the_command_line(user_code):
    (user_code / "quits.opt").write_text('optimizer "user_models:Quits"\n')
    out = run_limited("compile", "quits.opt", "--allow-import", "--model", "user_models:WithPositions",
                      cwd=user_code)
    assert_clean(out, 1, "SystemExit: optimizer gave up [E404]")


# --- integer parameters -------------------------------------------------------------------------

def _with_positions():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    model.position_ids = torch.nn.Parameter(torch.arange(4), requires_grad=False)
    return model


@pytest.mark.parametrize("entry", ["compile", "resolve"])
def test_unfreezing_an_integer_parameter_is_a_positioned_e407(entry):
    model = _with_positions()
    before = [p.requires_grad for p in model.parameters()]
    text = "freeze 1\nunfreeze **"
    with pytest.raises(SpecError) as info:
        getattr(specopt.parse(text), entry)(model)
    [diag] = info.value.diagnostics
    assert diag.code == "E407" and "'position_ids'" in diag.message and "int64" in diag.message
    assert text[diag.span.start:diag.span.end] == "unfreeze **"
    assert [p.requires_grad for p in model.parameters()] == before and before.count(False) == 1


def test_unfreezing_an_integer_parameter_from_the_command_line(user_code):
    (user_code / "unfreeze.opt").write_text("unfreeze **\n")
    for command in ("compile", "explain"):
        out = run_limited(command, "unfreeze.opt", "--model", "user_models:WithPositions", cwd=user_code)
        assert_clean(out, 1, "unfreeze.opt:1:1: error: 'position_ids' cannot be trained", "[E407]")


def test_integer_parameters_left_frozen_compile():
    model = _with_positions()
    compiled = specopt.parse("unfreeze ** & !position_ids").compile(model)
    assert compiled.resolution.param("position_ids").frozen
    assert sum(len(g["params"]) for g in compiled.optimizer.param_groups) == 4


def test_each_statement_that_unfreezes_integers_is_reported_once():
    import torch

    model = _with_positions()
    model.token_ids = torch.nn.Parameter(torch.zeros(3, dtype=torch.int32), requires_grad=False)
    text = "unfreeze position_ids\nunfreeze *_ids"
    with pytest.raises(SpecError) as info:
        specopt.parse(text).compile(model)
    [diag] = info.value.diagnostics
    assert diag.span.start == text.index("unfreeze *_ids") and "'position_ids' and 1 more" in diag.message


# --- DistributedDataParallel --------------------------------------------------------------------

@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group, destroyed after the test."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("this torch has no torch.distributed")
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path}/store")
    yield dist
    dist.destroy_process_group()


def _net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def _train(model, optimizer, steps: int = 2) -> None:
    import torch

    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        optimizer.step()


def test_freezing_inside_ddp_is_a_positioned_e408_and_changes_nothing(process_group):
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel(_net())
    text = "group 2 lr=0.5\nfreeze 0"
    with pytest.raises(SpecError) as info:
        specopt.parse(text).compile(ddp)
    [diag] = info.value.diagnostics
    assert diag.code == "E408" and "'0.weight'" in diag.message
    assert text[diag.span.start:diag.span.end] == "freeze 0" and "before wrapping" in diag.hint
    assert all(p.requires_grad for p in ddp.parameters())


def test_ddp_inside_a_model_is_found_and_only_its_parameters_count(process_group):
    import torch

    outer = torch.nn.Module()
    outer.body = torch.nn.parallel.DistributedDataParallel(_net())
    outer.head = torch.nn.Linear(1, 1)
    with pytest.raises(SpecError) as info:
        specopt.parse("unfreeze **\nfreeze body.2").compile(outer)
    assert codes(info.value) == ["E408"] and "(at 'body')" in info.value.diagnostics[0].message
    compiled = specopt.parse("freeze head").compile(outer)  # outside the wrapper: DDP does not mind
    assert not outer.head.weight.requires_grad and len(compiled.optimizer.param_groups) == 1


def test_a_spec_that_changes_no_flag_compiles_on_ddp_and_trains(process_group):
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel(_net())
    compiled = specopt.parse("group 2 lr=0.5\nclip l2 1").compile(ddp)
    _train(ddp, compiled.optimizer)
    assert compiled.resolution.param("2.weight").settings["lr"].value == 0.5


def test_compiling_before_wrapping_trains_through_ddp(process_group):
    import torch

    model = _net()
    compiled = specopt.parse("freeze 0").compile(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    _train(ddp, compiled.optimizer)
    assert not model[0].weight.requires_grad and model[0].weight.grad is None
