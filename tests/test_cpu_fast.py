"""The fast CPU steps (minigrad/nn/cpu_fast.py) against their NumPy twins, at 1 and 2 threads.

Copies (max-pool) must match exactly; the fused BatchNorm steps reorder float32
sums and products, so they are compared with rtol 1e-4 and an atol of 1e-5 of
the values' scale.
"""
import threading

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.nn import batchnorm, cpu_fast, pooling
from minigrad import parallel


def close(fast, reference):
    scale = float(np.abs(reference).max()) or 1.0
    np.testing.assert_allclose(fast, reference, rtol=1e-4, atol=1e-5 * scale)


def test_chunks_cover_the_range_once():
    assert parallel.chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert parallel.chunk_bounds(2, 5) == [(0, 1), (1, 2)]
    seen = np.zeros(1000, dtype=int)

    def mark(start, stop):
        seen[start:stop] += 1
    parallel.for_each_chunk(1000, mark, threads=2, min_chunks=7)
    assert (seen == 1).all()


def test_a_chunk_may_split_its_own_work_without_deadlock():
    seen = np.zeros((8, 100), dtype=int)

    def outer(start, stop):
        for row in range(start, stop):
            def inner(first, last, row=row):
                seen[row, first:last] += 1
            parallel.for_each_chunk(100, inner, threads=2)

    # a deadlock would hang: run the job in a daemon thread and give it 30 s
    job = threading.Thread(target=parallel.for_each_chunk, args=(8, outer), kwargs={"threads": 2}, daemon=True)
    job.start()
    job.join(timeout=30)
    assert not job.is_alive(), "for_each_chunk inside a chunk hung"
    assert (seen == 1).all()


def test_a_chunks_exception_reaches_the_caller():
    def fail(start, stop):
        if start > 0:
            raise RuntimeError(f"chunk {start}")
    with pytest.raises(RuntimeError, match="chunk"):
        parallel.for_each_chunk(10, fail, threads=2)


def batch_norm_inputs(shape=(16, 8, 10, 10), seed=0, offset=1.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + offset).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    count, mean, invstd = batchnorm.training_statistics(x, None, None, 0.1, 1e-5)
    weight = rng.standard_normal(shape[1]).astype(np.float32)
    bias = rng.standard_normal(shape[1]).astype(np.float32)
    return x, dy, count[0], mean, invstd, weight, bias


@pytest.mark.parametrize("shape", [(16, 8, 10, 10), (64, 5), (3, 2, 4, 4)])
def test_batch_statistics_and_gradient_sums_match_the_twins(threads, shape):
    x, dy, _, mean, invstd, _, _ = batch_norm_inputs(shape)
    for fast, reference in zip(cpu_fast.batch_statistics(x), batchnorm.batch_statistics(x)):
        assert fast.dtype == reference.dtype  # float64 counts; mean and M2 in x's float32
        close(fast, reference)
    sums = zip(cpu_fast.gradient_sums(dy, x, mean, invstd), batchnorm.gradient_sums(dy, x, mean, invstd))
    for fast, reference in sums:
        close(fast, reference)


@pytest.mark.parametrize("offset", [1.0, 3000.0])
@pytest.mark.parametrize("shape, kernel, stride",
                         [((16, 8, 10, 10), 2, 2), ((5, 3, 11, 9), 3, 2), ((4, 2, 6, 6), 2, 1)])
def test_max_pool_gradient_sums_match_the_sums_of_the_scatter(threads, shape, kernel, stride, offset):
    """batch norm's sums from a max-pool's pooled gradient (BatchNormMaxPool) against the twin's sums of
    the pool's whole input gradient: overlapping windows, windows that leave rows out, and a mean
    that dwarfs the spread included."""
    x, _, _, mean, invstd, _, _ = batch_norm_inputs(shape, offset=offset)
    x = np.round(x)  # ties
    options = ((kernel, kernel), (stride, stride))
    best, winner = cpu_fast.max_pool2d_forward(x, *options)
    grad = np.random.default_rng(1).standard_normal(best.shape).astype(np.float32)
    scatter = cpu_fast.max_pool2d_backward(grad, winner, x.shape, *options)
    pooled = cpu_fast.max_pool_gradient_sums(grad, winner, x, mean, invstd, *options)
    for fast, reference in zip(pooled, batchnorm.gradient_sums(scatter, x, mean, invstd)):
        assert fast.dtype == np.float32
        close(fast, reference)
    # the row source gives the scatter's rows, for any chunk
    rows = cpu_fast.max_pool_gradient(grad, winner, x.shape, *options)
    np.testing.assert_array_equal(rows(1, 3), scatter[1:3].reshape(2, -1))


@pytest.mark.parametrize("affine", [True, False])
def test_normalize_matches_the_twin(threads, affine):
    x, _, _, mean, invstd, weight, bias = batch_norm_inputs()
    weight, bias = (weight, bias) if affine else (None, None)
    fast = cpu_fast.normalize(x, mean, invstd, weight, bias)
    assert fast.dtype == np.float32
    close(fast, batchnorm.normalize(x, mean, invstd, weight, bias))


def test_normalize_keeps_its_accuracy_when_the_mean_dwarfs_the_spread(threads):
    x, _, _, mean, invstd, weight, bias = batch_norm_inputs(offset=3000.0)
    close(cpu_fast.normalize(x, mean, invstd, weight, bias), batchnorm.normalize(x, mean, invstd, weight, bias))


@pytest.mark.parametrize("offset", [1.0, 3000.0])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(16, 8, 10, 10), (64, 5)])
def test_input_gradient_matches_the_twin(threads, training, shape, offset):
    x, dy, count, mean, invstd, weight, _ = batch_norm_inputs(shape, offset=offset)
    sum_dy, sum_dy_xhat = batchnorm.gradient_sums(dy, x, mean, invstd)
    arguments = (dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training)
    fast = cpu_fast.input_gradient(*arguments)
    assert fast.dtype == np.float32 and fast.shape == x.shape
    close(fast, batchnorm.input_gradient(*arguments))


def gradients_through_the_engine(function, arrays, grad):
    """function's output and the gradients of sum(output * grad) for each array, by minigrad's autograd."""
    tensors = [mg.tensor(array, requires_grad=True) for array in arrays]
    out = function(*tensors)
    (out * mg.tensor(grad)).sum().backward()
    return out.numpy(), [tensor.grad.numpy() for tensor in tensors]


@pytest.mark.parametrize("shape, kernel, stride", [((8, 6, 28, 28), 2, 2), ((3, 2, 7, 9), 3, 2), ((2, 3, 5, 5), 2, 1)])
def test_max_pool_matches_the_engine_ties_included(threads, shape, kernel, stride):
    rng = np.random.default_rng(3)
    # rounded values after a ReLU: many windows tie (all zero), as in a real network; the
    # gradient must go to each window's first maximum, as PyTorch's does
    values = np.maximum(np.round(rng.standard_normal(shape)), 0).astype(np.float32)
    best, winner = cpu_fast.max_pool2d_forward(values, (kernel, kernel), (stride, stride))
    grad = rng.standard_normal(best.shape).astype(np.float32)
    expected, (grad_x,) = gradients_through_the_engine(
        lambda x: F.max_pool2d(x, kernel, stride), [values], grad)
    np.testing.assert_array_equal(best, expected)
    fast = cpu_fast.max_pool2d_backward(grad, winner, shape, (kernel, kernel), (stride, stride))
    np.testing.assert_array_equal(fast, grad_x)
    # and against the twins the engine runs for padded or dilated pools
    options = ((kernel, kernel), (stride, stride), ((0, 0), (0, 0)), (1, 1))
    twin_best, twin_winner = pooling.max_of_windows(values, *options)
    np.testing.assert_array_equal(best, twin_best)
    np.testing.assert_array_equal(winner, twin_winner)
    np.testing.assert_array_equal(fast, pooling.scatter_to_winners(grad, winner, shape, *options))


def test_relu_split_over_threads_gives_the_same_bits(threads):
    """ReLU and its derivative on an array of over a MiB run in chunks on two threads and as one
    pass on one: the same operations, so the same bits, -0.0 and NaN included."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((16, 8, 48, 48)).astype(np.float32)
    a[0, 0, 0, :3] = [-0.0, np.nan, -np.inf]
    grad = rng.standard_normal(a.shape).astype(np.float32)
    out, (grad_a,) = gradients_through_the_engine(F.relu, [a], grad)
    expected = np.maximum(a, 0)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))  # -0.0 stays -0.0
    np.testing.assert_array_equal(grad_a, grad * (expected != 0))
