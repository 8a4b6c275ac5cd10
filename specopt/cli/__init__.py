"""The ``specopt`` command line."""

from .main import main, UsageError, EXIT_SPEC_ERROR, EXIT_USAGE

__all__ = ["main", "UsageError", "EXIT_SPEC_ERROR", "EXIT_USAGE"]
