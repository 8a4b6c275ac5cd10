"""The command line: output, exit statuses, and no tracebacks for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = "examples/seed_model.py:Network"
DESIGN_CARD = "freeze cnn.VGG_16.convolution1_*; group convolution2* lr=1e-3; clip l2 20; step every 10 x0.1\n"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "specopt", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_compile_prints_groups_frozen_clip_and_schedule():
    out = run("compile", "examples/seed.opt", "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "param groups: 2" in out.stdout
    assert "[0] group@6:35  4 tensors, 3,488 elements" in out.stdout
    assert "frozen: 4 tensors, 808 elements" in out.stdout
    assert "l2 norm" in out.stdout and "StepLR: lr x0.1 every 10 epochs" in out.stdout


def test_design_card_verbatim_from_the_cli(tmp_path):
    spec = tmp_path / "card.opt"
    spec.write_text(DESIGN_CARD)
    out = run("compile", str(spec), "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "warning: statement changes nothing" in out.stderr  # lr=1e-3 is Adam's default already
    assert "frozen: 4 tensors" in out.stdout


def test_compile_json_assignment():
    out = run("compile", "examples/seed.opt", "--model", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    conv = next(p for p in data["params"] if p["name"] == "cnn.VGG_16.convolution2_1.weight")
    assert conv["settings"]["lr"] == {"value": 1e-3, "set_by": {"statement": 2, "kind": "group",
                                                               "label": "group@6:35", "line": 6, "column": 35}}
    frozen = next(p for p in data["params"] if p["name"] == "cnn.VGG_16.convolution1_1.bias")
    assert frozen["frozen"] and frozen["group"] is None and frozen["frozen_by"]["kind"] == "freeze"


def test_factory_with_arguments():
    out = run("compile", str(ROOT / "examples/seed.opt"), "--model", "seed_model:Network(width=4, classes=3)",
              cwd=ROOT / "examples")
    assert out.returncode == 0, out.stderr
    assert "10 tensors, 1,167 elements" in out.stdout


def test_spec_errors_exit_1_with_positions(tmp_path):
    spec = tmp_path / "bad.opt"
    spec.write_text("frezee a\noptimizer adam lr=nan\n")
    out = run("check", str(spec))
    assert out.returncode == 1
    assert f"{spec}:1:1: error: unknown statement 'frezee' [E101]" in out.stderr
    assert f"{spec}:2:19: error: 'lr' must be a finite number, got nan [E207]" in out.stderr
    assert "Traceback" not in out.stderr


def test_selector_errors_against_a_model_exit_1(tmp_path):
    spec = tmp_path / "bad.opt"
    spec.write_text("freeze convolution3*\n")
    out = run("compile", str(spec), "--model", MODEL)
    assert out.returncode == 1
    assert "closest real names: convolution1_1" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [
    ("compile", "examples/seed.opt"),
    ("compile", "missing.opt", "--model", MODEL),
    ("compile", "examples/seed.opt", "--model", "examples/seed_model.py:Nope"),
    ("compile", "examples/seed.opt", "--model", "no_such_module:Net"),
    ("compile", "examples/seed.opt", "--model", "examples/seed_model.py:Network(width=)"),
    ("frobnicate",),
])
def test_usage_errors_exit_2(args):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr


def test_undecodable_file(tmp_path):
    spec = tmp_path / "bytes.opt"
    spec.write_bytes(b"freeze \xff\xfe\n")
    out = run("check", str(spec))
    assert out.returncode == 1 and "[E104]" in out.stderr and "Traceback" not in out.stderr


def test_diagnostics_as_json(tmp_path):
    spec = tmp_path / "bad.opt"
    spec.write_text("clip l2 20\nclip l2 10\n")
    out = run("check", "--format", "json", str(spec))
    assert out.returncode == 1
    [diag] = json.loads(out.stdout)
    assert diag["code"] == "E202" and diag["line"] == 2 and diag["column"] == 1 and diag["file"] == str(spec)


def test_check_does_not_import_torch():
    code = ("import sys; from specopt.cli import main; rc = main(['check', 'examples/seed.opt']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr


def test_list_shows_the_registry():
    out = run("list")
    assert out.returncode == 0
    assert "adamw" in out.stdout and "torch.optim.AdamW" in out.stdout and "step every N" in out.stdout
