"""Reading the documentation's code blocks and running them as a reader would.

Every fenced block of ``README.md`` and ``docs/*.md`` has a language tag that says
how it is checked (``tests/test_docs.py`` runs them):

* ``opt``: a spec. It is parsed, and compiled against the page's model (see the
  markers below). A ``text`` block right after it (nothing but blank lines
  between) is what compiling it reports, compared exactly: the rendered errors,
  or the warnings. Without one, it must compile without errors or warnings.
* ``python``: run as written, in a scratch folder holding a copy of
  ``examples/``. A paragraph ``prints:`` (or ``prints (...):``) and a ``text``
  block after it are its standard output, compared exactly.
* ``console``: ``$ specopt ...``, ``$ cat FILE`` and ``$ torchrun ...`` lines, each
  followed by its output (standard output and error, as a terminal shows them),
  compared exactly. A line ``...`` in an output stands for any number of lines.
* ``sh``: commands to type (``make``, ``pip install``, ``specopt``, the benchmark
  scripts, ``pytest``): each target, extra, subcommand, option and script must exist.
* ``text`` that follows no ``opt`` or ``python`` block: a syntax form, whose lines
  must start with a statement keyword (or define a rule of the grammar outline).
* ``toml``, ``yaml``, ``json``: parsed.

HTML comments on the lines right above a fence are directions for the test,
invisible on the rendered page:

* ``<!-- model: REF -->``: compile the ``opt`` block against ``REF`` (as ``--model``
  takes it, without spaces), optionally followed by ``epochs=N``, ``steps=N`` or
  ``steps_per_epoch=N`` for compiling; ``<!-- default model: REF -->`` anywhere on a
  page does that for every ``opt`` block of the page without its own.
* ``<!-- parse only -->``: the spec is written for a model these docs do not have.
* ``<!-- each line -->``: each line of the ``opt`` block is a spec of its own.
* ``<!-- file: NAME -->``: the block is also the file ``NAME`` in the scratch folder,
  for this block and every later block of the page. Such a block is checked by
  the later block that uses it (runs, imports, compiles or formats it), not on
  its own.
* ``<!-- needs: LIBRARY -->``: the ``python`` block needs an optional library its
  imports do not show (``specopt.language.plan_data.dump_yaml`` needs ``yaml``).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPET_PAGES = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if p.name != "errors.md")
LINKED_PAGES = SNIPPET_PAGES + ["docs/errors.md", "examples/recipes/README.md"]
FENCE = re.compile(r"^```(\S*)\s*$")
MARK = re.compile(r"^<!--\s*([\w ]+?)\s*(?::\s*(.*?))?\s*-->\s*$")
# Libraries a snippet may need that specopt does not: the snippet is skipped only where one is absent.
OPTIONAL = {"lightning": "lightning", "pytorch_lightning": "pytorch_lightning", "transformers": "transformers",
            "accelerate": "accelerate", "torchinfo": "torchinfo", "matplotlib": "matplotlib", "yaml": "yaml",
            "timm": "timm", "numpy": "numpy", "specopt.integrations.lightning": "lightning", "specopt.integrations.hf": "transformers",
            "specopt.integrations.accelerate": "accelerate", "specopt.report.plot": "matplotlib"}


@dataclass
class Block:
    """One fenced block of a page, with the directions above it and the output shown after it."""

    page: str
    line: int
    lang: str
    body: str
    marks: dict[str, str] = field(default_factory=dict)
    output: "Block | None" = None
    attached: bool = False  # this block is the output of the one before it

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def read_blocks(page: str) -> list[Block]:
    """Every fenced block of a page, in order, outputs attached to the block they belong to."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    between: list[str] = []  # the lines since the previous block ended
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        if not opening:
            between.append(lines[k])
            k += 1
            continue
        end = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
        block = Block(page, k + 1, opening.group(1), "\n".join(lines[k + 1:end]) + "\n", _marks(between))
        _attach(blocks[-1] if blocks else None, block, between)
        blocks.append(block)
        between = []
        k = end + 1
    return blocks


def _marks(between: list[str]) -> dict[str, str]:
    marks: dict[str, str] = {}
    for line in reversed(between):
        found = MARK.match(line.strip())
        if not found:
            break
        marks[found.group(1)] = found.group(2) or ""
    return marks


def _attach(previous: Block | None, block: Block, between: list[str]) -> None:
    if previous is None or block.lang != "text":
        return
    prose = " ".join(line.strip() for line in between if line.strip())
    if (previous.lang == "opt" and not prose) or (previous.lang == "python" and re.fullmatch(r"prints\b.*:", prose)):
        previous.output, block.attached = block, True


def page_marks(page: str) -> dict[str, str]:
    """The directions given anywhere on a page (``default model``)."""
    found = {}
    for line in (ROOT / page).read_text(encoding="utf-8").splitlines():
        mark = MARK.match(line.strip())
        if mark and mark.group(1) == "default model":
            found["default model"] = mark.group(2)
    return found


def same_text(expected: str, actual: str) -> str | None:
    """None when ``actual`` shows what ``expected`` shows (``...`` lines match any lines), else a diff."""
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    got = [line.rstrip() for line in actual.rstrip("\n").split("\n")]
    if _match(want, got):
        return None
    import difflib

    return "\n".join(difflib.unified_diff(want, got, "documented", "actual", lineterm=""))


def _match(want: list[str], got: list[str]) -> bool:
    if not want:
        return not got
    if want[0] == "...":
        return any(_match(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and want[0] == got[0] and _match(want[1:], got[1:])


# --- the scratch folder a page's blocks run in ---------------------------------------------------------

def scratch(block: Block, blocks: list[Block], folder: Path) -> Path:
    """``folder`` with a copy of ``examples/`` and the files the page defined up to ``block``."""
    shutil.copytree(ROOT / "examples", folder / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    for earlier in blocks:
        if "file" in earlier.marks:
            target = folder / earlier.marks["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(earlier.body, encoding="utf-8")
        if earlier is block:
            break
    return folder


def missing_libraries(code: str, needs: str = "") -> list[str]:
    """The optional libraries the code imports (or ``needs`` names) that are not installed."""
    names = set(needs.split())
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    needed = {OPTIONAL[n] for n in names if n in OPTIONAL} | \
        {OPTIONAL[n.split(".")[0]] for n in names if n.split(".")[0] in OPTIONAL}
    return sorted(lib for lib in needed if importlib.util.find_spec(lib) is None)


@contextlib.contextmanager
def inside(folder: Path):
    """Run with ``folder`` as the working directory, first on ``sys.path``; modules it held are forgotten after."""
    before, path, modules = Path.cwd(), list(sys.path), set(sys.modules)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        os.chdir(before)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            module = sys.modules[name]
            places = [getattr(module, "__file__", None) or "", *(getattr(module, "__path__", None) or [])]
            if any(str(place).startswith(str(folder)) for place in places):
                del sys.modules[name]


def run_python(code: str, where: str) -> str:
    """Run the code as a script; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, where, "exec"), {"__name__": "__main__", "__file__": where})
    return out.getvalue()


def run_console(body: str) -> list[tuple[str, str, str]]:
    """Each ``$`` command of a console block: (command, output shown, output given)."""
    results = []
    commands = re.split(r"^\$ ", body, flags=re.M)
    assert not commands[0].strip(), f"a console block starts with a command, not {commands[0]!r}"
    for part in commands[1:]:
        command, _, shown = part.partition("\n")
        results.append((command, shown, run_command(command)))
    return results


def run_command(command: str) -> str:
    """What ``command`` prints in a terminal (standard output and error in the order written)."""
    argv = shlex.split(command)
    if argv[0] == "cat":
        return "".join(Path(name).read_text(encoding="utf-8") for name in argv[1:])
    if argv[0] == "torchrun":
        return _child([sys.executable, "-m", "torch.distributed.run", *argv[1:]])
    assert argv[0] == "specopt", f"the docs' console blocks run specopt, cat or torchrun, not {argv[0]!r}"
    from specopt.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv[1:])
        except SystemExit:
            pass
    return out.getvalue()


_GLOO_HEAD = re.compile(r"\[Gloo\] Rank ")
_GLOO_TAIL = re.compile(r"\d+ is connected to \d+ peer ranks\. Expected number of connected peer ranks is : \d+\n")


def _child(argv: list[str]) -> str:
    """What a command run in a process of its own prints, in the working directory and with this checkout.

    The page shows what the script prints; torchrun and gloo log in words that change between torch versions
    (torch 2.9's gloo prints "[Gloo] Rank 1 is connected to 1 peer ranks" to stdout, from every rank at once, so
    two ranks' lines can interleave), so those words are left out, and stderr is shown only when the command
    printed nothing, where the comparison with the page shows it. A rank that gloo aborts while the
    process exits, after the script printed and its collectives are done (seen now and then on a loaded
    machine, on torch 2.9 and 2.13 alike), leaves what the page shows as it is.
    """
    from processes import child_env

    env = dict(child_env([Path.cwd()]), OMP_NUM_THREADS="1")  # torchrun warns when it has to set it
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    printed = _GLOO_TAIL.sub("", _GLOO_HEAD.sub("", done.stdout))
    return printed if done.returncode == 0 or printed.strip() else printed + done.stderr


def forget_framework_state() -> None:
    """Accelerate (also under the Hugging Face Trainer) keeps its state process-wide: let later code start afresh."""
    if "accelerate.state" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


# --- tables of what a spec does ------------------------------------------------------------------------

@dataclass
class Table:
    """A Markdown table: where it starts, its header cells and its rows of cells (backquotes removed)."""

    line: int
    header: list[str]
    rows: list[list[str]]


def read_tables(page: str) -> list[Table]:
    """Every table of a page outside code blocks."""
    tables: list[Table] = []
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    in_fence, k = False, 0
    while k < len(lines):
        in_fence ^= lines[k].startswith("```")
        if not in_fence and lines[k].startswith("|") and k + 1 < len(lines) and lines[k + 1].startswith("|-"):
            end = next((j for j in range(k + 2, len(lines)) if not lines[j].startswith("|")), len(lines))
            cells = [_cells(line) for line in lines[k:end]]
            tables.append(Table(k + 1, cells[0], cells[2:]))
            k = end
            continue
        k += 1
    return tables


def _cells(line: str) -> list[str]:
    return [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]


# --- commands to type, and syntax forms ----------------------------------------------------------------

OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*|-[a-z])\b")


def command_problems(line: str) -> list[str]:
    """What in one line of an ``sh`` block does not exist: a make target, an extra, a subcommand, an option."""
    command, _, comment = line.partition(" #")
    words = command.split()
    if not words or line.lstrip().startswith("#"):
        return []
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.M)
        return [f"no make target {w!r}" for w in words[1:] if "=" not in w and w not in targets]
    if words[0] == "specopt":
        return _specopt_problems(words[1], command)
    if words[0] in ("bash", ".venv/bin/python", "python") and words[1].startswith("benchmarks/"):
        script = ROOT / words[1]
        if not script.exists():
            return [f"no script {words[1]}"]
        text = script.read_text(encoding="utf-8") + (ROOT / "benchmarks" / "common.py").read_text(encoding="utf-8")
        return [f"{words[1]} has no option {o}" for o in OPTION.findall(line) if f'"{o}"' not in text]
    if words[1:3] == ["-m", "pytest"] and words[0] in (".venv/bin/python", "python"):
        return []
    if words[:2] == ["pip", "install"]:
        extras = re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(encoding="utf-8"), flags=re.M)
        named = [e for group in re.findall(r"\[([\w,]+)\]", command) for e in group.split(",")]
        return [f"no extra {e!r}" for e in named if e not in extras]
    return [f"the docs' commands are make, specopt, pip install, pytest and the benchmarks, not {words[0]!r}"]


def _specopt_problems(sub: str, command: str) -> list[str]:
    from specopt.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main([sub, "--help"])
        except SystemExit:
            pass
    if not out.getvalue().startswith(f"usage: specopt {sub}"):
        return [f"no command 'specopt {sub}'"]
    return [f"'specopt {sub}' has no option {o}" for o in OPTION.findall(command) if o not in out.getvalue()]


def syntax_problems(body: str) -> list[str]:
    """The lines of a syntax form that name no statement, grammar rule or placeholder the language has."""
    from specopt.language.parse import grammar_text
    from specopt.plan.plan import BY_KEYWORD

    grammar = grammar_text()
    problems = []
    for line in body.splitlines():
        first = line.split()[0] if line.split() else ""
        if re.match(r"\w+ +=", line):  # a rule of the grammar's outline: its literals are the grammar's
            problems += [f"{w!r} is not in the grammar" for w in re.findall(r'"([^"]+)"', line) if w not in grammar]
        elif first not in BY_KEYWORD and not re.fullmatch(r"[A-Z]+:", first):
            problems.append(f"{line!r} names no statement")
    return problems


# --- links ----------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not re.match(r"#{1,6} ", line):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: str) -> list[str]:
    """The relative links of a page whose file, or heading, does not exist."""
    path = ROOT / page
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    return broken
