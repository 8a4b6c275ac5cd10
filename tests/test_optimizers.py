"""Several optimizers in one spec: who trains what, the combined step, clipping, schedules and checkpoints."""

from __future__ import annotations

import pytest
import torch

import specopt
from recipe_models import llama
from specopt.runtime.combined import CombinedOptimizer

HYBRID = """optimizer adamw lr=3e-4 betas=(0.9, 0.95) weight_decay=0.1
optimizer muon for ndim==2 & !embed* & !lm_head lr=0.02"""


def batch():
    torch.manual_seed(1)
    return torch.randint(0, 64, (4, 12))


def lm_loss(model, idx):
    logits = model(idx[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))


# --- the contract lines -------------------------------------------------------------------------

def test_the_hybrid_puts_every_trainable_parameter_in_exactly_one_optimizer():
    torch.manual_seed(0)
    model = llama()
    compiled = specopt.compile(HYBRID, model)
    adamw, muon = compiled.optimizers
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, torch.optim.Muon)
    assert isinstance(compiled.optimizer, CombinedOptimizer) and compiled.optimizer.parts == [adamw, muon]
    held = [id(p) for o in compiled.optimizers for g in o.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in model.parameters()) and len(held) == len(set(held))
    for name, p in model.named_parameters():
        owner = compiled.resolution.param(name).optimizer
        expected = 1 if p.ndim == 2 and "embed" not in name and "lm_head" not in name else 0
        assert owner == expected, name
    assert muon.param_groups[0]["lr"] == 0.02 and adamw.param_groups[0]["betas"] == (0.9, 0.95)


def test_the_hybrid_trains_a_small_transformer_and_updates_each_parameter_once():
    torch.manual_seed(0)
    model = llama()
    compiled = specopt.compile(HYBRID + "\nclip l2 1.0", model)
    idx = batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for _ in range(30):
        loss = lm_loss(model, idx)
        losses.append(loss.item())
        loss.backward()
        compiled.optimizer.step()
        compiled.optimizer.zero_grad()
    assert losses[-1] < losses[0] * 0.7
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_the_combined_step_equals_the_two_optimizers_stepped_one_after_the_other():
    torch.manual_seed(0)
    ours, theirs = llama(), llama()
    theirs.load_state_dict(ours.state_dict())
    # torch's own default implementation on both sides, so the numbers can agree exactly
    compiled = specopt.compile(HYBRID.replace("weight_decay=0.1", "weight_decay=0.1 fused=false"), ours)
    names = dict(theirs.named_parameters())
    muon_names = [n for n, p in theirs.named_parameters() if compiled.resolution.param(n).optimizer == 1]
    rest = [n for n in names if n not in muon_names]
    hand = [torch.optim.AdamW([names[n] for n in rest], lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1),
            torch.optim.Muon([names[n] for n in muon_names], lr=0.02)]
    idx = batch()
    for _ in range(5):
        lm_loss(ours, idx).backward()
        compiled.optimizer.step()
        compiled.optimizer.zero_grad()
        lm_loss(theirs, idx).backward()
        for optimizer in hand:
            optimizer.step()
            optimizer.zero_grad()
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


# --- who trains what ----------------------------------------------------------------------------

def codes(text, model=None):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model or llama())
    return [(d.code, text[d.span.start:d.span.end] if d.span else None) for d in info.value.diagnostics]


def test_a_parameter_two_for_clauses_select_is_an_error_naming_it():
    text = "optimizer sgd for lm_head\noptimizer rmsprop for ndim==2 & !embed*"
    found = codes(text)
    assert found == [("E304", "optimizer rmsprop for ndim==2 & !embed*")]


def test_a_parameter_muon_cannot_take_is_an_error_naming_it():
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile("optimizer adamw\noptimizer muon for model.layers.0", llama())
    (diag,) = info.value.diagnostics
    assert diag.code == "E303" and "model.layers.0.input_layernorm.weight (1-D)" in diag.message


def test_frozen_parameters_belong_to_no_optimizer_and_may_overlap():
    text = "freeze lm_head\noptimizer sgd for lm_head model.norm\noptimizer rmsprop for lm_head"
    compiled = specopt.compile(text, llama())
    assert compiled.resolution.param("lm_head.weight").optimizer is None
    assert compiled.resolution.param("model.norm.weight").optimizer == 1


def test_a_group_applies_within_each_parameters_optimizer_relative_to_its_base():
    compiled = specopt.compile(HYBRID + "\ngroup model.layers.3 lr=x0.5", llama())
    res = compiled.resolution
    assert res.param("model.layers.3.self_attn.q_proj.weight").settings["lr"].value == pytest.approx(0.01)
    assert res.param("model.layers.3.input_layernorm.weight").settings["lr"].value == pytest.approx(1.5e-4)


def test_a_group_option_the_optimizer_lacks_is_an_error():
    assert codes(HYBRID + "\ngroup model.layers.3 nesterov=false") == [("E305", "nesterov")]


def test_lbfgs_cannot_share_a_spec():
    assert codes("optimizer adamw\noptimizer lbfgs for lm_head")[0][0] == "E403"


# --- clipping, schedules, checkpoints -------------------------------------------------------------

def test_one_total_norm_is_clipped_over_every_optimizers_parameters():
    torch.manual_seed(0)
    model = llama()
    compiled = specopt.compile(HYBRID + "\nclip l2 0.01", model)
    lm_loss(model, batch()).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    total = torch.nn.utils.get_total_norm(grads)
    compiled.clipper()
    assert compiled.clipper.last_norm == pytest.approx(total.item())
    assert torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]) == pytest.approx(0.01, rel=1e-4)


def test_every_optimizer_follows_the_schedule_keeping_its_ratio():
    compiled = specopt.compile(HYBRID + "\nschedule warmup 10 steps then cosine 90 steps to x0.1", llama())
    lrs = {g["name"]: g for g in compiled.optimizer.param_groups}
    for t in range(100):
        compiled.optimizer.step()
        compiled.scheduler.step()
        assert lrs["muon"]["lr"] == pytest.approx(lrs["default"]["lr"] * 0.02 / 3e-4, rel=1e-9, abs=1e-15)


def test_a_momentum_schedule_moves_only_the_optimizer_that_has_momentum():
    compiled = specopt.compile(HYBRID + "\nschedule momentum linear 10 steps to x0.5", llama())
    for _ in range(10):
        compiled.optimizer.step()
        compiled.scheduler.step()
    groups = {g["name"]: g for g in compiled.optimizer.param_groups}
    assert groups["muon"]["momentum"] == pytest.approx(0.475) and "momentum" not in groups["default"]


def test_a_checkpoint_restores_each_optimizers_state_by_name():
    torch.manual_seed(0)
    model = llama()
    compiled = specopt.compile(HYBRID, model)
    lm_loss(model, batch()).backward()
    compiled.optimizer.step()
    saved = compiled.state_dict()
    assert saved["optimizer_of"]["lm_head.weight"] == "adamw"
    assert saved["optimizer_of"]["model.layers.0.mlp.up_proj.weight"] == "muon"
    again = specopt.compile(HYBRID, model)
    again.load_state_dict(saved)
    adamw, muon = again.optimizers
    assert torch.equal(adamw.state[model.lm_head.weight]["exp_avg"], compiled.optimizers[0].state[model.lm_head.weight]["exp_avg"])
    up = model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(muon.state[up]["momentum_buffer"], compiled.optimizers[1].state[up]["momentum_buffer"])


def test_a_parameter_moved_to_another_optimizer_is_refused_on_load():
    torch.manual_seed(0)
    model = llama()
    compiled = specopt.compile(HYBRID, model)
    lm_loss(model, batch()).backward()
    compiled.optimizer.step()
    moved = specopt.compile("optimizer adamw lr=3e-4\noptimizer muon for ndim==2 & !embed* & !lm_head & !model.layers.0",
                            model)
    with pytest.raises(specopt.SpecError) as info:
        moved.load_state_dict(compiled.state_dict())
    (diag,) = info.value.diagnostics
    assert diag.code == "E504" and "holds muon state for model.layers.0.self_attn.q_proj.weight" in diag.message


def test_lightning_gets_one_optimizer():
    compiled = specopt.compile(HYBRID + "\nschedule cosine 100 steps", llama())
    config = compiled.lightning()
    assert config["optimizer"] is compiled.optimizer and config["lr_scheduler"]["interval"] == "step"


def test_the_report_and_explain_name_each_parameters_optimizer():
    compiled = specopt.compile(HYBRID, llama())
    text = compiled.explain("model.layers.0.mlp.up_proj.weight")
    assert "optimizer muon" in text
    from specopt.report.resolution_report import assignment_json

    data = assignment_json(compiled.resolution, compiled.source)
    assert [o["name"] for o in data["optimizers"]] == ["adamw", "muon"]
    assert data["optimizers"][1]["for"] == "ndim==2 & !embed* & !lm_head"


def test_explain_computes_a_relative_value_from_the_parameters_own_optimizer():
    compiled = specopt.compile(HYBRID + "\ngroup model.layers.3 lr=x0.5", llama())
    text = compiled.explain("model.layers.3.mlp.up_proj.weight")
    assert "sets lr=x0.5 (= 0.01)" in text
    text = compiled.explain("model.layers.3.input_layernorm.weight")
    assert "sets lr=x0.5 (= 0.00015)" in text


# --- Muon over sharded parameters ----------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"nesterov": False, "weight_decay": 0.0},
                                     {"adjust_lr_fn": "match_rms_adamw", "momentum": 0.8}])
def test_whole_matrix_muon_computes_what_torchs_muon_does(options):
    """Under FSDP2 the build stage swaps torch's Muon for WholeMatrixMuon (test_fsdp2.py); on plain tensors
    its step must be torch's, bit for bit, in every supported torch."""
    from specopt.runtime.sharded_norms import WholeMatrixMuon

    torch.manual_seed(0)
    shapes = [(16, 4), (8, 8), (3, 12)]
    ours, theirs = ([torch.nn.Parameter(torch.randn(*s)) for s in shapes] for _ in range(2))
    for a, b in zip(ours, theirs):
        b.data.copy_(a.data)
    start = ours[0].detach().clone()
    optimizers = WholeMatrixMuon(ours, lr=0.02, **options), torch.optim.Muon(theirs, lr=0.02, **options)
    for step in range(4):
        for params in (ours, theirs):
            for k, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (k + 1) + step)
        for optimizer in optimizers:
            optimizer.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], start), "the steps moved the parameters"


def test_sharded_parameters_get_whole_matrix_muon_and_plain_ones_torchs():
    from specopt.runtime.sharded_norms import WholeMatrixMuon, optimizer_class_for

    assert optimizer_class_for(torch.optim.Muon, [torch.zeros(2, 2)]) is torch.optim.Muon
    assert optimizer_class_for(torch.optim.AdamW, [torch.zeros(2, 2)]) is torch.optim.AdamW
    assert issubclass(WholeMatrixMuon, torch.optim.Muon)
