"""The spec examples in the documentation parse, and the error examples fail as documented."""

from __future__ import annotations

import re

import pytest

import specopt
from conftest import ROOT
from seed_model import Network

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(path):
    """Each ``opt`` block with the codes shown in the block that follows it."""
    fences = FENCE.findall((ROOT / path).read_text(encoding="utf-8"))
    for k, (lang, body) in enumerate(fences):
        if lang == "opt":
            after = fences[k + 1][1] if k + 1 < len(fences) else ""
            yield pytest.param(body, set(re.findall(r"\[([EW]\d{3})\]", after)), id=f"{path}:{k}")


@pytest.mark.parametrize("text, shown", list(_blocks("docs/language.md")))
def test_language_reference_examples(text, shown):
    errors = {c for c in shown if c.startswith("E")}
    try:
        spec = specopt.parse(text)
        if errors:
            spec.compile(Network())
    except specopt.SpecError as exc:
        assert errors & {d.code for d in exc.diagnostics}, exc.render()
    else:
        assert not errors, f"documented as failing with {sorted(errors)}, but it compiles"


def test_readme_language_tour_parses():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## The language in five minutes")[1].split("```")[1]
    assert len(specopt.parse(tour).plan.statements) == 7
