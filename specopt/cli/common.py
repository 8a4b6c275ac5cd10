"""What the ``specopt`` commands share: exit codes, usage errors, loading specs and models, common options."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..diagnostics import Diagnostic, SpecError, render_all, render_json
from ..language.plan_data import YamlUnavailable
from ..spec import Spec, load


EXIT_SPEC_ERROR = 1


EXIT_USAGE = 2


MODEL_HELP = ("the model: module:Name, path/to/file.py:Name, or a factory call with literal arguments such as "
              "mod:make(3, width=64). This imports that module, which runs its code, and calls the class or "
              "factory; the current directory comes first on the import path")


class UsageError(Exception):
    """A problem with how specopt was called, rather than with a spec."""


def model_option(cmd: argparse.ArgumentParser) -> None:
    """Add ``--model REF`` (required)."""
    cmd.add_argument("--model", required=True, metavar="REF", help=MODEL_HELP)


def format_option(cmd: argparse.ArgumentParser) -> None:
    """Add ``--format text|json`` for diagnostics."""
    cmd.add_argument("--format", choices=("text", "json"), default="text",
                     help="how to print diagnostics (json: for editors and CI annotations)")


def import_option(cmd: argparse.ArgumentParser) -> None:
    """Add ``--allow-import``."""
    cmd.add_argument("--allow-import", action="store_true",
                     help='allow an optimizer named by import path, optimizer "package.module:Class": '
                     "imports and runs that module (the current directory is searched too)")


def load_spec(path: str, allow_import: bool = False) -> Spec:
    """Read and parse a spec file; an unreadable file is a :class:`UsageError`."""
    if allow_import and "" not in sys.path:
        sys.path.insert(0, "")  # find modules in the current directory, as --model does
    try:
        return load(path, allow_import)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except YamlUnavailable as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def load_with_model(path: str, allow_import: bool, ref: str, meta: bool = False):
    """Load a spec and build the model; a spec with errors is still matched against the model,
    so that its selector errors are reported with the rest."""
    from ..spec import with_model_checks

    try:
        spec = load_spec(path, allow_import)
    except SpecError as exc:
        if not exc.statements:
            raise
        try:
            model = build_model(ref, meta=meta)
        except UsageError:
            raise exc from None
        raise with_model_checks(exc, model) from None
    return spec, build_model(ref, meta=meta)


def timing_options(cmd: argparse.ArgumentParser) -> None:
    """Add ``--epochs`` or ``--steps``, and ``--steps-per-epoch``."""
    group = cmd.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=positive, metavar="N",
                       help="the run's length in epochs, for schedules (wins over the spec's 'run')")
    group.add_argument("--steps", type=positive, metavar="N",
                       help="the run's length in optimizer steps, for schedules (wins over the spec's 'run')")
    cmd.add_argument("--steps-per-epoch", type=positive, metavar="N",
                     help="optimizer steps per epoch, for schedules (wins over the spec's 'steps_per_epoch')")


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1, in the digits 0-9 as a spec writes them."""
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 300:  # the digits 0-9, as in a spec
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return value


def plan_timing(spec, args):
    """The spec's timing with the command line's run length and steps per epoch."""
    from ..plan.timing import plan_timing

    return plan_timing(spec.plan, **timing_arguments(args))


def timing_arguments(args) -> dict:
    """The run's length and steps per epoch given on the command line, as compile() takes them."""
    return {"epochs": getattr(args, "epochs", None), "steps": getattr(args, "steps", None),
            "steps_per_epoch": getattr(args, "steps_per_epoch", None)}


def print_diagnostics(diags: Sequence[Diagnostic], source, args) -> None:
    """Print diagnostics as text, or as JSON with ``--format json``."""
    if getattr(args, "format", "text") == "json":
        print(render_json(diags, source))
    elif diags:
        print(render_all(diags, source), file=sys.stderr)


def build_model(ref: str, meta: bool = False):
    """Build the model a ``--model`` reference names (on the meta device with ``meta``)."""
    from ..resolve.model_refs import ModelRefError, load_model

    try:
        if not meta:
            return load_model(ref)
        import torch

        with torch.device("meta"):
            return load_model(ref)
    except ModelRefError as exc:
        raise UsageError(str(exc)) from None
