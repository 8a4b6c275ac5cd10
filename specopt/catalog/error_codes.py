"""The error catalogue: every diagnostic code specopt emits, what it means and how to fix it.

Codes are stable: E1xx for reading a spec (syntax, values, files, plans
written as JSON or YAML), E2xx for checking the plan, E3xx for matching
selectors against a model, E4xx for building the torch objects, E5xx for
loading an optimizer checkpoint, E6xx for running under a framework's loop,
W3xx for warnings. ``docs/errors.md`` is generated from this catalogue
(:func:`markdown`), and the tests check that every code in the code base is
here, documented and has a golden example, and that nothing here is unused.
The entries live in :mod:`specopt.catalog.error_codes_spec` (E1xx, E2xx) and
:mod:`specopt.catalog.error_codes_run` (the rest).
"""

from __future__ import annotations

from .code_info import SEED_MODEL, CodeInfo  # noqa: F401 (the catalogue's API)
from .error_codes_run import RUN_ENTRIES
from .error_codes_spec import SPEC_ENTRIES

CATALOGUE: dict[str, CodeInfo] = {entry.code: entry for entry in (*SPEC_ENTRIES, *RUN_ENTRIES)}


def markdown() -> str:
    """The catalogue as ``docs/errors.md``."""
    lines = [
        "# Errors and warnings",
        "",
        "Every diagnostic specopt prints ends with a stable code, such as `[E301]`. This page, generated",
        "from `specopt/catalog/error_codes*.py`, lists them all: what each means, a spec that triggers it and how to",
        "fix it. E1xx codes come from reading a spec (syntax, values, files, plans written as JSON or",
        "YAML), E2xx from checking the plan, E3xx from matching selectors against a model, E4xx from",
        "building the torch objects, E5xx from loading an optimizer checkpoint with",
        "`compiled.load_state_dict`, E6xx from running under a framework's loop (Lightning, the Hugging",
        "Face Trainer, Accelerate), and W3xx are warnings. Examples marked *against the seed model*",
        f"fail only when compiled against `{SEED_MODEL}`, e.g.",
        f"`specopt compile bad.opt --model {SEED_MODEL}`; an E5xx example's comment says which",
        "checkpoint is then loaded into the compiled spec.",
        "",
        "A plan read from JSON or YAML names the field a diagnostic concerns by its path, such as",
        "`plan.yaml:statements.2.options.0.value:7:14: error: ...`.",
        "",
    ]
    for entry in CATALOGUE.values():
        where = " (against the seed model)" if entry.needs_model else ""
        lines += [f"## {entry.code}: {entry.title}", "", f"{entry.severity.capitalize()}. {entry.summary}", "",
                  f"Example{where}:", "", f"```{_FENCE[entry.example_format]}", entry.example, "```", "",
                  f"Fix: {entry.fix}", ""]
    return "\n".join(lines)


_FENCE = {"opt": "text", "json": "json", "yaml": "yaml"}
