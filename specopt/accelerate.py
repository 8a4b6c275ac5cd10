"""Hugging Face Accelerate: the spec's optimizer after ``accelerator.prepare``, and one schedule step per step.

The documented import path; the code lives in ``specopt.integrations.accelerate``.
"""

import sys

from .integrations import accelerate as _module

sys.modules[__name__] = _module
