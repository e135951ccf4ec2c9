"""The fast CPU steps (minigrad/nn/cpu_fast.py) against their NumPy twins, at 1 and 2 threads.

Copies (im2col, max-pool) must match exactly; the fused BatchNorm steps and the
folded convolution gradient reorder float32 sums and products, so they are
compared with rtol 1e-4 and an atol of 1e-5 of the values' scale.
"""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.nn import batchnorm, cpu_fast
from minigrad import parallel


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    before = mg.get_num_threads()
    mg.set_num_threads(request.param)
    yield request.param
    mg.set_num_threads(before)


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


def test_a_chunks_exception_reaches_the_caller():
    def fail(start, stop):
        if start > 0:
            raise RuntimeError(f"chunk {start}")
    with pytest.raises(RuntimeError, match="chunk"):
        parallel.for_each_chunk(10, fail, threads=2)


def batch_norm_inputs(shape=(16, 8, 10, 10), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    count, mean, invstd = batchnorm.training_statistics(x, None, None, 0.1, 1e-5)
    weight = rng.standard_normal(shape[1]).astype(np.float32)
    bias = rng.standard_normal(shape[1]).astype(np.float32)
    return x, dy, count[0], mean, invstd, weight, bias


@pytest.mark.parametrize("shape", [(16, 8, 10, 10), (64, 5), (3, 2, 4, 4)])
def test_batch_statistics_and_gradient_sums_match_the_twins(threads, shape):
    x, dy, _, mean, invstd, _, _ = batch_norm_inputs(shape)
    for fast, reference in zip(cpu_fast.batch_statistics(x), batchnorm.batch_statistics(x)):
        close(fast, reference)
    for fast, reference in zip(cpu_fast.gradient_sums(dy, x, mean, invstd), batchnorm.gradient_sums(dy, x, mean, invstd)):
        close(fast, reference)


@pytest.mark.parametrize("affine", [True, False])
def test_normalize_matches_the_twin(threads, affine):
    x, _, _, mean, invstd, weight, bias = batch_norm_inputs()
    weight, bias = (weight, bias) if affine else (None, None)
    fast = cpu_fast.normalize(x, mean, invstd, weight, bias)
    assert fast.dtype == np.float32
    close(fast, batchnorm.normalize(x, mean, invstd, weight, bias))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(16, 8, 10, 10), (64, 5)])
def test_input_gradient_matches_the_twin(threads, training, shape):
    x, dy, count, mean, invstd, weight, _ = batch_norm_inputs(shape)
    sum_dy, sum_dy_xhat = batchnorm.gradient_sums(dy, x, mean, invstd)
    arguments = (dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training)
    fast = cpu_fast.input_gradient(*arguments)
    assert fast.dtype == np.float32 and fast.shape == x.shape
    close(fast, batchnorm.input_gradient(*arguments))


CONV_CASES = [((4, 3, 9, 9), 5, 3, 1, 1), ((2, 2, 8, 7), 3, 3, 2, 0), ((3, 4, 6, 6), 2, 2, 1, 2)]


@pytest.mark.parametrize("shape, out_channels, kernel, stride, padding", CONV_CASES)
def test_im2col_gives_the_twins_columns(threads, shape, out_channels, kernel, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    weight = rng.standard_normal((out_channels, shape[1], kernel, kernel)).astype(np.float32)
    conv = F.Conv2d()
    expected = conv.forward(x, weight, stride=(stride, stride), padding=(padding, padding))
    cols = cpu_fast.im2col(x, (kernel, kernel), (stride, stride), (padding, padding))
    np.testing.assert_array_equal(cols, conv.cols)  # a copy: exactly the same numbers
    out = (weight.reshape(out_channels, -1) @ cols).reshape(out_channels, shape[0], *expected.shape[2:])
    close(cpu_fast.nchw_from_channel_major(out), expected)


@pytest.mark.parametrize("shape, out_channels, kernel, stride, padding", CONV_CASES)
def test_col2im_gives_the_twins_input_gradient(threads, shape, out_channels, kernel, stride, padding):
    rng = np.random.default_rng(2)
    x = mg.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    weight = rng.standard_normal((out_channels, shape[1], kernel, kernel)).astype(np.float32)
    out = F.conv2d(x, mg.tensor(weight), stride=stride, padding=padding)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    (out * mg.tensor(grad)).sum().backward()
    grad_matrix = grad.transpose(1, 0, 2, 3).reshape(out_channels, -1)
    grad_cols = weight.reshape(out_channels, -1).T @ grad_matrix
    fast = cpu_fast.col2im(grad_cols, shape, (kernel, kernel), (stride, stride), (padding, padding))
    assert fast.flags.c_contiguous
    close(fast, x.grad.numpy())


@pytest.mark.parametrize("shape, kernel, stride", [((8, 6, 28, 28), 2, 2), ((3, 2, 7, 9), 3, 2), ((2, 3, 5, 5), 2, 1)])
def test_max_pool_matches_the_twin_ties_included(threads, shape, kernel, stride):
    rng = np.random.default_rng(3)
    # rounded values after a ReLU: many windows tie (all zero), as in a real network
    values = np.maximum(np.round(rng.standard_normal(shape)), 0).astype(np.float32)
    pool = F.MaxPool2d()
    options = dict(kernel_size=(kernel, kernel), stride=(stride, stride), padding=(0, 0))
    expected = pool.forward(values, **options)
    best, winner = cpu_fast.max_pool2d_forward(values, (kernel, kernel), (stride, stride))
    np.testing.assert_array_equal(best, expected)
    np.testing.assert_array_equal(winner, pool.winner)
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    fast = cpu_fast.max_pool2d_backward(grad, winner, shape, (kernel, kernel), (stride, stride))
    np.testing.assert_array_equal(fast, pool.backward(grad))
