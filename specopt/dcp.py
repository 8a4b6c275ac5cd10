"""Optimizer checkpoints through ``torch.distributed.checkpoint`` (DCP), restored by name.

The documented import path; the code lives in ``specopt.runtime.dcp``.
"""

import sys

from .runtime import dcp as _module

sys.modules[__name__] = _module
