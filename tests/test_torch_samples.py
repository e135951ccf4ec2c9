"""PyTorch's own sample inputs, run through every op and layer minigrad claims (tests/torch_samples.py).

No sample may give a different value or gradient, none may raise where PyTorch
answers, and at least 97% of the in-scope samples of every family of ops and
layers must run.
"""
import pytest

from torch_samples import coverage_table, run_all, share_run

pytest.importorskip("expecttest")  # torch's sample database imports it


@pytest.fixture(scope="module")
def results():
    found = run_all()
    print("\n" + "\n".join(coverage_table(found)))
    return found


def test_no_sample_gives_a_wrong_value_or_gradient(results):
    wrong = [f"{r.name}: {r.detail}" for r in results if r.outcome == "wrong"]
    assert not wrong, "\n".join(wrong[:30])


def test_no_sample_raises_where_pytorch_answers(results):
    raised = [f"{r.name}: {r.detail}" for r in results if r.outcome == "raised"]
    assert not raised, "\n".join(raised[:30])


@pytest.mark.parametrize("family", ["tensor api", "reductions", "shapes", "activations", "losses", "layers",
                                    "conv/pool"])
def test_at_least_97_percent_of_the_samples_run(results, family):
    chosen = [r for r in results if r.family == family]
    assert len(chosen) > 20
    assert share_run(chosen) >= 0.97, "\n".join(coverage_table(chosen))
