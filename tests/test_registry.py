"""The builtin registry is the installed torch's: derived from its constructors, read without importing it.

Each entry's options and defaults come from the installed torch's source
(:mod:`specopt.catalog.installed_torch`), so ``specopt check`` and ``list`` show what this
torch takes. What came after the oldest supported torch is listed with the
torch that brought it, and a spec using it under an older torch gets E418.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import specopt
from processes import run_code
from specopt.catalog import installed_torch as torchsource
from specopt.catalog import registry
from specopt.build.assemble import constructor_defaults, load_target
from specopt.catalog.registry import NEWER_OPTIONS, NEWER_VALUES, OLDEST_TORCH, OPTIMIZERS, check_kind

ROOT = Path(__file__).resolve().parent.parent
TORCH = torchsource.version_tuple(torch.__version__)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_entry_matches_torch(name):
    info = OPTIMIZERS[name]
    real = constructor_defaults(load_target(info.target))
    assert {o.name for o in info.options} == set(real)
    for option in info.options:
        assert option.default == real[option.name], option.name
        assert check_kind(option.kind, option.default), option.name


def test_every_builtin_exists_in_every_supported_torch():
    assert list(OPTIMIZERS) == [b.name for b in registry._BUILTINS]
    assert torchsource.torch_version() == torch.__version__


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_source_says_what_the_constructor_says(name):
    """Read from the syntax tree of torch's files, the defaults equal those of the imported class."""
    target = OPTIMIZERS[name].target
    assert torchsource.constructor_defaults(target) == constructor_defaults(load_target(target))


def test_the_requirement_is_the_oldest_torch_the_registry_assumes():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"torch>=(\d+)\.(\d+)', text).groups() == tuple(str(n) for n in OLDEST_TORCH)
    assert TORCH >= OLDEST_TORCH


@pytest.mark.parametrize("key", sorted(NEWER_OPTIONS), ids=lambda k: ".".join(k))
def test_newer_options_are_in_the_table_exactly_from_their_torch_on(key):
    name, option = key
    assert (OPTIMIZERS[name].option(option) is not None) == (TORCH >= NEWER_OPTIONS[key])
    assert all(since > OLDEST_TORCH for since in NEWER_OPTIONS.values())


@pytest.mark.parametrize("key", sorted(NEWER_VALUES), ids=lambda k: "=".join(k[1:]))
def test_newer_values_are_taken_exactly_from_their_torch_on(key):
    name, option, value = key
    cls = load_target(OPTIMIZERS[name].target)
    param = torch.nn.Parameter(torch.zeros(2, 2))
    if TORCH >= NEWER_VALUES[key]:
        cls([param], **{option: value})
    else:
        with pytest.raises(ValueError):
            cls([param], **{option: value})


def _codes(text: str) -> list[str]:
    try:
        specopt.parse(text)
    except specopt.SpecError as exc:
        return [d.code for d in exc.diagnostics]
    return []


def test_an_option_newer_than_this_torch_is_e418_naming_the_torch(monkeypatch):
    monkeypatch.setattr(torchsource, "torch_version", lambda: "2.13.0")
    with pytest.raises(specopt.SpecError) as raised:
        specopt.parse('optimizer lbfgs maximize=true\n')
    [diag] = raised.value.diagnostics
    assert diag.code == "E418" and "from torch 2.14 on; this torch is 2.13.0" in diag.message
    assert _codes('optimizer muon adjust_lr_fn="spectral_unclamped"') == ["E418"]
    assert _codes('optimizer muon adjust_lr_fn="original"') == []
    monkeypatch.setattr(torchsource, "torch_version", lambda: "2.14.1")
    assert _codes('optimizer muon adjust_lr_fn="spectral_unclamped"') == []


@pytest.mark.skipif(TORCH < (2, 14), reason="L-BFGS takes maximize from torch 2.14 on (E418 before)")
def test_lbfgs_maximize_climbs():
    param = torch.nn.Parameter(torch.tensor([0.0]))
    model = torch.nn.Module()
    model.x = param
    compiled = specopt.compile("optimizer lbfgs lr=0.1 max_iter=5 maximize=true", model)

    def closure():
        compiled.optimizer.zero_grad()
        gain = -(param - 1.0).pow(2).sum()
        gain.backward()
        return gain

    compiled.optimizer.step(closure)
    assert float(param) > 0.1


@pytest.mark.skipif(TORCH >= (2, 14), reason="this torch's L-BFGS takes maximize: no E418 to see")
def test_lbfgs_maximize_is_e418_before_torch_2_14():
    assert _codes("optimizer lbfgs maximize=true") == ["E418"]


def _fake_torch(folder: Path, sgd_source: str) -> Path:
    """A torch package on disk whose SGD is ``sgd_source``; importing it would fail."""
    optim = folder / "torch" / "optim"
    optim.mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text("raise ImportError('never imported')\n")
    (folder / "torch" / "version.py").write_text("__version__ = '9.1.0'\n")
    (optim / "__init__.py").write_text("from .sgd import SGD as SGD\n")
    (optim / "sgd.py").write_text(sgd_source)
    return folder / "torch"


def test_an_option_a_newer_torch_adds_is_listed_without_a_change_to_specopt(tmp_path, monkeypatch):
    """The table is read from the installed torch's source, not written down for one torch."""
    folder = _fake_torch(tmp_path, "LR = 0.25\nclass SGD:\n    def __init__(self, params, lr=LR, momentum=0, *,"
                                   " foreach=None, sparkle: float = 0.5, style='plain'):\n        pass\n")
    for cached in (torchsource.torch_folder, torchsource.torch_version, torchsource.defines,
                   torchsource.constructor_defaults, torchsource._tree):
        cached.cache_clear()
    monkeypatch.setattr(torchsource, "torch_folder", lambda: folder)
    try:
        table = registry._Table(registry._BUILTINS)
        assert list(table) == ["sgd"] and torchsource.torch_version() == "9.1.0"
        assert [(o.name, o.kind, o.default) for o in table["sgd"].options] == [
            ("lr", "number", 0.25), ("momentum", "number", 0), ("sparkle", "number", 0.5),
            ("style", "str?", "plain"), ("foreach", "bool?", None)]
        assert "adam" not in table and table.get("muon") is None
    finally:
        for cached in (torchsource.torch_version, torchsource.defines, torchsource.constructor_defaults,
                       torchsource._tree):
            cached.cache_clear()


def test_check_and_list_read_the_table_without_importing_torch():
    code = ("import sys; from specopt.cli import main; rc = main(['list']); "
            "rc |= main(['check', 'examples/seed.opt']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code)
    assert out.returncode == 0, out.stderr
    assert "muon" in out.stdout and "torch.optim.Muon" in out.stdout


def test_ci_runs_the_suite_on_the_pinned_the_oldest_and_the_newest_admitted_torch():
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=dict(os.environ, CI_DRY_RUN="1"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    oldest = ".".join(str(n) for n in OLDEST_TORCH) + ".0"
    assert out.stdout.splitlines() == ["make test", f"make test TORCH=torch=={oldest}",
                                       f"make test TORCH=torch>={OLDEST_TORCH[0]}.{OLDEST_TORCH[1]},<3"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make, which the README's commands use")
def test_each_torch_gets_a_virtual_environment_of_its_own():
    # Not the settings of a make that runs this suite (make test TORCH=...): they reach a make started here.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH", "VENV")}

    def planned(*args: str) -> str:
        """What ``make test`` would run were nothing installed yet (``-B``)."""
        return subprocess.run(["make", "-n", "-B", "test", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60).stdout

    assert "python3 -m venv .venv\n" in planned()
    assert '.venv/bin/python -m pip install -q "torch==2.13.0"' in planned()
    assert '.venv-torch-2.9.0/bin/python -m pip install -q "torch==2.9.0"' in planned("TORCH=torch==2.9.0")
    assert "python3 -m venv .venv-torch-2.9-3\n" in planned("TORCH=torch>=2.9,<3")
