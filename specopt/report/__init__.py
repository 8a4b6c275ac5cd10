"""Reports: what people read about a spec (the compile report, ``explain``, ``diff``, schedule
previews and plots, model summaries).
"""

from .explain import explain
from .diff import diff_resolutions, SpecDiff
from .resolution_report import text_report, assignment_json

__all__ = ["explain", "diff_resolutions", "SpecDiff", "text_report", "assignment_json"]
