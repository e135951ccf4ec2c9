"""The compiled kernels of minigrad/nn/cpu_kernels.py against their NumPy twins in cpu_fast.py.

The forward (normalize, then the 2x2 max-pool and its winners) and the input gradient do the
same operations in the same order as the twins, so they must give the same bits, ties, NaN and
odd sizes included. The sums add in another order (in float64), so they are compared with a
tolerance of the values' scale. The loops are also run as plain Python, which needs no numba.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad.nn import batchnorm, cpu_fast, cpu_kernels

WINDOW = ((2, 2), (2, 2))
needs_numba = pytest.mark.skipif(not cpu_kernels.use_numba, reason="needs numba (pip install minigrad[fast])")


def inputs(shape, dtype=np.float32, seed=0, affine=True):
    """x rounded to a few values (so windows tie), its statistics, and the per-channel affine values."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)
    _, mean, invstd = batchnorm.training_statistics(x, None, None, 0.1, 1e-5)
    channels = shape[1]
    weight = rng.uniform(-1.5, 1.5, channels).astype(dtype) if affine else None  # negative scales too
    bias = rng.uniform(-0.5, 0.5, channels).astype(dtype) if affine else None
    return x, mean, invstd, weight, bias


def pooled_gradient(x, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)).astype(x.dtype)


SHAPES = [(7, 5, 13, 11), (3, 1, 2, 2), (33, 6, 8, 9), (1, 4, 28, 28)]  # odd rows and columns, one channel


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_gives_the_numpy_pass_bits(threads, shape, affine, dtype):
    x, mean, invstd, weight, bias = inputs(shape, dtype, affine=affine)
    best, winner = cpu_kernels.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    expected_best, expected_winner = cpu_fast.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    assert best.dtype == dtype and winner.dtype == np.int16
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_array_equal(np.signbit(best), np.signbit(expected_best))  # -0.0 stays -0.0
    np.testing.assert_array_equal(winner, expected_winner)  # the first maximum of tied windows


@needs_numba
def test_without_a_bias_a_negative_zero_stays_negative():
    x = np.full((1, 2, 2, 2), -0.0, dtype=np.float32)
    mean, invstd = np.zeros(2, np.float32), np.ones(2, np.float32)
    best, _ = cpu_kernels.normalize_max_pool(x, mean, invstd, None, None, *WINDOW)
    expected, _ = cpu_fast.normalize_max_pool(x, mean, invstd, None, None, *WINDOW)
    assert np.signbit(expected).all() and np.signbit(best).all()


@needs_numba
def test_a_nan_reaches_the_maximum_as_in_the_numpy_pass(threads):
    """np.maximum lets a NaN into the window's maximum and the winner stays the one before it; the
    compiled loop leaves that rule to the NumPy pass, for the chunks that hold a NaN."""
    x, mean, invstd, weight, bias = inputs((6, 3, 6, 6))
    x[0, 0, 0, 0] = np.nan   # a window's first value
    x[1, 2, 3, 2] = np.nan   # its third
    x[5, 1, 5, 5] = np.nan   # its last
    best, winner = cpu_kernels.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    expected_best, expected_winner = cpu_fast.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    assert np.isnan(best).sum() == 3
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_array_equal(winner, expected_winner)


@needs_numba
@pytest.mark.parametrize("offset", [0.0, 3000.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_sums_match_the_numpy_pass(threads, shape, dtype, offset):
    """Also with a mean that dwarfs the spread: the sums are of g * (x - mean)."""
    x, mean, invstd, _, _ = inputs(shape, dtype)
    x, mean = x + dtype(offset), mean + dtype(offset)
    _, winner = cpu_fast.normalize_max_pool(x, mean, invstd, None, None, *WINDOW)
    grad = pooled_gradient(x)
    ours = cpu_kernels.max_pool_gradient_sums(grad, winner, x, mean, invstd, *WINDOW)
    theirs = cpu_fast.max_pool_gradient_sums(grad, winner, x, mean, invstd, *WINDOW)
    for sums, expected in zip(ours, theirs):
        assert sums.dtype == dtype and sums.shape == (shape[1],)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(sums, expected, rtol=0, atol=(2e-6 if dtype == np.float32 else 1e-13) * scale)


@needs_numba
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_input_gradient_gives_the_numpy_pass_bits(threads, shape, dtype, training):
    x, mean, invstd, weight, _ = inputs(shape, dtype)
    _, winner = cpu_fast.normalize_max_pool(x, mean, invstd, weight, None, *WINDOW)
    grad = pooled_gradient(x)
    sums = cpu_fast.max_pool_gradient_sums(grad, winner, x, mean, invstd, *WINDOW)
    arguments = (grad, winner, x, mean, invstd, weight, *sums, np.full(shape[1], x.size / shape[1]), training)
    ours = cpu_kernels.max_pool_input_gradient(*arguments, *WINDOW)
    assert ours.dtype == dtype and ours.shape == x.shape
    np.testing.assert_array_equal(ours, cpu_fast.max_pool_input_gradient(*arguments, *WINDOW))


def test_the_loops_are_python_that_gives_the_same_results():
    """The kernels' source is ordinary Python: run uncompiled on a small batch, it gives the NumPy
    passes' results too (this runs without numba)."""
    x, mean, invstd, weight, bias = inputs((2, 3, 5, 7))
    scale, shift = cpu_fast.affine_scale(invstd, weight), bias
    best, winner = np.empty((2, 3, 2, 3), np.float32), np.empty((2, 3, 2, 3), np.int16)
    assert not cpu_kernels._normalize_max_pool(x, mean, scale, shift, best, winner, 0, 2)  # no NaN
    expected_best, expected_winner = cpu_fast.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_array_equal(winner, expected_winner)

    grad = pooled_gradient(x)
    sum_dy, sum_dy_centered = cpu_kernels._max_pool_gradient_sums(grad, winner, x, mean, 0, 2)
    expected = cpu_fast.max_pool_gradient_sums(grad, winner, x, mean, invstd, *WINDOW)
    np.testing.assert_allclose(sum_dy, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sum_dy_centered * invstd, expected[1], rtol=1e-5, atol=1e-6)

    count = np.full(3, x.size / 3)
    a, b, c = (np.asarray(values, np.float32)
               for values in cpu_fast.input_gradient_coefficients(invstd, weight, *expected, count))
    out = np.empty_like(x)
    cpu_kernels._max_pool_input_gradient(grad, winner, x, mean, a, b, c, out, 0, 2)
    arguments = (grad, winner, x, mean, invstd, weight, *expected, count, True)
    np.testing.assert_array_equal(out, cpu_fast.max_pool_input_gradient(*arguments, *WINDOW))


def test_the_kernels_take_only_a_2x2_window_with_stride_2(monkeypatch):
    x = np.zeros((2, 3, 8, 8), np.float32)
    monkeypatch.setattr(cpu_kernels, "use_numba", True)
    assert cpu_kernels.fits(x, (2, 2), (2, 2))
    assert not cpu_kernels.fits(x, (3, 3), (2, 2))
    assert not cpu_kernels.fits(x, (2, 2), (1, 1))
    assert not cpu_kernels.fits(x[:, :, :, ::2], (2, 2), (2, 2))  # not C-contiguous
    with pytest.raises(ValueError, match="normalize_max_pool: the compiled kernels take a 2x2 window"):
        cpu_kernels.normalize_max_pool(x, *inputs((2, 3, 8, 8))[1:], (3, 3), (2, 2))
    monkeypatch.setattr(cpu_kernels, "use_numba", False)
    assert not cpu_kernels.fits(x, (2, 2), (2, 2))


@needs_numba
def test_they_run_where_numba_cannot_write_its_cache(monkeypatch):
    """With no writable cache directory numba refuses cache=True; the loops are then compiled
    without a cache, not left out."""
    import numba
    njit = numba.njit

    def njit_without_a_cache_directory(*args, cache=False, **options):
        if cache:  # what numba raises where no cache directory is writable
            raise RuntimeError("cannot cache function '_normalize_max_pool': no locator available for file")
        return njit(*args, **options)
    monkeypatch.setattr(numba, "njit", njit_without_a_cache_directory)
    monkeypatch.setattr(cpu_kernels, "_compiled", None)
    x, mean, invstd, weight, bias = inputs((2, 3, 4, 4))
    best, winner = cpu_kernels.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)
    np.testing.assert_array_equal(best, cpu_fast.normalize_max_pool(x, mean, invstd, weight, bias, *WINDOW)[0])


def test_numba_that_cannot_be_imported_leaves_the_numpy_passes(monkeypatch):
    """numba installed for another NumPy fails on import: a warning, and the NumPy passes run."""
    monkeypatch.setitem(sys.modules, "numba", None)  # ``import numba`` raises ImportError
    monkeypatch.setattr(cpu_kernels, "_compiled", None)
    monkeypatch.setattr(cpu_kernels, "use_numba", True)
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.warns(RuntimeWarning, match="numba is installed but cannot be imported"):
        assert not cpu_kernels.fits(x, (2, 2), (2, 2))
    assert not cpu_kernels.use_numba
    block = nn.Sequential(nn.BatchNorm2d(3), nn.MaxPool2d(2))
    out = block(mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)))
    assert out.shape == (2, 3, 4, 4) and out._ctx.passes is cpu_fast


def test_minigrad_numba_0_switches_them_off():
    environment = dict(os.environ, MINIGRAD_NUMBA="0")
    command = [sys.executable, "-c", "from minigrad.nn import cpu_kernels; print(cpu_kernels.use_numba)"]
    printed = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "False"


@needs_numba
def test_the_default_cnn_trains_the_same_with_and_without_them(monkeypatch):
    """Two SGD steps of train.py's model: the first step's output bit for bit; after the steps the
    weights and running statistics to float32 rounding (batch norm's sums add in another order)."""
    images = np.random.default_rng(2).standard_normal((16, 1, 28, 28)).astype(np.float32)
    labels = np.arange(16) % 10
    results, forward = [], cpu_kernels.normalize_max_pool
    for compiled in (True, False):
        monkeypatch.setattr(cpu_kernels, "use_numba", compiled)
        calls = []  # the blocks that ran the compiled forward
        monkeypatch.setattr(cpu_kernels, "normalize_max_pool", lambda *args: calls.append(1) or forward(*args))
        mg.manual_seed(0)
        model = mg.models.cnn(dropout=0.0)
        optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        outputs = []
        for _ in range(2):
            optimizer.zero_grad()
            out = model(mg.tensor(images))
            nn.functional.cross_entropy(out, labels).backward()
            optimizer.step()
            outputs.append(out.numpy())
        assert len(calls) == (4 if compiled else 0)  # two blocks, two steps
        results.append((outputs, [value.numpy().copy() for value in model.buffers()],
                        [p.numpy().copy() for p in model.parameters()]))
    (outputs, buffers, weights), (expected_outputs, expected_buffers, expected_weights) = results
    np.testing.assert_array_equal(outputs[0], expected_outputs[0])  # the first step: the same weights
    for ours, theirs in zip(buffers, expected_buffers):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(weights, expected_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)

