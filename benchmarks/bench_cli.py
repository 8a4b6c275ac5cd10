"""Cold start of ``specopt check`` against ``python -c "import torch"``, each in a fresh process.

``specopt check`` never imports torch, so validating a spec in an editor or in
CI should cost a fraction of importing torch. Candidates, interleaved:
  python -c pass               the interpreter alone (the floor);
  python -c "import torch"     the baseline;
  specopt check SPEC           the console script (``python -m specopt`` where it is not installed).
Target: specopt check <= 0.35x import torch.

    .venv/bin/python benchmarks/bench_cli.py [--spec examples/seed.opt] [--repeats 10]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import Candidate, interleave, machine, parse_args, parser, print_table, print_target

ROOT = Path(__file__).resolve().parent.parent


def specopt_command() -> list[str]:
    """The installed ``specopt`` console script next to this interpreter, else ``python -m specopt``."""
    script = Path(sys.executable).parent / "specopt"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "specopt"]


def command_candidate(name: str, argv: list[str]) -> Candidate:
    """A candidate running ``argv`` to completion from the project root; a failure stops the benchmark."""
    def run():
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return Candidate(name, run)


def main(argv=None) -> int:
    """Run the comparison and print its table."""
    p = parser(__doc__.splitlines()[0], threads=False)  # every candidate is a fresh process
    p.add_argument("--spec", default="examples/seed.opt", help="the spec to check (relative to the project)")
    args = parse_args(p, argv)
    repeats = args.repeats or (1 if args.smoke else 10)
    check = specopt_command() + ["check", args.spec]
    print(machine())
    print(f"specopt command: {' '.join(check)}")
    candidates = [command_candidate("python -c pass", [sys.executable, "-c", "pass"]),
                  command_candidate('python -c "import torch"', [sys.executable, "-c", "import torch"]),
                  command_candidate("specopt check", check)]
    times = interleave(candidates, repeats, warmup=0 if args.smoke else 1)
    ratios = print_table("cold start, fresh process each run", times, 'python -c "import torch"')
    print_target("specopt check / import torch", ratios["specopt check"], 0.35)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
