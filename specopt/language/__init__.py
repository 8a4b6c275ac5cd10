"""The language: spec text and plans written as data in, a plan out, and the plan back out as text.

``parse`` reads spec text with the Lark grammar, ``plan_data`` reads and
writes plans as JSON or YAML, ``sources`` reads files within the size limit
and ``fmt`` writes the canonical layout.
"""

from .parse import parse_text, grammar_text, MAX_SOURCE_CHARS
from .plan_data import load_data, parse_data, dump_plan, dump_yaml, DATA_SUFFIXES
from .fmt import format_text, format_spec

__all__ = ["parse_text", "grammar_text", "MAX_SOURCE_CHARS", "load_data", "parse_data", "dump_plan", "dump_yaml", "DATA_SUFFIXES", "format_text", "format_spec"]
