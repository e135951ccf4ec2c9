"""What every exercise's check shares: an untouched stub is "not attempted", never a failure."""
import pytest


def run(check, solution):
    """Run ``check(solution)``; a stub that still raises NotImplementedError is skipped."""
    try:
        check(solution)
    except NotImplementedError:
        name = getattr(solution, "__qualname__", None)
        where = f"{solution.__module__}.{name}" if name else getattr(solution, "__name__", repr(solution))
        pytest.skip(f"not attempted: {where} still raises NotImplementedError")
