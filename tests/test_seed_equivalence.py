"""The design-card spec trains to the same parameters as the seed article's hand-written code."""

from __future__ import annotations

import torch
from torch import nn, optim
from torch.optim import lr_scheduler

import specopt
from seed_model import Network

DESIGN_CARD = "freeze cnn.VGG_16.convolution1_*; group convolution2* lr=1e-3; clip l2 20; step every 10 x0.1"
EPOCHS, BATCHES = 12, 3


def _data():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 10, (4,), generator=gen))
            for _ in range(BATCHES)]


def _seed_handwritten(net: Network, base_lr: float, weight_decay: float):
    """Tricks 8, 9, 3 and 7 of the seed article, written out as the article does."""
    no_grad = ["cnn.VGG_16.convolution1_1.weight", "cnn.VGG_16.convolution1_1.bias",
               "cnn.VGG_16.convolution1_2.weight", "cnn.VGG_16.convolution1_2.bias"]
    for name, value in net.named_parameters():
        value.requires_grad = name not in no_grad
    conv2_params, other_params = [], []
    for name, parms in net.named_parameters():
        if not parms.requires_grad:
            continue
        (conv2_params if "convolution2" in name else other_params).append(parms)
    optimizer = optim.Adam([{"params": conv2_params, "lr": 1e-3}, {"params": other_params}],
                           lr=base_lr, weight_decay=weight_decay)
    scheduler = lr_scheduler.StepLR(optimizer, 10, 0.1)
    return optimizer, scheduler


def _train(net, optimizer, scheduler, clip: bool, norms: list):
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(EPOCHS):
        for x, y in _data():
            loss = loss_fn(net(x), y) * 200.0  # large enough that clipping at 20 engages
            optimizer.zero_grad()
            loss.backward()
            if clip:
                norms.append(float(nn.utils.clip_grad_norm_(net.parameters(), max_norm=20, norm_type=2)))
            optimizer.step()
        scheduler.step()


def _run(spec_text: str, base_lr: float, weight_decay: float):
    torch.manual_seed(0)
    reference = Network()
    compiled_net = Network()
    compiled_net.load_state_dict(reference.state_dict())
    norms: list[float] = []
    optimizer, scheduler = _seed_handwritten(reference, base_lr, weight_decay)
    _train(reference, optimizer, scheduler, clip=True, norms=norms)
    compiled = specopt.parse(spec_text).compile(compiled_net)
    _train(compiled_net, compiled.optimizer, compiled.scheduler, clip=False, norms=[])
    return reference, compiled_net, compiled, norms


def _assert_same(a: nn.Module, b: nn.Module, exact: bool):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        if exact:
            assert torch.equal(p, q), name
        else:
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7, msg=name)
        assert p.requires_grad == q.requires_grad, name


def test_design_card_verbatim_matches_handwritten_code():
    """specopt picks the fused implementation on CPU: same result within float tolerance."""
    reference, net, compiled, norms = _run(DESIGN_CARD, 1e-3, 0.0)
    assert compiled.implementation.name == "fused"
    assert max(norms) > 20, "the test data must make clipping engage"
    assert compiled.scheduler.get_last_lr()[0] == 1e-3 * 0.1  # the schedule fired at epoch 10
    _assert_same(reference, net, exact=False)


def test_design_card_with_torch_default_implementation_is_bitwise_equal():
    """Pinning torch's single-tensor implementation reproduces the hand-written run exactly."""
    reference, net, compiled, _ = _run("optimizer adam foreach=false\n" + DESIGN_CARD, 1e-3, 0.0)
    assert compiled.implementation.name == "single-tensor"
    _assert_same(reference, net, exact=True)


def test_seed_trick9_two_groups_match_handwritten_code():
    text = "optimizer adam lr=1e-2 weight_decay=1e-3 foreach=false\n" + DESIGN_CARD
    reference, net, compiled, norms = _run(text, 1e-2, 1e-3)
    assert len(compiled.optimizer.param_groups) == 2
    assert max(norms) > 20
    _assert_same(reference, net, exact=True)


def test_frozen_parameters_never_change():
    torch.manual_seed(0)
    net = Network()
    before = net.cnn.VGG_16.convolution1_1.weight.detach().clone()
    compiled = specopt.parse(DESIGN_CARD).compile(net)
    _train(net, compiled.optimizer, compiled.scheduler, clip=False, norms=[])
    assert torch.equal(net.cnn.VGG_16.convolution1_1.weight, before)
    assert net.cnn.VGG_16.convolution1_1.weight.grad is None
