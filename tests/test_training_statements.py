"""The accumulate, ema and device statements: forms, settings and checks."""

from __future__ import annotations

import pytest

import specopt
from specopt.language.fmt import format_text


def test_accumulate_ema_and_device_read_their_values():
    plan = specopt.parse("accumulate 4\nema 0.999 warmup=true power=0.75 every=2 buffers=false device=cpu\n"
                         "device cuda:1").plan
    assert plan.accumulate == 4
    ema = plan.ema
    assert (ema.decay, ema.setting("warmup"), ema.setting("power"), ema.setting("every"),
            ema.setting("buffers"), ema.setting("device"), ema.setting("gamma")) == (
        0.999, True, 0.75, 2, False, "cpu", 1.0)
    assert plan.device.device == "cuda:1"
    assert specopt.parse("").plan.accumulate == 1 and specopt.parse("").plan.ema is None


@pytest.mark.parametrize("text", ["ema 0.9999 warmup=true every=4 device=cuda:0", "device auto", "accumulate 8"])
def test_canonical_form(text):
    assert format_text(text) == text + "\n"


@pytest.mark.parametrize("text, code, message", [
    ("accumulate 0", "E207", "accumulate needs at least 1 micro-batch per step, got 0"),
    ("ema 1", "E207", "the ema decay must be at least 0 and below 1, got 1"),
    ("ema 0.9 every=0", "E207", "'every' must be at least 1, got 0"),
    ("ema 0.9 every=1.5", "E206", "'every' takes a whole number, not 1.5"),
    ("ema 0.9 warmup=yes", "E206", "'warmup' takes true or false, not \"yes\""),
    ("ema 0.9 decay=0.9", "E231", "ema has no setting 'decay'"),
    ("ema 0.9 every=2 every=3", "E203", "'every' is given twice"),
    ("ema 0.9 device=gpu", "E232", "'gpu' is not a device"),
    ("device gpu:0", "E232", "'gpu:0' is not a device"),
    ("device cuda:x", "E100", "unexpected ':x'"),
    ("accumulate 2; accumulate 3", "E202", "a second 'accumulate' statement"),
])
def test_errors(text, code, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert (info.value.diagnostics[0].code, info.value.diagnostics[0].message) == (code, message)
