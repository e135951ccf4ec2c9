"""Each exercise's check is itself checked: it must pass minigrad's own implementation,
fail a deliberately wrong one, and report the untouched stub as "not attempted" (a skip).

Every exercises/test_<name>.py defines ``check(solution)``, ``reference``, ``wrong`` and
``test_exercise`` (the student's run: ``check`` applied to the stub or their version).
"""
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHECKS = sorted(path.stem for path in EXERCISES.glob("test_*.py"))


def _param(name):
    """A check that starts MPI jobs is marked ``mpi``, and skipped where there is no mpiexec."""
    if "mpiexec" not in (EXERCISES / f"{name}.py").read_text():
        return pytest.param(name, id=name)
    from minigrad.distributed import find_mpiexec
    missing = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec next to this Python or on PATH")
    return pytest.param(name, id=name, marks=[pytest.mark.mpi, missing])


PARAMS = [_param(name) for name in CHECKS]


def _check_module(name):
    return importlib.import_module(f"exercises.{name}")


def test_every_exercise_has_a_check_and_there_are_enough():
    stems = {path.stem for path in EXERCISES.glob("*.py") if not path.stem.startswith("_")} - {"checking"}
    exercises = sorted(stem for stem in stems if not stem.startswith("test_"))
    assert len(exercises) >= 11
    for stem in exercises:
        assert f"test_{stem}" in CHECKS, f"exercises/{stem}.py has no exercises/test_{stem}.py"
        text = (EXERCISES / f"{stem}.py").read_text()
        assert "docs/" in text.split('"""')[1], f"exercises/{stem}.py: its docstring names no chapter"


@pytest.mark.parametrize("name", PARAMS)
def test_the_check_passes_minigrads_own_implementation(name):
    module = _check_module(name)
    module.check(module.reference)


@pytest.mark.parametrize("name", PARAMS)
def test_the_check_fails_a_wrong_implementation(name):
    module = _check_module(name)
    with pytest.raises(AssertionError):
        module.check(module.wrong)


@pytest.mark.parametrize("name", PARAMS)
def test_the_untouched_stub_is_reported_as_not_attempted(name):
    module = _check_module(name)
    with pytest.raises(pytest.skip.Exception, match="not attempted"):
        module.test_exercise()
