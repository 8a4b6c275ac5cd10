"""The step driver against the hand-written loop doing the same work, the EMA update, and backward before an unfreeze.

Three figures, each with its candidates side by side:
  step     ``compiled.train_step(loss)`` against the loop people write: GradScaler scale and backward,
           unscale_, clip_grad_norm_, scaler.step, scaler.update, scheduler.step and an
           AveragedModel EMA update when the step happened, zero_grad(set_to_none=True);
           on a small MLP and a large one (100M parameters by default). Target: <= 1.02x per step.
  ema      the ``ema`` statement's update against AveragedModel.update_parameters with torch's
           get_ema_multi_avg_fn (the same multi-tensor lerp), large MLP. Target: <= 1.0x.
  backward forward and backward with the first half of the layers waiting for an ``unfreeze ... at``
           against the same half frozen plainly by ``freeze``. Target: <= 1.02x.

    .venv/bin/python benchmarks/bench_train_step.py [--width 256 --depth 4] [--large-width 4096 --large-depth 6]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import specopt
from common import Candidate, interleave, machine, parse_args, parser, print_table, print_target

SPEC = "optimizer adamw fused=true; clip l2 1.0; step every 1000 steps x0.5; ema 0.999"


def mlp(width: int, depth: int) -> nn.Module:
    """``depth`` linear layers of ``width`` with ReLU between them, seeded so that copies are identical."""
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def data(width: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, width, generator=g), torch.randn(batch, width, generator=g)


def hand_step(model: nn.Module, x, y):
    """The hand-written step: the work SPEC describes, written out."""
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, fused=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)

    def step():
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        before = scaler.get_scale()
        scaler.update()
        if scaler.get_scale() >= before:
            scheduler.step()
            ema.update_parameters(model)
        optimizer.zero_grad(set_to_none=True)
    return step


def driver_step(model: nn.Module, x, y):
    """The same step through ``compiled.train_step``."""
    compiled = specopt.compile(SPEC, model, scaler=torch.amp.GradScaler("cpu"))
    return lambda: compiled.train_step(nn.functional.mse_loss(model(x), y))


def step_figure(label: str, width: int, depth: int, batch: int, repeats: int) -> float:
    x, y = data(width, batch)
    hand, ours = mlp(width, depth), mlp(width, depth)
    params = sum(p.numel() for p in hand.parameters())
    times = interleave([Candidate("hand-written loop", hand_step(hand, x, y)),
                        Candidate("compiled.train_step", driver_step(ours, x, y))], repeats, warmup=2)
    ratios = print_table(f"step, {label}: MLP {depth} x {width} ({params / 1e6:.1f}M parameters), batch {batch}",
                         times, "hand-written loop")
    return ratios["compiled.train_step"]


def ema_figure(width: int, depth: int, repeats: int) -> float:
    model = mlp(width, depth)
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    compiled = specopt.compile("ema 0.999", model)
    ours, counter = compiled.driver.ema, [0]
    theirs.update_parameters(model)
    ours.update(model, 1)

    def update():
        counter[0] += 1
        ours.update(model, counter[0])
    times = interleave([Candidate("AveragedModel.update_parameters", lambda: theirs.update_parameters(model)),
                        Candidate("specopt ema update", update)], repeats, warmup=2)
    params = sum(p.numel() for p in model.parameters())
    ratios = print_table(f"EMA update: MLP {depth} x {width} ({params / 1e6:.1f}M parameters)", times,
                         "AveragedModel.update_parameters")
    return ratios["specopt ema update"]


def backward_figure(width: int, depth: int, batch: int, repeats: int) -> float:
    x, y = data(width, batch)
    half = ",".join(str(2 * k) for k in range(depth // 2))
    plain, waiting = mlp(width, depth), mlp(width, depth)
    specopt.compile(f"freeze {{{half}}}", plain)
    specopt.compile(f"freeze {{{half}}}; unfreeze {{{half}}} at step 1000000", waiting)

    def backward(model):
        def run():
            model.zero_grad(set_to_none=True)
            nn.functional.mse_loss(model(x), y).backward()
        return run
    times = interleave([Candidate("frozen by freeze", backward(plain)),
                        Candidate("waiting for unfreeze ... at", backward(waiting))], repeats, warmup=2)
    ratios = print_table(f"forward + backward, first half of MLP {depth} x {width} not trained, batch {batch}",
                         times, "frozen by freeze")
    return ratios["waiting for unfreeze ... at"]


def main(argv=None) -> int:
    """Run the three figures."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=256, help="small MLP width")
    p.add_argument("--depth", type=int, default=4, help="small MLP linear layers")
    p.add_argument("--large-width", type=int, default=4096, help="large MLP width (4096 x 6: 100M parameters)")
    p.add_argument("--large-depth", type=int, default=6, help="large MLP linear layers")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    args = parse_args(p, argv)
    if args.smoke:
        args.width, args.depth, args.large_width, args.large_depth, args.batch = 16, 2, 32, 2, 2
    repeats = args.repeats or (3 if args.smoke else 20)
    print(machine())
    small = step_figure("small", args.width, args.depth, args.batch, repeats * 5)
    large = step_figure("large", args.large_width, args.large_depth, args.batch, repeats)
    ema = ema_figure(args.large_width, args.large_depth, repeats * 2)
    backward = backward_figure(args.large_width, args.large_depth, args.batch, repeats * 2)
    print()
    print_target("train_step / hand-written loop, small", small, 1.02)
    print_target("train_step / hand-written loop, large", large, 1.02)
    print_target("specopt ema update / AveragedModel.update_parameters", ema, 1.0)
    print_target("backward waiting for an unfreeze / frozen by freeze", backward, 1.02)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
