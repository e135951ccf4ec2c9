"""Check for exercises/autograd_chain_rule.py: against minigrad's and PyTorch's autograd and central differences."""
import math

import numpy as np
import torch

import minigrad as mg
from exercises import autograd_chain_rule as exercise
from exercises.checking import run

POINTS = (-3.0, -0.5, 0.0, 0.7, 2.5)


def check(value_and_derivative):
    for x in POINTS:
        value, derivative = value_and_derivative(x)
        tensor = mg.tensor(np.array(x), requires_grad=True)
        output = tensor * tensor * (tensor.exp() + 1).log()
        output.backward()
        assert math.isclose(value, float(output.item()), rel_tol=1e-9, abs_tol=1e-12), f"f({x}) is wrong"
        assert math.isclose(derivative, float(tensor.grad.item()), rel_tol=1e-9, abs_tol=1e-12), \
            f"f'({x}) differs from minigrad's autograd"
        reference = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (reference ** 2 * torch.nn.functional.softplus(reference)).backward()
        assert math.isclose(derivative, reference.grad.item(), rel_tol=1e-9, abs_tol=1e-12), \
            f"f'({x}) differs from PyTorch's autograd"
        step = 1e-6
        numerical = (value_and_derivative(x + step)[0] - value_and_derivative(x - step)[0]) / (2 * step)
        assert math.isclose(derivative, numerical, rel_tol=1e-5, abs_tol=1e-7), f"f'({x}) differs from central differences"


def reference(x):
    """minigrad's autograd computes it."""
    tensor = mg.tensor(np.array(x), requires_grad=True)
    output = tensor * tensor * (tensor.exp() + 1).log()
    output.backward()
    return float(output.item()), float(tensor.grad.item())


def wrong(x):
    """Product rule forgotten: only the derivative of x², times softplus."""
    softplus = math.log1p(math.exp(x))
    return x * x * softplus, 2 * x * softplus


def test_exercise():
    run(check, exercise.value_and_derivative)
