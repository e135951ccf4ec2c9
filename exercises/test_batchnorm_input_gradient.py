"""Check for exercises/batchnorm_input_gradient.py: gradient check, then parity with minigrad and PyTorch."""
import numpy as np
import torch

import minigrad as mg
from exercises import batchnorm_input_gradient as exercise
from exercises.checking import run


def check(input_gradient):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -1.0]
    grad_output = rng.standard_normal((6, 3))
    weight = np.array([1.5, -0.5, 2.0])
    found = np.asarray(input_gradient(x.copy(), grad_output.copy(), weight.copy(), eps=1e-5))
    assert found.shape == x.shape, f"expected shape {x.shape}, got {found.shape}"

    # central differences of sum(g * y) with respect to x
    def forward(values):
        mean = values.mean(axis=0)
        xhat = (values - mean) / np.sqrt(values.var(axis=0) + 1e-5)
        return float((grad_output * weight * xhat).sum())
    numerical = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numerical[index] = (forward(x + step) - forward(x - step)) / 2e-6
    assert np.allclose(found, numerical, atol=1e-6), "differs from central differences"

    inputs = mg.tensor(x, requires_grad=True)
    mg.functional.batch_norm(inputs, None, None, mg.tensor(weight), training=True, eps=1e-5).backward(grad_output)
    assert np.allclose(found, inputs.grad.numpy(), atol=1e-10), "differs from minigrad's backward"

    inputs = torch.tensor(x, requires_grad=True)
    torch.nn.functional.batch_norm(inputs, None, None, torch.tensor(weight), training=True,
                                   eps=1e-5).backward(torch.tensor(grad_output))
    assert np.allclose(found, inputs.grad.numpy(), atol=1e-10), "differs from PyTorch's backward"


def reference(x, grad_output, weight, eps=1e-5):
    """minigrad's own closed form (minigrad/nn/batchnorm.py)."""
    from minigrad.nn import batchnorm
    count, mean, m2 = batchnorm.batch_statistics(x)
    invstd = 1 / np.sqrt(m2 / count + eps)
    sum_dy, sum_dy_xhat = batchnorm.gradient_sums(grad_output, x, mean, invstd)
    return batchnorm.input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count[0], True)


def wrong(x, grad_output, weight, eps=1e-5):
    """A common slip: treats μ and σ as constants, so only γ / σ · g is left."""
    return weight / np.sqrt(x.var(axis=0) + eps) * grad_output


def test_exercise():
    run(check, exercise.input_gradient)
