"""Optimizers beyond the builtins: entry-point extensions and import paths allowed by the caller."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from processes import run_code, run_specopt

import specopt
from specopt.plan import extensions
from specopt.build.assemble import load_target
from specopt.diagnostics import Source, SpecError
from specopt.plan.extensions import extension, info_from_class, installed_extensions
from specopt.plan.plan import Plan
from specopt.catalog.registry import OPTIMIZERS

ROOT = Path(__file__).resolve().parent.parent
MODEL = f"{ROOT / 'examples' / 'seed_model.py'}:Network"

# Declared entries: importing this module must not import torch.
INFO_MODULE = '''
from specopt.catalog.registry import OptimizerInfo, OptionInfo

LION = OptimizerInfo("lion", "fakeopt_classes.Lion", "Lion, sign-based momentum.", (
    OptionInfo("lr", "number", 1e-4, ">=0"),
    OptionInfo("betas", "(number,number)", (0.9, 0.99), "[0,1)"),
    OptionInfo("weight_decay", "number", 0.0, ">=0"),
))
BAD_KIND = OptimizerInfo("badkind", "fakeopt_classes.Lion", "A float kind.",
                         (OptionInfo("lr", "float", 1e-3),))
ADAM = OptimizerInfo("adam", "fakeopt_classes.Lion", "Clashes with the builtin.", ())
'''

# Optimizer classes; the annotations are strings, one of them naming what the module lacks.
CLASS_MODULE = '''
from __future__ import annotations

from typing import Optional

import torch


class Lion(torch.optim.SGD):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)


class PlusSGD(torch.optim.SGD):
    """SGD with a boost factor kept in every param group."""

    def __init__(self, params, lr: float = 0.01, boost: float = 1.0, momentum: float = 0,
                 nesterov: bool = False, foreach: Optional[bool] = None, warmup: Schedule | None = None):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, foreach=foreach)
        for group in self.param_groups:
            group.setdefault("boost", boost)
        self.warmup = warmup


class NeedsBeta(torch.optim.SGD):
    def __init__(self, params, beta, lr=0.01):
        super().__init__(params, lr=lr)


NOT_A_CLASS = 3
'''

ENTRY_POINTS = {
    "lion": "fakeopt_info:LION", "plus_sgd": "fakeopt_classes:PlusSGD",
    "needs_beta": "fakeopt_classes:NeedsBeta",
    "badkind": "fakeopt_info:BAD_KIND", "adam": "fakeopt_info:ADAM",
}


def make_dist(site: Path, name: str, entries: dict[str, str]) -> None:
    """Write an installed distribution's metadata with entry points in the specopt group."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{extensions.ENTRY_POINT_GROUP}]\n{lines}")


def write_site(root: Path) -> Path:
    site = root / "site"
    site.mkdir()
    (site / "fakeopt_info.py").write_text(INFO_MODULE)
    (site / "fakeopt_classes.py").write_text(CLASS_MODULE)
    make_dist(site, "fakeopt", ENTRY_POINTS)
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fake installed package, ``fakeopt``, whose entry points add optimizers."""
    root = write_site(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    extensions.clear_cache()
    yield root
    extensions.clear_cache()
    for name in ("fakeopt_info", "fakeopt_classes"):
        sys.modules.pop(name, None)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's own, importable as ``userkit_optim``; nothing imports it up front."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "userkit_optim.py").write_text(CLASS_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    extensions.clear_cache()
    yield folder
    extensions.clear_cache()
    sys.modules.pop("userkit_optim", None)


def codes(exc: SpecError) -> list[str]:
    return [d.code for d in exc.diagnostics]


# --- entry points ------------------------------------------------------------------------------

def test_declared_extension_checks_options(site):
    spec = specopt.parse("optimizer lion lr=1e-4 betas=(0.9, 0.95)")
    assert spec.plan.optimizer_info is load_target("fakeopt_info.LION")
    with pytest.raises(SpecError) as info:
        specopt.parse("optimizer lion lrr=1 betas=(0.9, 1.5)")
    assert codes(info.value) == ["E204", "E207"]
    assert info.value.diagnostics[0].hint == "did you mean 'lr'?"


def test_class_extension_derives_options_from_the_constructor(site):
    info = extension("plus_sgd").info
    assert info.target == "fakeopt_classes.PlusSGD" and info.summary.startswith("SGD with a boost")
    kinds = {o.name: (o.kind, o.default, o.bounds) for o in info.options}
    assert kinds == {"lr": ("number", 0.01, ">=0"), "boost": ("number", 1.0, ""),
                     "momentum": ("number", 0, ">=0"), "nesterov": ("bool", False, ""),
                     "foreach": ("bool?", None, ""), "warmup": ("any", None, "")}


def test_class_extension_compiles(site, seed_model):
    spec = specopt.parse("optimizer plus_sgd lr=0.1 momentum=0.9\ngroup convolution2* boost=x3")
    compiled = spec.compile(seed_model)
    assert type(compiled.optimizer).__name__ == "PlusSGD"
    assert type(compiled.optimizer).__module__ == "fakeopt_classes"
    boosts = sorted((g["boost"], g["lr"], g["momentum"]) for g in compiled.optimizer.param_groups)
    assert boosts == [(1.0, 0.1, 0.9), (3.0, 0.1, 0.9)]


def test_option_without_default_makes_the_entry_unusable(site):
    with pytest.raises(SpecError) as info:
        specopt.parse("optimizer needs_beta lr=0.1")
    [diag] = info.value.diagnostics
    assert diag.code == "E222" and "fakeopt 1.0" in diag.message
    assert "'beta' without a default" in diag.message
    assert diag.span.start == len("optimizer ")


def test_bad_declared_entry_is_reported(site):
    with pytest.raises(SpecError) as info:
        specopt.parse("optimizer badkind")
    assert codes(info.value) == ["E222"] and "unknown kind 'float'" in info.value.diagnostics[0].message


def test_builtins_win_over_extensions(site):
    assert specopt.parse("optimizer adam lr=1e-3").plan.optimizer_info is OPTIMIZERS["adam"]
    listed = {e.name: e for e in installed_extensions()}
    assert listed["adam"].hidden and listed["adam"].info is None
    assert listed["plus_sgd"].info is not None and listed["needs_beta"].problem is not None


def test_entry_points_are_scanned_only_for_unknown_names_and_once(site, monkeypatch):
    calls = []
    real = extensions.metadata.entry_points
    monkeypatch.setattr(extensions.metadata, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    specopt.parse("optimizer adamw lr=1e-3\ngroup convolution2* lr=x0.1")
    specopt.parse("clip l2 1")
    assert calls == [] and "fakeopt_info" not in sys.modules
    specopt.parse("optimizer lion")
    specopt.parse("optimizer lion lr=1e-3")
    assert calls == [{"group": extensions.ENTRY_POINT_GROUP}]


def test_unknown_optimizer_suggests_extensions(site):
    with pytest.raises(SpecError) as info:
        specopt.parse("optimizer lino")
    assert info.value.diagnostics[0].hint == "did you mean 'lion'?"


def test_two_packages_with_one_name_are_an_error(site):
    make_dist(site, "otheropt", {"lion": "fakeopt_info:LION"})
    extensions.clear_cache()
    with pytest.raises(SpecError) as info:
        specopt.parse("optimizer lion")
    assert codes(info.value) == ["E222"]
    assert "several packages provide it: fakeopt 1.0, otheropt 1.0" in info.value.diagnostics[0].message


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_derived_entries_equal_the_builtin_table(name):
    builtin = OPTIMIZERS[name]
    derived = info_from_class(load_target(builtin.target), name, builtin.target)
    assert [(o.name, o.kind, o.default) for o in derived.options] == \
           [(o.name, o.kind, o.default) for o in _ordered_like(builtin.options, derived.options)]


def _ordered_like(options, reference):
    by_name = {o.name: o for o in options}
    assert set(by_name) == {o.name for o in reference}
    return [by_name[o.name] for o in reference]


# --- import paths ------------------------------------------------------------------------------

def test_import_path_is_refused_without_permission(user_module):
    text = 'optimizer "userkit_optim:PlusSGD" lr=0.1\nclip l9x 1\n'
    with pytest.raises(SpecError) as info:
        specopt.parse(text)
    assert codes(info.value) == ["E220", "E211"]  # every error of the file, in one report
    refusal = info.value.diagnostics[0]
    assert (refusal.span.start, refusal.span.end) == (10, 10 + len('"userkit_optim:PlusSGD"'))
    assert "--allow-import" in refusal.hint and "allow_import=True" in refusal.hint
    assert "userkit_optim" not in sys.modules


def test_allowed_import_builds_the_class(user_module, seed_model):
    spec = specopt.parse('optimizer "userkit_optim:PlusSGD" lr=0.1 boost=2\ngroup classifier lr=x0.5 boost=5',
                         allow_import=True)
    compiled = spec.compile(seed_model)
    assert isinstance(compiled.optimizer, sys.modules["userkit_optim"].PlusSGD)
    groups = sorted((g["lr"], g["boost"], len(g["params"])) for g in compiled.optimizer.param_groups)
    assert groups == [(0.05, 5.0, 2), (0.1, 2.0, 8)]


def test_options_are_checked_against_the_real_signature(user_module):
    text = 'optimizer "userkit_optim:PlusSGD" boots=2 nesterov=1\ngroup classifier foreach=true lrr=x2'
    with pytest.raises(SpecError) as info:
        specopt.parse(text, allow_import=True)
    assert codes(info.value) == ["E204", "E206", "E205", "E204"]
    boots, nesterov, foreach, lrr = info.value.diagnostics
    assert boots.message == "userkit_optim:PlusSGD has no option 'boots'"
    assert boots.hint == "did you mean 'boost'?"
    assert nesterov.message == "'nesterov' takes true or false, not 1"
    assert foreach.hint == 'set it on the optimizer statement: optimizer "userkit_optim:PlusSGD" foreach=...'
    assert lrr.hint == "did you mean 'lr'?"


@pytest.mark.parametrize("path, words", [
    ("no_such_module_xyz:Opt", "cannot import no_such_module_xyz"),
    ("userkit_optim:PlusSDG", "module userkit_optim has no 'PlusSDG'"),
    ("userkit_optim:NOT_A_CLASS", "userkit_optim:NOT_A_CLASS is not a class"),
    ("userkit_optim:NeedsBeta", "takes 'beta' without a default"),
    ("userkit_optim:", "is not an import path of the form package.module:Class"),
])
def test_import_paths_that_cannot_be_used(user_module, path, words):
    with pytest.raises(SpecError) as info:
        specopt.parse(f'optimizer "{path}"', allow_import=True)
    [diag] = info.value.diagnostics
    assert diag.code == "E221" and words in diag.message
    if path.endswith("PlusSDG"):
        assert diag.hint == "did you mean 'PlusSGD'?"


def test_quoted_names_without_a_colon_are_registry_names(site):
    assert specopt.parse('optimizer "adamw"').plan.optimizer_info is OPTIMIZERS["adamw"]
    with pytest.raises(SpecError) as info:
        specopt.parse('optimizer "mypkg.optim.Lion"')
    assert codes(info.value) == ["E201"]
    assert 'optimizer "package.module:Class"' in info.value.diagnostics[0].hint


def test_a_plan_from_json_needs_permission_to_compile(user_module, seed_model):
    text = 'optimizer "userkit_optim:PlusSGD" lr=0.1'
    plan = Plan.model_validate_json(specopt.parse(text, allow_import=True).plan.model_dump_json())
    assert plan.optimizer.name == "userkit_optim:PlusSGD"
    extensions.clear_cache()
    sys.modules.pop("userkit_optim", None)
    spec = specopt.Spec(plan, Source(text))
    with pytest.raises(SpecError) as info:
        spec.compile(seed_model)
    assert codes(info.value) == ["E220"] and "userkit_optim" not in sys.modules
    with pytest.raises(SpecError):
        plan.optimizer_info  # reading the plan never imports
    compiled = spec.compile(seed_model, allow_import=True)
    assert type(compiled.optimizer).__name__ == "PlusSGD"


def test_compile_in_one_call(user_module, seed_model):
    compiled = specopt.compile('optimizer "userkit_optim:PlusSGD" lr=0.2', seed_model, allow_import=True)
    assert compiled.optimizer.param_groups[0]["lr"] == 0.2


# --- command line ------------------------------------------------------------------------------



def test_cli_refuses_imports_unless_allowed(tmp_path):
    (tmp_path / "userkit_optim.py").write_text(CLASS_MODULE)
    spec = tmp_path / "user.opt"
    spec.write_text('optimizer "userkit_optim:PlusSGD" lr=0.1\ngroup classifier boost=x4\n')
    refused = run_specopt("check", str(spec), cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{spec}:1:11: error: optimizer 'userkit_optim:PlusSGD' would import" in refused.stderr
    assert "[E220]" in refused.stderr and "--allow-import" in refused.stderr
    assert run_specopt("check", "--allow-import", str(spec), cwd=tmp_path).returncode == 0
    out = run_specopt("compile", "--allow-import", str(spec), "--model", MODEL, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["optimizer"]["target"] == "userkit_optim.PlusSGD"
    assert sorted(g["settings"]["boost"] for g in data["groups"]) == [1.0, 4.0]


def test_cli_check_with_a_declared_extension_does_not_import_torch(tmp_path):
    site = write_site(tmp_path)
    spec = tmp_path / "lion.opt"
    spec.write_text("optimizer lion lr=3e-4 betas=(0.9, 0.98)\n")
    code = (f"import sys; from specopt.cli.main import main; rc = main(['check', {str(spec)!r}]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code, cwd=tmp_path, first=[site])
    assert out.returncode == 0, out.stderr


def test_cli_lists_extensions_with_their_package(tmp_path):
    site = write_site(tmp_path)
    out = run_specopt("list", cwd=tmp_path, first=[site])
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("extension optimizers (entry points 'specopt.optimizers'):\n")[1]
    section = section.split("\n\n")[0]
    assert "plus_sgd     fakeopt_classes.PlusSGD  SGD with a boost factor" in section
    assert "(from fakeopt 1.0)" in section and "lr=0.01 boost=1 momentum=0" in section
    assert "warning: 'adam' from fakeopt 1.0 is hidden by the builtin optimizer" in section
    assert "needs_beta   from fakeopt 1.0: error:" in section
    assert "extension optimizers" not in run_specopt("list", cwd=tmp_path).stdout


def test_statements_write_import_paths_quoted(user_module):
    spec = specopt.parse('optimizer "userkit_optim:PlusSGD"', allow_import=True)
    assert spec.plan.optimizer.name_text == '"userkit_optim:PlusSGD"'
    assert specopt.parse("optimizer sgd").plan.optimizer.name_text == "sgd"


def test_a_module_that_exits_while_imported_is_reported(user_module):
    (user_module / "userkit_exits.py").write_text("import sys\nsys.exit(3)\n")
    try:
        with pytest.raises(SpecError) as info:
            specopt.parse('optimizer "userkit_exits:Opt"', allow_import=True)
    finally:
        sys.modules.pop("userkit_exits", None)
    [diag] = info.value.diagnostics
    assert diag.code == "E221" and "importing userkit_exits failed: SystemExit: 3" in diag.message
