"""One entry of the error catalogue: a code, what it means, a spec that triggers it and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

SEED_MODEL = "examples/seed_model.py:Network"


@dataclass(frozen=True)
class CodeInfo:
    """One diagnostic code: a title, what it means, a spec that triggers it and how to fix it.

    ``example_format`` is ``opt`` for spec text, or ``json`` / ``yaml`` for a
    plan written as data; ``needs_model`` says that the example only fails
    when compiled against the seed model (``examples/seed_model.py:Network``).
    """

    code: str
    title: str
    summary: str
    example: str
    fix: str
    example_format: str = "opt"
    needs_model: bool = False

    @property
    def severity(self) -> str:
        """``warning`` for W codes, ``error`` for E codes."""
        return "warning" if self.code.startswith("W") else "error"
