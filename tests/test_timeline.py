"""A parameter's state over the run: the cascade over the statements whose moment has come."""

from __future__ import annotations

import specopt
from loops import make_net
from specopt.resolve.timeline import Switch, changes, ever_trained, state


class O:
    """A stand-in for a statement's origin."""

    def __init__(self, index: int, label: str = ""):
        self.index, self.label = index, label or f"s{index}"


def sw(index, freezes, at=None, warmup=None):
    from specopt.plan.nodes import Length

    return Switch(O(index), freezes, Length(value=at, unit="step") if at else None,
                  Length(value=warmup, unit="step") if warmup else None)


def test_state_is_the_cascade_over_untimed_and_fired_statements_in_order():
    switches = (sw(0, True), sw(1, False, at=5), sw(2, True, at=3))
    assert state(switches, True)[0] is False
    assert state(switches, True, frozenset({1}))[0] is True
    assert state(switches, True, frozenset({1, 2}))[0] is False      # statement order, not firing order
    assert state((), False)[0] is False                                # the model's own flag


def test_ever_trained_and_changes_in_time_order():
    switches = (sw(0, True), sw(1, False, at=8), sw(2, True, at=12), sw(3, False, at=4, warmup=2))
    assert ever_trained(switches, True)
    assert [(c.moment.value, c.trainable, c.by.index) for c in changes(switches, True)] == [
        (4, True, 3)]                        # statement 3 comes last in order: nothing after it overrides it
    assert not ever_trained((sw(0, False, at=3), sw(1, True)), True)   # frozen from the start at every moment


def test_parameters_trainable_later_are_in_the_optimizer_from_the_start():
    model = make_net()
    compiled = specopt.compile("freeze backbone; unfreeze backbone.block1 at epoch 3", model)
    names = [n for g in compiled.optimizer.param_groups for n in g["param_names"]]
    assert "backbone.block1.0.weight" in names and "backbone.block0.0.weight" not in names
    assert len(compiled.optimizer.param_groups) == 1                   # no warmup: the fewest groups
    assert not model.backbone.block1[0].weight.requires_grad
    assert "backbone.block1.0.weight" in compiled.frozen


def test_a_warmup_keeps_its_parameters_in_groups_of_their_own():
    compiled = specopt.compile("freeze backbone; unfreeze backbone.block1 at step 5 warmup 10 steps",
                               make_net())
    assert [g["name"] for g in compiled.optimizer.param_groups] == ["default+unfreeze@1:18", "default"]
    assert compiled.optimizer.param_groups[0]["param_names"][0] == "backbone.block1.0.weight"


def test_every_parameter_frozen_at_the_start_is_fine_when_some_are_trained_later():
    compiled = specopt.compile("freeze **; unfreeze head at step 10", make_net())
    assert compiled.optimizer.param_groups[0]["param_names"] == ["head.weight", "head.bias"]


def test_timed_statements_are_not_reported_as_doing_nothing():
    compiled = specopt.compile("freeze backbone; unfreeze backbone at 50%; group backbone lr=x0.1",
                               make_net(), epochs=4)
    assert compiled.resolution.warnings == ()


def test_a_timed_statement_overridden_by_a_later_untimed_one_warns():
    compiled = specopt.compile("unfreeze head at step 3; freeze head", make_net())
    assert [w.code for w in compiled.resolution.warnings] == ["W302"]


def test_resolve_needs_no_timing():
    resolution = specopt.parse("freeze backbone; unfreeze backbone at 50%").resolve(make_net())
    assert resolution.groups and all(p.group is not None for p in resolution.params)
