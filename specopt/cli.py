"""The ``specopt`` command line: compile, check and list.

Exit status: 0 on success, 1 when a spec has errors, 2 for usage errors (bad
arguments, unreadable files, models that cannot be loaded). Bad input never
shows a traceback. ``check`` and ``list`` never import torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import __version__
from .diagnostics import Diagnostic, SpecError, render_all, render_json
from .registry import CLIP_MODES, OPTIMIZERS, SCHEDULES, STATEMENTS
from .report import format_value
from .spec import Spec, load

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with how specopt was called, rather than with a spec."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics, exc.source, args)
        return EXIT_SPEC_ERROR
    except UsageError as exc:
        print(f"specopt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specopt", description="Compile optimizer-and-freeze specs "
                                     "for PyTorch models.")
    parser.add_argument("--version", action="version", version=f"specopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd = sub.add_parser("compile", help="compile a spec against a model and print the result")
    cmd.add_argument("spec", help="the .opt file")
    cmd.add_argument("--model", required=True, metavar="REF",
                     help="module:Name, path/to/file.py:Name, or a factory call such as mod:make(3, width=64)")
    cmd.add_argument("--json", action="store_true", help="print the per-parameter assignment as JSON")
    _format_option(cmd)
    cmd.set_defaults(run=_compile)
    cmd = sub.add_parser("check", help="validate specs without a model (never imports torch)")
    cmd.add_argument("specs", nargs="+", metavar="spec")
    _format_option(cmd)
    cmd.set_defaults(run=_check)
    cmd = sub.add_parser("list", help="list statements, optimizers and their options, clip modes, schedules")
    cmd.set_defaults(run=_list)
    return parser


def _format_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--format", choices=("text", "json"), default="text",
                     help="how to print diagnostics (json: for editors and CI annotations)")


def _load(path: str) -> Spec:
    try:
        return load(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _print_diagnostics(diags: Sequence[Diagnostic], source, args) -> None:
    if getattr(args, "format", "text") == "json":
        print(render_json(diags, source))
    elif diags:
        print(render_all(diags, source), file=sys.stderr)


def _check(args) -> int:
    status = 0
    for path in args.specs:
        try:
            spec = _load(path)
        except SpecError as exc:
            _print_diagnostics(exc.diagnostics, exc.source, args)
            status = EXIT_SPEC_ERROR
            continue
        if args.format == "json":
            print(render_json([], spec.source))
        else:
            print(f"{path}: ok ({len(spec.plan.statements)} statements)")
    return status


def _compile(args) -> int:
    from .modelref import ModelRefError, load_model
    from .report import assignment_json, describe_schedule, text_report

    spec = _load(args.spec)
    try:
        model = load_model(args.model)
    except ModelRefError as exc:
        raise UsageError(str(exc)) from None
    compiled = spec.compile(model)
    resolution = compiled.resolution
    if args.json:
        print(json.dumps(assignment_json(resolution, spec.source), indent=2))
        return 0
    _print_diagnostics(resolution.warnings, spec.source, args)
    total = sum(p.info.numel for p in resolution.params)
    print(f"{args.spec} against {args.model}: {len(resolution.params)} tensors, {total:,} elements\n")
    clip = compiled.clipper.describe() + " (before every optimizer.step())" if compiled.clipper else None
    print(text_report(resolution, clip, describe_schedule(resolution)))
    return 0


def _list(args) -> int:
    print("statements:")
    for s in STATEMENTS.values():
        print(f"  {s.syntax:<44} {s.summary}")
    print("\noptimizers (default: adam):")
    for o in OPTIMIZERS.values():
        print(f"  {o.name:<12} {o.target:<24} {o.summary}")
        print("  " + " " * 13 + " ".join(f"{opt.name}={format_value(opt.default)}" for opt in o.options))
    print("\nclip modes:")
    for c in CLIP_MODES.values():
        print(f"  {c.name:<8} {c.summary}")
    print("\nschedules:")
    for sch in SCHEDULES.values():
        print(f"  {sch.syntax:<44} {sch.summary}")
    return 0
