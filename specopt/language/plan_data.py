"""Plans as data: read a plan from a JSON or YAML file, with the diagnostics of a spec file.

A data plan has the shape of ``Plan.model_dump()``. Spans in the file are
optional and replaced: the plan's nodes get spans into this file, so that
later errors (a selector that selects nothing) point at the right line.
Validation is the plan's own (constructing a :class:`Plan` runs ``check_plan``);
every problem becomes a :class:`Diagnostic` with a stable code and the path of
its field (``statements.2.options.0.value``), positioned at the key in YAML and
at the enclosing object in JSON. Malformed files are positioned errors (E105), and so
are YAML documents whose aliases expand to more values or levels than plain text could hold.
PyYAML is imported only for YAML files.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
import typing
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..diagnostics import Diagnostic, Source, Span, SpecError, did_you_mean, suggest
from .parse import MAX_SOURCE_CHARS
from .plain_text import invisible_diagnostics, line_breaks, text_lines
from .short_forms import Expansion, value_problems
from ..plan.extensions import import_diagnostics
from ..plan.plan import BY_KEYWORD as STATEMENTS
from ..plan.plan import Plan, StatementNode
from .sources import read_spec_text
from .yaml_loader import SURROGATE as _SURROGATE
from .yaml_loader import YamlUnavailable, safe_dumper, safe_loader  # noqa: F401 (YamlUnavailable: load_data raises it)

DATA_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 250_000
_SPAN_KEYS = ("span", "name_span", "value_span", "kind_span", "hyper_span", "norms_span")
_MAX_INT_DIGITS = 4300

Path_ = tuple[str | int, ...]


class _Document(NamedTuple):
    """Decoded data and a way to find where a path lies in the file text."""

    data: Any
    locate: Callable[[Path_], Span | None]


def load_data(path: str | Path, allow_import: bool = False) -> tuple[Plan, Source]:
    """Read a plan from a ``.json``, ``.yaml`` or ``.yml`` file; ``allow_import`` as for :func:`specopt.load`."""
    fmt = DATA_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: a data plan's file name ends in " + ", ".join(DATA_SUFFIXES))
    return parse_data(read_spec_text(path), fmt, str(path), allow_import)


def parse_data(text: str, fmt: str, name: str = "<string>", allow_import: bool = False) -> tuple[Plan, Source]:
    """Validate a plan written as JSON or YAML (``fmt``), short forms (:mod:`specopt.language.short_forms`) and all;
    raise :class:`SpecError` with every problem. Its text follows the rules of :mod:`specopt.language.plain_text`."""
    text = line_breaks(text)
    source = Source(text, name, fmt)
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecError([Diagnostic("E102", f"spec is too large ({len(text)} characters; the limit "
                                    f"is {MAX_SOURCE_CHARS})", Span(start=0, end=0))], source)
    hidden = invisible_diagnostics(text_lines(text)) if fmt == "json" else []  # YAML's reader refuses them itself
    doc = _decode_yaml(text) if fmt == "yaml" else _decode_json(text)
    if hidden or isinstance(doc, Diagnostic):
        raise SpecError(hidden or [doc], source)
    found = value_problems(doc.data)
    if found:
        raise SpecError([replace(d, span=doc.locate(d.path)) for d in found], source)
    written, locate = Expansion(doc.data), doc.locate
    doc = _Document(written.data, lambda path: locate(written.original(path)))
    try:
        Plan.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(written.report(_structure_diagnostics(exc.errors(), doc), locate), source) from None
    except SpecError:
        pass  # checked again below, where each problem gets the path of its node
    diags = _plan_diagnostics(doc, allow_import)
    if diags or written.problems:
        raise SpecError(written.report(diags, locate), source)
    return Plan.model_validate(_rewrite(doc.data, (), doc.locate)), source


def dump_plan(plan: Plan) -> dict:
    """A plan as JSON-ready data without spans: what ``parse_data`` reads back as the same plan."""
    return _rewrite(plan.model_dump(mode="json"), (), None)


def dump_yaml(plan: Plan) -> str:
    """A plan as YAML text that ``parse_data`` reads back as the same plan.

    A string such as the selector ``1e-3`` is quoted, since a plan file reads
    an unquoted ``1e-3`` as the number (plain PyYAML would leave it unquoted).
    """
    yaml, dumper = safe_dumper()
    return yaml.dump(dump_plan(plan), Dumper=dumper, sort_keys=False)


def _rewrite(node: Any, path: Path_, mark: Callable[[Path_], Span | None] | None) -> Any:
    """Copy plan data with every span replaced by ``mark(path)``, or left out when ``mark`` is None."""
    if isinstance(node, dict):
        out = {k: _rewrite(v, path + (k,), mark) for k, v in node.items() if k not in _SPAN_KEYS}
        if mark is not None:
            out["span"] = mark(path)
            if len(path) >= 2 and path[-2] in ("options", "args"):
                out["value_span"] = mark(path + ("value",))
            if len(path) >= 2 and path[-2] == "phases":
                out["kind_span"] = mark(path + ("kind",))
            if len(path) == 2 and node.get("kind") == "optimizer":
                out["name_span"] = mark(path + ("name",))
            if len(path) == 2 and node.get("kind") == "schedule":
                out["hyper_span"] = mark(path + ("hyper",))
        return out
    if isinstance(node, (list, tuple)):
        return [_rewrite(v, path + (i,), mark) for i, v in enumerate(node)]
    return node


# --- semantic checks: check_plan's diagnostics, by path -------------------------------------

def _plan_diagnostics(doc: _Document, allow_import: bool) -> list[Diagnostic]:
    """The plan's checks and the import-path checks, run on a copy whose spans number the nodes,
    so that each diagnostic's span leads back to the path of its node."""
    paths: list[Path_] = []

    def mark(path: Path_) -> Span:
        paths.append(path)
        return Span(start=len(paths) - 1, end=len(paths) - 1)

    tagged = _rewrite(doc.data, (), mark)
    statements = [_statement_adapter().validate_python(s) for s in tagged.get("statements", ())]
    found = import_diagnostics(statements, allow_import)
    try:
        Plan.model_validate(tagged)
    except SpecError as exc:
        found += exc.diagnostics
    located = [(d, paths[d.span.start] if d.span and d.span.start < len(paths) else ()) for d in found]
    return [replace(d, span=doc.locate(path), path=path) for d, path in located]


@lru_cache(maxsize=1)
def _statement_adapter() -> TypeAdapter:
    return TypeAdapter(StatementNode)


# --- structure: pydantic's errors as diagnostics --------------------------------------------

def _structure_diagnostics(errors: list[dict], doc: _Document) -> list[Diagnostic]:
    plain, unions = [], {}
    located = [(err, *_data_path(err, doc.data)) for err in errors]
    deeper = {path[:k] for _, path, _, _ in located for k in range(len(path))}
    unknown: dict[Path_, list[str]] = {}
    for err, path, _, _ in located:
        if err["type"] == "extra_forbidden":
            unknown.setdefault(path[:-1], []).append(str(path[-1]))
    for err, path, branch_at, branch in located:
        if err["type"] == "too_short" and path in deeper:
            continue  # the list is short only because its items failed: those are reported
        if err["type"] == "missing" and suggest(str(path[-1]), unknown.get(path[:-1], ())):
            continue  # misspelt rather than missing: the unknown key's hint names it
        if branch_at is None:
            plain.append((err, path))
        else:
            unions.setdefault(branch_at, []).append((err, path, branch))
    diags = [_diagnostic(err, path, doc) for err, path in plain]
    for at, items in unions.items():
        diags += _union_diagnostics(at, items, doc)
    return diags


def _data_path(err: dict, data: Any) -> tuple[Path_, Path_ | None, str | None]:
    """The path of an error in the data, with pydantic's union tags left out.

    Also returns where the first union was tried and which member this error
    comes from, so that one bad value is reported once, not once per member.
    """
    loc, path, node = err["loc"], [], data
    branch_at, branch = None, None
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1 and err["type"] == "missing":
            pass  # a missing key: still part of the path
        elif isinstance(node, dict) and node.get("kind") == part:
            continue  # the tag of the statement union: it matches the data
        else:
            if branch_at is None:
                branch_at, branch = tuple(path), str(part)
            continue
        path.append(part)
    return tuple(path), branch_at, branch


def _union_diagnostics(at: Path_, items: list, doc: _Document) -> list[Diagnostic]:
    """One bad option value: the errors of the member its shape asks for, or one plain message."""
    node = _get(doc.data, at)
    if isinstance(node, dict):
        chosen = [(e, p) for e, p, b in items if b[:1].isupper()]
        if chosen:
            return [_diagnostic(e, p, doc) for e, p in chosen]
    if isinstance(node, list):
        bad_items = sorted({p[:len(at) + 1] for e, p, b in items if b.startswith("tuple") and len(p) > len(at)})
        if bad_items:
            return [Diagnostic("E108", f"{_subject(p)} must be a plain value (a number, true, false, null "
                               f"or a string), got {_show(_get(doc.data, p))}", doc.locate(p), path=p)
                    for p in bad_items]
    return [Diagnostic("E108", f"{_subject(at)} must be a number, true, false, null, a string, a list of "
                       f"plain values or {{factor: N}}, got {_show(node)}", doc.locate(at),
                       "a relative value is a mapping with one key, e.g. {factor: 10}", path=at)]


_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "tuple_type": "a list",
    "list_type": "a list", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "dict_type": "a mapping", "too_short": "a list of at least one item",
}


def _diagnostic(err: dict, path: Path_, doc: _Document) -> Diagnostic:
    kind, ctx = err["type"], err.get("ctx") or {}
    span = doc.locate(path)
    if kind == "extra_forbidden":
        return _unknown_field(path, doc, span)
    if kind == "missing":
        model, _ = _model_at(doc.data, path[:-1])
        return Diagnostic("E107", f"{_describe(model, doc.data, path[:-1])} is missing '{path[-1]}'", span,
                          path=path)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return Diagnostic("E101", f"unknown statement '{tag}'", doc.locate(path + ("kind",)),
                          did_you_mean(tag, STATEMENTS) or "statements: " + ", ".join(STATEMENTS),
                          path=path + ("kind",))
    if kind == "union_tag_not_found":
        return Diagnostic("E107", "a statement is missing 'kind'", span,
                          "kind is one of: " + ", ".join(STATEMENTS), path=path)
    if kind == "invalid_key":
        return Diagnostic("E108", f"keys must be strings, got {_show(err.get('input'))}", span, path=path[:-1])
    return _bad_value(err, path, span)


def _bad_value(err: dict, path: Path_, span: Span | None) -> Diagnostic:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    hint = None
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        expected = " or ".join(f'"{c}"' for c in choices)
        hint = did_you_mean(value, choices) if isinstance(value, str) else None
    elif kind in _EXPECTED:
        expected = _EXPECTED[kind]
    else:
        return Diagnostic("E108", f"{_subject(path)}: {err['msg']}", span, path=path)
    return Diagnostic("E108", f"{_subject(path)} must be {expected}, got {_show(value)}", span, hint, path=path)


def _unknown_field(path: Path_, doc: _Document, span: Span | None) -> Diagnostic:
    model, node = _model_at(doc.data, path[:-1])
    fields = [f for f in (model.model_fields if model else ()) if f not in _SPAN_KEYS]
    free = [f for f in fields if not (isinstance(node, dict) and f in node)]
    hint = did_you_mean(str(path[-1]), free) or ("fields: " + ", ".join(fields) if fields else None)
    return Diagnostic("E106", f"unknown field '{path[-1]}' in {_describe(model, doc.data, path[:-1])}",
                      span, hint, path=path)


def _subject(path: Path_) -> str:
    if not path:
        return "a plan"
    if isinstance(path[-1], int):
        return f"item {path[-1]} of '{path[-2]}'" if len(path) > 1 else f"item {path[-1]}"
    return f"'{path[-1]}'"


def _show(value: Any) -> str:
    """A short rendering of a data value, bounded whatever its size."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) or abs(value) < 10 ** 30 else "a very large number"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


# --- which plan model a path lies in ---------------------------------------------------------

_NAMES = {"Plan": "the plan", "Option": "an option", "Term": "a selector term", "Selector": "a selector",
          "Relative": "a relative value", "Span": "a span"}


def _describe(model: type[BaseModel] | None, data: Any, path: Path_) -> str:
    if model is None:
        return "this mapping"
    if model.__name__ in _NAMES:
        return _NAMES[model.__name__]
    kind = _get(data, path + ("kind",))
    return f"a '{kind}' statement" if isinstance(kind, str) else "a statement"


def _model_at(data: Any, path: Path_) -> tuple[type[BaseModel] | None, Any]:
    """The plan model that the mapping at ``path`` is validated as, and the data there."""
    models: list[type[BaseModel]] = [Plan]
    node = data
    for part in path:
        model = _pick(models, node)
        if isinstance(part, str):
            field = model.model_fields.get(part) if model else None
            models = _models_in(field.annotation) if field else []
        node = _get(node, (part,))
    return _pick(models, node), node


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _pick(models: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if len(models) == 1:
        return models[0]
    kind = node.get("kind") if isinstance(node, dict) else None
    for model in models:
        field = model.model_fields.get("kind")
        if field is not None and kind in typing.get_args(field.annotation):
            return model
    return None


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


# --- JSON ------------------------------------------------------------------------------------

class _DataError(Exception):
    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.pos = pos


def _decode_json(text: str) -> _Document | Diagnostic:
    spans: dict[int, Span] = {}
    try:
        data = _json_decoder(text, spans).decode(text)
    except json.JSONDecodeError as exc:
        return _malformed(f"the file is not valid JSON: {exc.msg}", exc.pos, text,
                          "check the brackets, commas and quotes here")
    except _DataError as exc:
        return _malformed(str(exc), exc.pos, text)
    whole = Span(start=0, end=len(text))
    return _Document(data, lambda path: _json_locate(data, spans, path) or whole)


def _json_decoder(text: str, spans: dict[int, Span]) -> json.JSONDecoder:
    """A decoder that records where each object and array lies and refuses duplicate keys."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_int=lambda s: _int(s, text),
                               parse_float=lambda s: float(_ascii(s, text)))
    depth = [0]

    def nested(parse):
        def wrapped(s_and_end, *args):
            start = s_and_end[1] - 1
            depth[0] += 1
            try:
                if depth[0] > MAX_DEPTH:
                    raise _DataError(f"the data nests more than {MAX_DEPTH} levels deep", start)
                value, end = parse(s_and_end, *args)
            except _DataError as exc:
                exc.pos = start if exc.pos < 0 else exc.pos  # a duplicate key: at its object
                raise
            finally:
                depth[0] -= 1
            spans[id(value)] = Span(start=start, end=end)
            return value, end
        return wrapped

    decoder.parse_object = nested(json.decoder.JSONObject)
    decoder.parse_array = nested(json.decoder.JSONArray)
    decoder.parse_string = _checked_string
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DataError(f"key '{key}' appears twice in one object", -1)
        out[key] = value
    return out


def _int(digits: str, text: str) -> int:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise _DataError(f"a number with more than {_MAX_INT_DIGITS} digits", max(0, text.find(digits)))
    return int(_ascii(digits, text))


def _ascii(digits: str, text: str) -> str:
    """A number written with the digits 0-9 (Python's JSON reader takes any script's digits)."""
    if not digits.isascii():
        raise _DataError(f"a number written with digits other than 0-9: {digits[:40]}", max(0, text.find(digits)))
    return digits


def _checked_string(s: str, end: int, strict: bool = True) -> tuple[str, int]:
    value, after = json.decoder.scanstring(s, end, strict)
    if _SURROGATE.search(value):
        raise _DataError("a string holds an unpaired surrogate escape (\\ud800-\\udfff)", end - 1)
    return value, after


def _json_locate(data: Any, spans: dict[int, Span], path: Path_) -> Span | None:
    """The span of the innermost object or array on the path."""
    found = spans.get(id(data))
    for part in path:
        data = _get(data, (part,))
        if data is None:
            break
        found = spans.get(id(data), found) if isinstance(data, (dict, list)) else found
    return found


def _malformed(message: str, pos: int, text: str, hint: str | None = None) -> Diagnostic:
    pos = max(0, min(pos, len(text)))
    return Diagnostic("E105", message, Span(start=pos, end=min(pos + 1, len(text))), hint)


# --- YAML ------------------------------------------------------------------------------------

def _decode_yaml(text: str) -> _Document | Diagnostic:
    yaml, loader_class = safe_loader(MAX_DEPTH, MAX_EXPANDED_NODES)
    loader = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return _malformed(f"the file is not valid YAML: {what}", mark.index if mark else 0, text)
    except yaml.reader.ReaderError as exc:
        return _malformed(f"the file is not valid YAML: {exc.reason}", exc.position, text)
    finally:
        if loader is not None:
            loader.dispose()
    return _Document(data, lambda path: _yaml_locate(yaml, node, path))


def _yaml_locate(yaml, node, path: Path_) -> Span | None:
    """The span of the YAML text at a path: a key through its value, or a list item."""
    if node is None:
        return None
    start = node.start_mark.index
    for part in path:
        if isinstance(node, yaml.MappingNode):
            entries = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not entries:
                break
            key, node = entries[-1]
            start = key.start_mark.index
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            start = node.start_mark.index
        else:
            break
    return Span(start=start, end=node.end_mark.index)
