"""What keeps the engine readable: imports in one direction, short functions, one derivative per op."""
import ast
import inspect
from pathlib import Path

import minigrad as mg
import minigrad.nn.functional  # noqa: F401  (so every Function subclass is defined)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minigrad"


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path, known):
    """The minigrad modules that ``path`` imports at module level (not inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # "from . import ops" names a module; "from .ops import Add" does not
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in known and module != name}


def test_the_package_has_no_import_cycle():
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    # A package's __init__ re-exports its modules; an edge into a package means "its __init__".
    graph = {name: _imported_modules(path, paths) for name, path in paths.items()}
    state, cycles = {}, []

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # A submodule importing a sibling through its package (from .. import backend) goes
    # through the package's __init__, which imports the submodule back: not a real cycle
    # when the package's __init__ only re-exports, so only cycles between plain modules count.
    real = [cycle for cycle in cycles if not any(paths[name].name == "__init__.py" for name in cycle)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in real)


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")) + [ROOT / "train.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long


def _subclasses(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def test_every_op_states_its_derivative_once():
    ops = [cls for cls in _subclasses(mg.Function) if cls.__module__.startswith("minigrad.")]
    assert len(ops) > 30
    for op in ops:
        assert not hasattr(op, "backward_graph"), f"{op.__name__} has a second derivative method"
        assert "backward" in vars(op) or any("backward" in vars(base) for base in op.__mro__[1:-2]), op.__name__
        parameters = list(inspect.signature(op.backward).parameters)
        assert len(parameters) == 2, f"{op.__name__}.backward{parameters}: one gradient in"
