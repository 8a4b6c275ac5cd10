"""``specopt.integrations.lightning`` under a real Trainer: the run equals the step driver's, clipping happens once,
and a run resumed from a Lightning checkpoint keeps what a gradual unfreeze changed."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import specopt
from peers import peer
from test_ddp_ranks import net

pl = peer("lightning.pytorch")
adapter = peer("specopt.integrations.lightning")

SPEC = """optimizer adamw lr=0.05 weight_decay=0.01
freeze body.2
unfreeze body.2 at step 2 warmup 2 steps
group head lr=x0.5
clip l2 0.5
accumulate 2
step every 1 x0.5
ema 0.5
"""
BATCHES = 5  # per epoch: with accumulate 2, Lightning steps after batches 2, 4 and 5


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(4, 4, generator=g) * 2, torch.randn(4, 3, generator=g)) for _ in range(BATCHES)]


def _loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


class Regressor(pl.LightningModule):
    """The test model inside a LightningModule whose optimizers come from the run's SpecCallback."""

    def __init__(self):
        super().__init__()
        self.model = net()

    def training_step(self, batch, batch_idx):
        return _loss(self.model, batch)

    def configure_optimizers(self):
        return adapter.configure_optimizers(self)


def _trainer(callback, **options) -> "pl.Trainer":
    options = {"max_epochs": 2, "accumulate_grad_batches": 2, **options}
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[callback], **options)


def _fit(trainer, module, **options) -> None:
    loader = torch.utils.data.DataLoader(_data(), batch_size=None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader, **options)


def _driver_run(epochs: int = 2):
    """The same training through compiled.train_step and end_epoch."""
    model = net()
    compiled = specopt.compile(SPEC, model, steps_per_epoch=3, epochs=epochs)
    for _ in range(epochs):
        for batch in _data():
            compiled.train_step(_loss(model, batch))
        compiled.end_epoch()
    return model, compiled


def _callback() -> "adapter.SpecCallback":
    return adapter.SpecCallback(specopt.parse(SPEC), module="model")


def test_a_lightning_run_equals_the_step_drivers():
    callback, module = _callback(), Regressor()
    _fit(_trainer(callback), module)
    model, compiled = _driver_run()
    ours = callback.compiled
    assert ours.steps == compiled.steps == 6 and ours.epochs == 2
    assert ours.timing.steps_per_epoch == 3, "from the Trainer: ceil(5 batches / 2)"
    for name, param in model.named_parameters():
        torch.testing.assert_close(module.model.get_parameter(name), param, msg=name)
    assert [g["lr"] for g in ours.optimizer.param_groups] == [g["lr"] for g in compiled.optimizer.param_groups]
    assert float(ours.clipper.last_norm) == pytest.approx(float(compiled.clipper.last_norm), rel=1e-5)
    for ema, reference in zip(ours.ema.parameters(), compiled.ema.parameters()):
        torch.testing.assert_close(ema, reference)


def test_the_config_carries_interval_frequency_and_monitor():
    config = specopt.compile('schedule cosine 10 epochs then plateau monitor "val_loss"', net()).lightning()
    assert config["lr_scheduler"]["interval"] == "epoch" and config["lr_scheduler"]["frequency"] == 1
    assert config["lr_scheduler"]["monitor"] == "val_loss"


def test_a_trainer_that_clips_too_is_e601():
    with pytest.raises(specopt.SpecError, match=r"the spec clips \(l2 0.5\) and the Lightning Trainer clips too "
                                                r"\(gradient_clip_val=1\).*\[E601\]"):
        _fit(_trainer(_callback(), gradient_clip_val=1.0), Regressor())


def test_a_trainer_that_accumulates_otherwise_is_e602():
    with pytest.raises(specopt.SpecError, match=r"accumulates 2 micro-batches .* accumulates 4 .*\[E602\]"):
        _fit(_trainer(_callback(), accumulate_grad_batches=4), Regressor())


def test_every_clash_comes_in_one_round():
    module = Regressor()
    callback = adapter.SpecCallback(specopt.parse(SPEC + "freeze nothing.*\n"), module="model")
    with pytest.raises(specopt.SpecError) as caught:
        _fit(_trainer(callback, gradient_clip_val=1.0, accumulate_grad_batches=4), module)
    assert [d.code for d in caught.value.diagnostics] == ["E601", "E602", "E301"]
    assert all(p.requires_grad for p in module.parameters()), "nothing was built or frozen"


def test_a_run_resumed_from_a_lightning_checkpoint_keeps_the_unfrozen_block(tmp_path):
    callback, module = _callback(), Regressor()
    first = _trainer(callback, max_epochs=1)
    _fit(first, module)
    assert module.model.body[2].weight.requires_grad, "unfrozen at step 2, in the first epoch"
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed, again = _callback(), Regressor()
    seen = []

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(pl_module.model.body[2].weight.requires_grad)

    trainer = _trainer(resumed)
    trainer.callbacks.append(Watch())
    _fit(trainer, again, ckpt_path=tmp_path / "epoch1.ckpt")
    assert seen and all(seen), "trainable from the first batch after resuming"
    model, compiled = _driver_run()
    assert resumed.compiled.steps == compiled.steps == 6
    for name, param in model.named_parameters():
        torch.testing.assert_close(again.model.get_parameter(name), param, msg=name)


def test_resuming_under_another_spec_is_e505(tmp_path):
    callback, module = _callback(), Regressor()
    first = _trainer(callback, max_epochs=1)
    _fit(first, module)
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    other = adapter.SpecCallback(specopt.parse(SPEC.replace("x0.5\n", "x0.25\n")), module="model")
    with pytest.raises(specopt.SpecError, match=r"saved under another spec.*\[E505\]"):
        _fit(_trainer(other), Regressor(), ckpt_path=tmp_path / "epoch1.ckpt")


@pytest.mark.parametrize("damage, code", [
    (lambda s: s.update(training=None), "E511"),
    (lambda s: s["training"].update(requires_grad=[True, False]), "E511"),
    (lambda s: s["training"].update(grads={"body.0.weight": torch.zeros(1)}), "E512"),
    (lambda s: s.update(spec={"name": "x"}), "E514"),
])
def test_a_malformed_loop_state_in_a_lightning_checkpoint_is_a_coded_error(tmp_path, damage, code):
    callback, module = _callback(), Regressor()
    first = _trainer(callback, max_epochs=1)
    _fit(first, module)
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    checkpoint = torch.load(tmp_path / "epoch1.ckpt", weights_only=False)
    key = next(k for k in checkpoint["callbacks"] if "SpecCallback" in k)
    damage(checkpoint["callbacks"][key])
    torch.save(checkpoint, tmp_path / "damaged.ckpt")
    resumed = _callback()
    with pytest.raises(specopt.SpecError) as caught:
        _fit(_trainer(resumed), Regressor(), ckpt_path=tmp_path / "damaged.ckpt")
    assert code in [d.code for d in caught.value.diagnostics]
    assert resumed.compiled.steps == 0, "the loop's position was not restored"
