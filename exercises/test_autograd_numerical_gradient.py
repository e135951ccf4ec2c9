"""Check for exercises/autograd_numerical_gradient.py: against minigrad's and PyTorch's backward."""
import numpy as np
import torch

import minigrad as mg
from exercises import autograd_numerical_gradient as exercise
from exercises.checking import run


def check(numerical_gradient):
    x = np.random.default_rng(0).standard_normal((3, 4))
    weights = np.random.default_rng(1).standard_normal((4, 2))

    def f(values):
        return float((np.tanh(values @ weights) ** 2).sum())
    found = np.asarray(numerical_gradient(f, x.copy()))
    assert found.shape == x.shape, f"expected shape {x.shape}, got {found.shape}"
    inputs = mg.tensor(x, requires_grad=True)
    ((inputs @ mg.tensor(weights)).tanh() ** 2).sum().backward()
    assert np.allclose(found, inputs.grad.numpy(), atol=1e-6), "differs from minigrad's backward"
    reference_input = torch.tensor(x, requires_grad=True)
    (torch.tanh(reference_input @ torch.tensor(weights)) ** 2).sum().backward()
    assert np.allclose(found, reference_input.grad.numpy(), atol=1e-6), "differs from PyTorch's backward"
    before = x.copy()
    numerical_gradient(f, x)
    assert np.array_equal(x, before), "x must be left as it was"


def reference(f, x, h=1e-6):
    """minigrad's own central differences (minigrad/gradcheck.py)."""
    from minigrad.gradcheck import numerical_grad
    return numerical_grad(lambda value: mg.tensor(np.array(f(value.numpy()))), [mg.tensor(x)], 0, 1.0, h)


def wrong(f, x, h=1e-6):
    """A one-sided difference that forgets to put the entry back."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        base = f(x)
        x[index] += h
        grad[index] = (f(x) - base) / h
    return grad


def test_exercise():
    run(check, exercise.numerical_gradient)
