"""Hardened input: whatever a user writes, specopt returns a plan or raises SpecError.

Parsing and validating arbitrary input either succeeds or raises
:class:`specopt.SpecError` whose diagnostics all point inside the text; never
another exception, never a hang. The inputs come from

* the grammar itself (``hypothesis.extra.lark.from_lark``),
* mutations of valid specs (``examples/seed.opt``, ``tests/golden/plan/*.opt``),
* random bytes written to ``.opt``, ``.json``, ``.yaml`` and ``.yml`` files,
* generated and mutated plan data, written as JSON and YAML.

Selector matching is checked to stay polynomial on adversarial patterns by
counting the lines the matcher executes (a count of steps, not a time).
Example counts scale with the hypothesis profile from ``conftest.py``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

import specopt
from golden import GOLDEN
from specopt.plan import selectors
from specopt.language.plan_data import dump_plan, dump_yaml, parse_data
from specopt.language.yaml_loader import safe_dumper
from specopt.diagnostics import SpecError, render_json
from specopt.language.parse import grammar_text

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [(ROOT / "examples" / "seed.opt").read_text(encoding="utf-8")] + [
    p.read_text(encoding="utf-8") for p in sorted((GOLDEN / "plan").glob("*.opt"))]
_BASE_EXAMPLES = 60  # the max_examples of the default ("ci") profile


def _settings(n: int) -> settings:
    """``n`` examples under the default profile, scaled up under a longer one."""
    scaled = max(1, n * settings.default.max_examples // _BASE_EXAMPLES)
    return settings(max_examples=scaled, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def assert_outcome(load) -> specopt.Spec | None:
    """Run ``load``; it must return a Spec or raise SpecError with positioned, renderable diagnostics."""
    try:
        spec = load()
    except SpecError as exc:
        assert exc.diagnostics, "a SpecError without diagnostics"
        text = exc.source.text if exc.source else ""
        for d in exc.diagnostics:
            assert d.span is not None, f"unpositioned diagnostic: {d}"
            assert 0 <= d.span.start <= d.span.end <= len(text), f"span outside the text: {d}"
        assert exc.render()
        json.loads(render_json(exc.diagnostics, exc.source))
        return None
    assert isinstance(spec, specopt.Spec)
    return spec


def assert_parses_or_reports(text: str) -> None:
    """Parse spec text; a plan that parses also survives the trip through JSON and YAML data."""
    spec = assert_outcome(lambda: specopt.parse(text, "<fuzz>"))
    if spec is None:
        return
    data = dump_plan(spec.plan)
    for fmt, written in (("json", json.dumps(data)), ("yaml", dump_yaml(spec.plan))):
        again, _ = parse_data(written, fmt)
        assert json.dumps(dump_plan(again)) == json.dumps(data)


# --- (a) text generated from the grammar ------------------------------------------------------

_LOOKAROUND = re.compile(r"\(\?<?[=!][^)]*\)")


def _grammar_strings() -> st.SearchStrategy[str]:
    """Strings of the spec grammar; terminals with lookarounds are drawn without them, plus a space."""
    grammar = Lark(grammar_text(), start="file", parser="lalr", lexer="contextual")
    explicit = {}
    for terminal in grammar.terminals:
        pattern = terminal.pattern
        if pattern.type == "re" and _LOOKAROUND.search(pattern.value):
            body = _LOOKAROUND.sub("", pattern.value)
            explicit[terminal.name] = st.from_regex(body, fullmatch=True).map(lambda s: s + " ")
    return from_lark(grammar, start="file", explicit=explicit)


def test_lookaround_terminals_are_covered():
    """The explicit strategies above exist because these terminals use lookarounds."""
    grammar = Lark(grammar_text(), start="file", parser="lalr", lexer="contextual")
    names = {t.name for t in grammar.terminals if _LOOKAROUND.search(t.pattern.value)}
    assert {"_FREEZE", "KEY", "UNIT"} <= names


@_settings(100)
@given(_grammar_strings())
def test_grammar_generated_text(text):
    assert_parses_or_reports(text)


# --- (b) mutations of valid specs -------------------------------------------------------------

_TOKENS = [";", "\n", "#", "=", "(", ")", ",", "*", "**", ".", "..", "{", "}", "[", "]", "[!", "!", "~",
           "&", "@", "^", "x", "x0.5", '"', ":", "ndim<", "ndim>=2", "freeze ", "unfreeze ", "group ",
           "optimizer ", "clip ", "step every ", "epochs", "lr=", "=x", "1e999", "-", "nan", "inf",
           "none", "9" * 5000, "((1, 2))", "((((((((((1))))))))))", "\x00", "\ufeff", "\r", "\t", "é",
           "\u2028", " ", "{a,b}", "{{{", "a.**.b", "***", "?", "[a-]", "label:"]


@st.composite
def mutated_specs(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "token", "duplicate"]))
        if op == "insert":
            text = text[:i] + draw(st.text(max_size=4)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[j:]
        elif op == "token":
            text = text[:i] + draw(st.sampled_from(_TOKENS)) + text[j:]
        else:
            text = text[:i] + text[i:j] * draw(st.integers(2, 50)) + text[j:]
    return text


@_settings(200)
@given(mutated_specs())
@example("step every " + "1" * 5000 + " x0.1")                     # an int() past Python's digit limit
@example("optimizer sgd lr=" + "1" * 5000)
@example("group a lr=" + "(" * 3000 + "1" + ")" * 3000)           # nesting deeper than the recursion limit
@example("freeze ndim<" + "9" * 5000)                              # a rank past Python's digit limit
@example("freeze ndim<\u0663")                                     # a non-ASCII digit in a rank test
@example("optimizer adam\nclip")                                   # an error at the very end of the text
@example("freeze cnn.VGG_16.conv0 group convo&1e-3; clip l2 20; step every 10 x0.1")  # a selector PyYAML leaves unquoted
def test_mutated_specs(text):
    assert_parses_or_reports(text)


# --- (c) random bytes in files ----------------------------------------------------------------

@_settings(200)
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode),
       suffix=st.sampled_from([".opt", ".json", ".yaml", ".yml"]))
@example(data=b"\xff\xfe", suffix=".json")
@example(data=b"?", suffix=".yaml")                                # a null mapping key at the top
@example(data=b"[" * 5000, suffix=".json")
@example(data=b"a: " + b"[" * 5000, suffix=".yaml")
@example(data=b"x: !!int abc", suffix=".yaml")
@example(data=b"x: 2020-13-45", suffix=".yaml")
@example(data=b'{"a": 1, "a": 2}', suffix=".json")
@example(data=b'{"statements": "\\ud800"}', suffix=".json")
@example(data=b"1" * 5000, suffix=".json")
@example(data=b"a: &a [*a]\nstatements: *a", suffix=".yaml")
def test_random_bytes_in_files(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        assert_outcome(lambda: specopt.load(path))


# --- (d) generated and mutated plan data ------------------------------------------------------

_FIELDS = ["version", "statements", "kind", "name", "options", "selectors", "atoms", "pattern", "anchored",
           "negated", "optional", "key", "value", "factor", "mode", "max", "every", "unit", "gamma", "span",
           "name_span", "value_span", "start", "end", "frezee", "patern"]
_SCALARS = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True)
            | st.sampled_from(["freeze", "group", "optimizer", "clip", "step", "name", "class", "ndim",
                               "adam", "l2", "lr", "epoch", "a.*", "<2", "x"]) | st.text(max_size=5))
_DATA = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=5), max_leaves=25)
_VALID = [dump_plan(specopt.parse(text).plan) for text in SEEDS]


@st.composite
def plan_data(draw):
    """A valid plan's data with a few nodes replaced by generated data, or generated data alone."""
    if draw(st.booleans()):
        return draw(_DATA)
    data = json.loads(json.dumps(draw(st.sampled_from(_VALID))))
    for _ in range(draw(st.integers(1, 3))):
        node, key = _random_slot(draw, data)
        if node is not None:
            node[key] = draw(_DATA)
    return data


def _random_slot(draw, data):
    node, key = None, None
    current = data
    while isinstance(current, (dict, list)) and current and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(current) if isinstance(current, dict) else range(len(current))))
        node, current = current, current[key]
    return node, key


@_settings(200)
@given(plan_data(), st.sampled_from(["json", "yaml"]))
def test_generated_plan_data(data, fmt):
    text = json.dumps(data, indent=1) if fmt == "json" else yaml.dump(data, Dumper=safe_dumper()[1])
    assert_outcome(lambda: specopt.Spec(*parse_data(text, fmt, f"plan.{fmt}")))


# --- selector matching stays polynomial -------------------------------------------------------

def _matcher_steps(pattern: str, name: str) -> int:
    """How many lines of specopt.plan.selectors run while matching ``name`` (caches cleared first)."""
    selectors._advance.cache_clear()
    selectors._segment_matches.cache_clear()
    compiled = selectors.NamePattern(pattern, anchored=False)
    steps = 0
    module_file = selectors.__file__

    def trace(frame, event, arg):
        nonlocal steps
        if frame.f_code.co_filename != module_file:
            return None
        if event == "line":
            steps += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        compiled.matches(name)
    finally:
        sys.settrace(previous)
    return steps


def test_many_stars_in_one_segment_take_linear_steps():
    stars = "*a" * 8 + "*b"
    short, long = _matcher_steps(stars, "a" * 1000), _matcher_steps(stars, "a" * 2000)
    # Backtracking over 9 stars would be exponential in the star count; a
    # bounded wildcard match grows linearly with the name.
    assert long <= 2.5 * short
    assert _matcher_steps("*a" * 16 + "*b", "a" * 1000) <= 3 * short
    assert short <= 50 * len(stars) * 1000


def test_many_double_stars_across_segments_take_linear_steps():
    pattern = "**.**.**.**.x"
    short = _matcher_steps(pattern, ".".join(["seg"] * 100))
    long = _matcher_steps(pattern, ".".join(["seg"] * 200))
    assert long <= 2.5 * short
    assert _matcher_steps("**." * 8 + "x", ".".join(["seg"] * 200)) <= 3 * long


def test_long_names_and_patterns_match_correctly():
    name = "a" * 5000
    assert selectors.NamePattern("*a*a*a*a*a*a*a*a*a", anchored=True).matches(name)
    assert not selectors.NamePattern("*a*a*a*a*a*a*a*a*b", anchored=True).matches(name)
    deep = ".".join(["seg"] * 200)
    assert selectors.NamePattern("**.**.**.**.seg", anchored=True).matches(deep)
    assert not selectors.NamePattern("**.**.**.**.x", anchored=True).matches(deep)
