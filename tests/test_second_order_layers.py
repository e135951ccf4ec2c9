"""Second derivatives through every layer op: conv2d, pooling, batch norm, dropout.

Each op's derivative is itself made of ops (conv2d's input and weight
gradients, the pools' scatter and gather, batch norm's closed form), so
``mg.gradgradcheck`` compares the recorded backward of the first derivative
with central differences of it, in float64. A Hessian-vector product through a
whole CNN is then compared with PyTorch's.
"""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F


def leaf(rng, *shape):
    return mg.tensor(rng.normal(size=shape), requires_grad=True, dtype=np.float64)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((2, 1), (0, 2))])
def test_second_derivatives_of_conv2d(stride, padding, rng):
    x, weight, bias = leaf(rng, 2, 2, 5, 6), leaf(rng, 3, 2, 3, 2), leaf(rng, 3)
    assert mg.gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), [x, weight, bias])


def test_third_derivatives_of_conv2d_stay_within_its_three_ops(rng):
    """The gradient ops' own derivatives are conv2d and each other: check one more order."""
    x, weight = leaf(rng, 1, 2, 4, 4), leaf(rng, 2, 2, 3, 3)

    def first_derivative_of_the_square(x, weight):
        (grad_x,) = mg.grad((F.conv2d(x, weight, padding=1) ** 2).sum(), x, create_graph=True)
        return grad_x

    assert mg.gradgradcheck(first_derivative_of_the_square, [x, weight])


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 0)],
                         ids=["2x2", "3x3_stride2_padded", "3x3_overlapping"])
def test_second_derivatives_of_max_pool2d(kernel, stride, padding, rng):
    # distinct values, so that no window has a tie (max is not differentiable at ties)
    x = mg.tensor(rng.permutation(2 * 2 * 6 * 6).reshape(2, 2, 6, 6) / 50.0, requires_grad=True,
                  dtype=np.float64)
    assert mg.gradgradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding) ** 2, [x])


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1)])
def test_second_derivatives_of_avg_pool2d(kernel, stride, padding, rng):
    assert mg.gradgradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding) ** 2, [leaf(rng, 2, 2, 5, 5)])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 3, 4)], ids=["NC", "NCL", "NCHW"])
@pytest.mark.parametrize("affine", [True, False])
def test_second_derivatives_of_batch_norm_in_training(shape, affine, rng):
    x = leaf(rng, *shape)
    weight, bias = (leaf(rng, shape[1]), leaf(rng, shape[1])) if affine else (None, None)
    inputs = [x, weight, bias] if affine else [x]

    def normalize(x, weight=None, bias=None):
        return F.batch_norm(x, None, None, weight, bias, training=True) ** 2

    assert mg.gradgradcheck(normalize, inputs)


def test_second_derivatives_of_batch_norm_in_eval(rng):
    x, weight, bias = leaf(rng, 3, 2, 3, 3), leaf(rng, 2), leaf(rng, 2)
    running_mean, running_var = rng.normal(size=2), rng.uniform(0.5, 2.0, size=2)
    assert mg.gradgradcheck(
        lambda x, w, b: F.batch_norm(x, running_mean, running_var, w, b, training=False) ** 2, [x, weight, bias])


def test_second_derivatives_of_dropout(rng):
    def dropout(x):
        mg.manual_seed(7)  # the same mask in every evaluation of the check
        return F.dropout(x, 0.4) ** 2

    assert mg.gradgradcheck(dropout, [leaf(rng, 4, 5)])


def test_first_order_gradients_carry_no_graph(rng):
    """The ordinary backward runs the same derivatives without recording them."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    image = mg.tensor(rng.normal(size=(2, 1, 6, 6)).astype(np.float32), requires_grad=True)
    model(image).sum().backward()
    for value in [image] + list(model.parameters()):
        assert value.grad is not None and not value.grad.requires_grad and value.grad.is_leaf


def _cnn_pair(seed):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).double()
    ours = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    ours.to(np.float64)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


def test_hessian_vector_product_of_a_cnn_matches_pytorch():
    """H v for conv -> batch norm (training) -> ReLU -> max-pool -> linear -> cross-entropy."""
    ours, theirs = _cnn_pair(seed=5)
    rng = np.random.default_rng(6)
    images, labels = rng.normal(size=(4, 1, 8, 8)), rng.integers(0, 5, size=4)
    vectors = [rng.normal(size=p.shape) for p in ours.parameters()]

    params = list(ours.parameters())
    grads = mg.grad(F.cross_entropy(ours(mg.tensor(images)), labels), params, create_graph=True)
    ours_hvp = mg.grad(sum((g * mg.tensor(v)).sum() for g, v in zip(grads, vectors)), params)

    theirs_params = list(theirs.parameters())
    theirs_loss = torch.nn.functional.cross_entropy(theirs(torch.tensor(images)), torch.tensor(labels))
    theirs_grads = torch.autograd.grad(theirs_loss, theirs_params, create_graph=True)
    theirs_hvp = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(theirs_grads, vectors)),
                                     theirs_params)

    for (name, _), ours_value, theirs_value in zip(ours.named_parameters(), ours_hvp, theirs_hvp):
        np.testing.assert_allclose(ours_value.numpy(), theirs_value.numpy(), rtol=1e-8, atol=1e-8, err_msg=name)
    assert max(np.abs(value.numpy()).max() for value in theirs_hvp) > 1e-2  # real curvature, not zeros


def test_sync_batch_norm_refuses_create_graph_by_name():
    class Synced(mg.nn.batchnorm.BatchNormFunction):
        def combine_gradient_sums(self, sum_dy, sum_dy_xhat):
            return sum_dy, sum_dy_xhat

    x = mg.tensor(np.random.default_rng(0).normal(size=(4, 2)), requires_grad=True)
    y = mg.nn.batchnorm._batch_norm(Synced, x, None, None, None, None, True, 0.1, 1e-5)
    with pytest.raises(RuntimeError, match="SyncBatchNorm: create_graph=True is not supported"):
        mg.grad((y ** 2).sum(), x, create_graph=True)
