"""Check for exercises/batchnorm_chan_merge.py: against the statistics of the joined data,
minigrad's merge_statistics and PyTorch's mean and variance."""
import numpy as np
import torch

from exercises import batchnorm_chan_merge as exercise
from exercises.checking import run


def _triple(values):
    return float(len(values)), float(values.mean()), float(((values - values.mean()) ** 2).sum())


def check(merge):
    rng = np.random.default_rng(0)
    for size_a, size_b in ((5, 7), (1, 1), (1000, 3), (4, 4)):
        a = rng.standard_normal(size_a) * 2 + 100.0
        b = rng.standard_normal(size_b) * 0.5 + 97.0
        count, mean, m2 = (float(value) for value in merge(_triple(a), _triple(b)))
        joined = torch.tensor(np.concatenate([a, b]))
        assert count == size_a + size_b, "count"
        assert np.isclose(mean, joined.mean().item(), rtol=1e-12), "mean differs from PyTorch's on the joined data"
        assert np.isclose(m2 / count, joined.var(unbiased=False).item(), rtol=1e-9), \
            "M2 / count differs from PyTorch's (biased) variance of the joined data"
    empty = (0.0, 0.0, 0.0)
    part = _triple(rng.standard_normal(6))
    assert np.allclose([float(value) for value in merge(empty, part)], part), "merging into an empty part"
    assert np.allclose([float(value) for value in merge(part, empty)], part), "merging an empty part"
    per_channel = merge((np.array([2.0, 3.0]), np.array([0.0, 1.0]), np.array([2.0, 0.5])),
                        (np.array([2.0, 1.0]), np.array([1.0, 4.0]), np.array([0.0, 0.0])))
    assert np.allclose(np.asarray(per_channel[2], dtype=float), [3.0, 7.25]), "per-channel arrays"


def reference(a, b):
    """minigrad's merge_statistics (minigrad/nn/batchnorm.py), on a stack of the two parts."""
    from minigrad.nn.batchnorm import merge_statistics
    count, mean, m2 = (np.array([np.asarray(x, dtype=float), np.asarray(y, dtype=float)]) for x, y in zip(a, b))
    if not count.sum(axis=0).all():  # merge_statistics expects a nonempty channel
        return a if np.all(np.asarray(b[0]) == 0) else b
    return merge_statistics(count, mean, m2)


def wrong(a, b):
    """Adds the two M2 and forgets the spread between the two means."""
    count = a[0] + b[0]
    mean = (a[0] * a[1] + b[0] * b[1]) / count if np.all(count) else a[1] + b[1]
    return count, mean, a[2] + b[2]


def test_exercise():
    run(check, exercise.merge)
