"""``specopt fmt``: the canonical layout, its properties, golden files and the command line.

Properties, over specs generated from valid statements with random spacing,
comments, blank lines, ``;`` separators and line endings:

* formatting twice gives the same text as formatting once;
* formatting never changes the plan (compared without source spans);
* every comment is kept, in order;
* the output is in canonical layout (no indentation, no trailing whitespace,
  no ``;``, no blank-line runs, one final newline).
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import specopt
from golden import cases, check
from processes import run_code, run_specopt
from specopt.diagnostics import SpecError
from specopt.language.fmt import format_spec, format_text
from specopt.language.parse import comment_start
from specopt.catalog.registry import OPTIMIZERS, check_bounds, check_kind
from specopt.plan.selectors import selector_problems

SPAN_KEYS = {"span", "value_span", "name_span"}


def strip_spans(data):
    """``data`` without any span keys, at every depth."""
    if isinstance(data, dict):
        return {k: strip_spans(v) for k, v in data.items() if k not in SPAN_KEYS}
    if isinstance(data, (list, tuple)):
        return [strip_spans(v) for v in data]
    return data


def plan_of(text: str) -> str:
    """The plan of a spec as JSON without spans (JSON keeps 1 and 1.0 apart)."""
    return json.dumps(strip_spans(specopt.parse(text).plan.model_dump(mode="json")), sort_keys=True)


def comments_of(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        cut = comment_start(line)
        if cut >= 0:
            out.append(line[cut:].rstrip())
    return out


# --- examples ----------------------------------------------------------------------------------

def test_semicolons_split_and_the_trailing_comment_stays_with_the_last_statement():
    text = "freeze a;  group b lr=1e-3 ;clip l2 20   # the recipe\n"
    assert format_text(text) == "freeze a\ngroup b lr=1e-3\nclip l2 20  # the recipe\n"


def test_spacing_is_canonical_and_spellings_are_kept():
    text = ("  optimizer   adamw lr = 3E-4 betas=( .9,0.95 ,) amsgrad=False foreach=NONE\n"
            "group decay:ndim<2   @*Norm*&!~head.*   weight_decay=0 lr=x.5\n"
            "step every 10epochs x1e-1\n")
    assert format_text(text) == (
        "optimizer adamw lr=3E-4 betas=(.9, 0.95) amsgrad=false foreach=none\n"
        "group decay: ndim<2 @*Norm* & !~head.* weight_decay=0 lr=x.5\n"
        "step every 10 epochs x1e-1\n")


def test_blank_lines_collapse_and_comments_keep_their_place():
    text = "\n\n   # header  \n\n\n\nfreeze a\n;;\n\n  # middle\nunfreeze a.b\n\n\n"
    assert format_text(text) == "# header\n\nfreeze a\n\n# middle\nunfreeze a.b\n"


def test_crlf_and_missing_final_newline():
    assert format_text("freeze a\r\nclip l2 +1  # c\r\n\r\n") == "freeze a\nclip l2 +1  # c\n"
    assert format_text("clip l2 +1;step every 2 steps x0.5") == "clip l2 +1\nstep every 2 steps x0.5\n"


def test_a_spec_without_statements_or_comments_formats_to_nothing():
    assert format_text("") == "" and format_text("\n ; \n\t\n") == ""


def test_strings_and_words_in_values():
    text = 'optimizer lbfgs line_search_fn="Strong_Wolfe"  max_eval=None\n'
    assert format_text(text) == 'optimizer lbfgs line_search_fn="Strong_Wolfe" max_eval=none\n'


def test_spec_errors_raise_with_every_problem():
    with pytest.raises(SpecError) as info:
        format_text("frezee a\nclip l2 20\nclip l2 10\n")
    assert [d.code for d in info.value.diagnostics] == ["E101", "E202"]


def test_a_plan_read_as_data_is_refused():
    plan = specopt.Plan.model_validate({"statements": [
        {"kind": "freeze", "selectors": [{"atoms": [{"kind": "name", "pattern": "a"}]}]}]})
    with pytest.raises(ValueError, match="not a plan read as data"):
        format_spec(specopt.Spec(plan, specopt.Source('{"statements": []}', "plan.json", "json")))


# --- golden files ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", cases("fmt"), ids=lambda p: p.stem)
def test_golden(path):
    text = path.read_text(encoding="utf-8")
    out = format_text(text)
    check(path.with_suffix(".out"), out)
    assert format_text(out) == out
    assert plan_of(out) == plan_of(text)
    if path.stem == "already_canonical":
        assert out == text


def test_golden_cases_exist():
    assert len(cases("fmt")) >= 4


# --- properties --------------------------------------------------------------------------------

NAME_ATOMS = ("cnn.VGG_16.convolution1_*", "convolution2*", "**.bias", "^cnn.**", "head.{weight,bias}",
              "conv?.w[0-9]", "classifier", "layer.0", "a-b", "x0", "every", "true", "a!b")
CLASS_ATOMS = ("@*Norm*", "@Linear", "@torch.nn.Conv2d", "@Conv?d")
NDIM_ATOMS = ("ndim<2", "ndim>=2", "ndim==1", "ndim!=4")
NUMBERS = ("0", "1", "2", "5", "20", "0.5", ".5", "1.", "0.9", "0.999", "1e-3", "3E-4", "+0.25",
           "1e0", "-0.8", "-1e-1", "010")
FACTORS = ("x10", "x0.5", "x.5", "x1e-1", "x2.")
BOOLS = ("true", "false", "True", "FALSE")
NONES = ("none", "None")
STRINGS = ('"Strong_Wolfe"', '"a, b (c)"', '""')
CLIP_MODES = ("l2", "l1", "inf", "linf", "l1.5", "l3", "value")
CLIP_MAX = ("20", "1.0", "0.5", ".5", "1e-2", "+3")
SPACE = st.sampled_from([" ", "  ", "\t", " \t", "\f "])
GAP = st.sampled_from(["", " ", "\t "])

_settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _number(text: str):
    return float(text) if any(c in text for c in ".eE") else int(text)


def _scalar_texts(kind: str, bounds: str) -> list[str]:
    """Spellings of valid values of one (non-tuple) kind within bounds."""
    base = kind.rstrip("?")
    texts = list(NONES) if kind.endswith("?") else []
    if base == "bool":
        return texts + list(BOOLS)
    if base == "str":
        return texts + list(STRINGS)
    return texts + [t for t in NUMBERS if check_kind(base, _number(t)) and not check_bounds(bounds, _number(t))]


@st.composite
def value_text(draw, kind: str, bounds: str, relative: bool) -> str:
    if kind.startswith("("):
        parts = kind[1:-1].split(",")
        items = [draw(st.sampled_from(_scalar_texts(p, bounds))) for p in parts]
        sep = draw(st.sampled_from([",", ", ", " ,", " , "]))
        trail = draw(st.sampled_from(["", ",", " , "]))
        return "(" + draw(GAP) + sep.join(items) + trail + draw(GAP) + ")"
    choices = _scalar_texts(kind, bounds) + (list(FACTORS) if relative and kind == "number" else [])
    return draw(st.sampled_from(choices))


@st.composite
def options(draw, info, group: bool) -> list[str]:
    usable = [o for o in info.options if o.per_group or not group]
    chosen = draw(st.lists(st.sampled_from(usable), unique_by=lambda o: o.name,
                           min_size=1 if group else 0, max_size=3))
    out = []
    for opt in chosen:
        value = draw(value_text(opt.kind, opt.bounds, relative=group))
        out.append(opt.name + draw(st.sampled_from(["", " ", "\t"])) + "=" + draw(GAP) + value)
    return out


@st.composite
def term(draw) -> str:
    pool = st.sampled_from(NAME_ATOMS + CLASS_ATOMS + NDIM_ATOMS)
    atoms = draw(st.lists(st.tuples(st.sampled_from(["", "!", "~", "!~"]), pool), min_size=1, max_size=3))
    if len(atoms) > 1 and all(flag.startswith("!") for flag, _ in atoms):
        atoms[0] = ("", atoms[0][1])
    glue = draw(st.sampled_from(["&", " & ", " &\t", "& "]))
    return glue.join(flag + atom for flag, atom in atoms)


@st.composite
def selectors(draw) -> list[str]:
    return draw(st.lists(term(), min_size=1, max_size=3))


@st.composite
def statement(draw, kind: str, info) -> str:
    space = draw(SPACE)
    if kind == "optimizer":
        words = ["optimizer", info.name, *draw(options(info, group=False))]
    elif kind in ("freeze", "unfreeze"):
        words = [kind, *draw(selectors())]
    elif kind == "group":
        label = draw(st.sampled_from([[], ["head:"], ["no_decay:"], ["a-b_2:"]]))
        words = ["group", *label, *draw(selectors()), *draw(options(info, group=True))]
    elif kind == "clip":
        number = draw(st.sampled_from(CLIP_MAX))
        glue = draw(GAP) if number.startswith("+") else draw(SPACE)
        return "clip" + space + draw(st.sampled_from(CLIP_MODES)) + glue + number
    else:
        unit = draw(st.sampled_from(["", "epoch", "epochs", "step", "steps"]))
        words = ["step", "every", draw(st.sampled_from(["1", "10", "500", "010"])) + draw(GAP) + unit,
                 draw(st.sampled_from(["x0.1", "x.5", "x1e-1", "x2"]))]
        words = [w for w in words if w.strip()]
    return space.join(words)


@st.composite
def statements(draw) -> list[str]:
    favoured = st.sampled_from(["lbfgs", "muon", "adamw"])  # string and tuple values
    info = OPTIMIZERS[draw(favoured | st.sampled_from(sorted(OPTIMIZERS)))]
    kinds = draw(st.lists(st.sampled_from(["freeze", "unfreeze", "group"]), max_size=6))
    for single in ("optimizer", "clip", "step"):
        if draw(st.booleans()) and not (single == "clip" and info.sparse_gradients):  # E218
            kinds.insert(draw(st.integers(0, len(kinds))), single)
    if "optimizer" not in kinds:
        info = OPTIMIZERS["adam"]
    return [draw(statement(kind, info)) for kind in kinds]


COMMENT = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=12)  # \r ends a line


@st.composite
def specs(draw) -> str:
    """A valid spec: statements spread over lines with spacing, comments, blank lines and ``;``."""
    pending = draw(statements())
    lines = []
    while pending or draw(st.booleans()):
        extra_line = not pending or draw(st.booleans())
        take = 0 if extra_line else draw(st.integers(1, min(3, len(pending))))
        line, pending = pending[:take], pending[take:]
        code = (draw(st.sampled_from([";", " ; "])).join(line) if line else draw(st.sampled_from(["", " ", ";"])))
        code = draw(st.sampled_from(["", " ", "\t", ";"])) + code + draw(st.sampled_from(["", " ", ";", " ;\t"]))
        comment = draw(GAP) + "#" + draw(COMMENT) if draw(st.booleans()) else ""
        lines.append(code + comment)
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


def test_generator_atoms_are_valid_selectors():
    for atom in NAME_ATOMS:
        assert selector_problems("name", atom.lstrip("^")) == [], atom
    for atom in CLASS_ATOMS:
        assert selector_problems("class", atom[1:]) == [], atom
    for atom in NAME_ATOMS + CLASS_ATOMS + NDIM_ATOMS:
        specopt.parse(f"freeze {atom}")


@_settings
@given(specs())
def test_formatting_is_idempotent(text):
    once = format_text(text)
    assert format_text(once) == once


@_settings
@given(specs())
def test_formatting_keeps_the_plan_and_the_comments(text):
    out = format_text(text)
    assert plan_of(out) == plan_of(text)
    assert comments_of(out) == comments_of(text)


@_settings
@given(specs())
def test_output_is_in_canonical_layout(text):
    out = format_text(text)
    assert out == "" or out.endswith("\n")
    lines = out.split("\n")[:-1]
    assert all(line == line.strip() for line in lines)
    assert "\r" not in "".join(line.split("#")[0] for line in lines)
    assert not any(a == b == "" for a, b in zip(lines, lines[1:]))
    assert (lines[0] != "" and lines[-1] != "") if lines else out == ""
    assert not any(";" in line.split("#")[0] for line in lines)
    assert not any("  " in line.split("#")[0].rstrip() for line in lines)


def _explosive_module(tmp_path, monkeypatch) -> str:
    """A module on the path whose import fails loudly: formatting must never import it."""
    (tmp_path / "fmt_boom_optim.py").write_text("raise RuntimeError('imported by fmt')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return 'optimizer "fmt_boom_optim:Lion"  lr = 1e-4 ;clip l2 1\n'


def test_an_import_path_optimizer_is_formatted_without_importing_it(tmp_path, monkeypatch):
    text = _explosive_module(tmp_path, monkeypatch)
    assert format_text(text) == 'optimizer "fmt_boom_optim:Lion" lr=1e-4\nclip l2 1\n'
    assert "fmt_boom_optim" not in sys.modules


def test_a_malformed_import_path_is_still_an_error_when_formatting():
    with pytest.raises(SpecError) as info:
        format_text('optimizer "fmt_boom_optim:"\n')
    assert [d.code for d in info.value.diagnostics] == ["E221"]


def test_a_spec_parsed_for_formatting_still_refuses_the_import_when_compiled(tmp_path, monkeypatch):
    spec = specopt.parse(_explosive_module(tmp_path, monkeypatch), defer_imports=True)
    with pytest.raises(SpecError) as info:
        spec.compile(torch.nn.Linear(2, 2))
    assert [d.code for d in info.value.diagnostics] == ["E220"]
    assert "fmt_boom_optim" not in sys.modules


# --- command line ------------------------------------------------------------------------------

run = run_specopt


def test_cli_rewrites_files_in_place_and_lists_them(tmp_path):
    messy, tidy = tmp_path / "messy.opt", tmp_path / "tidy.opt"
    messy.write_text("freeze a;clip l2 20  # c\n\n\n")
    tidy.write_text("freeze a\n")
    out = run("fmt", str(messy), str(tidy))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"reformatted {messy}\n"
    assert "1 file reformatted, 1 file already formatted" in out.stderr
    assert messy.read_text() == "freeze a\nclip l2 20  # c\n" and tidy.read_text() == "freeze a\n"


def test_cli_check_changes_nothing_and_exits_1(tmp_path):
    messy = tmp_path / "messy.opt"
    messy.write_bytes(b"\xef\xbb\xbffreeze a\r\n")
    out = run("fmt", "--check", str(messy))
    assert out.returncode == 1 and out.stdout == f"would reformat {messy}\n"
    assert messy.read_bytes() == b"\xef\xbb\xbffreeze a\r\n"
    assert run("fmt", str(messy)).returncode == 0
    assert messy.read_bytes() == b"freeze a\n"
    assert run("fmt", "--check", str(messy)).returncode == 0


def test_cli_reports_spec_errors_and_leaves_the_file_untouched(tmp_path):
    bad, messy = tmp_path / "bad.opt", tmp_path / "messy.opt"
    bad.write_text("freeze  a;frezee b\n")
    messy.write_text("freeze  a\n")
    out = run("fmt", str(bad), str(messy))
    assert out.returncode == 1
    assert f"{bad}:1:11: error: unknown statement 'frezee' [E101]" in out.stderr
    assert "Traceback" not in out.stderr
    assert bad.read_text() == "freeze  a;frezee b\n" and messy.read_text() == "freeze a\n"


def test_cli_formats_an_import_path_spec_without_allow_import_and_refuses_the_flag(tmp_path):
    (tmp_path / "fmt_boom_optim.py").write_text("raise RuntimeError('imported by fmt')\n")
    spec = tmp_path / "lion.opt"
    spec.write_text('optimizer "fmt_boom_optim:Lion"  lr = 1e-4\n')
    out = run_specopt("fmt", str(spec), cwd=tmp_path, first=[tmp_path])
    assert out.returncode == 0, out.stderr
    assert spec.read_text() == 'optimizer "fmt_boom_optim:Lion" lr=1e-4\n'
    refused = run_specopt("fmt", "--allow-import", str(spec), cwd=tmp_path)
    assert refused.returncode == 2 and "unrecognized arguments: --allow-import" in refused.stderr


def test_cli_unreadable_file_is_a_usage_error_before_any_rewrite(tmp_path):
    messy = tmp_path / "messy.opt"
    messy.write_text("freeze  a\n")
    out = run("fmt", str(messy), str(tmp_path / "missing.opt"))
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr
    assert messy.read_text() == "freeze  a\n"


def test_fmt_does_not_import_torch(tmp_path):
    spec = tmp_path / "s.opt"
    spec.write_text("freeze a;clip l2 1\n")
    code = ("import sys; from specopt.cli.main import main; rc = main(['fmt', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code, str(spec))
    assert out.returncode == 0, out.stderr
    assert spec.read_text() == "freeze a\nclip l2 1\n"


def test_a_quoted_hash_is_not_a_comment():
    text = 'optimizer lbfgs line_search_fn="a#b"   # c\n'
    assert format_text(text) == 'optimizer lbfgs line_search_fn="a#b"  # c\n'
