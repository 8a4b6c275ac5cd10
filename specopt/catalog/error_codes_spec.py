"""The catalogue's codes for reading a spec (E1xx) and checking its plan (E2xx)."""

from __future__ import annotations

from .code_info import CodeInfo

SPEC_ENTRIES = (
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
    CodeInfo("E109", "invisible character",
             "A statement, or a string in a plan written as data, holds a character that cannot be seen: a "
             "control character such as NUL, a zero-width or bidirectional formatting character, a line or "
             "paragraph separator. The statement is not read, since its words are not what a reader of the "
             "file sees; comments may hold anything. (A lone carriage return ends a line, as in old Mac files.)",
             "freeze conv\u200b1   # a zero-width space (U+200B) after conv",
             "Delete the character; the message names it and the caret points at it."),
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
    CodeInfo("E235", "no such device number",
             "A `device` statement or the `device=` of `ema` numbers a device that no machine has: the CPU is "
             "one device (`cpu`, or `cpu:0`), and torch numbers the devices of a type 0 to 127.",
             "device cpu:3",
             "Write cpu, or the number of an accelerator device (cuda:1); `device auto` picks one."),
    CodeInfo("E236", "run length given twice",
             "`compile` got the run's length both as `epochs=` and as `steps=` (each wins over the spec's "
             "`run`, so they cannot both). Each of `epochs=`, `steps=` and `steps_per_epoch=` is, like the "
             "spec's `run` and `steps_per_epoch`, a whole number of at least 1 (E207 otherwise; E206 for what "
             "is not a number).",
             "schedule cosine 90%   # compiled with epochs=90 and steps=10000",
             "Give epochs= or steps=, not both.",
             needs_model=True),
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
    CodeInfo("E223", "schedule past the float range",
             "A schedule that grows (`step`, `multistep` or `exponential` with a factor above 1, restarts "
             "with `decay` above 1) would take a param group's value past the largest float (about 1.8e308) "
             "within the run, or before its last phase ends when the run's length is unknown.",
             "run 400 epochs\nstep every 1 x10",
             "Let the schedule grow less, or give the phase that grows a length so that it stops in time. "
             "(In a run of unknown length a value past the float range holds at the largest float: W316.)",
             needs_model=True),
)
