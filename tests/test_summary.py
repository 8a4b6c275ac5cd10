"""The per-layer model summary: torchinfo's table after the spec's freezes, and its error paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from processes import run_specopt

import specopt
from specopt.report.summary import SummaryError, parse_input_size, summarize

ROOT = Path(__file__).resolve().parent.parent
MODEL = "examples/seed_model.py:Network"
SEED = ROOT / "examples" / "seed.opt"


run = run_specopt


def _counts(compiled) -> tuple[int, int]:
    params = compiled.resolution.params
    return (sum(p.info.numel for p in params if not p.frozen), sum(p.info.numel for p in params if p.frozen))


@pytest.mark.parametrize("text, size", [("3,224,224", (1, 3, 224, 224)), ("16", (1, 16)),
                                        (" 3, 8 ,8 ", (1, 3, 8, 8))])
def test_input_size_gets_a_batch_dimension(text, size):
    assert parse_input_size(text) == size


@pytest.mark.parametrize("text", ["", "3,,8", "3x8x8", "3,8.5,8", "-3,8,8", "3,0,8", "3,8,8,", "３,8,8"])
def test_malformed_input_sizes_are_rejected(text):
    with pytest.raises(ValueError):
        parse_input_size(text)


def test_parameter_table_counts_the_spec_freezes(seed_model):
    assert "Non-trainable params: 0" in summarize(seed_model)
    compiled = specopt.load(SEED).compile(seed_model)
    trainable, frozen = _counts(compiled)
    assert frozen == 808
    table = summarize(seed_model)
    assert f"Trainable params: {trainable:,}" in table
    assert f"Non-trainable params: {frozen:,}" in table
    assert "Output Shape" not in table


def test_forward_pass_adds_output_shapes(seed_model):
    specopt.load(SEED).compile(seed_model)
    table = summarize(seed_model, parse_input_size("3,8,8"))
    assert "Output Shape" in table and "[1, 10]" in table and "Non-trainable params: 808" in table


def test_failing_forward_pass_names_the_input_size(seed_model):
    with pytest.raises(SummaryError, match=r"input of size \(1, 4, 8, 8\): RuntimeError: .*channels"):
        summarize(seed_model, (1, 4, 8, 8))


def test_missing_torchinfo_says_what_to_install(seed_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchinfo", None)
    with pytest.raises(SummaryError, match=r"pip install 'specopt\[summary\]'"):
        summarize(seed_model)


def test_cli_summary_after_the_compile_report():
    out = run("compile", "examples/seed.opt", "--model", MODEL, "--summary", "--input-size", "3,8,8")
    assert out.returncode == 0, out.stderr
    report_end = out.stdout.index("schedule   call scheduler.step()")
    table = out.stdout.index("Layer (type:depth-idx)")
    assert report_end < table
    assert "Trainable params: 3,658" in out.stdout and "Non-trainable params: 808" in out.stdout
    assert "[1, 16, 4, 4]" in out.stdout


@pytest.mark.parametrize("args, message", [
    (("--summary", "--input-size", "3,x,8"), "argument --input-size"),
    (("--summary", "--input-size", "4,8,8"), "(1, 4, 8, 8)"),
    (("--input-size", "3,8,8"), "--input-size applies only with --summary"),
    (("--summary", "--json"), "cannot be combined with --json"),
])
def test_cli_summary_usage_errors_exit_2(args, message):
    out = run("compile", "examples/seed.opt", "--model", MODEL, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_cli_without_torchinfo_exits_2(tmp_path):
    broken = tmp_path / "torchinfo"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError(\"No module named 'numpy'\")\n")
    out = run("compile", "examples/seed.opt", "--model", MODEL, "--summary",
              first=[tmp_path])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pip install 'specopt[summary]'" in out.stderr and "numpy" in out.stderr
