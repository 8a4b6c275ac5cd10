"""The ``specopt`` command line: compile, check, list, fmt and diff.

Exit status: 0 on success, 1 when a spec has errors, 2 for usage errors (bad
arguments, unreadable files, models that cannot be loaded). Bad input never
shows a traceback. ``check``, ``list`` and ``fmt`` never import torch.
``fmt --check`` also exits 1 when a file would change; ``diff`` exits 0 whether
or not the specs differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from .. import __version__
from ..diagnostics import SpecError, render_json
from ..catalog.registry import CLIP_MODES, OPTIMIZERS
from ..report.resolution_report import format_value
from .common import (EXIT_SPEC_ERROR, EXIT_USAGE, UsageError, build_model, format_option, import_option, load_spec,
                     load_with_model, model_option, plan_timing, print_diagnostics, timing_arguments,
                     timing_options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    When the reader of the output goes away (``specopt ... | head``), specopt
    stops quietly with status 0, also when that shows only as stdout is flushed.
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here (also after --help), not at interpreter exit
    except BrokenPipeError:
        _discard_output()
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not _late_selector(args, extra):
        parser.error("unrecognized arguments: " + " ".join(extra))
    try:
        return args.run(args)
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, exc.source, args)
        return EXIT_SPEC_ERROR
    except UsageError as exc:
        print(f"specopt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null, so that flushing them at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):  # not backed by a file descriptor (captured output)
            continue
    os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specopt", description="Compile optimizer-and-freeze specs "
                                     "for PyTorch models.", epilog="compile, explain and diff build the model "
                                     "that --model names: that imports its module and runs your code.")
    parser.add_argument("--version", action="version", version=f"specopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd = sub.add_parser("compile", help="compile a spec against a model and print the result")
    cmd.add_argument("spec", help="the .opt file")
    model_option(cmd)
    cmd.add_argument("--json", action="store_true", help="print the per-parameter assignment as JSON")
    cmd.add_argument("--summary", action="store_true",
                     help="also print torchinfo's per-layer table of the model with the spec applied")
    cmd.add_argument("--input-size", type=_input_size, metavar="C,H,W",
                     help="with --summary: run a CPU forward pass on an input of this size (batch 1 prepended)")
    cmd.add_argument("--meta", action="store_true",
                     help="build the model on the meta device (no memory for weights) and report the "
                     "assignment without building the optimizer")
    timing_options(cmd)
    format_option(cmd)
    import_option(cmd)
    cmd.set_defaults(run=_compile)
    _explain_parser(sub)
    cmd = sub.add_parser("check", help="validate specs without a model (never imports torch)")
    cmd.add_argument("specs", nargs="+", metavar="spec")
    format_option(cmd)
    import_option(cmd)
    cmd.set_defaults(run=_check)
    cmd = sub.add_parser("list", help="list statements, optimizers and their options, clip modes, schedules")
    cmd.set_defaults(run=_list)
    cmd = sub.add_parser("schema", help="print the JSON Schema of a plan, for .json and .yaml plan files")
    cmd.set_defaults(run=_schema)
    _add_fmt_and_diff(sub)
    _plot_parser(sub)
    return parser


def _schema(args) -> int:
    """Print the JSON Schema that a plan written as JSON or YAML follows."""
    from ..plan.plan import Plan

    print(json.dumps(Plan.model_json_schema(), indent=2))
    return 0


def _check(args) -> int:
    status = 0
    for path in args.specs:
        try:
            spec = load_spec(path, args.allow_import)
        except SpecError as exc:
            print_diagnostics(exc.diagnostics, exc.source, args)
            status = EXIT_SPEC_ERROR
            continue
        if args.format == "json":
            print(render_json([], spec.source))
        else:
            print(f"{path}: ok ({len(spec.plan.statements)} statements)")
    return status


def _compile(args) -> int:
    from ..report.resolution_report import assignment_json, describe_clip, describe_schedule, tensor_count, text_report
    from ..resolve.norm_layers import norm_layers
    from ..report.training_report import loop_lines, over_the_run, training_report
    from ..plan.timing import check_schedules

    _check_summary_args(args)
    if args.meta and args.summary:
        raise UsageError("--summary needs the real weights; drop --meta")
    spec, model = load_with_model(args.spec, args.allow_import, args.model, args.meta)
    if args.meta:
        resolution, implementation = spec.resolve(model), "not built (--meta: the model has no weights)"
        timing = plan_timing(spec, args)
        check_schedules(spec.plan, resolution.groups, timing, spec.source)  # as compiling does
        extra = over_the_run(resolution) + loop_lines(resolution.plan, norm_layers(resolution.plan, model)[0])
    else:
        compiled = spec.compile(model, **timing_arguments(args))
        resolution, implementation = compiled.resolution, [i.describe() for i in compiled.implementations]
        extra, timing = training_report(compiled), compiled.timing
    table = _summary_table(args, model)
    if args.json:
        print(json.dumps(assignment_json(resolution, spec.source, timing), indent=2))
        return 0
    print_diagnostics(resolution.warnings, spec.source, args)
    print(f"{args.spec} against {args.model}: {tensor_count(resolution.params)}\n")
    schedule = describe_schedule(resolution, timing)
    print(text_report(resolution, describe_clip(resolution), schedule, implementation, extra))
    if table is not None:
        print("\n" + table)
    return 0


# --- compile --summary -----------------------------------------------------------------------

def _input_size(text: str) -> tuple[int, ...]:
    from ..report.summary import parse_input_size

    try:
        return parse_input_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_summary_args(args) -> None:
    """Reject flag combinations before any work, and a missing torchinfo before compiling."""
    from ..report.summary import SummaryError, require_torchinfo

    if args.input_size is not None and not args.summary:
        raise UsageError("--input-size applies only with --summary")
    if args.summary and args.json:
        raise UsageError("--summary prints a table and cannot be combined with --json")
    if args.summary:
        try:
            require_torchinfo()
        except SummaryError as exc:
            raise UsageError(str(exc)) from None


def _summary_table(args, model) -> str | None:
    """torchinfo's table of the compiled model (its freezes applied), or ``None`` without --summary."""
    from ..report.summary import SummaryError, summarize

    if not args.summary:
        return None
    try:
        return summarize(model, args.input_size)
    except SummaryError as exc:
        raise UsageError(str(exc)) from None


# --- explain ---------------------------------------------------------------------------------

def _late_selector(args, extra: list[str]) -> bool:
    """Take ``explain``'s SELECTOR when it follows ``--model REF``.

    argparse fills an optional positional only from the arguments before the
    first option, so ``explain SPEC --model REF SELECTOR`` leaves it over.
    """
    if getattr(args, "command", None) != "explain" or args.selector is not None:
        return False
    if len(extra) != 1 or extra[0].startswith("-"):
        return False
    args.selector = extra[0]
    return True


def _explain_parser(sub) -> None:
    cmd = sub.add_parser("explain", help="show every statement that set each parameter's state and values")
    cmd.add_argument("spec", help="the .opt file")
    cmd.add_argument("selector", nargs="?",
                     help="only the parameters this selector picks, e.g. 'convolution2*', '@*Norm*', 'ndim<2'")
    model_option(cmd)
    cmd.add_argument("--json", action="store_true", help="print the explanation as JSON")
    timing_options(cmd)
    format_option(cmd)
    import_option(cmd)
    cmd.set_defaults(run=_explain)


def _explain(args) -> int:
    from ..report.explain import explain, render_text

    spec, model = load_with_model(args.spec, args.allow_import, args.model)
    compiled = spec.compile(model, **timing_arguments(args))
    result = explain(compiled, args.selector)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print_diagnostics(compiled.resolution.warnings, spec.source, args)
    print(render_text(result))
    return 0


def _list(args) -> int:
    from ..plan.plan import STATEMENT_KINDS
    from ..catalog.schedule_kinds import SCHEDULE_KINDS

    print("statements:")
    for s in STATEMENT_KINDS:
        print(f"  {s.syntax:<44} {s.summary}")
    print("\noptimizers (default: adam):")
    for o in OPTIMIZERS.values():
        print(f"  {o.name:<12} {o.target:<24} {o.summary}")
        print("  " + " " * 13 + " ".join(f"{opt.name}={format_value(opt.default)}" for opt in o.options))
    _list_extensions()
    print("\nclip modes:")
    for c in CLIP_MODES.values():
        print(f"  {c.name:<8} {c.summary}")
    print("\nschedule kinds (schedule [HYPERPARAMETER] KIND [LENGTH] [ARG VALUE ...] [then ...]):")
    for kind in SCHEDULE_KINDS.values():
        print(f"  {kind.name:<13} {kind.summary}")
        if kind.args:
            print("  " + " " * 14 + "  ".join(f"{a.name} ({a.kind})" for a in kind.args))
    return 0


def _list_extensions() -> None:
    """The optimizers installed packages add; loading them imports those packages' modules."""
    from ..plan.extensions import ENTRY_POINT_GROUP, installed_extensions

    extensions = installed_extensions()
    if not extensions:
        return
    print(f"\nextension optimizers (entry points '{ENTRY_POINT_GROUP}'):")
    for ext in extensions:
        if ext.hidden:
            print(f"  warning: '{ext.name}' from {ext.package} is hidden by the builtin optimizer of "
                  "that name; the package should rename its entry point")
        elif ext.problem is not None:
            print(f"  {ext.name:<12} from {ext.package}: error: {ext.problem}")
        else:
            print(f"  {ext.name:<12} {ext.info.target:<24} {ext.info.summary} (from {ext.package})")
            print("  " + " " * 13 + " ".join(f"{o.name}={format_value(o.default)}" for o in ext.info.options))


# --- plot ------------------------------------------------------------------------------------

def _plot_parser(sub) -> None:
    cmd = sub.add_parser("plot", help="draw every scheduled hyperparameter of every param group over the run "
                         "into a PNG (needs matplotlib)")
    cmd.add_argument("spec", help="the .opt file")
    model_option(cmd)
    cmd.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write the picture")
    timing_options(cmd)
    format_option(cmd)
    import_option(cmd)
    cmd.set_defaults(run=_plot)


def _plot(args) -> int:
    """Resolve the spec on the meta device (no weights needed) and draw its schedules."""
    from ..report.plot import plot
    from ..report.resolution_report import schedule_preview
    from ..plan.timing import check_schedules

    spec, model = load_with_model(args.spec, args.allow_import, args.model, meta=True)
    if not spec.plan.schedules:
        raise UsageError(f"{args.spec} has no schedule to plot")
    timing = plan_timing(spec, args)
    resolution = spec.resolve(model)
    check_schedules(spec.plan, resolution.groups, timing, spec.source)
    view = schedule_preview(resolution, timing, max_points=2000)
    try:
        plot(view, args.output, title=f"{args.spec} against {args.model}")
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}: {', '.join(c.hyper for c in view.curves)} of {len(view.curves[0].groups)} "
          f"param group(s) over {view.until:,g} {timing.unit}s")
    return 0


# --- fmt and diff ------------------------------------------------------------------------------

def _add_fmt_and_diff(sub) -> None:
    cmd = sub.add_parser("fmt", help="rewrite specs in the canonical layout (never imports torch)")
    cmd.add_argument("files", nargs="+", metavar="spec")
    cmd.add_argument("--check", action="store_true",
                     help="change nothing: list the files that would change and exit 1 if any would")
    cmd.set_defaults(run=_fmt)
    cmd = sub.add_parser("diff", help="compare what two specs do to each parameter of a model "
                         "(exit 0 with or without differences)")
    cmd.add_argument("a", help="the old .opt file")
    cmd.add_argument("b", help="the new .opt file")
    model_option(cmd)
    cmd.add_argument("--json", action="store_true", help="print the comparison as JSON")
    import_option(cmd)
    cmd.set_defaults(run=_diff)


def _fmt(args) -> int:
    """Format each file; files with spec errors are reported and left untouched."""
    from pathlib import Path

    from ..language.fmt import format_spec
    from ..language.sources import decode_spec, read_spec_bytes
    from ..spec import parse

    specs, errors = {}, 0
    for path in dict.fromkeys(args.files):
        if Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
            raise UsageError(f"{path}: fmt formats spec text, not a plan stored as data")
        try:
            data = read_spec_bytes(path)
            specs[path] = (parse(decode_spec(data, path), path, defer_imports=True), data)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        except SpecError as exc:
            print_diagnostics(exc.diagnostics, exc.source, args)
            errors += 1
    formatted = {path: format_spec(spec) for path, (spec, _) in specs.items()}
    changed = [path for path, (_, data) in specs.items() if formatted[path].encode("utf-8") != data]
    for path in changed:
        if not args.check:
            _write(path, formatted[path])
        print(f"{'would reformat' if args.check else 'reformatted'} {path}")
    print(_fmt_summary(len(changed), len(specs) - len(changed), errors, args.check), file=sys.stderr)
    return EXIT_SPEC_ERROR if errors or (args.check and changed) else 0


def _write(path: str, text: str) -> None:
    from pathlib import Path

    try:
        Path(path).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fmt_summary(changed: int, same: int, errors: int, check: bool) -> str:
    def files(n: int) -> str:
        return f"{n} file{'s' if n != 1 else ''}"

    parts = [f"{files(changed)} {'would be reformatted' if check else 'reformatted'}",
             f"{files(same)} already formatted"]
    if errors:
        parts.append(f"{files(errors)} with errors left unchanged")
    return ", ".join(parts)


def _diff(args) -> int:
    """Resolve both specs against fresh instances of one model and print what changes."""
    from ..report.diff import diff_json, diff_resolutions, render_text, resolve_spec

    specs = []
    for path in (args.a, args.b):
        try:
            specs.append(load_spec(path, args.allow_import))
        except SpecError as exc:
            print_diagnostics(exc.diagnostics, exc.source, args)
    if len(specs) < 2:
        return EXIT_SPEC_ERROR
    resolutions = []
    for spec in specs:
        try:
            resolutions.append(resolve_spec(spec, lambda: build_model(args.model)))
        except SpecError as exc:
            print_diagnostics(exc.diagnostics, exc.source, args)
    if len(resolutions) < 2:
        return EXIT_SPEC_ERROR
    for spec, res in zip(specs, resolutions):
        print_diagnostics(res.warnings, spec.source, args)
    try:
        diff = diff_resolutions(*resolutions, args.a, args.b)
    except ValueError as exc:
        raise UsageError(f"{args.model}: {exc}") from None
    print(json.dumps(diff_json(diff, args.model), indent=2) if args.json else render_text(diff, args.model))
    return 0


