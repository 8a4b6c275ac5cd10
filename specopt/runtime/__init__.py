"""The runtime: what runs while training (the compiled result, the step driver, schedules, clipping,
unfreezing, EMA, checkpoints and DCP).
"""

from .compiled import Compiled, CheckpointError, CheckpointWarning, LoadResult

__all__ = ["Compiled", "CheckpointError", "CheckpointWarning", "LoadResult"]
