"""specopt: a declarative optimizer-and-freeze spec compiler for PyTorch.

    import specopt
    compiled = specopt.parse("freeze backbone.*; group head lr=1e-2; clip l2 1").compile(model)
    compiled.optimizer, compiled.scheduler, compiled.clipper
"""

from .diagnostics import Diagnostic, Source, Span, SpecError
from .plan.plan import Plan
from .spec import Spec, compile, load, parse

__all__ = ["Diagnostic", "Plan", "Source", "Span", "Spec", "SpecError", "compile", "load", "parse"]
__version__ = "0.1.0"
