"""The wheel ships the grammar and works without the source checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    [path] = out.glob("specopt-*.whl")
    return path


def test_wheel_contains_the_grammar(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "specopt/grammar/specopt.lark" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_parses_and_compiles(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    code = ("import specopt, torch; s = specopt.parse('freeze 0; clip l2 1'); "
            "c = s.compile(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))); "
            "assert specopt.__file__.startswith(%r), specopt.__file__; print(len(c.frozen))" % str(target))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(target)), timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2"
