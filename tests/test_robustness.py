"""Hostile input: bounded work on any input, a diagnostic instead of a traceback, quiet closed pipes.

The command-line cases run ``python -m specopt`` under a 4 GiB memory limit
(``tests/limited.py``), so input that would make specopt grab memory
without bound fails the test instead of straining the machine. Checks of the
model itself (not a module, no parameters, integer parameters, DDP) are in
``test_model_checks.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limited import assert_clean, limit_memory, run_limited
from processes import ROOT, child_env

import specopt
from specopt.diagnostics import SpecError

MODEL = "examples/seed_model.py:Network"


def codes(exc: SpecError) -> list[str]:
    return [d.code for d in exc.diagnostics]


def test_the_child_can_import_torch_under_the_memory_limit():
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.ones(2).sum().item())"],
                         capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr


def test_the_memory_limit_refuses_an_allocation_past_it():
    out = subprocess.run([sys.executable, "-c", "import torch; b = bytearray(5 << 30)"],
                         capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)
    assert out.returncode == 1 and "MemoryError" in out.stderr, out.stderr


# --- selectors: brace nesting and brace groups ------------------------------------------------

DEEP_BRACES = "freeze " + "{" * 1000 + "a" + "}" * 1000


def test_deeply_nested_braces_are_a_positioned_e209():
    with pytest.raises(SpecError) as info:
        specopt.parse(DEEP_BRACES)
    [diag] = info.value.diagnostics
    assert diag.code == "E209" and "braces nested more than 8 deep" in diag.message
    assert (diag.span.start, diag.span.end) == (7, len(DEEP_BRACES))


def test_braces_at_the_nesting_limit_still_expand():
    spec = specopt.parse("freeze " + "{" * 8 + "a,b" + "}" * 8)
    assert spec.plan.statements[0].selectors[0].atoms[0].pattern == "{" * 8 + "a,b" + "}" * 8


def test_many_brace_groups_in_a_row_expand_in_linear_time():
    from specopt.plan.selectors import _expand_braces

    assert _expand_braces("{a}" * 200_000) == ["a" * 200_000]
    assert _expand_braces("x{a,b}y{1,{2,3}}") == ["xay1", "xay2", "xay3", "xby1", "xby2", "xby3"]


@pytest.mark.parametrize("command", ["check", "explain"])
def test_deep_braces_from_the_command_line(command, tmp_path):
    spec = tmp_path / "deep.opt"
    spec.write_text(DEEP_BRACES + "\n")
    args = ["check", str(spec)] if command == "check" else ["explain", "examples/seed.opt", "--model", MODEL,
                                                            DEEP_BRACES[len("freeze "):]]
    assert_clean(run_limited(*args), 1, "[E209]", "braces nested more than 8 deep")


# --- reading files: never more than the size limit ----------------------------------------------

def _huge_file(path: Path, size: int = 5 << 30) -> Path:
    """A sparse file of ``size`` bytes (zeros): no disk space, but read whole it would not fit in memory."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("suffix", [".opt", ".json", ".yaml"])
def test_check_of_a_huge_file_is_e102_without_reading_it_whole(suffix, tmp_path):
    huge = _huge_file(tmp_path / f"huge{suffix}")
    assert_clean(run_limited("check", str(huge)), 1, "[E102]", "more than 1000000 characters")


def test_check_of_dev_zero_is_e102():
    assert_clean(run_limited("check", "/dev/zero"), 1, "/dev/zero:1:1: error: spec is too large")


def test_fmt_of_a_huge_file_is_e102_and_leaves_it_alone(tmp_path):
    huge = _huge_file(tmp_path / "huge.opt")
    out = run_limited("fmt", str(huge), "/dev/zero")
    assert_clean(out, 1, "[E102]", "2 files with errors left unchanged")
    assert huge.stat().st_size == 5 << 30


def test_reading_stops_soon_after_the_limit(tmp_path, monkeypatch):
    from specopt import spec as spec_module

    monkeypatch.setattr(sys.modules["specopt.language.parse"], "MAX_SOURCE_CHARS", 100)
    path = tmp_path / "long.opt"
    path.write_text("freeze a\n" * 100_000)
    reads = []
    real_open = open

    def counting_open(*args, **kwargs):
        file = real_open(*args, **kwargs)
        read = file.read
        file.read = lambda n=-1: reads.append(n) or read(n)
        return file

    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(SpecError) as info:
        spec_module.read_spec_text(path)
    assert codes(info.value) == ["E102"] and "more than 100 characters" in info.value.diagnostics[0].message
    assert len(reads) == 1 and 0 < reads[0] <= 1 << 16


def test_a_file_at_the_limit_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["specopt.language.parse"], "MAX_SOURCE_CHARS", 18)
    path = tmp_path / "at.opt"
    path.write_text("freeze a\nfreeze é\n", encoding="utf-8")  # 18 characters, 19 bytes
    assert len(specopt.load(path).plan.statements) == 2


def test_a_bad_byte_after_a_byte_order_mark_is_positioned_at_that_byte(tmp_path):
    path = tmp_path / "bom.opt"
    path.write_bytes(b"\xef\xbb\xbffreeze a\xff\n")
    with pytest.raises(SpecError) as info:
        specopt.load(path)
    [diag] = info.value.diagnostics
    assert diag.code == "E104" and "0xff" in diag.message and diag.span.start == 8


# --- YAML aliases: the expanded document is bounded too -----------------------------------------

def _alias_bomb() -> str:
    """About 38 KB of YAML whose aliases stand for ten million selector atoms."""
    atoms = "[" + ", ".join(f"{{kind: name, pattern: a{i}}}" for i in range(100)) + "]"
    selectors = "[" + ", ".join(["{atoms: *a}"] * 100) + "]"
    lines = ["x: &a " + atoms, "y: &s " + selectors, "statements:"] + ["  - {kind: freeze, selectors: *s}"] * 1000
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_while_composing(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    out = run_limited("check", str(path), timeout=30)
    assert_clean(out, 1, "[E105]", "expands to more than 250,000 values")


def test_the_expansion_limit_is_positioned_at_the_alias_that_crosses_it():
    pytest.importorskip("yaml")
    from specopt.language.plan_data import parse_data

    with pytest.raises(SpecError) as info:
        parse_data(_alias_bomb(), "yaml")
    [diag] = info.value.diagnostics
    line, col = info.value.source.line_col(diag.span.start)
    assert diag.code == "E105" and (line, col) == (7, 31)  # the fifth '*s': 5 x 50,503 values


def test_an_alias_inside_its_own_anchor_is_refused():
    pytest.importorskip("yaml")
    from specopt.language.plan_data import parse_data

    with pytest.raises(SpecError) as info:
        parse_data("statements: &a\n  - kind: freeze\n    selectors: *a\n", "yaml")
    assert codes(info.value) == ["E105"] and "refers to a node that contains it" in str(info.value)


def test_aliases_count_towards_the_nesting_limit():
    pytest.importorskip("yaml")
    from specopt.language.plan_data import parse_data

    text = "".join(f"x{i}: &x{i} " + "[" * 40 + (f"*x{i - 1}" if i else "1") + "]" * 40 + "\n" for i in range(3))
    with pytest.raises(SpecError) as info:
        parse_data(text + "statements: []\n", "yaml")
    assert codes(info.value) == ["E105"] and "64 levels deep once its aliases are expanded" in str(info.value)


def test_a_plan_that_reuses_anchors_within_the_limits_loads():
    pytest.importorskip("yaml")
    from specopt.language.plan_data import parse_data

    text = ("statements:\n  - kind: freeze\n    selectors: &heads\n      - atoms: [{kind: name, pattern: head}]\n"
            "  - kind: unfreeze\n    selectors: *heads\n")
    plan, _ = parse_data(text, "yaml")
    assert [s.kind for s in plan.statements] == ["freeze", "unfreeze"]
    assert plan.statements[1].selectors[0].atoms[0].pattern == "head"


# --- the command line: a closed pipe, and saying what --model runs -------------------------------

@pytest.mark.parametrize("args", [["list"], ["--help"], ["check", "examples/seed.opt"],
                                  ["compile", "examples/seed.opt", "--model", MODEL]])
def test_a_closed_pipe_ends_quietly(args):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before specopt writes anything, as with a quick `| head`
    env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    try:
        out = subprocess.run([sys.executable, "-m", "specopt", *args], cwd=ROOT, env=env, stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=limit_memory)
    finally:
        os.close(write)
    assert (out.returncode, out.stderr) == (0, "")


def test_a_large_output_cut_short_ends_quietly():
    env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}
    child = subprocess.Popen([sys.executable, "-m", "specopt", "schema"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit_memory)
    first = child.stdout.readline()
    child.stdout.close()
    err = child.stderr.read().decode()
    assert first.strip() == b"{" and child.wait(timeout=60) == 0 and err == ""


@pytest.mark.parametrize("command", ["compile", "explain", "diff"])
def test_help_of_commands_with_a_model_says_that_it_runs_code(command):
    out = run_limited(command, "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "imports that module, which runs its code" in text


def test_the_docs_say_that_model_runs_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "**`--model` runs your code**" in readme
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = cli[cli.index("## The model: `--model`"):cli.index("## Options for schedules")]
    assert "`--model` runs your\ncode" in section and "current directory comes first" in section


# --- the E301 hint: the same names as comparing every candidate, without comparing every one ------

def reference_suggest(word: str, candidates, limit: int = 3) -> list[str]:
    """The plain definition ``suggest`` must agree with: every candidate's full distance, then sort."""
    from specopt.diagnostics import edit_distance

    def window_distance(core: str, cand: str) -> int:
        if len(cand) <= len(core):
            return edit_distance(core, cand)
        return min(edit_distance(core, cand[i:i + len(core)]) for i in range(len(cand) - len(core) + 1))

    core = "".join(ch for ch in word if ch not in "*?[]{}^~!@").lower()
    fuzzy = core != word.lower()
    budget = max(1, len(core) // 3)
    scored = []
    for cand in set(candidates):
        dist = window_distance(core, cand.lower()) if fuzzy else edit_distance(core, cand.lower())
        if dist <= budget:
            scored.append((dist, len(cand), cand))
    if not scored and len(core) >= 3:
        scored = [(len(c), 0, c) for c in set(candidates) if core in c.lower()]
    return [c for *_, c in sorted(scored)[:limit]]


_NAME_CHARS = "abcAB._1"
_names = st.text(_NAME_CHARS, max_size=12)


@st.composite
def _near_words(draw):
    """A list of names and a word: often one of the names with a few edits, maybe with a wildcard."""
    names = draw(st.lists(_names, max_size=40))
    word = draw(st.sampled_from(names)) if names and draw(st.booleans()) else draw(_names)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(word)))
        edit = draw(st.sampled_from(["insert", "delete", "swap", "glob"]))
        if edit == "insert":
            word = word[:at] + draw(st.sampled_from(_NAME_CHARS)) + word[at:]
        elif edit == "delete":
            word = word[:at] + word[at + 1:]
        elif edit == "swap" and at + 1 < len(word):
            word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
        elif edit == "glob":
            word = word[:at] + draw(st.sampled_from("*?")) + word[at:]
    return word, names


@settings(max_examples=max(1, 400 * settings.default.max_examples // 60), deadline=None)  # scaled by profile
@given(case=_near_words(), limit=st.sampled_from([1, 3, 5]))
def test_suggest_agrees_with_comparing_every_candidate(case, limit):
    from specopt.diagnostics import suggest

    word, names = case
    assert suggest(word, names, limit) == reference_suggest(word, names, limit)


def _expert_names(layers: int = 10, experts: int = 64) -> list[str]:
    return [f"layers.{i}.moe.experts.{j}.w{k}" for i in range(layers) for j in range(experts) for k in (1, 2, 3)]


@pytest.mark.parametrize("word", ["layers.7.moe.expert.3.w1", "layers.*.moe.experts.*.w4",
                                  "layers.1000.moe.experts.1.w1", "zzzz.*.qqq"])
def test_suggest_on_many_names_agrees_and_never_compares_every_candidate(word, monkeypatch):
    from specopt import diagnostics

    names = _expert_names()
    expected = reference_suggest(word, names, 5)
    calls = []
    real = diagnostics.edit_distance
    monkeypatch.setattr(diagnostics, "edit_distance", lambda a, b: calls.append(1) or real(a, b))
    assert diagnostics.suggest(word, names, 5) == expected
    assert len(calls) < 100, f"{len(calls)} full edit distances for {len(names)} names"


def test_the_hint_names_the_closest_real_names(seed_model):
    with pytest.raises(SpecError) as info:
        specopt.parse("freeze convolution3*\ngroup cnn.VGG_16.convolution2_3 lr=1").compile(seed_model)
    hints = [d.hint for d in info.value.diagnostics]
    assert hints == ["closest real names: convolution1_1, convolution1_2, convolution2_1, convolution2_2",
                     "closest real names: cnn.VGG_16.convolution2_1, cnn.VGG_16.convolution2_2, "
                     "cnn.VGG_16.convolution1_1, cnn.VGG_16.convolution1_2"]
