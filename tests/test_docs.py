"""The docs cannot drift from the code: their examples run, and their quotes are checked.

Conventions in docs/*.md (all plain Markdown):

- A ```python block is an example. The blocks of one chapter run in order, in
  one namespace, from the repository root. What a block prints must equal the
  ```text block that follows it (trailing whitespace ignored); a block followed
  by no ```text block must print nothing.
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


def fenced_blocks(path):
    """(info string, body, line number) of every fenced block, in order."""
    text = path.read_text()
    return [(match.group(1).strip(), match.group(2), text.count("\n", 0, match.start()) + 1)
            for match in FENCE.finditer(text)]


def examples(path):
    """(code, expected output or None, line number) of every ```python example."""
    blocks = fenced_blocks(path)
    found = []
    for position, (info, body, line) in enumerate(blocks):
        if info != "python":
            continue
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        expected = following[1] if following is not None and following[0] == "text" else None
        found.append((body, expected, line))
    return found


def quotes(path):
    """(language, quoted file, qualified name or None, body, line number) of every quote."""
    found = []
    for info, body, line in fenced_blocks(path):
        words = info.split()
        if len(words) == 2:
            source, _, name = words[1].partition("::")
            found.append((words[0], source, name or None, body, line))
    return found


def _normalized(text):
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


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
    code = "".join(body for body, _, _ in examples(path))
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
    code = "".join(body for body, _, _ in blocks)
    if "FashionMNIST" in code and not FASHION_MNIST.is_dir():
        pytest.skip(f"{path.name} trains on Fashion-MNIST, which is not in {FASHION_MNIST} "
                    f"(apt-get install dataset-fashion-mnist)")
    if "find_mpiexec" in code and _mpiexec() is None:
        pytest.skip(f"{path.name} runs an MPI job and no mpiexec was found")
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "__docs__"}
    for body, expected, line in blocks:
        printed = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            exec(compile(body, f"{path.relative_to(ROOT)}:{line}", "exec"), namespace)
        seconds = time.perf_counter() - start
        where = f"{path.name}, the example at line {line} ({seconds:.2f} s)"
        if expected is None:
            assert printed.getvalue() == "", f"{where} printed output but no ```text block follows it"
        else:
            assert _normalized(printed.getvalue()) == _normalized(expected), \
                f"{where} printed:\n{printed.getvalue()}"


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
