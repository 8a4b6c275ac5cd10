"""The catalogue's codes for matching a model (E3xx), building (E4xx), checkpoints (E5xx), frameworks (E6xx)
and the warnings (W3xx)."""

from __future__ import annotations

from .code_info import CodeInfo

RUN_ENTRIES = (
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
    CodeInfo("E509", "optimizer state its optimizer cannot use",
             "A parameter's saved state lacks a value its optimizer keeps (`exp_avg` for Adam), or holds "
             "something else where it keeps a tensor (a string, a single number). specopt loads that state into "
             "a copy of the optimizer over a small stand-in parameter and steps it once, so it knows before "
             "anything is loaded what torch's next `step()` would fail on; nothing is loaded.",
             "optimizer adam   # loading a checkpoint whose state for classifier.weight lacks exp_avg",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or delete the named parameters' entries "
             "from the checkpoint's `state` so that their state starts afresh.",
             needs_model=True),
    CodeInfo("E510", "schedule position incomplete",
             "The checkpoint's `scheduler` entry is specopt's schedule position but lacks its `fingerprint` "
             "or `_step_count`, or its plateau counters are not numbers; nothing is loaded.",
             "schedule cosine 10 steps   # loading a checkpoint whose scheduler entry lacks its fingerprint",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or delete its `scheduler` entry to start "
             "the schedule afresh.",
             needs_model=True),
    CodeInfo("E511", "loop state malformed",
             "The checkpoint's `training` entry (the step driver's counts, fired statements, `requires_grad` "
             "flags, lr warmups and GradScaler state) is not what `compiled.state_dict()` writes: `None` or a "
             "string, counts that are not whole numbers, flags that are not a dict, a warmup naming a param "
             "group this optimizer does not have; nothing is loaded.",
             "optimizer adam   # loading a checkpoint whose training entry is None",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or delete its `training` entry to keep "
             "the optimizer state and the schedule and start the loop's counts and events afresh.",
             needs_model=True),
    CodeInfo("E512", "accumulated gradients that do not fit",
             "A checkpoint saved in the middle of an accumulation holds each parameter's gradient so far; one "
             "of them is not a tensor of its parameter's shape and dtype; nothing is loaded.",
             "optimizer adam   # loading a checkpoint whose gradient for classifier.weight has 3 elements",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or delete `training['grads']` to drop "
             "the unfinished accumulation.",
             needs_model=True),
    CodeInfo("E513", "EMA incomplete",
             "The checkpoint's EMA (`training['ema']`) lacks its averaged weights or its count of updates, or "
             "its averaged weights miss some of the model's or do not fit their shapes; nothing is loaded.",
             "ema 0.999   # loading a checkpoint whose EMA lacks the average of classifier.weight",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or delete `training['ema']` to start the "
             "average afresh.",
             needs_model=True),
    CodeInfo("E514", "spec record malformed",
             "The checkpoint's `spec` entry, which records the spec it was saved under, is not a dict with "
             "the plan's hash, so a strict load cannot check that it resumes the same spec (E505); nothing "
             "is loaded. A non-strict load warns and loads. A checkpoint without the entry, saved before "
             "specopt recorded it, is not checked.",
             "optimizer adam   # loading a checkpoint whose spec entry is a string",
             "Load the checkpoint as `compiled.state_dict()` wrote it, or load with `strict=False`.",
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
    CodeInfo("W313", "plateau phase without a metric",
             "While the schedule runs: a `plateau` phase is running, but an epoch ended without the metric it "
             "watches (`compiled.end_epoch()` without `metric=`, or an epoch-unit `scheduler.step()` without "
             "one) before any metric reached it, so its value would never go down.",
             "schedule plateau x0.5 patience 3   # compiled.end_epoch() without metric=",
             "Pass the metric each epoch: `compiled.end_epoch(metric=val_loss)`, or `scheduler.step(val_loss)` "
             "where the loop steps the scheduler itself.",
             needs_model=True),
    CodeInfo("W314", "schedule stepped too often",
             "While the schedule runs: the scheduler is stepped both by the step driver "
             "(`compiled.train_step`, `after_step`, `end_epoch`) and directly, or clearly more often than the "
             "optimizer steps (once per micro-batch, twice per step), or an epoch-unit schedule about once per "
             "batch (when the steps per epoch are known). The schedule then runs ahead of the training.",
             "schedule cosine 100 steps   # compiled.train_step(loss) and scheduler.step() in one loop",
             "Step the scheduler once per unit (`compiled.schedule_unit`), or let `compiled.train_step` and "
             "`compiled.end_epoch()` step it and drop the `scheduler.step()` call.",
             needs_model=True),
    CodeInfo("W315", "schedule stepped past the run",
             "While the schedule runs: the scheduler has been stepped more times than the run's length in its "
             "unit, often an epoch-unit schedule stepped once per batch. The schedule holds its last value.",
             "run 10 epochs\nschedule cosine to x0.01   # scheduler.step() after every batch",
             "Step an epoch-unit schedule once per epoch (`compiled.schedule_unit`), or give the run's real "
             "length.",
             needs_model=True),
    CodeInfo("W316", "schedule past the float range",
             "While the schedule runs: a growing schedule in a run of unknown length took a param group's value "
             "past the largest float. It holds at the largest float (about 1.8e308) from then on; it never "
             "raises and is never inf.",
             "schedule exponential x2   # 1024 scheduler steps",
             "Give the run's length (`run N steps`), so that compiling checks the range (E223), or let the "
             "schedule grow less.",
             needs_model=True),
)
