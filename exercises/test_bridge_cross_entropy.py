"""Check for exercises/bridge_cross_entropy.py: parity with minigrad's and PyTorch's cross_entropy."""
import numpy as np
import torch

import minigrad as mg
from exercises import bridge_cross_entropy as exercise
from exercises.checking import run


def check(cross_entropy_with_gradient):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4)) * 3
    logits[0] += 800.0  # a naive exp overflows here
    targets = np.array([0, 3, 1, 1, 2])
    loss, gradient = cross_entropy_with_gradient(logits.copy(), targets)
    gradient = np.asarray(gradient)
    reference_logits = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(reference_logits, torch.tensor(targets))
    expected.backward()
    assert np.isfinite(loss) and np.all(np.isfinite(gradient)), "not finite: subtract each row's maximum first"
    assert np.isclose(float(loss), expected.item(), rtol=1e-10), "loss differs from PyTorch's"
    assert np.allclose(gradient, reference_logits.grad.numpy(), atol=1e-12), "gradient differs from PyTorch's"
    inputs = mg.tensor(logits, requires_grad=True)
    mg.functional.cross_entropy(inputs, targets).backward()
    assert np.allclose(gradient, inputs.grad.numpy(), atol=1e-12), "gradient differs from minigrad's"


def reference(logits, targets):
    """minigrad's fused op (mg.functional.cross_entropy)."""
    inputs = mg.tensor(logits, requires_grad=True)
    loss = mg.functional.cross_entropy(inputs, targets)
    loss.backward()
    return float(loss.item()), inputs.grad.numpy()


def wrong(logits, targets):
    """Forgets the 1/N of the mean in the gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(targets))
    gradient = np.exp(log_probabilities)
    gradient[rows, targets] -= 1
    return float(-log_probabilities[rows, targets].mean()), gradient


def test_exercise():
    run(check, exercise.cross_entropy_with_gradient)
