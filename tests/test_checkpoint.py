"""Loading a checkpoint that does not fit: other shapes, another optimizer, malformed data, other names.

Every such problem is a ``SpecError`` with an E5xx code naming what does not
fit, never a KeyError, a corrupted heap or a silent partial load.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import specopt
from specopt.runtime.compiled import STATE_FORMAT, CheckpointError, CheckpointWarning, LoadResult


def _trained(text: str, model: nn.Module, x: torch.Tensor | None = None, steps: int = 1):
    compiled = specopt.compile(text, model)
    for _ in range(steps):
        compiled.optimizer.zero_grad()
        model(torch.randn(2, 16) if x is None else x).pow(2).sum().backward()
        compiled.optimizer.step()
    return compiled


def _codes(exc: pytest.ExceptionInfo) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def _head(out: int, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, out)).to(dtype)


# --- shapes and dtypes --------------------------------------------------------------------------

@pytest.mark.parametrize("strict", [True, False])
def test_state_of_another_shape_is_refused_by_name(strict):
    """The issue's case: Linear(16, 3) state into Linear(16, 4000); the fused step then corrupted the heap."""
    saved = _trained("optimizer adam", _head(3)).state_dict()
    target = specopt.compile("optimizer adam", _head(4000))
    assert target.implementation.name == "fused"
    with pytest.raises(CheckpointError) as exc:
        target.load_state_dict(saved, strict=strict)
    assert _codes(exc) == ["E503", "E503"]
    text = str(exc.value)
    assert "'0.weight' had shape [3, 16] (float32) in the checkpoint, but has shape [4000, 16]" in text
    assert "'0.bias' had shape [3]" in text
    assert target.optimizer.state_dict()["state"] == {}, "nothing is loaded when anything does not fit"


def test_following_the_hint_restores_the_parameters_that_did_not_change(seed_model):
    saved = _trained("optimizer adam", seed_model, torch.randn(2, 3, 8, 8)).state_dict()
    from seed_model import Network

    target = specopt.compile("optimizer adam", Network(classes=20))
    with pytest.raises(CheckpointError, match="delete these parameters' entries from checkpoint"):
        target.load_state_dict(saved)
    for name in ("classifier.weight", "classifier.bias"):
        del saved["state"][name]
    assert target.load_state_dict(saved).complete
    restored = {n for g in target.optimizer.param_groups for n, p in zip(g["param_names"], g["params"])
                if p in target.optimizer.state}
    assert len(restored) == 8 and "classifier.weight" not in restored


def test_state_tensors_are_checked_where_the_checkpoint_records_no_shapes():
    saved = _trained("optimizer adam", _head(3)).state_dict()
    del saved["params"], saved["optimizer"]  # as specopt saved checkpoints before it recorded them
    target = specopt.compile("optimizer adam", _head(4000))
    with pytest.raises(CheckpointError, match=r"saved exp_avg of '0.weight' has shape \[3, 16\], "
                                              r"but the parameter has shape \[4000, 16\]") as exc:
        target.load_state_dict(saved)
    assert set(_codes(exc)) == {"E503"}


def test_state_of_another_dtype_is_refused():
    saved = _trained("optimizer adam", _head(3, torch.float64), torch.randn(2, 16, dtype=torch.float64)).state_dict()
    target = specopt.compile("optimizer adam", _head(3))
    with pytest.raises(CheckpointError, match=r"'0.weight' had shape \[3, 16\] \(float64\) in the checkpoint, "
                                              r"but has shape \[3, 16\] \(float32\) here"):
        target.load_state_dict(saved)
    del saved["params"]
    with pytest.raises(CheckpointError, match="saved exp_avg of '0.weight' is float64, but the parameter is float32"):
        target.load_state_dict(saved)


@pytest.mark.parametrize("text", ["optimizer adafactor", "optimizer lbfgs max_iter=3 max_eval=4"])
@pytest.mark.parametrize("records", [True, False], ids=["recorded", "older-checkpoint"])
def test_optimizers_whose_state_is_not_parameter_shaped_round_trip(text, records):
    """Adafactor keeps factored statistics ([3, 1], [1, 16]); L-BFGS one flat history over all parameters."""
    model = _head(3)
    first = specopt.compile(text, model)

    def closure():
        first.optimizer.zero_grad()
        loss = model(torch.randn(2, 16, generator=torch.Generator().manual_seed(0))).pow(2).sum()
        loss.backward()
        return loss

    for _ in range(2):
        first.optimizer.step(closure)
    saved = first.state_dict()
    if not records:
        del saved["params"]
    again = specopt.compile(text, _head(3))
    result = again.load_state_dict(saved)
    assert result.complete and result.restored == ["0.bias", "0.weight"]
    assert len(again.optimizer.state_dict()["state"]) == len(first.optimizer.state_dict()["state"])


# --- the optimizer kind -------------------------------------------------------------------------

def test_another_optimizers_state_is_refused():
    saved = _trained("optimizer sgd momentum=0.9", _head(3)).state_dict()
    assert saved["optimizer"] == "sgd"
    target = specopt.compile("optimizer adam lr=1e-3", _head(3))
    with pytest.raises(CheckpointError) as exc:
        target.load_state_dict(saved, strict=False)
    assert _codes(exc) == ["E504"]
    assert exc.value.diagnostics[0].span is not None, "points at the optimizer statement"
    assert "the checkpoint holds sgd state, but this spec builds adam" in str(exc.value)
    assert "1 | optimizer adam lr=1e-3" in str(exc.value)


def test_the_default_optimizer_is_recorded_and_checked_too():
    saved = _trained("clip l2 1", _head(3)).state_dict()
    assert saved["optimizer"] == "adam"
    with pytest.raises(CheckpointError, match=r"holds adam state, but this spec builds adamw \[E504\]"):
        specopt.compile("optimizer adamw", _head(3)).load_state_dict(saved)


# --- malformed data -----------------------------------------------------------------------------

def _good() -> dict:
    return _trained("optimizer adam; step every 1 x0.5", _head(3)).state_dict()


MALFORMED = {
    "none": lambda: None,
    "a list": lambda: [],
    "a string": lambda: "opt.pt",
    "an empty dict": lambda: {},
    "another format": lambda: {**_good(), "format": "specopt.optimizer/0"},
    "torch's own state_dict": lambda: _trained("optimizer adam", _head(3)).optimizer.state_dict(),
    "only the format": lambda: {"format": STATE_FORMAT},
    "param_names not a list": lambda: {**_good(), "param_names": "0.weight"},
    "param_names of numbers": lambda: {**_good(), "param_names": [0, 1]},
    "state not a dict": lambda: {**_good(), "state": [1, 2]},
    "a state entry not a dict": lambda: {**_good(), "state": {"0.weight": 3}},
    "positions as state keys": lambda: {**_good(), "state": {0: {}}},
    "optimizer not a name": lambda: {**_good(), "optimizer": 7},
    "params not a dict": lambda: {**_good(), "params": ["0.weight"]},
    "a shape not a list": lambda: {**_good(), "params": {"0.weight": {"shape": 3, "dtype": "float32"}}},
    "a record without dtype": lambda: {**_good(), "params": {"0.weight": {"shape": [3, 16]}}},
    "a scheduler without last_epoch": lambda: {**_good(), "scheduler": {"step_size": 1}},
    "a scheduler not a dict": lambda: {**_good(), "scheduler": None},
}


@pytest.mark.parametrize("make", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_checkpoints_are_a_clear_error(make):
    target = specopt.compile("optimizer adam; step every 1 x0.5", _head(3))
    with pytest.raises(CheckpointError) as exc:
        target.load_state_dict(make())
    assert set(_codes(exc)) == {"E501"}
    assert isinstance(exc.value, specopt.SpecError) and isinstance(exc.value, ValueError)
    assert target.optimizer.state_dict()["state"] == {}


def test_torchs_own_state_dict_gets_a_pointed_hint():
    raw = _trained("optimizer adam", _head(3)).optimizer.state_dict()
    with pytest.raises(CheckpointError, match="this is torch's optimizer.state_dict()") as exc:
        specopt.compile("optimizer adam", _head(3)).load_state_dict(raw)
    assert "save compiled.state_dict() instead" in exc.value.diagnostics[0].hint


# --- names --------------------------------------------------------------------------------------

def _compiled_model_checkpoint(seed_model) -> dict:
    """State saved from the seed model wrapped by torch.compile: its names leave out '_orig_mod.'."""
    wrapped = torch.compile(seed_model)
    compiled = specopt.compile("optimizer adam", wrapped)
    wrapped._orig_mod(torch.randn(2, 3, 8, 8)).sum().backward()  # the same parameters, without compiling
    compiled.optimizer.step()
    saved = compiled.state_dict()
    assert len(saved["state"]) == 10 and not any(n.startswith("_orig_mod.") for n in saved["state"])
    return saved


def test_a_torch_compile_checkpoint_loads_into_the_bare_model(seed_model):
    saved = _compiled_model_checkpoint(seed_model)
    target = specopt.compile("optimizer adam", type(seed_model)())
    assert target.load_state_dict(saved).complete
    assert len(target.optimizer.state_dict()["state"]) == 10


def test_a_checkpoint_whose_names_kept_the_wrappers_prefix_still_loads(seed_model):
    """Checkpoints saved before names left out wrapper segments had '_orig_mod.' before every name."""
    saved = _compiled_model_checkpoint(seed_model)
    saved["param_names"] = ["_orig_mod." + n for n in saved["param_names"]]
    saved["state"] = {"_orig_mod." + n: s for n, s in saved["state"].items()}
    saved["params"] = {"_orig_mod." + n: r for n, r in saved["params"].items()}
    target = specopt.compile("optimizer adam", type(seed_model)())
    result = target.load_state_dict(saved)
    assert result.complete and len(result.restored) == 10


def test_a_partial_non_strict_load_lists_what_it_skipped(seed_model):
    first = specopt.compile("freeze classifier", seed_model)
    seed_model(torch.randn(2, 3, 8, 8)).sum().backward()
    first.optimizer.step()
    second = specopt.compile("unfreeze classifier", seed_model)
    with pytest.warns(CheckpointWarning, match=r"8 of 10 parameters; no saved state for classifier.bias, "
                                               r"classifier.weight"):
        result = second.load_state_dict(first.state_dict(), strict=False)
    assert result.not_restored == ["classifier.bias", "classifier.weight"] and result.unexpected == []
    assert len(result.restored) == 8


def test_a_complete_load_returns_its_result_without_a_warning(seed_model):
    text = "optimizer adam; step every 1 x0.5"
    first = specopt.compile(text, seed_model)
    seed_model(torch.randn(2, 3, 8, 8)).sum().backward()
    first.optimizer.step()
    first.scheduler.step()
    again = specopt.compile(text, type(seed_model)())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = again.load_state_dict(first.state_dict())
    assert isinstance(result, LoadResult) and result.complete and result.schedule_restored
    assert len(result.restored) == 10


def test_a_checkpoint_before_any_step_loads():
    saved = specopt.compile("optimizer adam", _head(3)).state_dict()
    assert saved["state"] == {}
    assert specopt.compile("optimizer adam", _head(3)).load_state_dict(saved).complete


def test_checkpoints_of_older_specopt_versions_still_load():
    saved = _trained("optimizer adam", _head(3)).state_dict()
    del saved["params"], saved["optimizer"]
    target = specopt.compile("optimizer adam", _head(3))
    assert target.load_state_dict(saved).complete
    state = target.optimizer.state[target.optimizer.param_groups[0]["params"][0]]
    assert torch.equal(state["exp_avg"], saved["state"]["0.weight"]["exp_avg"])
