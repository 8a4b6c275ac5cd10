"""The catalog: the tables of what exists, each entry described once.

Builtin optimizers with their options and clip modes (``registry``), the
schedule kinds (``schedule_kinds``) with their closed forms
(``schedule_curves``), optimizer classes named by a dotted path
(``targets``) and every diagnostic code (``codes``). Nothing here imports torch
or any other stage.
"""

from .registry import OPTIMIZERS, CLIP_MODES, DEFAULT_OPTIMIZER, OptimizerInfo, OptionInfo, ClipInfo
from .schedule_kinds import SCHEDULE_KINDS, ScheduleKind, Program, program
from .error_codes import CATALOGUE, CodeInfo

__all__ = ["OPTIMIZERS", "CLIP_MODES", "DEFAULT_OPTIMIZER", "OptimizerInfo", "OptionInfo", "ClipInfo", "SCHEDULE_KINDS", "ScheduleKind", "Program", "program", "CATALOGUE", "CodeInfo"]
