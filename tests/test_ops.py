"""Every differentiable op, checked against central differences in float64."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F


def leaf(rng, *shape, low=-1.0, high=1.0):
    return mg.tensor(rng.uniform(low, high, size=shape), requires_grad=True, dtype=np.float64)


UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: (a * a + 0.5).log(),
    "sqrt": lambda a: (a * a + 0.5).sqrt(),
    "abs": lambda a: a.abs(),
    "relu": F.relu,
    "leaky_relu": lambda a: F.leaky_relu(a, 0.1),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": lambda a: F.softmax(a, dim=-1),
    "softmax_axis0": lambda a: F.softmax(a, dim=0),
    "log_softmax": lambda a: F.log_softmax(a, dim=1),
    "pow_scalar": lambda a: (a * a + 0.5) ** 1.7,
    "sum": lambda a: a.sum(),
    "sum_axis_keepdims": lambda a: a.sum(axis=1, keepdims=True),
    "mean_axes": lambda a: a.mean(axis=(0, 2)),
    "max": lambda a: a.max(),
    "max_axis": lambda a: a.max(axis=1).values,
    "amax_axis": lambda a: a.amax(axis=1),
    "max_axis_keepdims": lambda a: a.max(axis=-1, keepdims=True).values,
    "reshape": lambda a: a.reshape(4, -1),
    "permute": lambda a: a.permute(2, 0, 1),
    "transpose": lambda a: a.transpose(0, 2),
    "T": lambda a: a.T,
    "flatten": lambda a: a.flatten(1),
    "getitem_slice": lambda a: a[1:, ::2, 0],
    "getitem_integer_array_repeats": lambda a: a[np.array([0, 1, 0, 1])],
    "getitem_tensor_index": lambda a: a[mg.tensor(np.array([1, 1]), dtype=np.int64), 2],
    "dropout_eval": lambda a: F.dropout(a, 0.3, training=False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_central_differences(name, rng):
    assert mg.gradcheck(UNARY[name], [leaf(rng, 2, 3, 4)])


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow_tensor": lambda a, b: (a * a + 0.5) ** b,
    "rsub_scalar": lambda a, b: 2.0 - a * b,
    "rdiv_scalar": lambda a, b: 1.0 / (a * a + b * b + 0.5),
    "cat": lambda a, b: mg.cat([a, b], axis=1),
    "stack": lambda a, b: mg.stack([a, b], axis=0),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_match_central_differences(name, rng):
    assert mg.gradcheck(BINARY[name], [leaf(rng, 3, 4), leaf(rng, 3, 4)])


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)),
                                              ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,)),
                                              ((4,), (2, 4, 3))])
def test_matmul_batched_and_vector_shapes(shape_a, shape_b, rng):
    assert mg.gradcheck(lambda a, b: a @ b, [leaf(rng, *shape_a), leaf(rng, *shape_b)])


def test_linear_and_mse(rng):
    x, w, b = leaf(rng, 5, 3), leaf(rng, 4, 3), leaf(rng, 4)
    assert mg.gradcheck(F.linear, [x, w, b])
    assert mg.gradcheck(lambda x, w: F.linear(x, w), [leaf(rng, 2, 5, 3), w])
    target = mg.tensor(rng.normal(size=(5, 4)), dtype=np.float64)
    assert mg.gradcheck(lambda x, w, b: F.mse_loss(F.linear(x, w, b), target), [x, w, b])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction, rng):
    target = np.array([0, 3, 1, 3, 2])
    assert mg.gradcheck(lambda z: F.cross_entropy(z, target, reduction=reduction), [leaf(rng, 5, 4, low=-3, high=3)])


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((2, 1), (0, 2))])
def test_conv2d(stride, padding, rng):
    x, w, b = leaf(rng, 2, 3, 7, 6), leaf(rng, 4, 3, 3, 2), leaf(rng, 4)
    assert mg.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), [x, w, b])


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, 0)])
def test_pooling(kernel, stride, padding, rng):
    # distinct values so that the maximum of each window is unique (no ties)
    x = mg.tensor(rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0, requires_grad=True, dtype=np.float64)
    assert mg.gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), [x])
    assert mg.gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding), [x])


def test_dropout_gradient_uses_the_same_mask(rng):
    x = leaf(rng, 50, 40)
    mg.manual_seed(3)
    y = F.dropout(x, 0.25)
    y.sum().backward()
    kept = y.data != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(x.grad.data[kept], 1 / 0.75)
    np.testing.assert_array_equal(x.grad.data[~kept], 0)


# ----- PyTorch's argument names, with NumPy's accepted as aliases ----------------------
def test_dim_and_keepdim_are_the_names_and_axis_and_keepdims_their_aliases(rng):
    a = mg.tensor(rng.normal(size=(2, 3, 4)))
    for method in ("sum", "mean", "amax", "max"):
        values = (lambda result: result.values) if method == "max" else (lambda result: result)
        by_torch_name = values(getattr(a, method)(dim=1, keepdim=True)).numpy()
        by_numpy_name = values(getattr(a, method)(axis=1, keepdims=True)).numpy()
        positional = values(getattr(a, method)(1, True)).numpy()
        expected = getattr(a.numpy(), method.lstrip("a"))(axis=1, keepdims=True)
        for value in (by_torch_name, by_numpy_name, positional):
            np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(a.sum(dim=(0, 2)).numpy(), a.numpy().sum(axis=(0, 2)))
    np.testing.assert_array_equal(a.sum(dim=[0, 2]).numpy(), a.numpy().sum(axis=(0, 2)))
    np.testing.assert_array_equal(a.argmax(dim=2).numpy(), a.numpy().argmax(axis=2))
    np.testing.assert_array_equal(a.argmax(axis=2, keepdims=True).numpy(), a.numpy().argmax(axis=2, keepdims=True))
    np.testing.assert_allclose(a.softmax(dim=0).numpy(), a.softmax(axis=0).numpy())
    np.testing.assert_array_equal(mg.cat([a, a], dim=2).shape, (2, 3, 8))
    np.testing.assert_array_equal(mg.stack([a, a], axis=1).shape, (2, 2, 3, 4))


def test_a_dim_given_twice_is_an_error():
    a = mg.tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="sum: got both dim=0 and its alias axis=1"):
        a.sum(0, axis=1)
    with pytest.raises(TypeError, match="cat: got both dim=1 and its alias axis=0"):
        mg.cat([a, a], dim=1, axis=0)
