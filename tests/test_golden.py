"""Golden files per stage: spec → plan JSON, bad spec → diagnostic text, spec × seed model → report."""

from __future__ import annotations

import json

import pytest

import specopt
from golden import cases, check
from specopt.diagnostics import SpecError


@pytest.mark.parametrize("path", cases("plan"), ids=lambda p: p.stem)
def test_plan_json(path):
    spec = specopt.load(path)
    text = json.dumps(json.loads(spec.plan.model_dump_json()), indent=2) + "\n"
    check(path.with_suffix(".json"), text)


@pytest.mark.parametrize("path", cases("diagnostics"), ids=lambda p: p.stem)
def test_diagnostic_text(path):
    with pytest.raises(SpecError) as info:
        specopt.load(path)
    check(path.with_suffix(".txt"), _relative(info.value.render(), path) + "\n")


@pytest.mark.parametrize("path", cases("resolve"), ids=lambda p: p.stem)
def test_resolve_against_seed_model(path, seed_model):
    from specopt.report.resolution_report import describe_schedule, text_report
    from specopt.diagnostics import render_all

    spec = specopt.load(path)
    try:
        compiled = spec.compile(seed_model)
    except SpecError as exc:
        out = exc.render()
    else:
        res = compiled.resolution
        out = render_all(res.warnings, spec.source) + "\n" + text_report(res, None, describe_schedule(res))
    check(path.with_suffix(".txt"), _relative(out, path) + "\n")


def _relative(text: str, path) -> str:
    return text.replace(str(path), path.name)
