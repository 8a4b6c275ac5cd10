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
from hypothesis import given, settings
from hypothesis import strategies as st
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


# --- models: anything the user's code does is a one-line error -----------------------------------

USER_CODE = '''
import sys
import torch
from torch import nn


class Stop(BaseException):
    pass


def not_a_model():
    return {"weight": torch.ones(2)}


def exits():
    sys.exit(3)


def stops():
    raise Stop("model code gave up")


class WithPositions(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.position_ids = nn.Parameter(torch.arange(4), requires_grad=False)


class Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2)]  # a plain list: not registered


class Picky(torch.optim.SGD):
    def __init__(self, params, lr=0.1):
        raise KeyError("picky wants no parameters")


class Quits(torch.optim.SGD):
    def __init__(self, params, lr=0.1):
        sys.exit("optimizer gave up")
'''


@pytest.fixture
def user_code(tmp_path):
    """A folder holding user_models.py (the models above), exit_on_import.py and a few specs."""
    (tmp_path / "user_models.py").write_text(USER_CODE)
    (tmp_path / "exit_on_import.py").write_text("import sys\nsys.exit(4)\n")
    (tmp_path / "freeze.opt").write_text("freeze fc\n")
    return tmp_path


@pytest.mark.parametrize("ref, message", [
    ("user_models:not_a_model", "user_models:not_a_model returned a dict, not a torch.nn.Module"),
    ("user_models:exits", "building the model user_models:exits called sys.exit(3)"),
    ("user_models:stops", "building the model user_models:stops failed: Stop: model code gave up"),
    ("exit_on_import.py:Model", "importing exit_on_import.py called sys.exit(4)"),
    ("exit_on_import:Model", "importing exit_on_import called sys.exit(4)"),
])
def test_model_code_that_fails_is_a_usage_error(user_code, ref, message):
    out = run_limited("compile", "freeze.opt", "--model", ref, cwd=user_code)
    assert_clean(out, 2, f"specopt: error: {message}\n")
    assert out.stderr.count("\n") == 1


def test_api_refuses_what_is_not_a_module(seed_model):
    spec = specopt.parse("freeze cnn")
    for wrong in (list(seed_model.parameters()), None, type(seed_model)):
        for entry in (spec.compile, spec.resolve):
            with pytest.raises(SpecError) as info:
                entry(wrong)
            assert codes(info.value) == ["E405"] and "not a torch.nn.Module" in info.value.diagnostics[0].message
    assert all(p.requires_grad for p in seed_model.parameters())


def test_api_names_the_class_passed_instead_of_an_instance(seed_model):
    with pytest.raises(SpecError) as info:
        specopt.parse("freeze cnn").compile(type(seed_model))
    assert "the class Network" in info.value.diagnostics[0].message
    assert "Network(...)" in info.value.diagnostics[0].hint


def test_a_model_without_parameters_says_so(user_code):
    import torch

    for model in (torch.nn.Identity(), torch.nn.Sequential()):
        for entry in ("compile", "resolve"):
            with pytest.raises(SpecError) as info:
                getattr(specopt.parse("optimizer sgd"), entry)(model)
            assert codes(info.value) == ["E406"] and "has no parameters" in str(info.value)
    out = run_limited("compile", "freeze.opt", "--model", "user_models:Layers", cwd=user_code)
    assert_clean(out, 1, "the model (Layers) has no parameters [E406]")


@pytest.mark.parametrize("optimizer, message", [
    ("Picky", "user_models.Picky rejected the optimizer: KeyError: 'picky wants no parameters'"),
    ("Quits", "user_models.Quits rejected the optimizer: SystemExit: optimizer gave up"),
])
def test_an_import_path_optimizer_that_raises_anything_is_e404(user_code, optimizer, message):
    sys.path.insert(0, str(user_code))
    try:
        import user_models

        model = user_models.WithPositions()
        with pytest.raises(SpecError) as info:
            specopt.parse(f'optimizer "user_models:{optimizer}"\nfreeze fc.bias', allow_import=True).compile(model)
    finally:
        sys.path.remove(str(user_code))
        sys.modules.pop("user_models", None)
    [diag] = info.value.diagnostics
    assert diag.code == "E404" and diag.message == message and diag.span.start == 0
    assert model.fc.bias.requires_grad


def test_an_import_path_optimizer_that_exits_from_the_command_line(user_code):
    (user_code / "quits.opt").write_text('optimizer "user_models:Quits"\n')
    out = run_limited("compile", "quits.opt", "--allow-import", "--model", "user_models:WithPositions",
                      cwd=user_code)
    assert_clean(out, 1, "SystemExit: optimizer gave up [E404]")


# --- integer parameters -------------------------------------------------------------------------

def _with_positions():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    model.position_ids = torch.nn.Parameter(torch.arange(4), requires_grad=False)
    return model


@pytest.mark.parametrize("entry", ["compile", "resolve"])
def test_unfreezing_an_integer_parameter_is_a_positioned_e407(entry):
    model = _with_positions()
    before = [p.requires_grad for p in model.parameters()]
    text = "freeze 1\nunfreeze **"
    with pytest.raises(SpecError) as info:
        getattr(specopt.parse(text), entry)(model)
    [diag] = info.value.diagnostics
    assert diag.code == "E407" and "'position_ids'" in diag.message and "int64" in diag.message
    assert text[diag.span.start:diag.span.end] == "unfreeze **"
    assert [p.requires_grad for p in model.parameters()] == before and before.count(False) == 1


def test_unfreezing_an_integer_parameter_from_the_command_line(user_code):
    (user_code / "unfreeze.opt").write_text("unfreeze **\n")
    for command in ("compile", "explain"):
        out = run_limited(command, "unfreeze.opt", "--model", "user_models:WithPositions", cwd=user_code)
        assert_clean(out, 1, "unfreeze.opt:1:1: error: 'position_ids' cannot be trained", "[E407]")


def test_integer_parameters_left_frozen_compile():
    model = _with_positions()
    compiled = specopt.parse("unfreeze ** & !position_ids").compile(model)
    assert compiled.resolution.param("position_ids").frozen
    assert sum(len(g["params"]) for g in compiled.optimizer.param_groups) == 4


def test_each_statement_that_unfreezes_integers_is_reported_once():
    import torch

    model = _with_positions()
    model.token_ids = torch.nn.Parameter(torch.zeros(3, dtype=torch.int32), requires_grad=False)
    text = "unfreeze position_ids\nunfreeze *_ids"
    with pytest.raises(SpecError) as info:
        specopt.parse(text).compile(model)
    [diag] = info.value.diagnostics
    assert diag.span.start == text.index("unfreeze *_ids") and "'position_ids' and 1 more" in diag.message


# --- the command line: a closed pipe, and saying what --model runs -------------------------------

@pytest.mark.parametrize("args", [["list"], ["--help"], ["check", "examples/seed.opt"],
                                  ["compile", "examples/seed.opt", "--model", MODEL]])
def test_a_closed_pipe_ends_quietly(args):
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before specopt writes anything, as with a quick `| head`
    env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    try:
        out = subprocess.run([sys.executable, "-m", "specopt", *args], cwd=ROOT, env=env, stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=_limit_memory)
    finally:
        os.close(write)
    assert (out.returncode, out.stderr) == (0, "")


def test_a_large_output_cut_short_ends_quietly():
    env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}
    child = subprocess.Popen([sys.executable, "-m", "specopt", "schema"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_memory)
    first = child.stdout.readline()
    child.stdout.close()
    err = child.stderr.read().decode()
    assert first.strip() == b"{" and child.wait(timeout=60) == 0 and err == ""


@pytest.mark.parametrize("command", ["compile", "explain", "diff"])
def test_help_of_commands_with_a_model_says_that_it_runs_code(command):
    out = run_limited(command, "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "imports that module, which runs its code" in text


def test_readme_says_that_model_runs_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line"):readme.index("### Why does a parameter")]
    assert "`--model` runs your\ncode" in section and "current directory comes first" in section


# --- DistributedDataParallel --------------------------------------------------------------------

@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group, destroyed after the test."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("this torch has no torch.distributed")
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path}/store")
    yield dist
    dist.destroy_process_group()


def _net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def _train(model, optimizer, steps: int = 2) -> None:
    import torch

    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        optimizer.step()


def test_freezing_inside_ddp_is_a_positioned_e408_and_changes_nothing(process_group):
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel(_net())
    text = "group 2 lr=0.5\nfreeze 0"
    with pytest.raises(SpecError) as info:
        specopt.parse(text).compile(ddp)
    [diag] = info.value.diagnostics
    assert diag.code == "E408" and "'module.0.weight'" in diag.message
    assert text[diag.span.start:diag.span.end] == "freeze 0" and "before wrapping" in diag.hint
    assert all(p.requires_grad for p in ddp.parameters())


def test_ddp_inside_a_model_is_found_and_only_its_parameters_count(process_group):
    import torch

    outer = torch.nn.Module()
    outer.body = torch.nn.parallel.DistributedDataParallel(_net())
    outer.head = torch.nn.Linear(1, 1)
    with pytest.raises(SpecError) as info:
        specopt.parse("unfreeze **\nfreeze body.module.2").compile(outer)
    assert codes(info.value) == ["E408"] and "(at 'body')" in info.value.diagnostics[0].message
    compiled = specopt.parse("freeze head").compile(outer)  # outside the wrapper: DDP does not mind
    assert not outer.head.weight.requires_grad and len(compiled.optimizer.param_groups) == 1


def test_a_spec_that_changes_no_flag_compiles_on_ddp_and_trains(process_group):
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel(_net())
    compiled = specopt.parse("group 2 lr=0.5\nclip l2 1").compile(ddp)
    _train(ddp, compiled.optimizer)
    assert compiled.resolution.param("module.2.weight").settings["lr"].value == 0.5


def test_compiling_before_wrapping_trains_through_ddp(process_group):
    import torch

    model = _net()
    compiled = specopt.parse("freeze 0").compile(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    _train(ddp, compiled.optimizer)
    assert not model[0].weight.requires_grad and model[0].weight.grad is None


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
