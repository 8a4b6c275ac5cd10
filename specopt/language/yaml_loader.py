"""The loader for plans written as YAML: PyYAML's safe loader, bounded like plain text.

It refuses keys given twice in one mapping, unpaired surrogates, values Python
rejects, nesting deeper than a limit and documents whose aliases expand past a
number of values (an alias counts every value it stands for) or into
themselves, each as a ``MarkedYAMLError`` at the offending position, which
:mod:`specopt.language.plan_data` turns into a diagnostic. PyYAML is imported on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache

SURROGATE = re.compile("[\ud800-\udfff]")


class YamlUnavailable(ImportError):
    """Reading a YAML plan needs PyYAML, which is not installed."""


# YAML 1.1 reads 1e-3 as a string; plans mean the number, as JSON and spec files do.
EXPONENT_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@lru_cache(maxsize=4)


def safe_loader(max_depth: int, max_nodes: int):
    """PyYAML and a safe loader class bounded to ``max_depth`` levels and ``max_nodes`` expanded values."""
    try:
        import yaml
    except ImportError:
        raise YamlUnavailable("reading YAML plans needs PyYAML: pip install 'specopt[yaml]'") from None

    class Loader(yaml.SafeLoader):
        depth = 0

        def __init__(self, stream):
            super().__init__(stream)
            self.expansion = _Expansion(max_depth, max_nodes)

        def compose_node(self, parent, index):
            self.depth += 1
            try:
                mark = self.peek_event().start_mark
                if self.depth > max_depth:
                    raise yaml.composer.ComposerError(None, None, f"the data nests more than {max_depth} "
                                                      "levels deep", mark)
                alias = self.check_event(yaml.AliasEvent)
                node = super().compose_node(parent, index)
                problem = self.expansion.add(yaml, node, alias, self.depth)
                if problem:
                    raise yaml.composer.ComposerError(None, None, problem, mark)
            finally:
                self.depth -= 1
            _check_node(yaml, node)
            return node

        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep)
            except (ValueError, TypeError, OverflowError) as exc:
                raise yaml.constructor.ConstructorError(None, None, f"cannot read this value ({exc})",
                                                        node.start_mark) from None

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))
    return yaml, Loader


def safe_dumper():
    """PyYAML and a safe dumper that quotes every string the loader would read as a number (``"1e-3"``)."""
    try:
        import yaml
    except ImportError:
        raise YamlUnavailable("writing YAML plans needs PyYAML: pip install 'specopt[yaml]'") from None

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))
    return yaml, Dumper


class _Expansion:
    """The size of a YAML document with every alias expanded, counted while it is composed.

    Aliases let a few kilobytes stand for millions of values; everything after
    composing (validation, diagnostics) works on the expanded data, so its size
    and depth are bounded as those of plain text are.
    """

    def __init__(self, max_depth: int, max_nodes: int):
        self.max_depth, self.max_nodes = max_depth, max_nodes
        self.total = 0
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) below and including it

    def add(self, yaml, node, alias: bool, depth: int) -> str | None:
        """Count one composed node (an alias counts its whole target); return a problem, or ``None``."""
        if alias:
            if id(node) not in self.sizes:
                return "an alias refers to a node that contains it"
            size, height = self.sizes[id(node)]
            if depth - 1 + height > self.max_depth:
                return f"the data nests more than {self.max_depth} levels deep once its aliases are expanded"
        else:
            children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
                node.value if isinstance(node, yaml.SequenceNode) else ())
            below = [self.sizes[id(child)] for child in children]
            self.sizes[id(node)] = (1 + sum(s for s, _ in below), 1 + max((h for _, h in below), default=0))
            size = 1
        self.total += size
        if self.total > self.max_nodes:
            return (f"the data expands to more than {self.max_nodes:,} values (an alias counts every "
                    "value it stands for)")
        return None


def _check_node(yaml, node) -> None:
    """Refuse unpaired surrogates in strings and keys given twice in one mapping (merge keys aside)."""
    if isinstance(node, yaml.ScalarNode) and SURROGATE.search(node.value):
        raise yaml.composer.ComposerError(None, None, "a string holds an unpaired surrogate escape",
                                          node.start_mark)
    seen = set()
    for key, _ in node.value if isinstance(node, yaml.MappingNode) else ():
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key.value}' appears twice in one "
                                                        "mapping", key.start_mark)
            seen.add(key.value)
