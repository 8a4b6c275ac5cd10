"""``compiled.lightning()`` under a real Lightning Trainer: the spec's clipping and schedule apply.

Lightning's automatic optimization always steps with a closure
(``optimizer.step(closure=...)``), which computes the gradients inside the
step. The trained parameters must equal a hand-written loop that clips after
``backward()`` and steps the scheduler after every optimizer step.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import specopt
from peers import peer


pl = peer("lightning.pytorch")

SPEC = "optimizer sgd lr=1; clip l2 0.01; step every 2 steps x0.5"
STEPS = 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def _loader() -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(STEPS * 4, 4, generator=gen) * 3,
                                          torch.randn(STEPS * 4, 2, generator=gen))
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=False, num_workers=0)


def _loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y) * 10


class Regressor(pl.LightningModule):
    """A LightningModule whose optimizer, schedule and clipping come from a spec."""

    def __init__(self, model: nn.Module, spec: str):
        super().__init__()
        self.model = model
        self.spec = spec
        self.compiled = None

    def training_step(self, batch, batch_idx):
        return _loss(self.model, batch)

    def configure_optimizers(self):
        self.compiled = specopt.compile(self.spec, self.model)
        return self.compiled.lightning()


def _train_with_lightning(model: nn.Module) -> Regressor:
    module = Regressor(model, SPEC)
    trainer = pl.Trainer(max_steps=STEPS, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, _loader())
    return module


def _train_by_hand(model: nn.Module) -> list[float]:
    """The same training written out: clip_grad_norm_ after backward, the scheduler after every step."""
    compiled = specopt.compile("optimizer sgd lr=1; step every 2 steps x0.5", model)
    norms = []
    for batch in _loader():
        compiled.optimizer.zero_grad()
        _loss(model, batch).backward()
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), 0.01)))
        compiled.optimizer.step()
        compiled.scheduler.step()
    return norms


def test_lightning_training_clips_like_the_hand_written_loop():
    trained, by_hand = _model(), _model()
    module = _train_with_lightning(trained)
    norms = _train_by_hand(by_hand)
    assert module.compiled.clipper.attached and module.compiled.implementation.name == "fused"
    assert min(norms) > 0.01, "every step's gradient norm is above the maximum, so clipping matters"
    assert float(module.compiled.clipper.last_norm) == pytest.approx(norms[-1], rel=1e-5)
    for ours, theirs in zip(trained.parameters(), by_hand.parameters()):
        torch.testing.assert_close(ours, theirs)
    assert module.compiled.scheduler.get_last_lr() == pytest.approx([0.25])
