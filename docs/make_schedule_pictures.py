"""Draw the curve of every schedule kind into docs/schedules/KIND.png, for docs/schedules.md.

    .venv/bin/python docs/make_schedule_pictures.py [--out docs/schedules]

Each picture is one example of its kind over 100 steps for a param group whose
base value is 1 (so the y axis reads as multiples of the base), drawn by
specopt.report.plot from the same closed forms the scheduler runs. The plateau
picture comes from a real SpecScheduler fed a made-up metric that stops improving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specopt.report.plot import plot  # noqa: E402
from specopt.report.preview import CurvePreview, GroupCurve, Preview, preview_programs  # noqa: E402
from specopt.catalog.schedule_kinds import X1, Level, program  # noqa: E402

RUN = 100
GROUPS = [{"name": "base 1", "lr": 1.0, "momentum": 0.9}]


def x(v: float) -> Level:
    """A relative level, written x``v``."""
    return Level(v, True)


# picture name: (the spec it shows, its program)
EXAMPLES = {
    "constant": ("schedule warmup 20 steps then constant 40 steps then constant x0.1",
                 program(("warmup", 20, {}), ("constant", 40, {}), ("constant", None, {"value": x(0.1)}))),
    "linear": ("schedule linear 100 steps from x0.01",
               program(("linear", 100, {"from": x(0.01), "to": X1}))),
    "warmup": ("schedule warmup 20 steps then cosine to x0.01",
               program(("warmup", 20, {}), ("cosine", 80, {"to": x(0.01)}))),
    "cosine": ("schedule cosine 100 steps to x0.1",
               program(("cosine", 100, {"to": x(0.1)}))),
    "cosine_every": ("schedule cosine every 10 steps mult 2 decay x0.7 to x0.05",
                     program(("cosine", None, {"every": 10.0, "mult": 2.0, "decay": x(0.7), "to": x(0.05)}))),
    "step": ("schedule step every 30 steps x0.5",
             program(("step", None, {"every": 30.0, "gamma": x(0.5)}))),
    "multistep": ("schedule multistep at 30,60,90 steps x0.1",
                  program(("multistep", None, {"at": (30.0, 60.0, 90.0), "gamma": x(0.1)}))),
    "exponential": ("schedule exponential x0.97",
                    program(("exponential", None, {"gamma": x(0.97)}))),
    "polynomial": ("schedule polynomial 100 steps to 0 power 2",
                   program(("polynomial", 100, {"to": Level(0.0, False), "power": 2.0}))),
    "inverse_sqrt": ("schedule warmup 10 steps then inverse_sqrt",
                     program(("warmup", 10, {}), ("inverse_sqrt", None, {}))),
    "onecycle": ("schedule onecycle 100 steps",
                 program(("onecycle", 100, {}))),
}
PLATEAU = "schedule plateau x0.5 patience 3"


def plateau_preview() -> Preview:
    """The learning rate a plateau phase gives while the metric improves for 30 steps, then stalls."""
    import torch

    from specopt.runtime.scheduler import SpecScheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    prog = program(("plateau", None, {"factor": x(0.5), "patience": 3}))
    scheduler = SpecScheduler(optimizer, [prog])
    values = []
    for t in range(RUN + 1):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(1.0 / (1 + min(t, 30)) + 0.001 * (t % 3))
    group = GroupCurve(0, "base 1", 1.0, tuple(values), "")
    curve = CurvePreview("lr", (("plateau", 0.0, None),), (0.0,), tuple(float(t) for t in range(RUN + 1)), (group,))
    return Preview("step", float(RUN), False, True, (curve,))


def main(argv: list[str] | None = None) -> int:
    """Write one PNG per example into ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "schedules", help="where the pictures go")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shown = {name: (spec, preview_programs([prog], GROUPS, "step", RUN)) for name, (spec, prog) in EXAMPLES.items()}
    shown["plateau"] = (PLATEAU, plateau_preview())
    for name, (spec, picture) in sorted(shown.items()):
        figure = plot(picture, title=spec, width=5.0, height=1.9)
        figure.axes[0].title.set_fontsize("small")
        figure.savefig(args.out / f"{name}.png", format="png", dpi=72)
        print(f"wrote {args.out / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
