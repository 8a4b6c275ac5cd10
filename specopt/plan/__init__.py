"""The plan: statement kinds, their nodes and the validated plan of a spec.

Each statement kind is one class (``statements``, ``schedule_statement``,
``layers_statement``, ``loop_statements``) declaring its keyword, form,
parsing and checks; ``plan`` joins them into the immutable :class:`Plan`, and
``timing`` turns its schedules into runnable programs. Nothing here imports
torch.
"""

from .plan import Plan, STATEMENT_KINDS, BY_KEYWORD, check_plan
from .timing import Timing

__all__ = ["Plan", "STATEMENT_KINDS", "BY_KEYWORD", "check_plan", "Timing"]
