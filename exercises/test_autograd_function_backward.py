"""Check for exercises/autograd_function_backward.py: mg.gradcheck on the op, parity with PyTorch."""
import types

import numpy as np
import torch

import minigrad as mg
from exercises import autograd_function_backward as exercise
from exercises.checking import run


def as_function(solution):
    """The student's forward and backward as a minigrad op."""
    class Tanh(mg.Function):
        def forward(self, x):
            self.x, self.y = x, solution.forward(x)
            return self.y

        def backward(self, grad):  # the incoming gradient may be an array or a Tensor
            if isinstance(grad, mg.Tensor):
                return mg.tensor(solution.backward(self.x, self.y, grad.data))
            return solution.backward(self.x, self.y, grad)
    return Tanh


def check(solution):
    x = np.random.default_rng(0).standard_normal((3, 4)) * 2
    y = np.asarray(solution.forward(x.copy()))
    assert np.allclose(y, torch.tanh(torch.tensor(x)).numpy(), atol=1e-12), "forward differs from PyTorch's tanh"
    inputs = mg.tensor(x, requires_grad=True)
    assert mg.gradcheck(as_function(solution).apply, [inputs]), "gradcheck"
    grad_output = np.random.default_rng(1).standard_normal(x.shape)
    reference_input = torch.tensor(x, requires_grad=True)
    torch.tanh(reference_input).backward(torch.tensor(grad_output))
    found = np.asarray(solution.backward(x, y, grad_output))
    assert np.allclose(found, reference_input.grad.numpy(), atol=1e-12), "backward differs from PyTorch's"


def _minigrad_tanh_backward(x, y, grad_output):
    with mg.enable_grad():  # an op's backward runs with graph building off
        inputs = mg.tensor(x, requires_grad=True)
        inputs.tanh().backward(grad_output)
    return inputs.grad.numpy()


reference = types.SimpleNamespace(forward=lambda x: mg.tensor(x).tanh().numpy(), backward=_minigrad_tanh_backward)
# The local derivative is 1 - y², not 1 - x².
wrong = types.SimpleNamespace(forward=np.tanh, backward=lambda x, y, grad_output: grad_output * (1 - x * x))


def test_exercise():
    run(check, exercise)
