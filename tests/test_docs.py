"""The docs cannot drift from the code: their examples run, and their quotes are checked.

Conventions in docs/*.md (all plain Markdown):

- A ```python block is an example. The blocks of one chapter run in order, in
  one namespace, from the repository root. What a block prints must equal the
  ```text block that follows it (trailing whitespace ignored); a block followed
  by no ```text block must print nothing. Where the digits depend on the CPU's
  BLAS kernels (training on real data), the output block states a tolerance,
  ```text tolerance=0.01: its words must match exactly, each number below 1
  within 0.01 and each larger number within 1% (a count of 7,314 may read 7,300).
- Each example pastes into the plain Python REPL by itself (no blank line inside
  an indented block, one after it) and imports every module it uses; data may
  still flow from an earlier block of the chapter.
- A fence with a path after the language is a quote, not an example:
  ```python minigrad/tensor.py::unbroadcast quotes the function (or
  Class.method) ``unbroadcast`` of that file; ```cuda kernels/prune.cu and
  ```text benchmarks/results/prune_lenet.md quote a file. A quote's lines must
  appear in that place verbatim, in order, with one indentation removed; a line
  that is only ``...`` stands for lines left out.
- Every chapter is listed in docs/README.md, and every relative link or
  image in the docs points at a file that exists.
"""
import ast
import code
import contextlib
import io
import re
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INDEX = DOCS / "README.md"
CHAPTERS = sorted(path for path in DOCS.glob("*.md") if path != INDEX)
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TOLERANCE = re.compile(r"^text tolerance=([0-9.eE+-]+)$")
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def fenced_blocks(path):
    """(info string, body, line number) of every fenced block, in order."""
    text = path.read_text()
    return [(match.group(1).strip(), match.group(2), text.count("\n", 0, match.start()) + 1)
            for match in FENCE.finditer(text)]


def _output_tolerance(info):
    """None if ``info`` opens no output block, else the block's tolerance (0.0: exact)."""
    if info == "text":
        return 0.0
    match = TOLERANCE.match(info)
    return float(match.group(1)) if match else None


def examples(path):
    """(code, expected output or None, tolerance, line number) of every ```python example."""
    blocks = fenced_blocks(path)
    found = []
    for position, (info, body, line) in enumerate(blocks):
        if info != "python":
            continue
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        tolerance = None if following is None else _output_tolerance(following[0])
        expected = following[1] if tolerance is not None else None
        found.append((body, expected, tolerance or 0.0, line))
    return found


def quotes(path):
    """(language, quoted file, qualified name or None, body, line number) of every quote."""
    found = []
    for info, body, line in fenced_blocks(path):
        words = info.split()
        if len(words) == 2 and _output_tolerance(info) is None:
            source, _, name = words[1].partition("::")
            found.append((words[0], source, name or None, body, line))
    return found


def _normalized(text):
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def output_matches(printed, expected, tolerance=0.0):
    """True if ``printed`` is ``expected``, each number x within ``tolerance * max(1, |x|)``."""
    printed, expected = _normalized(printed), _normalized(expected)
    if tolerance == 0.0:
        return printed == expected
    if NUMBER.split(printed) != NUMBER.split(expected):
        return False
    pairs = zip(NUMBER.findall(printed), NUMBER.findall(expected))
    return all(abs(_number(got) - _number(wanted)) <= tolerance * max(1.0, abs(_number(wanted)))
               for got, wanted in pairs)


def _number(text):
    return float(text.replace(",", ""))


def test_output_matches_within_the_stated_tolerance_only():
    assert output_matches("acc 0.81 [0.5, 0.6]\n", "acc 0.81 [0.5, 0.6]")
    assert not output_matches("acc 0.82", "acc 0.81")
    assert output_matches("acc 0.82 after 3 epochs", "acc 0.81 after 3 epochs", tolerance=0.01)
    assert not output_matches("acc 0.83 after 3 epochs", "acc 0.81 after 3 epochs", tolerance=0.01)
    assert not output_matches("loss 0.81 after 3 epochs", "acc 0.81 after 3 epochs", tolerance=0.01)
    assert not output_matches("acc 0.81 0.5", "acc 0.81", tolerance=0.01)
    assert output_matches("nonzero 7,350 [1, 2]", "nonzero 7,314 [1, 2]", tolerance=0.01)  # within 1%
    assert not output_matches("nonzero 7400", "nonzero 7314", tolerance=0.01)


# ----- pasting an example into the REPL ------------------------------------------------
class _PasteChecker(code.InteractiveConsole):
    """The plain REPL, fed a block line by line: records syntax errors instead of running."""

    def __init__(self):
        super().__init__()
        self.errors = []

    def runcode(self, code_object):
        pass

    def showsyntaxerror(self, filename=None, **kwargs):
        self.errors.append(self.buffer[-1] if self.buffer else "")


def repl_paste_errors(body):
    """The lines at which the plain REPL stops with a SyntaxError when ``body`` is pasted."""
    console = _PasteChecker()
    for line in body.splitlines() + [""]:
        console.push(line)
    return console.errors


def missing_imports(body, imported_elsewhere):
    """Names that ``body`` uses, another block of its chapter imports, and ``body`` does not."""
    tree = ast.parse(body)
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return sorted((used & imported_elsewhere) - imported_names(tree))


def imported_names(tree):
    return {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def test_paste_and_import_checks_catch_what_breaks_a_repl():
    assert repl_paste_errors("class A:\n    x = 1\n\n    y = 2\n")
    assert repl_paste_errors("for i in range(2):\n    pass\nprint(i)\n")
    assert not repl_paste_errors("class A:\n    x = 1\n    y = 2\n\nprint(A.y)\n")
    assert missing_imports("print(np.zeros(2))", {"np", "mg"}) == ["np"]
    assert missing_imports("import numpy as np\nprint(np.zeros(2))", {"np"}) == []


# ----- checking a quote against its source --------------------------------------------
def definition_lines(path, qualified_name):
    """(first, last) 0-based line numbers of a function or class (``Class.method``) in a file."""
    scope = ast.parse(path.read_text()).body
    node = None
    for part in qualified_name.split("."):
        node = next((child for child in scope if isinstance(child, (ast.FunctionDef, ast.ClassDef))
                     and child.name == part), None)
        if node is None:
            raise LookupError(f"{path.relative_to(ROOT)} has no {qualified_name}")
        scope = node.body
    first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    return first - 1, node.end_lineno - 1


def _segments(quote):
    """The quote's lines, split at ``...`` lines into runs that must each appear whole."""
    segments, current = [], []
    for line in quote.rstrip().splitlines():
        if line.strip() == "...":
            segments.append(current)
            current = []
        else:
            current.append(line.rstrip())
    segments.append(current)
    segments = [_without_blank_ends(segment) for segment in segments]
    return [segment for segment in segments if segment]


def _without_blank_ends(segment):
    while segment and not segment[0]:
        segment = segment[1:]
    while segment and not segment[-1]:
        segment = segment[:-1]
    return segment


def _matches_at(lines, start, segment):
    first = lines[start]
    if not first.endswith(segment[0]) or first[:len(first) - len(segment[0])].strip():
        return False
    indent = first[:len(first) - len(segment[0])]
    return all(start + offset < len(lines) and
               (lines[start + offset].rstrip() == (indent + wanted if wanted else ""))
               for offset, wanted in enumerate(segment))


def find_quote(lines, quote, first=0, last=None):
    """True if every segment of ``quote`` appears in ``lines[first:last + 1]``, in order."""
    last = len(lines) - 1 if last is None else last
    position = first
    for segment in _segments(quote):
        for start in range(position, last - len(segment) + 2):
            if _matches_at(lines, start, segment):
                position = start + len(segment)
                break
        else:
            return False
    return True


def test_find_quote_accepts_verbatim_lines_and_rejects_changed_ones():
    lines = ["def f(x):", "    y = x + 1", "", "    return y * 2", "z = 3"]
    assert find_quote(lines, "y = x + 1\n\nreturn y * 2")
    assert find_quote(lines, "def f(x):\n...\n    return y * 2")
    assert find_quote(lines, "def f(x):\n...\n\n    return y * 2")  # blank lines next to ... are ignored
    assert not find_quote(lines, "y = x + 2")
    assert not find_quote(lines, "return y * 2\ny = x + 1")        # order matters
    assert not find_quote(lines, "y = x + 1\nreturn y * 2")        # the blank line is part of it
    assert not find_quote(lines, "z = 3", first=0, last=3)         # outside the named function


def _mpiexec():
    from minigrad.distributed import find_mpiexec
    return find_mpiexec()


# ----- the tests ------------------------------------------------------------------------
def _chapter_param(path):
    code = "".join(body for body, *_ in examples(path))
    marks = []
    if "find_mpiexec" in code:
        marks.append(pytest.mark.mpi)
    return pytest.param(path, id=path.name, marks=marks)


def test_there_are_chapters_and_each_has_examples_and_quotes():
    assert len(CHAPTERS) >= 6
    for path in CHAPTERS:
        assert examples(path), f"{path.name} has no ```python example"
        assert any(language == "python" for language, *_ in quotes(path)), f"{path.name} quotes no code"


@pytest.mark.parametrize("path", [_chapter_param(path) for path in CHAPTERS + [ROOT / "README.md"]])
def test_examples_print_what_the_docs_show(path, monkeypatch):
    blocks = examples(path)
    code = "".join(body for body, *_ in blocks)
    if "FashionMNIST" in code and not FASHION_MNIST.is_dir():
        pytest.skip(f"{path.name} trains on Fashion-MNIST, which is not in {FASHION_MNIST} "
                    f"(apt-get install dataset-fashion-mnist)")
    if "find_mpiexec" in code and _mpiexec() is None:
        pytest.skip(f"{path.name} runs an MPI job and no mpiexec was found")
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "__docs__"}
    for body, expected, tolerance, line in blocks:
        printed = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            exec(compile(body, f"{path.relative_to(ROOT)}:{line}", "exec"), namespace)
        seconds = time.perf_counter() - start
        where = f"{path.name}, the example at line {line} ({seconds:.2f} s)"
        if expected is None:
            assert printed.getvalue() == "", f"{where} printed output but no ```text block follows it"
        else:
            within = f" (tolerance {tolerance})" if tolerance else ""
            assert output_matches(printed.getvalue(), expected, tolerance), \
                f"{where} printed{within}:\n{printed.getvalue()}"


@pytest.mark.parametrize("path", CHAPTERS + [ROOT / "README.md"], ids=[path.name for path in CHAPTERS + [ROOT / "README.md"]])
def test_each_example_pastes_into_the_repl_and_imports_what_it_uses(path):
    blocks = examples(path)
    imported = set().union(*(imported_names(ast.parse(body)) for body, *_ in blocks))
    for body, _, _, line in blocks:
        errors = repl_paste_errors(body)
        assert not errors, f"{path.name}, the example at line {line}: the REPL stops at {errors[0]!r}"
        missing = missing_imports(body, imported)
        assert not missing, f"{path.name}, the example at line {line} uses {missing} without importing them"


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.name for path in CHAPTERS])
def test_quoted_code_is_still_in_the_named_file_and_function(path):
    for language, source, name, body, line in quotes(path):
        where = f"{path.name}:{line} quotes {source}" + (f"::{name}" if name else "")
        source_path = ROOT / source
        assert source_path.is_file(), f"{where}, which does not exist"
        lines = source_path.read_text().splitlines()
        first, last = definition_lines(source_path, name) if name else (0, len(lines) - 1)
        assert find_quote(lines, body, first, last), f"{where}, but these lines are not there verbatim:\n{body}"


@pytest.mark.parametrize("path", CHAPTERS + [INDEX], ids=[path.name for path in CHAPTERS + [INDEX]])
def test_links_and_images_point_at_files_that_exist(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name} links to {target}, which is missing"


def test_the_index_lists_every_chapter():
    index = INDEX.read_text()
    for path in CHAPTERS:
        assert f"({path.name})" in index, f"docs/README.md does not link to {path.name}"


def test_the_graph_picture_is_a_png():
    assert (DOCS / "mlp_graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


EXPERIMENTS = sorted(path for path in (DOCS / "experiments").glob("*.py") if path.stem != "common")


def test_each_experiment_compiles_and_its_figure_is_committed_and_shown():
    """The experiments take a minute each, so the suite does not run them; it checks what it can."""
    assert len(EXPERIMENTS) >= 5
    shown = "".join(path.read_text() for path in CHAPTERS)
    for script in EXPERIMENTS:
        compile(script.read_text(), str(script), "exec")
        figure = script.with_suffix(".png")
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure.name} is missing or not a PNG"
        assert f"(experiments/{figure.name})" in shown, f"no chapter shows docs/experiments/{figure.name}"
        assert f"docs/experiments/{script.name}" in shown, f"no chapter says how to run {script.name}"
