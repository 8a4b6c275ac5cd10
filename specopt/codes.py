"""The error catalogue: every diagnostic code specopt emits, what it means and how to fix it.

Codes are stable: E1xx for reading a spec (syntax, values, files, plans
written as JSON or YAML), E2xx for checking the plan, E3xx for matching
selectors against a model, E4xx for building the torch objects, E5xx for
loading an optimizer checkpoint, E6xx for running under a framework's loop,
W3xx for warnings. ``docs/errors.md`` is generated from this catalogue
(:func:`markdown`), and the tests check that every code in the code base is
here, documented and has a golden example, and that nothing here is unused.
"""

from __future__ import annotations

from dataclasses import dataclass

SEED_MODEL = "examples/seed_model.py:Network"


@dataclass(frozen=True)
class CodeInfo:
    """One diagnostic code: a title, what it means, a spec that triggers it and how to fix it.

    ``example_format`` is ``opt`` for spec text, or ``json`` / ``yaml`` for a
    plan written as data; ``needs_model`` says that the example only fails
    when compiled against the seed model (``examples/seed_model.py:Network``).
    """

    code: str
    title: str
    summary: str
    example: str
    fix: str
    example_format: str = "opt"
    needs_model: bool = False

    @property
    def severity(self) -> str:
        """``warning`` for W codes, ``error`` for E codes."""
        return "warning" if self.code.startswith("W") else "error"


_ENTRIES = (
    # --- E1xx: reading a spec --------------------------------------------------------------------
    CodeInfo("E100", "syntax error",
             "A statement does not follow its form: a word, symbol or value is missing or out of place.",
             "clip l2 20 extra",
             "Compare the statement with the form the hint shows, or with `specopt list`."),
    CodeInfo("E101", "unknown statement",
             "A statement starts with a word that is not a statement keyword (in a plan written as data: "
             "a `kind` that is not a statement).",
             "frezee cnn.*",
             "Use one of optimizer, freeze, unfreeze, group, clip, step; the hint names the closest."),
    CodeInfo("E102", "spec too large",
             "The file is over 1,000,000 characters; specopt refuses it rather than spend unbounded time.",
             "# any spec of more than 1,000,000 characters",
             "Split the spec, or check that the right file was passed."),
    CodeInfo("E103", "bad value",
             "A value is not one specopt understands: an unknown word, a tuple inside a tuple, or a "
             "whole number too long to read.",
             "group head.* lr=fast",
             "Write numbers, true, false, none, quoted strings or tuples of those, e.g. betas=(0.9, 0.999)."),
    CodeInfo("E104", "file not UTF-8",
             "The file holds bytes that are not UTF-8 text, for example a spec saved as Latin-1.",
             "freeze conv\\xff1   # the byte 0xff, as a Latin-1 editor writes 'ÿ'",
             "Save the file as UTF-8."),
    CodeInfo("E105", "malformed JSON or YAML",
             "A plan file written as JSON or YAML cannot be read: a syntax error, a key given twice in "
             "one mapping, nesting deeper than 64 levels, YAML aliases that expand past 250,000 values "
             "or into themselves, or a value the decoder rejects.",
             '{"statements": [{"kind": "clip" "mode": "l2", "max": 20}]}',
             "Fix the file at the position shown; `specopt schema` prints the shape a plan has.",
             example_format="json"),
    CodeInfo("E106", "unknown field in a plan file",
             "A mapping in a JSON or YAML plan has a key that its node does not have.",
             "statements:\n  - kind: freeze\n    selectors:\n      - atoms: [{kind: name, patern: head.*}]",
             "Rename the key as the hint suggests; `specopt schema` lists every node's fields.",
             example_format="yaml"),
    CodeInfo("E107", "missing field in a plan file",
             "A mapping in a JSON or YAML plan lacks a field its node requires, such as a statement's "
             "`kind` or a freeze statement's `selectors`.",
             "statements:\n  - kind: freeze",
             "Add the field named in the message.",
             example_format="yaml"),
    CodeInfo("E108", "wrong type in a plan file",
             "A field in a JSON or YAML plan holds the wrong type of value, e.g. text where a whole "
             "number belongs, or a choice outside its allowed words.",
             "statements:\n  - kind: step\n    every: ten\n    gamma: 0.1",
             "Give the field a value of the type the message names.",
             example_format="yaml"),
    # --- E2xx: checking the plan ------------------------------------------------------------------
    CodeInfo("E201", "unknown optimizer",
             "The optimizer statement names neither a builtin optimizer nor an installed extension.",
             "optimizer adamm lr=1e-3",
             "Use a name from `specopt list`; a class from your own code is named by a quoted import path."),
    CodeInfo("E202", "repeated statement",
             "A spec has at most one optimizer, one clip and one schedule statement.",
             "clip l2 20\nclip l2 10",
             "Keep one of them."),
    CodeInfo("E203", "key given twice",
             "The same key=value key appears twice in one statement.",
             "optimizer adam lr=1e-3 lr=1e-2",
             "Keep one; a later statement can override a value for some parameters."),
    CodeInfo("E204", "unknown option",
             "The optimizer takes no option of that name.",
             "optimizer adam momentum=0.9",
             "Use an option the hint lists, or pick an optimizer that has it."),
    CodeInfo("E205", "option not per group",
             "An implementation flag (foreach, fused, capturable, differentiable) applies to the whole "
             "optimizer and cannot be set by a group statement.",
             "group head.* foreach=true",
             "Set it on the optimizer statement."),
    CodeInfo("E206", "wrong type of value",
             "A value has the wrong type for its key, or is a relative value (x10) where none is allowed.",
             "group head.* lr=true",
             "Give the type the message names; relative values belong in group statements, on numbers."),
    CodeInfo("E207", "value out of range",
             "A value is outside the range its key allows: a negative learning rate, a clip maximum of "
             "0, a step interval below 1, nan or inf.",
             "clip l2 -1",
             "Use a value within the range the message states."),
    CodeInfo("E208", "intersection without a positive selector",
             "Every selector of an `a & b` intersection is negated, so it has nothing to intersect with.",
             "freeze !head & !norm",
             "Start from a positive selector: `a & !b` excludes b from a."),
    CodeInfo("E209", "bad selector",
             "A selector pattern cannot be matched: an empty segment, `**` inside a segment, an unclosed "
             "bracket or brace, braces nested more than 8 deep, an unknown or repeated `/` flag, or a "
             "malformed rank test.",
             "freeze a..b",
             "Fix the pattern as the message says; docs/language.md describes selectors."),
    CodeInfo("E210", "group without hyperparameters",
             "A group statement sets no key=value, so it would change nothing.",
             "group head.*",
             "Add the hyperparameters it should set, e.g. lr=1e-3."),
    CodeInfo("E211", "unknown clip mode",
             "A clip statement's mode is not l2, l1, inf (or linf), lP for a decimal P > 0 such as l3 "
             "or l1.5, or value.",
             "clip l0 2",
             "Use one of those modes."),
    CodeInfo("E212", "bad length",
             "A length of time is zero or negative, a share of the run is over 100%, milestones do not "
             "increase, or the run's length is written as a percentage.",
             "schedule warmup 0 steps then cosine 1000 steps",
             "Lengths are N steps, N epochs or P% of the run, greater than 0."),
    CodeInfo("E213", "unknown schedule kind",
             "A schedule phase starts with a word that is not a schedule kind.",
             "schedule warmup 5 epochs then cosin to x0.01",
             "Use a kind from `specopt list` or docs/schedules.md; the hint names the closest."),
    CodeInfo("E214", "unknown or missing schedule argument",
             "A phase names an argument its kind does not take, or leaves out one it needs (a step "
             "phase needs its interval and factor).",
             "schedule cosine 10 epochs floor x0.01",
             "Use the arguments the hint lists for that kind."),
    CodeInfo("E215", "phases that cannot follow each other",
             "More than one phase leaves out its length (only one can take the rest of the run), a "
             "plateau phase is not the last, or the shares of the run add up to more than 100%.",
             "schedule warmup then cosine",
             "Give every phase but one a length; put plateau last."),
    CodeInfo("E216", "a number the schedule needs is missing",
             "A phase needs the run's length (it is a share of the run, or has no length and takes the "
             "rest of it) or the steps per epoch (it is in epochs while the schedule runs in steps), and "
             "neither the spec nor the caller gave it.",
             "schedule warmup 5 epochs then cosine to x0.01",
             "Add `run N epochs` / `steps_per_epoch N` to the spec, or pass epochs=, steps= or "
             "steps_per_epoch= when compiling (--epochs, --steps, --steps-per-epoch on the command line).",
             needs_model=True),
    CodeInfo("E217", "schedule out of range",
             "A schedule would take a param group's hyperparameter outside the range the optimizer "
             "allows, such as a beta of 1 or more, or a negative learning rate.",
             "schedule beta1 linear 10 epochs to x1.2",
             "Change the schedule's levels, or the group's base value they multiply.",
             needs_model=True),
    CodeInfo("E218", "clipping sparse gradients",
             "The optimizer trains on sparse gradients (sparse_adam), and torch can neither measure nor "
             "clamp sparse gradients, so a clip statement cannot apply.",
             "optimizer sparse_adam\nclip l2 1",
             "Drop the clip statement, or train the embeddings with dense gradients and another optimizer."),
    CodeInfo("E219", "schedule does not fit the optimizer",
             "A onecycle phase moves momentum (or beta1) opposite to the learning rate, as torch's "
             "OneCycleLR does, but the optimizer has neither momentum nor betas, or another schedule "
             "sets that hyperparameter too.",
             "optimizer adagrad\nschedule onecycle 1000 steps",
             "Add cycle_momentum false to the onecycle phase, or drop the other schedule."),
    CodeInfo("E230", "warmup without a point of the run",
             "A `warmup` ramps the learning rate of what an `unfreeze ... at` statement makes trainable, "
             "but the statement has no `at`, or is a `freeze`.",
             "unfreeze encoder.layer.11 warmup 500 steps",
             "Give the point the parameters become trainable: `unfreeze encoder.layer.11 at step 2000 "
             "warmup 500 steps`."),
    CodeInfo("E231", "unknown ema setting",
             "The `ema` statement names a setting it does not have.",
             "ema 0.9999 decay_warmup=true",
             "Use warmup, power, gamma, every, buffers or device; the hint names the closest."),
    CodeInfo("E232", "not a device",
             "A `device` statement or the `device=` of `ema` names something that is not a torch device "
             "type, such as `gpu`.",
             "device gpu",
             "Write cpu, cuda, cuda:1, mps, xpu:0 and so on, or auto for the accelerator if there is one."),
    CodeInfo("E233", "layers that cannot be ordered",
             "A selector of a `layers` statement has wildcards whose captures cannot number layers: `**` "
             "(any number of segments), two wildcards apart in one segment, wildcards in two selectors of one "
             "intersection, selectors of one slot capturing different counts of numbers, or a `with` selector "
             "capturing more numbers than the layers of its slot have.",
             "layers embed then blocks.** decay=0.75",
             "Name each level with its own `*`: `blocks.*`, `layers.*.blocks.*`; put selectors with other "
             "wildcards in a slot of their own, joined by `then`."),
    CodeInfo("E234", "unknown or missing layers setting",
             "A `layers` statement names a setting it does not have, or leaves out `decay=`.",
             "layers embed then blocks.* layer_decay=0.75",
             "Give decay=D (0 < D <= 1), and optionally min_scale=S and freeze_below=S; the hint names the "
             "closest setting."),
    CodeInfo("E220", "import not allowed",
             "The optimizer is named by import path, and importing it would run code; that needs the "
             "caller's permission.",
             'optimizer "mypkg.optim:Lion" lr=1e-4',
             "Pass --allow-import on the command line, or allow_import=True in Python."),
    CodeInfo("E221", "import-path optimizer unusable",
             "An allowed import-path optimizer cannot be used: its module does not import, it names no "
             "class, or the class's constructor does not fit an optimizer.",
             'optimizer "no_such_package.optim:Lion" lr=1e-4',
             "Install the package or fix the path; constructor arguments need defaults."),
    CodeInfo("E222", "extension optimizer unusable",
             "An installed package provides the optimizer, but it cannot be used: it fails to load, "
             "declares a bad entry, or several packages provide the same name.",
             "optimizer lion lr=1e-4",
             "Fix or uninstall the package; `specopt list` shows every installed extension."),
    # --- E3xx: matching selectors against a model -------------------------------------------------
    CodeInfo("E301", "selector selects nothing",
             "A selector matches no parameter or module of the model, which is almost always a typo.",
             "freeze convolution3*",
             "Use a name from the hint, or prefix the selector with ~ if selecting nothing is fine.",
             needs_model=True),
    CodeInfo("E302", "intersection selects nothing",
             "Each selector of an intersection selects something, but no parameter satisfies all of them.",
             "group convolution1* & classifier lr=1",
             "Check the selectors: an intersection keeps only parameters every one of them selects.",
             needs_model=True),
    CodeInfo("E303", "parameter its optimizer cannot take",
             "An optimizer gets a parameter of a rank it cannot train: Muon trains only 2-D weight "
             "matrices, so a bias, a norm weight or a convolution kernel given to it is refused; the "
             "message names them.",
             "optimizer adamw\noptimizer muon for classifier",
             "Narrow the 'for' (e.g. `optimizer muon for ndim==2 & ...`) so the others stay with the "
             "optimizer without 'for', or freeze them.",
             needs_model=True),
    CodeInfo("E304", "parameter in two optimizers",
             "Two `optimizer ... for` statements select the same trainable parameter; every trainable "
             "parameter is in exactly one optimizer. The message names them.",
             "optimizer sgd for classifier\noptimizer rmsprop for classifier.weight",
             "Narrow one of the 'for' clauses, e.g. `optimizer sgd for classifier & !classifier.weight`.",
             needs_model=True),
    CodeInfo("E305", "group option its parameters' optimizer lacks",
             "In a spec with several optimizers, a group sets an option that the optimizer training some "
             "of the parameters it selects does not have, such as momentum on parameters of adamw.",
             "optimizer adamw\noptimizer sgd for classifier\ngroup classifier convolution1_1 momentum=0.9",
             "Narrow the group to the parameters of the optimizer that has the option.",
             needs_model=True),
    CodeInfo("E306", "with selector joins no layer",
             "A `with` selector of a `layers` slot captures numbers that start no layer of its slot, so the "
             "parameters it selects have no layer to join (`layers.*.downsample` joins the first layer of "
             "`layers.*.blocks.*` numbered with the same stage).",
             "layers convolution1_[1] with convolution2_? decay=0.5",
             "Narrow the with selector to the modules that have a layer to join, or widen the slot.",
             needs_model=True),
    CodeInfo("E307", "wildcard captured no number",
             "A wildcard of a `layers` selector matched a module whose name there is not a whole number, such "
             "as `blocks.*` matching `blocks.norm`; layers are ordered by the numbers their wildcards capture.",
             "layers cnn.VGG_16.* decay=0.5",
             "Narrow the wildcard to digits (`blocks.[0-9]*`), or leave the module out: `blocks.* & !blocks.norm`.",
             needs_model=True),
    CodeInfo("E308", "parameter in two layers",
             "Two parts of a `layers` statement (two slots, or a slot and a `with`) select the same parameter, "
             "which can be in one layer only.",
             "layers cnn then convolution2_* decay=0.5",
             "Narrow one of the selectors: anchor it with ^, or exclude the other part with & !....",
             needs_model=True),
    # --- E4xx: building the torch objects ---------------------------------------------------------
    CodeInfo("E401", "not in this torch",
             "The installed torch lacks the optimizer class, or its constructor lacks an option the "
             "spec sets.",
             "optimizer adam decoupled_weight_decay=true   # with a torch whose Adam lacks it",
             "Upgrade torch, or drop the option.",
             needs_model=True),
    CodeInfo("E402", "everything frozen",
             "Every parameter is frozen, so the optimizer would have nothing to optimize.",
             "freeze **",
             "Unfreeze something, or do not build an optimizer.",
             needs_model=True),
    CodeInfo("E403", "one group only",
             "The optimizer (lbfgs) takes a single param group, but the group statements split the "
             "parameters into several.",
             "optimizer lbfgs\ngroup classifier lr=0.5",
             "Drop the group statements that change hyperparameters.",
             needs_model=True),
    CodeInfo("E404", "torch rejected the optimizer",
             "The optimizer's constructor (torch's, or an import-path class's) raised an error for these "
             "parameters and settings, such as Nesterov momentum without momentum.",
             "optimizer sgd nesterov=true",
             "Read the constructor's message: e.g. nesterov=true needs momentum > 0 and dampening=0.",
             needs_model=True),
    CodeInfo("E405", "not a model",
             "The object given to compile or resolve is not a torch.nn.Module: for example the model's "
             "parameters, a state dict, or the model class instead of an instance.",
             "freeze cnn   # compiled against list(model.parameters()) instead of the model",
             "Pass the module itself: spec.compile(model).",
             needs_model=True),
    CodeInfo("E406", "model without parameters",
             "The model has no parameters at all, so there is nothing to select, freeze or optimize; often its "
             "layers sit in a plain Python list instead of an nn.ModuleList.",
             "freeze cnn   # compiled against torch.nn.Identity()",
             "Register the layers as submodules (nn.ModuleList, nn.Sequential), or pass the right model.",
             needs_model=True),
    CodeInfo("E407", "integer parameter made trainable",
             "An unfreeze statement selects a parameter of an integer or boolean dtype, which torch never lets "
             "require gradients; the message names it. Nothing is changed.",
             "unfreeze **   # against a model with an integer parameter, e.g. position ids",
             "Leave it frozen: narrow the unfreeze, e.g. `unfreeze ** & !position_ids`.",
             needs_model=True),
    CodeInfo("E408", "freezing inside DistributedDataParallel",
             "The model is, or contains, a DistributedDataParallel wrapper, and the spec would freeze or "
             "unfreeze a parameter inside it. DDP fixed its trainable parameters when it wrapped the model, "
             "so the next backward pass would fail.",
             "freeze cnn   # compiled against DistributedDataParallel(model)",
             "Compile the spec on the model first, then wrap it: compiled = spec.compile(model); "
             "model = DistributedDataParallel(model).",
             needs_model=True),
    CodeInfo("E410", "no such device here",
             "The spec names a device this machine does not have, such as `cuda:1` on a machine with one "
             "GPU or none. Nothing is moved.",
             "device cuda:7",
             "Use a device the hint lists, or `device auto`.",
             needs_model=True),
    CodeInfo("E418", "needs a newer torch",
             "A builtin optimizer's option, or a value of one, came with a newer torch than the one installed: "
             "the message names the torch that brought it (L-BFGS takes `maximize` from torch 2.14 on). "
             "specopt supports torch 2.9 and newer.",
             "optimizer lbfgs maximize=true   # with torch older than 2.14",
             "Install the torch the message names, or drop the option."),
    # --- E5xx: loading an optimizer checkpoint ----------------------------------------------------
    CodeInfo("E501", "not a specopt checkpoint",
             "`compiled.load_state_dict` got something other than what `compiled.state_dict()` returns: "
             "torch's own `optimizer.state_dict()` (keyed by position), something that is not a dict, or a "
             "checkpoint with a key missing or holding the wrong type.",
             "optimizer adam   # then compiled.load_state_dict(compiled.optimizer.state_dict())",
             "Save `compiled.state_dict()` and load that; a checkpoint edited by hand must keep its keys "
             "and their types.",
             needs_model=True),
    CodeInfo("E502", "checkpoint names do not match",
             "A strict load found saved state for parameters this optimizer does not train, or trained "
             "parameters without saved state: the spec freezes other parameters than when saving, or the "
             "model's parameters were renamed. (Wrappers such as DistributedDataParallel or `torch.compile` "
             "do not change names: specopt leaves their `module.` and `_orig_mod.` out.)",
             "optimizer adam   # loading a checkpoint saved under `freeze classifier`",
             "Load with `strict=False` to restore the parameters that match (its result lists the rest), "
             "or compile the spec against the model as it was when saving.",
             needs_model=True),
    CodeInfo("E503", "checkpoint of another shape",
             "A parameter's shape or dtype differs from the checkpoint's, or a saved state tensor such as "
             "`exp_avg` does not fit its parameter: the layer was resized or cast since saving. Nothing is "
             "loaded: the optimizer's step would read past the end of the saved state.",
             "optimizer adam   # loading a checkpoint saved with a classifier of 20 outputs, not 10",
             "Delete the changed parameters' entries from the checkpoint's `state`, so that they start "
             "afresh, or do not load the checkpoint.",
             needs_model=True),
    CodeInfo("E504", "checkpoint of another optimizer",
             "The checkpoint holds another optimizer's state than the one the spec builds, e.g. SGD's "
             "momentum buffers where Adam expects `exp_avg` and `exp_avg_sq`.",
             "optimizer adam   # loading a checkpoint saved under `optimizer sgd momentum=0.9`",
             "Load it with the spec it was saved with, or start this optimizer afresh.",
             needs_model=True),
    CodeInfo("E505", "checkpoint of another spec",
             "A strict load of a checkpoint saved under another spec: the plan it records hashes differently "
             "from this spec's. The hint says what changed for which parameters, in the words of "
             "`specopt diff`; nothing is loaded.",
             "optimizer adam   # loading a checkpoint saved under `group classifier lr=0.1`",
             "Load with `strict=False` to restore the state by name under this spec (a warning then says what "
             "changed, and this spec's values apply from now on), or resume with the spec the checkpoint was "
             "saved with.",
             needs_model=True),
    # --- E6xx: running under a framework's loop --------------------------------------------------
    CodeInfo("E601", "clipping twice",
             "The spec clips and the framework running the loop clips too: Lightning's `gradient_clip_val`, or "
             "`accelerator.clip_grad_norm_` called on the spec's parameters. The gradients would be clipped "
             "twice, with two maxima.",
             "clip l2 1   # under a Lightning Trainer(gradient_clip_val=1.0)",
             "Leave the framework's clipping unset, so that the spec's clip hook clips once per step on unscaled "
             "gradients, or drop the clip statement. (The Hugging Face Trainer's `max_grad_norm` is switched off "
             "instead, with a log line, since it is on by default.)",
             needs_model=True),
    CodeInfo("E602", "accumulation set twice",
             "The spec's `accumulate N` differs from the accumulation the framework runs (Lightning's "
             "`accumulate_grad_batches`, the Trainer's or Accelerate's `gradient_accumulation_steps`); the "
             "framework runs the loop, so the spec's number would not apply.",
             "accumulate 4   # under a Lightning Trainer(accumulate_grad_batches=2)",
             "Give the framework the spec's number, or drop the accumulate statement.",
             needs_model=True),
    CodeInfo("E603", "a schedule the framework would step wrongly",
             "The framework steps the scheduler in a way the schedule cannot follow: the Hugging Face Trainer "
             "never passes the metric a `plateau` phase waits for, and an Accelerate `AcceleratedScheduler` "
             "steps the scheduler once per process for every optimizer step.",
             "schedule cosine 10 epochs then plateau   # under the Hugging Face Trainer",
             "Use a schedule of fixed length under the Trainer; under Accelerate leave compiled.scheduler out of "
             "accelerator.prepare and step with the stepper specopt.accelerate.prepare returns.",
             needs_model=True),
    # --- W3xx: warnings ---------------------------------------------------------------------------
    CodeInfo("W301", "statement has no effect",
             "Later statements override everything this statement sets, for every parameter it selects.",
             "group classifier lr=0.5\ngroup classifier lr=0.1",
             "Remove the statement, or narrow the later ones.",
             needs_model=True),
    CodeInfo("W302", "statement changes nothing",
             "The parameters the statement selects already have the values it sets (often the "
             "optimizer's defaults).",
             "group classifier lr=1e-3",
             "Remove the statement, or set the value you meant.",
             needs_model=True),
    CodeInfo("W303", "norms= reaches no norm layer",
             "A freeze or unfreeze with `norms=eval` (or `norms=train`) selects no norm layer with running "
             "statistics (BatchNorm, SyncBatchNorm, InstanceNorm with track_running_stats=True), so the "
             "setting does nothing.",
             "freeze cnn norms=eval",
             "Drop `norms=`, or select the part of the model that holds the norm layers.",
             needs_model=True),
)

CATALOGUE: dict[str, CodeInfo] = {entry.code: entry for entry in _ENTRIES}


def markdown() -> str:
    """The catalogue as ``docs/errors.md``."""
    lines = [
        "# Errors and warnings",
        "",
        "Every diagnostic specopt prints ends with a stable code, such as `[E301]`. This page, generated",
        "from `specopt/codes.py`, lists them all: what each means, a spec that triggers it and how to",
        "fix it. E1xx codes come from reading a spec (syntax, values, files, plans written as JSON or",
        "YAML), E2xx from checking the plan, E3xx from matching selectors against a model, E4xx from",
        "building the torch objects, E5xx from loading an optimizer checkpoint with",
        "`compiled.load_state_dict`, E6xx from running under a framework's loop (Lightning, the Hugging",
        "Face Trainer, Accelerate), and W3xx are warnings. Examples marked *against the seed model*",
        f"fail only when compiled against `{SEED_MODEL}`, e.g.",
        f"`specopt compile bad.opt --model {SEED_MODEL}`; an E5xx example's comment says which",
        "checkpoint is then loaded into the compiled spec.",
        "",
        "A plan read from JSON or YAML names the field a diagnostic concerns by its path, such as",
        "`plan.yaml:statements.2.options.0.value:7:14: error: ...`.",
        "",
    ]
    for entry in _ENTRIES:
        where = " (against the seed model)" if entry.needs_model else ""
        lines += [f"## {entry.code}: {entry.title}", "", f"{entry.severity.capitalize()}. {entry.summary}", "",
                  f"Example{where}:", "", f"```{_FENCE[entry.example_format]}", entry.example, "```", "",
                  f"Fix: {entry.fix}", ""]
    return "\n".join(lines)


_FENCE = {"opt": "text", "json": "json", "yaml": "yaml"}
