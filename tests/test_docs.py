"""The documentation shows what the code does: every block runs as written and prints what the page shows.

How each kind of block is checked, and the directions a page can give, are described in
``docs_snippets.py``. Besides the blocks: the README stays a front door of at most 16 KB,
and every relative link of the README and of ``docs/`` leads to a file and heading that exist.
"""

from __future__ import annotations

import json
import re

import pytest

import specopt
from docs_snippets import (LINKED_PAGES, ROOT, SNIPPET_PAGES, broken_links, command_problems, forget_framework_state,
                           inside, missing_libraries, page_marks, read_blocks, read_tables, run_console, run_python,
                           same_text, scratch, syntax_problems)
from specopt.diagnostics import render_all
from specopt.resolve.model_refs import load_model
from specopt.report.resolution_report import format_value

BLOCKS = {page: read_blocks(page) for page in SNIPPET_PAGES}
TAGS = {"opt", "python", "console", "sh", "text", "toml", "yaml", "json"}


def _blocks(*langs: str):
    return [pytest.param(page, k, id=f"{page}:{b.line}") for page, blocks in BLOCKS.items()
            for k, b in enumerate(blocks) if b.lang in langs and not b.attached
            and "file" not in b.marks]  # a file is checked by the block that uses it


def _folder(page: str, k: int, tmp_path):
    return scratch(BLOCKS[page][k], BLOCKS[page], tmp_path)


# --- the pages ------------------------------------------------------------------------------------------

def test_the_readme_is_a_front_door_of_at_most_16_kb():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 16 * 1024, f"README.md is {size:,} bytes; move the details to docs/"


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_every_file_a_page_writes_is_used_later_on_the_page(page):
    blocks = BLOCKS[page]

    def names(file: str) -> list[str]:  # a module is used by its dotted name
        return [file, file.removesuffix(".py").replace("/", ".")] if file.endswith(".py") else [file]

    unused = [b.marks["file"] for k, b in enumerate(blocks) if "file" in b.marks
              and not any(n in later.body for n in names(b.marks["file"]) for later in blocks[k + 1:])]
    assert not unused, f"{page} writes files that no later block uses: {unused}"


@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_every_block_says_how_it_is_checked(page):
    untagged = [b.where for b in BLOCKS[page] if b.lang not in TAGS]
    assert not untagged, f"blocks without one of the tags {sorted(TAGS)}: {untagged}"


# --- specs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page, k", _blocks("opt"))
def test_spec_blocks_parse_compile_and_report_what_the_page_shows(page, k, tmp_path):
    block = BLOCKS[page][k]
    ref = None if "parse only" in block.marks else block.marks.get("model") or page_marks(page).get("default model")
    texts = [line for line in block.body.splitlines() if line.strip()] if "each line" in block.marks \
        else [block.body]
    with inside(_folder(page, k, tmp_path)):
        reports = [_report(text, "<string>", ref) for text in texts]
    difference = same_text(block.output.body if block.output else "", "\n".join(r for r in reports if r))
    assert difference is None, f"{block.where} reports something else:\n{difference}"


def _report(text: str, name: str, ref: str | None) -> str:
    """What reading (and, with a model, compiling) the spec reports: its errors, or its warnings.

    ``ref`` is a model reference, optionally followed by ``key=N`` options for compiling.
    """
    try:
        spec = specopt.parse(text, name=name)
        if ref is None:
            return ""
        model, *options = ref.split()
        timing = {key: int(value) for key, value in (o.split("=") for o in options)}
        return render_all(spec.compile(load_model(model), **timing).resolution.warnings, spec.source)
    except specopt.SpecError as exc:
        return exc.render()


# --- Python, the command line and other commands ----------------------------------------------------------

@pytest.mark.parametrize("page, k", _blocks("python"))
def test_python_blocks_run_and_print_what_the_page_shows(page, k, tmp_path):
    block = BLOCKS[page][k]
    missing = missing_libraries(block.body, block.marks.get("needs", ""))
    if missing:
        pytest.skip(f"{block.where} needs {', '.join(missing)}, which is not installed")
    try:
        with inside(_folder(page, k, tmp_path)):
            printed = run_python(block.body, block.where)
    finally:
        forget_framework_state()
    if block.output is not None:
        difference = same_text(block.output.body, printed)
        assert difference is None, f"{block.where} printed something else:\n{difference}"


@pytest.mark.parametrize("page, k", _blocks("console"))
def test_console_blocks_print_what_the_page_shows(page, k, tmp_path):
    block = BLOCKS[page][k]
    missing = missing_libraries("", block.marks.get("needs", ""))
    if missing:
        pytest.skip(f"{block.where} needs {', '.join(missing)}, which is not installed")
    with inside(_folder(page, k, tmp_path)):
        results = run_console(block.body)
    for command, shown, given in results:
        difference = same_text(shown, given)
        assert difference is None, f"{block.where}: $ {command}\n{difference}"


@pytest.mark.parametrize("page, k", _blocks("sh"))
def test_commands_name_targets_commands_options_and_scripts_that_exist(page, k):
    block = BLOCKS[page][k]
    problems = [p for line in block.body.splitlines() for p in command_problems(line)]
    assert not problems, f"{block.where}: {problems}"


def test_make_demo_runs_the_command_the_readme_shows():
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\ndemo:", 1)[1].split("\n")[1].strip()
    shown = [b.body for b in BLOCKS["README.md"] if b.lang == "console"][0].splitlines()[0]
    assert recipe.replace("$(BIN)/", "") == shown.removeprefix("$ ")


@pytest.mark.parametrize("page, k", _blocks("text"))
def test_syntax_forms_name_statements_and_grammar_that_exist(page, k):
    block = BLOCKS[page][k]
    assert syntax_problems(block.body) == [], block.where


@pytest.mark.parametrize("page, k", _blocks("toml", "yaml", "json"))
def test_data_blocks_parse(page, k):
    block = BLOCKS[page][k]
    if block.lang == "toml":
        tomllib = pytest.importorskip("tomllib", reason="tomllib comes with Python 3.11")
        tomllib.loads(block.body)
    elif block.lang == "yaml":
        pytest.importorskip("yaml", reason="needs pyyaml, which is not installed").safe_load(block.body)
    else:
        json.loads(block.body)


def test_the_recipes_page_lists_every_example():
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((ROOT / "examples").glob("*.opt")) if f"(../examples/{p.name})" not in text]
    assert not missing, f"docs/recipes.md does not list {missing}"


# --- tables of what a spec does ---------------------------------------------------------------------------

LANGUAGE_TABLES = read_tables("docs/language.md")


def _spec_before(line: int) -> str:
    """The spec of the last ``opt`` block of docs/language.md above a line."""
    return [b for b in BLOCKS["docs/language.md"] if b.lang == "opt" and b.line < line][-1].body


def _network():
    return load_model(page_marks("docs/language.md")["default model"])


def _tables(*header: str, then: str | None = None):
    """The tables whose header starts with ``header`` (and goes on with ``then``, or anything but ``state``)."""
    chosen = [t for t in LANGUAGE_TABLES if t.header[:len(header)] == list(header)
              and (t.header[len(header)] == then if then else t.header[len(header)] != "state")]
    return pytest.mark.parametrize("table", chosen, ids=lambda t: f"docs/language.md:{t.line}")


@_tables("parameter")
def test_selector_tables_mark_what_each_selector_selects(table):
    model = _network()
    assert [row[0] for row in table.rows] == [name for name, _ in model.named_parameters()]
    for column, selector in enumerate(table.header[1:], start=1):
        try:
            params = specopt.parse(f"group {selector} lr=0.5").resolve(model).params
            selected = {p.info.name for p in params if p.settings["lr"].value == 0.5}
        except specopt.SpecError:  # selects nothing
            selected = set()
        shown = {row[0] for row in table.rows if row[column] == "✓"}
        assert shown == selected, f"docs/language.md:{table.line}: column {selector!r}"


@_tables("parameter", then="state")
def test_assignment_tables_show_what_the_spec_above_assigns(table):
    resolution = specopt.parse(_spec_before(table.line)).resolve(_network())
    for row in table.rows:
        param = resolution.param(row[0])
        if param.frozen:
            assert row[1:] == [f"frozen by {param.frozen_by.label}"] + ["–"] * (len(row) - 2), row[0]
            continue
        settings = [param.settings[key] for key in table.header[2:-1]]
        assert row[1:] == ["trained", *(f"{format_value(s.value)} ({s.origin.label})" for s in settings),
                           f"[{param.group}] {resolution.groups[param.group].name}"], row[0]


@_tables("#", "name")
def test_param_group_tables_show_the_groups_the_spec_above_makes(table):
    groups = specopt.compile(_spec_before(table.line), _network()).optimizer.param_groups
    made = [[str(k), g["name"], *(format_value(g[key]) for key in table.header[2:-1]), ", ".join(g["param_names"])]
            for k, g in enumerate(groups)]
    assert table.rows == made


@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_every_code_a_page_names_is_in_the_catalogue(page):
    from specopt.catalog.error_codes import CATALOGUE

    named = set(re.findall(r"\b[EW]\d{3}\b", (ROOT / page).read_text(encoding="utf-8")))
    assert not named - set(CATALOGUE), f"{page} names codes specopt does not have: {sorted(named - set(CATALOGUE))}"
