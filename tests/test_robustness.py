"""Hostile and unusual input: bounded work, a diagnostic instead of a traceback, the model unchanged.

The command-line cases run ``python -m specopt`` in a child process whose
address space is limited to 4 GiB (``RLIMIT_AS``), so input that would make
specopt grab memory without bound fails the test instead of the machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from processes import ROOT, child_env

import specopt
from specopt.diagnostics import SpecError

MEMORY_LIMIT = 4 << 30
MODEL = "examples/seed_model.py:Network"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(*args: str, cwd: Path | str = ROOT, timeout: float = 60, first=(),
                stdin=None) -> subprocess.CompletedProcess:
    """``python -m specopt ARGS`` under a 4 GiB address-space limit, output captured as text."""
    return subprocess.run([sys.executable, "-m", "specopt", *args], cwd=cwd, env=child_env(first),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=_limit_memory,
                          stdin=stdin)


def assert_clean(out: subprocess.CompletedProcess, status: int, *expected: str) -> None:
    """The exit status is ``status``, nothing looks like a traceback, and stderr says each of ``expected``."""
    assert out.returncode == status, out.stderr[-3000:]
    for stream in (out.stdout, out.stderr):
        assert "Traceback" not in stream and "Error:" not in stream.replace("error:", ""), stream[-3000:]
    for text in expected:
        assert text in out.stderr, out.stderr[-3000:]


def codes(exc: SpecError) -> list[str]:
    return [d.code for d in exc.diagnostics]


def test_the_child_can_import_torch_under_the_memory_limit():
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.ones(2).sum().item())"],
                         capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr


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
    from specopt.selectors import _expand_braces

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

    monkeypatch.setattr(sys.modules["specopt.parse"], "MAX_SOURCE_CHARS", 100)
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
    monkeypatch.setattr(sys.modules["specopt.parse"], "MAX_SOURCE_CHARS", 18)
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
    from specopt.data import parse_data

    with pytest.raises(SpecError) as info:
        parse_data(_alias_bomb(), "yaml")
    [diag] = info.value.diagnostics
    line, col = info.value.source.line_col(diag.span.start)
    assert diag.code == "E105" and (line, col) == (7, 31)  # the fifth '*s': 5 x 50,503 values


def test_an_alias_inside_its_own_anchor_is_refused():
    pytest.importorskip("yaml")
    from specopt.data import parse_data

    with pytest.raises(SpecError) as info:
        parse_data("statements: &a\n  - kind: freeze\n    selectors: *a\n", "yaml")
    assert codes(info.value) == ["E105"] and "refers to a node that contains it" in str(info.value)


def test_aliases_count_towards_the_nesting_limit():
    pytest.importorskip("yaml")
    from specopt.data import parse_data

    text = "".join(f"x{i}: &x{i} " + "[" * 40 + (f"*x{i - 1}" if i else "1") + "]" * 40 + "\n" for i in range(3))
    with pytest.raises(SpecError) as info:
        parse_data(text + "statements: []\n", "yaml")
    assert codes(info.value) == ["E105"] and "64 levels deep once its aliases are expanded" in str(info.value)


def test_a_plan_that_reuses_anchors_within_the_limits_loads():
    pytest.importorskip("yaml")
    from specopt.data import parse_data

    text = ("statements:\n  - kind: freeze\n    selectors: &heads\n      - atoms: [{kind: name, pattern: head}]\n"
            "  - kind: unfreeze\n    selectors: *heads\n")
    plan, _ = parse_data(text, "yaml")
    assert [s.kind for s in plan.statements] == ["freeze", "unfreeze"]
    assert plan.statements[1].selectors[0].atoms[0].pattern == "head"
