"""The benchmark scripts: each runs at its --smoke sizes and prints its table (timings are not checked)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import specopt

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# What each script's output must contain: its table's rows and the summary it ends with.
EXPECTED = {
    "bench_compile": ["bare named_parameters()", "specopt resolve", "naive fnmatch loop",
                      "per-size ratios to bare enumeration", "target: specopt resolve / bare enumeration"],
    "bench_step": ["torch default (no flags)", "torch fused=True", "torch foreach=True",
                   "specopt optimizer adamw", "implementation:", "one group per parameter",
                   "target: specopt step / torch default"],
    "bench_impl": ["adamw float32 on cpu", "rmsprop bfloat16 on cpu", "single-tensor", "foreach", "fused",
                   "specopt (no flag)", "specopt's choice against the fastest", "target: specopt / fastest"],
    "bench_clip": ["norm above max (clipping scales)", "norm below max (no scaling)",
                   "hand-written clip_grad_norm_ + step", "specopt clip hook + step", "target: specopt / hand"],
    "bench_freeze": ["all trainable", "first half frozen by specopt", "freeze layers.{0,1}"],
    "bench_cli": ["python -c pass", 'python -c "import torch"', "specopt check", "target: specopt check"],
    "bench_meta": ["build the model on meta", "resolve (", "peak RSS:", "param groups"],
    "bench_fsdp_meta": ["fully_shard (rank 0 of 2)", "resolve, sharded model", "DTensor parameters",
                        "same assignment as the unsharded model: yes", "gathers and collectives while resolving: 0",
                        "peak RSS:"],
    "bench_schedule": ["torch CosineAnnealingLR", "specopt cosine", "torch SequentialLR", "torch StepLR",
                       "torch OneCycleLR", "specopt onecycle with momentum", "target: specopt step / torch step",
                       "10,000-step preview", "preview, numpy", "preview, torch float64"],
    "bench_train_step": ["hand-written loop", "compiled.train_step", "AveragedModel.update_parameters",
                         "specopt ema update", "frozen by freeze", "waiting for unfreeze ... at",
                         "target: train_step / hand-written loop, large", "target: backward waiting"],
    "bench_optimizers": ["two optimizers stepped by hand", "specopt combined step", "target: combined step / hand"],
    "bench_hint": ["bare named_parameters()", "hint: layers.*.moe.experts.*.w4", "closest real names:",
                   "resolve + E301:", "target: slowest hint / bare enumeration"],
    "bench_layers": ["bare named_parameters()", "by hand: one group per layer", "layers statement",
                     "both specs agree on every tensor", "target: layers statement / by hand"],
    "bench_timeline": ["statements", "per statement", "target: parse per statement",
                       "target: compile per statement"],
}


@pytest.fixture
def load_script(monkeypatch):
    """Import a benchmark script by name, with benchmarks/ on the path only for this test."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    loaded = []

    def load(name: str):
        for module in ("common", name):
            sys.modules.pop(module, None)
            loaded.append(module)
        return importlib.import_module(name)

    yield load
    for module in loaded:
        sys.modules.pop(module, None)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_script_runs_at_smoke_sizes_and_prints_its_table(name, load_script, capsys):
    script = load_script(name)
    with torch.random.fork_rng():
        status = script.main(["--smoke"])
    out = capsys.readouterr().out
    assert status == 0
    missing = [text for text in EXPECTED[name] if text not in out]
    assert not missing, f"{name} output lacks {missing}:\n{out}"


def test_every_script_in_benchmarks_is_smoke_tested():
    scripts = {p.stem for p in BENCHMARKS.glob("bench_*.py")}
    assert scripts == set(EXPECTED)


def test_cnn_variant_of_the_freeze_benchmark_runs(load_script, capsys):
    with torch.random.fork_rng():
        assert load_script("bench_freeze").main(["--smoke", "--arch", "cnn"]) == 0
    assert "cnn 4 x 16" in capsys.readouterr().out


def test_interleaving_rotates_the_order_and_skips_warmup(load_script):
    common = load_script("common")
    calls = []
    candidates = [common.Candidate(n, lambda n=n: calls.append(n)) for n in "abc"]
    times = common.interleave(candidates, repeats=3, warmup=1)
    assert calls == list("abc" "bca" "cab" "abc")
    assert {n: len(ts) for n, ts in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_an_accelerator_sync_brackets_each_timed_call(load_script):
    common = load_script("common")
    events = []
    candidates = [common.Candidate("a", lambda: events.append("run"), prepare=lambda: events.append("prepare"))]
    common.interleave(candidates, repeats=2, warmup=0, sync=lambda: events.append("sync"))
    assert events == ["prepare", "sync", "run", "sync"] * 2
    assert common.synchronizer("cpu") is None


def test_fastest_leaves_out_the_excluded_candidate(load_script, capsys):
    common = load_script("common")
    assert common.print_fastest({"a": 1.0, "b": 0.7, "ours": 0.5}, exclude="ours") == "b"
    assert "fastest apart from 'ours': b (0.70x)" in capsys.readouterr().out


def test_table_ratios_are_relative_to_the_baseline(load_script, capsys):
    common = load_script("common")
    ratios = common.print_table("t", {"base": [2.0, 2.0, 4.0], "other": [1.0, 1.0, 9.0]}, "base")
    assert ratios == {"base": 1.0, "other": 0.5}
    assert "0.50x" in capsys.readouterr().out


def test_resolution_fallback_agrees_with_spec_resolve(load_script):
    common, bench = load_script("common"), load_script("bench_compile")
    model = bench.build_model(600)
    spec = specopt.parse(bench.spec_text(bench.make_rules(30, len(model.layers))))
    without_resolve = SimpleNamespace(plan=spec.plan, source=spec.source)  # a Spec from before Spec.resolve
    ours, fallback = common.resolve_spec(spec, model), common.resolve_spec(without_resolve, model)
    assert common.resolve_path(without_resolve).startswith("specopt.resolve.resolution.resolve")
    assert fallback.groups == ours.groups and len(ours.groups) > 1
    assert [p.frozen for p in fallback.params] == [p.frozen for p in ours.params]
