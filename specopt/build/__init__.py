"""Build: a resolution turned into real torch objects (optimizers, LR scheduler, clipping hook, driver)."""

from .assemble import build, compile_plan, resolve_model

__all__ = ["build", "compile_plan", "resolve_model"]
