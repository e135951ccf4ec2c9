"""The pools' options as PyTorch has them: dilation, ceil_mode, return_indices and unpooling,
count_include_pad and divisor_override, adaptive average pooling, unbatched inputs.

Each is compared with PyTorch in float64 (value and gradient) on odd sizes and
uneven strides, gradchecked, and gradgradchecked: the pools' derivatives are
ops of their own (scatter and gather, spread and pool), differentiable again.
"""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F
from tests.test_convolution import matches_pytorch

TF = torch.nn.functional


def distinct(rng, *shape):
    """Values without ties, so that every window has one maximum (max is not differentiable at ties)."""
    size = int(np.prod(shape))
    return mg.tensor(rng.permutation(size).reshape(shape) / size, requires_grad=True, dtype=np.float64)


MAX_CASES = [  # input shape, positional (kernel_size, stride, padding, dilation, ceil_mode)
    ((2, 3, 10, 9), (3, 2, 1, 2, True)),
    ((2, 3, 9, 8), ((3, 2), (2, 3), (1, 1), 1, True)),
    ((2, 2, 7, 7), (2, None, 0, 1, True)),
    ((1, 2, 11, 6), ((2, 3), 1, (1, 0), (3, 2), False)),
    ((3, 8, 7), (3, 2, 1, 1, False)),  # unbatched
]


@pytest.mark.parametrize("shape, options", MAX_CASES)
def test_max_pool2d_options_match_pytorch(shape, options, rng):
    assert matches_pytorch(lambda x: F.max_pool2d(x, *options), lambda x: TF.max_pool2d(x, *options), [shape], rng)


@pytest.mark.parametrize("shape, options", MAX_CASES)
def test_max_pool2d_returns_pytorchs_indices(shape, options, rng):
    x = rng.normal(size=shape)
    values, indices = F.max_pool2d(mg.tensor(x), *options, return_indices=True)
    their_values, their_indices = TF.max_pool2d(torch.tensor(x), *options, return_indices=True)
    np.testing.assert_array_equal(indices.numpy(), their_indices.numpy())
    np.testing.assert_array_equal(values.numpy(), their_values.numpy())


@pytest.mark.parametrize("shape, options", MAX_CASES[:2] + MAX_CASES[3:])
def test_max_pool2d_options_gradcheck_twice(shape, options, rng):
    x = distinct(rng, *shape[:-2], 7, 6)
    assert mg.gradcheck(lambda x: F.max_pool2d(x, *options), [x])
    assert mg.gradgradcheck(lambda x: F.max_pool2d(x, *options) ** 2, [x])


@pytest.mark.parametrize("pool, unpool", [((2, 2), (2, 2, 0, None)), ((3, 2, 1), (3, 2, 1, (9, 8))),
                                          ((3, 2, 1), (3, 2, 1, (2, 3, 10, 9)))])
def test_max_unpool2d_matches_pytorch(pool, unpool, rng):
    size = (9, 8) if unpool[3] is None else tuple(unpool[3])[-2:]
    x = rng.normal(size=(2, 3) + size)
    _, indices = F.max_pool2d(mg.tensor(x), *pool, return_indices=True)
    _, their_indices = TF.max_pool2d(torch.tensor(x), *pool, return_indices=True)
    assert matches_pytorch(lambda v: F.max_unpool2d(v, indices, *unpool),
                           lambda v: TF.max_unpool2d(v, their_indices, *unpool), [indices.shape], rng)


def test_max_pool_then_unpool_gradchecks_twice(rng):
    # windows that do not overlap: an input that won two windows would be put back once but
    # receive both gradients (PyTorch's unpool is the same: its forward is then ill-defined)
    pool, unpool = nn.MaxPool2d(2, 2, 1, return_indices=True), nn.MaxUnpool2d(2, 2, 1)

    def round_trip(x):
        values, indices = pool(x)
        return unpool(values ** 2, indices, output_size=x.shape)
    x = distinct(rng, 2, 2, 7, 6)
    assert round_trip(x).shape == x.shape
    assert mg.gradcheck(round_trip, [x])
    assert mg.gradgradcheck(round_trip, [x])


AVG_CASES = [  # input shape, kernel_size, stride, padding
    ((2, 3, 8, 7), (3, 2), (2, 3), 1),
    ((2, 2, 7, 7), 3, 2, 1),
    ((2, 2, 6, 5), 2, 2, 0),
    ((3, 9, 6), (3, 3), (2, 1), (1, 0)),  # unbatched
]


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 5])
@pytest.mark.parametrize("shape, kernel_size, stride, padding", AVG_CASES)
def test_avg_pool2d_options_match_pytorch(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override, rng):
    options = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    assert matches_pytorch(lambda x: F.avg_pool2d(x, *options), lambda x: TF.avg_pool2d(x, *options), [shape], rng)


@pytest.mark.parametrize("options", [(3, 2, 1, True, False, None), ((3, 2), (2, 3), 1, True, True, None),
                                     (2, 2, 0, False, True, 3)])
def test_avg_pool2d_options_gradcheck_twice(options, rng):
    x = mg.tensor(rng.normal(size=(2, 2, 7, 6)), requires_grad=True)
    assert mg.gradcheck(lambda x: F.avg_pool2d(x, *options), [x])
    assert mg.gradgradcheck(lambda x: F.avg_pool2d(x, *options) ** 2, [x])


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (3, 10, 5)])
@pytest.mark.parametrize("output_size", [1, (3, 4), (5, None), 7, (10, 2)])
def test_adaptive_avg_pool2d_matches_pytorch(shape, output_size, rng):
    assert matches_pytorch(lambda x: F.adaptive_avg_pool2d(x, output_size),
                           lambda x: TF.adaptive_avg_pool2d(x, output_size), [shape], rng)


def test_adaptive_avg_pool2d_gradchecks_twice(rng):
    x = mg.tensor(rng.normal(size=(2, 2, 7, 5)), requires_grad=True)
    assert mg.gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [x])
    assert mg.gradgradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)) ** 2, [x])


def test_pool_layers_take_pytorchs_positional_order(rng):
    x = rng.normal(size=(2, 3, 9, 8))
    values, indices = nn.MaxPool2d(3, 2, 1, 1, True, True)(mg.tensor(x))  # ..., dilation, return_indices, ceil_mode
    their_values, their_indices = torch.nn.MaxPool2d(3, 2, 1, 1, True, True)(torch.tensor(x))
    np.testing.assert_array_equal(indices.numpy(), their_indices.numpy())
    ours = nn.AvgPool2d(3, 2, 1, True, False, None)(mg.tensor(x))  # ceil_mode, count_include_pad, divisor_override
    theirs = torch.nn.AvgPool2d(3, 2, 1, True, False, None)(torch.tensor(x))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_pool_errors_name_the_op_and_sizes(rng):
    x = mg.tensor(rng.normal(size=(1, 2, 5, 5)))
    with pytest.raises(ValueError, match="max_pool2d: pad should be at most half of effective kernel size, "
                                         "but got pad=2, kernel_size=3 and dilation=1"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="avg_pool2d: output size is too small"):
        F.avg_pool2d(x, 6)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input"):
        F.max_pool2d(mg.tensor(np.ones((5, 5))), 2)
    with pytest.raises(ValueError, match="max_unpool2d: found an invalid max index 30"):
        F.max_unpool2d(mg.tensor(np.ones((1, 1, 2, 2))), np.array([[[[0, 1], [2, 30]]]]), 2)
    with pytest.raises(ValueError, match="max_unpool2d: output_size"):
        F.max_unpool2d(mg.tensor(np.ones((1, 1, 2, 2))), np.zeros((1, 1, 2, 2), dtype=np.int64), 2,
                       output_size=(7, 4))
    with pytest.raises(ValueError, match="avg_pool2d: divisor must be not zero"):
        F.avg_pool2d(x, 2, divisor_override=0)
