"""The Hugging Face ``Trainer``: a spec's optimizer and schedule, counted in the Trainer's steps.

The documented import path; the code lives in ``specopt.integrations.hf``.
"""

import sys

from .integrations import hf as _module

sys.modules[__name__] = _module
