"""What every exercise's check shares: an untouched stub is "not attempted", never a failure."""
import pytest


def run(check, solution):
    """Run ``check(solution)``; a stub that still raises NotImplementedError is skipped."""
    try:
        check(solution)
    except NotImplementedError:
        pytest.skip(f"not attempted: {solution.__module__}.{solution.__name__} "
                    f"still raises NotImplementedError")
