"""The error catalogue: every emitted code is catalogued, documented and has a golden example.

Golden files live in ``tests/golden/codes/``, one case per code:

* ``<CODE>.opt`` (or ``.json`` / ``.yaml``: a plan written as data) is the input;
* ``<CODE>.model``, when present, holds a model reference as ``--model`` takes
  it (``examples/seed_model.py:Network``): the spec is compiled against it and
  its warnings are rendered too;
* ``<CODE>.txt`` is the expected rendered text (``SPECOPT_UPDATE_GOLDEN=1`` rewrites it).

A few codes need more than a file: :data:`SETUPS` prepares those (a lowered
size limit, permission to import, a broken installed extension, an older torch,
for the checkpoint codes E5xx a checkpoint that compiling the case then loads, and
for the framework codes E6xx the adapter's check of a framework's settings).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

import specopt
from golden import GOLDEN, check
from specopt.catalog.error_codes import CATALOGUE, markdown
from specopt.diagnostics import SpecError, render_all

ROOT = Path(__file__).resolve().parent.parent
CASES = GOLDEN / "codes"
INPUT_SUFFIXES = (".opt", ".json", ".yaml")
EMITTED = re.compile(r'"([EW]\d{3})"')


def emitted_codes() -> dict[str, list[str]]:
    """Every code literal in the package's source (the catalogue itself aside), with the files using it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "specopt").rglob("*.py")):
        if path.name.startswith(("error_codes", "code_info")):
            continue
        for code in EMITTED.findall(path.read_text(encoding="utf-8")):
            found.setdefault(code, []).append(path.name)
    return found


def documented_codes() -> list[str]:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    return re.findall(r"^## ([EW]\d{3}):", text, flags=re.MULTILINE)


def case_inputs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.suffix in INPUT_SUFFIXES)


# --- the catalogue, the docs and the code base agree ------------------------------------------

def test_every_emitted_code_is_catalogued():
    missing = sorted(set(emitted_codes()) - set(CATALOGUE))
    assert not missing, f"codes emitted in specopt/ but missing from specopt/catalog/error_codes.py: {missing}"


def test_every_catalogued_code_is_emitted():
    unused = sorted(set(CATALOGUE) - set(emitted_codes()))
    assert not unused, f"codes in specopt/catalog/error_codes.py that specopt/ never emits: {unused}"


def test_docs_are_generated_from_the_catalogue():
    check(ROOT / "docs" / "errors.md", markdown())


def test_every_emitted_code_is_documented():
    documented = documented_codes()
    assert len(documented) == len(set(documented)), "a code is documented twice"
    assert sorted(documented) == sorted(emitted_codes())


def test_every_code_has_one_golden_case():
    stems = [p.stem for p in case_inputs()]
    assert sorted(stems) == sorted(CATALOGUE), "tests/golden/codes/ needs exactly one input per code"
    for path in CASES.iterdir():
        assert path.stem in CATALOGUE, f"{path.name} belongs to no catalogued code"


def test_entries_are_complete():
    for code, entry in CATALOGUE.items():
        assert entry.code == code and re.fullmatch(r"[EW]\d{3}", code)
        assert entry.title and entry.summary and entry.example and entry.fix, code
        assert entry.example_format in ("opt", "json", "yaml"), code


# --- golden cases -------------------------------------------------------------------------------

def _setup_e102(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.import_module("specopt.language.parse"), "MAX_SOURCE_CHARS", 16)
    return {}


def _setup_e221(monkeypatch, tmp_path):
    return {"allow_import": True}


def _setup_e222(monkeypatch, tmp_path):
    """An installed package, brokenopt, whose 'lion' entry point names a module that does not exist."""
    from specopt.plan import extensions
    info = tmp_path / "brokenopt-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenopt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{extensions.ENTRY_POINT_GROUP}]\nlion = brokenopt_missing:Lion\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    extensions.clear_cache()
    return {}


def _setup_e401(monkeypatch, tmp_path):
    """A torch whose Adam predates ``decoupled_weight_decay``."""
    import torch

    class OlderAdam(torch.optim.Adam):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    monkeypatch.setattr(torch.optim, "Adam", OlderAdam)
    return {}


def _setup_e418(monkeypatch, tmp_path):
    """A torch older than 2.14, whose L-BFGS lacks ``maximize``."""
    from specopt.catalog import installed_torch as torchsource

    monkeypatch.setattr(torchsource, "torch_version", lambda: "2.13.0")
    return {}


def _seed_trained(text: str, classes: int = 10):
    """The seed model compiled with ``text`` after one step, so its optimizer has state."""
    import torch
    from seed_model import Network

    model = Network(classes=classes)
    compiled = specopt.compile(text, model)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    compiled.optimizer.step()
    return compiled


def _edited(text: str, edit):
    """The seed model's checkpoint under ``text`` after one step, changed in place by ``edit(checkpoint)``."""
    def make():
        saved = _seed_trained(text).state_dict()
        edit(saved)
        return saved
    return make


def _wrong_grad(saved) -> None:
    import torch

    saved["training"]["grads"] = {"classifier.weight": torch.zeros(3)}


def _loading(checkpoint):
    """A setup for the checkpoint codes (E5xx): compiling the case's spec then loads ``checkpoint()``."""
    def setup(monkeypatch, tmp_path):
        saved = checkpoint()  # made before compiling is patched to load it
        compile_spec = specopt.Spec.compile

        def compile_and_load(self, model, allow_import=False):
            compiled = compile_spec(self, model, allow_import)
            compiled.load_state_dict(saved)
            return compiled

        monkeypatch.setattr(specopt.Spec, "compile", compile_and_load)
        return {}
    return setup


def _change_model(monkeypatch, change) -> None:
    """Compile against ``change(model)`` instead of the model the ``.model`` reference builds."""
    from specopt.resolve import model_refs as modelref
    real = modelref.load_model
    monkeypatch.setattr(modelref, "load_model", lambda ref: change(real(ref)))


def _setup_e405(monkeypatch, tmp_path):
    """The model's parameters passed where the model belongs."""
    _change_model(monkeypatch, lambda model: list(model.parameters()))
    return {}


def _setup_e406(monkeypatch, tmp_path):
    """A model without parameters."""
    import torch

    _change_model(monkeypatch, lambda model: torch.nn.Identity())
    return {}


def _setup_e407(monkeypatch, tmp_path):
    """The seed model with an integer parameter, ``position_ids``."""
    import torch

    def with_positions(model):
        model.position_ids = torch.nn.Parameter(torch.arange(4), requires_grad=False)
        return model

    _change_model(monkeypatch, with_positions)
    return {}


def _setup_e408(monkeypatch, tmp_path):
    """The seed model wrapped in DistributedDataParallel, in a one-process gloo group."""
    import torch
    import torch.distributed as dist

    def wrapped(model):
        dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path}/ddp-store")
        try:
            return torch.nn.parallel.DistributedDataParallel(model)
        finally:
            dist.destroy_process_group()  # compiling never communicates; the wrapper only has to exist

    _change_model(monkeypatch, wrapped)
    return {}


def _engine(check):
    """A setup for the framework codes (E6xx): compiling the case runs an adapter's check first."""
    def setup(monkeypatch, tmp_path):
        compile_spec = specopt.Spec.compile

        def checked(self, model, allow_import=False):
            check(self)
            return compile_spec(self, model, allow_import)

        monkeypatch.setattr(specopt.Spec, "compile", checked)
        return {}
    return setup


def _setup_e236(monkeypatch, tmp_path):
    """Compiling is given the run's length twice, as epochs= and as steps=."""
    compile_spec = specopt.Spec.compile

    def twice(self, model, allow_import=False):
        return compile_spec(self, model, allow_import, epochs=90, steps=10000)

    monkeypatch.setattr(specopt.Spec, "compile", twice)
    return {}


LIGHTNING = "the Lightning Trainer"


def _engines():
    from specopt.integrations import common as engines
    return engines


SETUPS = {"E102": _setup_e102, "E221": _setup_e221, "E222": _setup_e222, "E401": _setup_e401,
          "E236": _setup_e236, "E405": _setup_e405, "E406": _setup_e406, "E407": _setup_e407, "E408": _setup_e408,
          "E418": _setup_e418,
          "E501": _loading(lambda: _seed_trained("optimizer adam").optimizer.state_dict()),
          "E502": _loading(lambda: _seed_trained("freeze classifier").state_dict()),
          "E503": _loading(lambda: _seed_trained("optimizer adam", classes=20).state_dict()),
          "E504": _loading(lambda: _seed_trained("optimizer sgd momentum=0.9").state_dict()),
          "E505": _loading(lambda: _seed_trained("group classifier lr=0.1").state_dict()),
          "E509": _loading(_edited("optimizer adam", lambda s: s["state"]["classifier.weight"].pop("exp_avg"))),
          "E510": _loading(_edited("schedule cosine 10 steps", lambda s: s["scheduler"].pop("fingerprint"))),
          "E511": _loading(_edited("optimizer adam", lambda s: s.update(training=None))),
          "E512": _loading(_edited("optimizer adam", _wrong_grad)),
          "E513": _loading(_edited("ema 0.999", lambda s: s["training"]["ema"]["averaged"].pop(
              "module.classifier.weight"))),
          "E514": _loading(_edited("optimizer adam", lambda s: s.update(spec="optimizer adam"))),
          "E601": _engine(lambda spec: _engines().check_clip(spec, LIGHTNING, "gradient_clip_val", 1.0)),
          "E602": _engine(lambda spec: _engines().check_accumulate(spec, LIGHTNING, "accumulate_grad_batches", 2)),
          "E603": _engine(lambda spec: _engines().check_steppable(spec, "the Hugging Face Trainer"))}


def _running(loop):
    """A setup for the warnings a schedule gives while it runs (W313-W316): compiling the case runs
    ``loop(compiled, loss)`` on the compiled spec, and the warnings it gave join the resolution's."""
    def setup(monkeypatch, tmp_path):
        import torch

        from specopt.runtime.scheduler import ScheduleWarning

        compile_spec = specopt.Spec.compile

        def compile_and_run(self, model, allow_import=False):
            compiled = compile_spec(self, model, allow_import)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                loop(compiled, lambda: model(torch.ones(2, 3, 8, 8)).sum())
            found = tuple(w.message.diagnostic for w in seen if isinstance(w.message, ScheduleWarning))
            compiled.resolution = dataclasses.replace(compiled.resolution,
                                                      warnings=compiled.resolution.warnings + found)
            return compiled

        monkeypatch.setattr(specopt.Spec, "compile", compile_and_run)
        return {}
    return setup


def _epochs_without_metric(compiled, loss):
    for _ in range(2):
        compiled.train_step(loss())
        compiled.end_epoch()


def _driver_and_loop_step(compiled, loss):
    for _ in range(3):
        compiled.train_step(loss())
        compiled.scheduler.step()


def _stepped_per_batch(compiled, loss):
    for _ in range(11):
        compiled.optimizer.zero_grad()
        loss().backward()
        compiled.optimizer.step()
        compiled.scheduler.step()


SETUPS.update({"W313": _running(_epochs_without_metric), "W314": _running(_driver_and_loop_step),
               "W315": _running(_stepped_per_batch),
               "W316": _running(lambda compiled, loss: compiled.scheduler.values_at(1100))})


@contextmanager
def _fresh_extensions():
    from specopt.plan import extensions
    extensions.clear_cache()
    try:
        yield
    finally:
        extensions.clear_cache()


def run_case(path: Path, monkeypatch, tmp_path) -> tuple[str, list[str]]:
    """Load (and, with a ``.model``, compile) one case; return the rendered text and the codes seen."""
    options = SETUPS[path.stem](monkeypatch, tmp_path) if path.stem in SETUPS else {}
    model_file = path.with_suffix(".model")
    with _fresh_extensions():
        try:
            spec = specopt.load(path, **options)
            if not model_file.exists():
                return "", []
            from specopt.resolve.model_refs import load_model

            monkeypatch.chdir(ROOT)
            compiled = spec.compile(load_model(model_file.read_text().strip()))
        except SpecError as exc:
            return exc.render(), [d.code for d in exc.diagnostics]
    warnings = compiled.resolution.warnings
    return render_all(warnings, spec.source), [w.code for w in warnings]


def _normalize(text: str, path: Path) -> str:
    text = text.replace(str(path), path.name)
    text = re.sub(r"devices here: .*", "devices here: <this machine's devices>", text)
    text = re.sub(r"\bplan [0-9a-f]{16}\b", "plan <hash>", text)  # a plan's hash moves with its schema
    text = re.sub(r"spec's plan is [0-9a-f]{16}\b", "spec's plan is <hash>", text)
    torch = sys.modules.get("torch")
    return text.replace(torch.__version__, "<torch version>") if torch is not None else text


@pytest.mark.parametrize("path", case_inputs(), ids=lambda p: p.stem)
def test_golden_code(path, monkeypatch, tmp_path):
    text, codes = run_case(path, monkeypatch, tmp_path)
    assert path.stem in codes, f"{path.name} does not produce {path.stem}: {codes}\n{text}"
    check(path.with_suffix(".txt"), _normalize(text, path) + "\n")


# --- catalogue examples do what they say --------------------------------------------------------

_NOT_RUNNABLE = {"E102", "E104"}  # a 1,000,000-character spec; bytes that are not UTF-8


@pytest.mark.parametrize("code", sorted(set(CATALOGUE) - _NOT_RUNNABLE))
def test_catalogue_example_produces_its_code(code, monkeypatch, tmp_path):
    entry = CATALOGUE[code]
    path = tmp_path / f"{code}.{entry.example_format}"
    path.write_text(entry.example.split("   #")[0] + "\n", encoding="utf-8")
    if entry.needs_model:
        path.with_suffix(".model").write_text("examples/seed_model.py:Network\n")
    _, codes = run_case(path, monkeypatch, tmp_path)
    assert code in codes
