"""Check for exercises/autograd_unbroadcast.py: parity with minigrad's autograd and PyTorch's sum_to_size."""
import numpy as np
import torch

import minigrad as mg
from exercises import autograd_unbroadcast as exercise
from exercises.checking import run

CASES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((4, 2, 3), (2, 1)), ((4, 2, 3), (1, 1, 1)),
         ((5, 1, 3), (4, 1)), ((2, 3), ())]


def check(unbroadcast):
    rng = np.random.default_rng(0)
    for output_shape, shape in CASES:
        output_shape = np.broadcast_shapes(output_shape, shape)
        grad = rng.standard_normal(output_shape)
        found = np.asarray(unbroadcast(grad.copy(), shape))
        assert found.shape == shape, f"unbroadcast to {shape} gave shape {found.shape}"
        expected = torch.tensor(grad).sum_to_size(shape).numpy() if shape else grad.sum()
        assert np.allclose(found, expected), f"unbroadcast of {output_shape} to {shape} differs from PyTorch"
        value = mg.tensor(np.ones(shape), requires_grad=True)
        (value + mg.tensor(np.zeros(output_shape))).backward(grad)
        assert np.allclose(found, value.grad.numpy()), f"unbroadcast to {shape} differs from minigrad's autograd"


def reference(grad, shape):
    """What minigrad's engine does: the gradient of an input broadcast by an addition."""
    value = mg.tensor(np.ones(shape), requires_grad=True)
    (value + mg.tensor(np.zeros(grad.shape))).backward(grad)
    return value.grad.numpy()


def wrong(grad, shape):
    """Sums the leading axes only: misses the size-1 axes that were stretched."""
    extra = grad.ndim - len(shape)
    return grad.sum(axis=tuple(range(extra))) if extra else grad


def test_exercise():
    run(check, exercise.unbroadcast)
