"""``specopt.integrations.hf`` under a real ``Trainer.train()``: the run equals a hand-written loop doing what the Trainer does,
with the spec's epochs counted in the Trainer's optimizer steps and one clipping per step."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import specopt
from specopt.runtime.compiled import CheckpointWarning
from peers import peer
from test_ddp_ranks import Net

transformers = peer("transformers")
hf = peer("specopt.integrations.hf")

SPEC = """optimizer adamw lr=0.05 weight_decay=0.01
freeze body.0
group head lr=x0.5
clip l2 0.5
accumulate 2
step every 1 x0.5
"""
SAMPLES, BATCH, EPOCHS = 20, 4, 2  # 5 batches an epoch: steps after batches 2, 4 and 5


class HFNet(Net):
    """The test model as the Trainer calls it: keyword inputs, a dict with the loss."""

    def forward(self, x, labels=None):  # noqa: D102 - the Trainer's calling convention
        out = super().forward(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _model() -> HFNet:
    torch.manual_seed(0)
    return HFNet()


def _samples() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [{"x": torch.randn(4, generator=g) * 2, "labels": torch.randn(3, generator=g)} for _ in range(SAMPLES)]


class InOrder(transformers.Trainer):
    """A Trainer that reads the samples in order, as the hand-written loop does."""

    def _get_train_sampler(self, *args, **kwargs):
        return torch.utils.data.SequentialSampler(self.train_dataset)


def _trainer(model, tmp_path, **options) -> "transformers.Trainer":
    options = {"per_device_train_batch_size": BATCH, "save_strategy": "no", **options}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), gradient_accumulation_steps=2, num_train_epochs=EPOCHS, use_cpu=True,
        report_to="none", logging_strategy="no", disable_tqdm=True, remove_unused_columns=False,
        dataloader_num_workers=0, **options)
    return InOrder(model=model, args=args, train_dataset=_samples())


def _by_hand() -> tuple[HFNet, list[float]]:
    """The Trainer's loop written out: chunks of 2 batches (the last one shorter), each loss divided by the
    chunk's length, clip_grad_norm_, AdamW, and StepLR stepped per optimizer step, every 3 of them."""
    model = _model()
    model.body[0].requires_grad_(False)
    head = list(model.head.parameters())
    body = [p for p in model.body.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body}, {"params": head, "lr": 0.025}], lr=0.05, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    data = _samples()
    batches = [{k: torch.stack([s[k] for s in data[i:i + BATCH]]) for k in data[0]} for i in range(0, SAMPLES, BATCH)]
    norms = []
    for _ in range(EPOCHS):
        for chunk in (batches[0:2], batches[2:4], batches[4:5]):
            for b in chunk:
                (model(**b)["loss"] / len(chunk)).backward()
            norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), 0.5)))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    return model, norms


def test_trainer_train_equals_the_hand_written_loop(tmp_path, caplog):
    model = _model()
    trainer = _trainer(model, tmp_path)
    with caplog.at_level(logging.INFO, logger="specopt"):
        compiled = hf.attach(trainer, specopt.parse(SPEC))
    assert "the spec clips (clip l2 0.5), so the Trainer's max_grad_norm=1 is turned off" in caplog.text
    assert trainer.args.max_grad_norm == 0 and compiled.schedule_unit == "step"
    assert compiled.timing.steps_per_epoch == 3 and compiled.timing.run == 6
    trainer.train()
    reference, norms = _by_hand()
    assert compiled.steps == trainer.state.global_step == 6 and compiled.epochs == 2
    assert float(compiled.clipper.last_norm) == pytest.approx(norms[-1], rel=1e-5)
    assert min(norms) > 0.5, "every step clipped"
    assert compiled.scheduler.get_last_lr() == pytest.approx([0.05 * 0.25, 0.025 * 0.25])
    for name, param in reference.named_parameters():
        torch.testing.assert_close(model.get_parameter(name), param, rtol=1e-5, atol=1e-6, msg=name)


def test_without_a_clip_statement_the_trainer_clips_and_says_so(tmp_path, caplog):
    trainer = _trainer(_model(), tmp_path)
    with caplog.at_level(logging.INFO, logger="specopt"):
        compiled = hf.attach(trainer, specopt.parse("optimizer sgd lr=0.1\naccumulate 2"))
    assert "the spec has no clip statement; the Trainer clips at max_grad_norm=1" in caplog.text
    assert trainer.args.max_grad_norm == 1.0 and compiled.clipper is None
    constant = trainer.lr_scheduler.scheduler  # inside the scheduler that carries the loop's state in checkpoints
    assert isinstance(constant, torch.optim.lr_scheduler.ConstantLR), "not the Trainer's linear decay"
    assert trainer.lr_scheduler.last_epoch == constant.last_epoch == 0, "the schedule's attributes read through"


def test_another_accumulation_is_e602_and_a_plateau_e603(tmp_path):
    with pytest.raises(specopt.SpecError, match=r"gradient_accumulation_steps=2.*\[E602\]"):
        hf.attach(_trainer(_model(), tmp_path), specopt.parse("accumulate 4"))
    with pytest.raises(specopt.SpecError, match=r"plateau phase waits for a metric.*\[E603\]"):
        hf.attach(_trainer(_model(), tmp_path), specopt.parse("schedule cosine 1 epochs then plateau"))


def test_every_clash_and_spec_error_comes_in_one_round(tmp_path):
    model = _model()
    with pytest.raises(specopt.SpecError) as caught:
        hf.attach(_trainer(model, tmp_path), specopt.parse("accumulate 4\nfreeze nothing.*\n"
                                                           "schedule cosine 1 epochs then plateau"))
    assert [d.code for d in caught.value.diagnostics] == ["E602", "E301", "E603"]
    assert all(p.requires_grad for p in model.parameters()), "nothing was built or frozen"


RESUME_SPEC = """optimizer adamw lr=0.05 weight_decay=0.01
freeze body.0
freeze body.3
unfreeze body.0 at step 2 warmup 2 steps
unfreeze body.3 at epoch 1
group head lr=x0.5
clip l2 0.5
accumulate 2
schedule warmup 2 steps then cosine 6 steps to x0.1
ema 0.5
"""


class Watch(transformers.TrainerCallback):
    """Records, before each optimizer step, the global step, which blocks train and each group's lr."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.seen.append((state.global_step, self.model.body[0].weight.requires_grad,
                          self.model.body[3].weight.requires_grad, [g["lr"] for g in optimizer.param_groups]))


def _resumable(tmp_path, spec: str = RESUME_SPEC, resume: str | None = None, **options):
    """A run of 2 epochs (6 steps) that saves a checkpoint after every step; resumed from ``resume`` if given."""
    model = _model()
    trainer = _trainer(model, tmp_path, save_strategy="steps", save_steps=1, **options)
    compiled = hf.attach(trainer, specopt.parse(spec))
    watch = Watch(model)
    trainer.add_callback(watch)
    trainer.train(resume_from_checkpoint=resume)
    return model, compiled, watch.seen


def test_a_resumed_trainer_continues_the_loop_bit_for_bit(tmp_path):
    model, compiled, seen = _resumable(tmp_path / "run")
    assert [flags for _, *flags, _ in seen] == [[False, False]] * 2 + [[True, False]] + [[True, True]] * 3
    for cut in range(1, 6):
        again, resumed, after = _resumable(tmp_path / f"from{cut}", resume=str(tmp_path / "run" / f"checkpoint-{cut}"))
        assert after == seen[cut:], f"cut at step {cut}: the same global steps, trainability and lrs"
        assert (resumed.steps, resumed.epochs) == (compiled.steps, compiled.epochs) == (6, 2)
        for name, param in model.named_parameters():
            assert torch.equal(again.get_parameter(name), param), f"cut at step {cut}: {name}"
        for ema, reference in zip(resumed.ema.parameters(), compiled.ema.parameters()):
            assert torch.equal(ema, reference), f"cut at step {cut}: the EMA"


def test_resuming_under_another_spec_is_e505(tmp_path):
    _resumable(tmp_path / "run")
    with pytest.raises(specopt.SpecError, match=r"(?s)saved under another spec.*\[E505\].*by position.*head.weight"):
        _resumable(tmp_path / "other", spec=RESUME_SPEC.replace("x0.5\n", "x0.25\n"),
                   resume=str(tmp_path / "run" / "checkpoint-3"))


def test_a_checkpoint_without_the_loop_state_says_what_starts_over(tmp_path):
    _resumable(tmp_path / "run")
    folder = tmp_path / "run" / "checkpoint-3"
    torch.save(torch.load(folder / "scheduler.pt")["scheduler"], folder / "scheduler.pt")  # as older specopt.integrations.hf saved
    with pytest.warns(CheckpointWarning, match="no specopt loop state.*step count.*EMA start over"):
        _, compiled, seen = _resumable(tmp_path / "old", resume=str(folder))
    assert compiled.steps == 3 and seen[0][0] == 3, "the schedule and the Trainer continue; the loop's count restarted"
