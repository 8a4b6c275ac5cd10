"""PyTorch Lightning: a spec compiled before Lightning wraps the model, and a callback for its events.

The documented import path; the code lives in ``specopt.integrations.lightning``.
"""

import sys

from .integrations import lightning as _module

sys.modules[__name__] = _module
