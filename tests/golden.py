"""Golden-file helpers: compare text with a stored file; SPECOPT_UPDATE_GOLDEN=1 rewrites it."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def cases(stage: str, suffix: str = ".opt") -> list[Path]:
    """The input files of one golden stage folder, sorted."""
    return sorted((GOLDEN / stage).glob(f"*{suffix}"))


def check(expected_path: Path, actual: str) -> None:
    """Assert that ``actual`` equals the golden file (or rewrite it when updating)."""
    if os.environ.get("SPECOPT_UPDATE_GOLDEN") == "1":
        expected_path.write_text(actual, encoding="utf-8")
        return
    assert expected_path.exists(), f"missing golden file {expected_path}; run with SPECOPT_UPDATE_GOLDEN=1"
    assert actual == expected_path.read_text(encoding="utf-8")
