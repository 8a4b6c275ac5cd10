"""The command line: output, exit statuses, and no tracebacks for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from processes import run_code, run_specopt

ROOT = Path(__file__).resolve().parent.parent
MODEL = "examples/seed_model.py:Network"
DESIGN_CARD = "freeze cnn.VGG_16.convolution1_*; group convolution2* lr=1e-3; clip l2 20; step every 10 x0.1\n"


run = run_specopt


def test_compile_prints_groups_frozen_clip_and_schedule():
    out = run("compile", "examples/seed.opt", "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "param groups: 2" in out.stdout
    assert "[0] group@6:35  4 tensors, 3,488 elements" in out.stdout
    assert "frozen: 4 tensors, 808 elements" in out.stdout
    assert "l2 norm" in out.stdout and "schedule   call scheduler.step() once per epoch" in out.stdout
    assert "lr: step 0.." in out.stdout


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
    code = ("import sys; from specopt.cli.main import main; rc = main(['check', 'examples/seed.opt']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code)
    assert out.returncode == 0, out.stderr


def test_list_shows_the_registry():
    out = run("list")
    assert out.returncode == 0
    assert "adamw" in out.stdout and "torch.optim.AdamW" in out.stdout and "step every N" in out.stdout


def test_meta_resolves_without_weights():
    out = run("compile", "examples/seed.opt", "--model", MODEL, "--meta")
    assert out.returncode == 0, out.stderr
    assert "implementation: not built (--meta" in out.stdout and "frozen: 4 tensors, 808 elements" in out.stdout
    assert run("compile", "examples/seed.opt", "--model", MODEL, "--meta", "--summary").returncode == 2


# --- model files are imported under their stem ----------------------------------------------

def test_qualified_class_names_of_a_model_file_use_its_stem(tmp_path):
    spec = tmp_path / "stem.opt"
    spec.write_text("group @seed_model.VGG16Stem lr=0.5\n")
    out = run("compile", str(spec), "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "[0] group@1:1  8 tensors, 4,296 elements" in out.stdout


@pytest.fixture
def new_modules():
    """Forget the model files a test imports (only those: torch's lazily imported modules stay)."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("specopt_user_"):
            del sys.modules[name]


def test_a_model_file_reuses_its_module_or_keeps_clear_of_another(tmp_path, new_modules):
    import seed_model  # imported from examples/ by conftest, as `import seed_model` there would

    from specopt.resolve.model_refs import load_model

    assert type(load_model(f"{ROOT}/examples/seed_model.py:Network")) is seed_model.Network
    other = tmp_path / "seed_model.py"
    other.write_text("import torch\n\nclass Network(torch.nn.Linear):\n    def __init__(self):\n"
                     "        super().__init__(2, 1)\n")
    model = load_model(f"{other}:Network")
    assert type(model).__module__ == "specopt_user_seed_model" and sys.modules["seed_model"] is seed_model
    assert type(load_model(f"{other}:Network")) is type(model)  # the same file again: the same module
    third = tmp_path / "third" / "seed_model.py"
    third.parent.mkdir()
    third.write_text(other.read_text())
    assert type(load_model(f"{third}:Network")).__module__ == "specopt_user_seed_model_2"


def test_a_model_file_without_a_module_name_gets_one(tmp_path, new_modules):
    from specopt.resolve.model_refs import load_model

    path = tmp_path / "my-net.py"
    path.write_text("import torch\n\nclass Net(torch.nn.Linear):\n    def __init__(self):\n"
                    "        super().__init__(2, 1)\n")
    assert type(load_model(f"{path}:Net")).__module__ == "specopt_user_my-net"


def test_compile_report_counts_in_the_singular_for_one(tmp_path):
    from specopt.report.resolution_report import plural

    spec = tmp_path / "one.opt"
    spec.write_text("freeze classifier.bias\ngroup classifier.weight lr=0.5\n")
    out = run("compile", str(spec), "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "[1] group@2:1  1 tensor, 160 elements" in out.stdout
    assert "frozen: 1 tensor, 10 elements" in out.stdout
    assert [plural(n, "element") for n in (0, 1, 2, 1000)] == ["0 elements", "1 element", "2 elements",
                                                               "1,000 elements"]


def test_every_error_of_a_file_is_reported_in_one_run(tmp_path):
    spec = tmp_path / "bad.opt"
    spec.write_text("optimizer adam wd=0.1\nfreeze convolution3*\ngroup classifier lr=x2 momentum=\n")
    result = run_specopt("compile", str(spec), "--model", "examples/seed_model.py:Network", "--format", "json")
    assert result.returncode == 1
    found = [(d["code"], d["line"]) for d in json.loads(result.stdout)]
    assert found == [("E204", 1), ("E301", 2), ("E100", 3)]


def test_plot_writes_a_png_of_every_schedule(tmp_path):
    out = tmp_path / "lr.png"
    result = run_specopt("plot", "examples/dino_wd_ramp.opt", "--model", "examples/models.py:vit", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "lr, weight_decay of 2 param group(s) over 100 epochs" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_a_schedule_is_a_usage_error(tmp_path):
    result = run_specopt("plot", "examples/seed_v2.opt", "--model", MODEL, "-o", str(tmp_path / "x.png"))
    assert result.returncode == 0  # seed_v2 has a step schedule
    spec = tmp_path / "none.opt"
    spec.write_text("clip l2 1\n")
    result = run_specopt("plot", str(spec), "--model", MODEL, "-o", str(tmp_path / "y.png"))
    assert result.returncode == 2 and "has no schedule to plot" in result.stderr


def test_compile_json_carries_the_schedule_values():
    result = run_specopt("compile", "examples/llm_pretrain.opt", "--model", "examples/models.py:gpt", "--json")
    data = json.loads(result.stdout)
    (curve,) = data["schedule"]["curves"]
    assert curve["hyper"] == "lr" and [p["kind"] for p in curve["phases"]] == ["warmup", "constant", "linear"]


def test_run_length_on_the_command_line(tmp_path):
    spec = tmp_path / "s.opt"
    spec.write_text("schedule warmup 5 epochs then cosine to x0.01\n")
    missing = run_specopt("compile", str(spec), "--model", MODEL)
    assert missing.returncode == 1 and "[E216]" in missing.stderr
    given = run_specopt("compile", str(spec), "--model", MODEL, "--epochs", "90")
    assert given.returncode == 0, given.stderr and "cosine 5..90" in given.stdout
