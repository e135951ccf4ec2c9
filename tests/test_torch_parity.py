"""The same weights and inputs give PyTorch's outputs and gradients."""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F


def mlp_pair():
    ours = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 5))
    theirs = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12),
                                 torch.nn.Tanh(), torch.nn.Linear(12, 5))
    return ours, theirs, (8, 20)


def cnn_pair():
    ours = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, stride=2), nn.LeakyReLU(0.1), nn.AvgPool2d(2, stride=1),
                         nn.Flatten(), nn.Linear(6, 5))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.LeakyReLU(0.1),
                                 torch.nn.AvgPool2d(2, stride=1), torch.nn.Flatten(), torch.nn.Linear(6, 5))
    return ours, theirs, (3, 2, 11, 11)


@pytest.mark.parametrize("make", [mlp_pair, cnn_pair])
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 1e-5, 1e-6), (np.float64, 1e-10, 1e-12)])
def test_forward_and_every_gradient_match_pytorch(make, dtype, rtol, atol):
    ours, theirs, input_shape = make()
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.to(dtype)
    # weights flow from PyTorch's state_dict, converted to NumPy: the documented interop path
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    rng = np.random.default_rng(7)
    x = rng.normal(size=input_shape).astype(dtype)
    labels = rng.integers(0, 5, size=input_shape[0])

    loss = F.cross_entropy(ours(mg.tensor(x)), labels)
    loss.backward()
    torch_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(labels))
    torch_loss.backward()

    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=rtol)
    torch_params = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        assert parameter.grad.dtype == dtype
        np.testing.assert_allclose(parameter.grad.numpy(), torch_params[name].grad.numpy(),
                                   rtol=rtol, atol=atol, err_msg=name)


def test_default_initialisation_has_pytorchs_bounds():
    layer = nn.Linear(400, 30)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.9 * bound  # uses the whole range
    assert np.abs(layer.bias.numpy()).max() <= bound
    conv = nn.Conv2d(3, 8, 5)
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(3 * 25)


def test_manual_seed_makes_initialisation_reproducible():
    mg.manual_seed(11)
    first = nn.Linear(5, 3).weight.numpy()
    mg.manual_seed(11)
    np.testing.assert_array_equal(first, nn.Linear(5, 3).weight.numpy())
    assert not np.array_equal(first, nn.Linear(5, 3).weight.numpy())


@pytest.mark.parametrize("op, torch_op", [
    (lambda t: F.softmax(t, dim=1), lambda t: torch.softmax(t, dim=1)),
    (lambda t: F.log_softmax(t, dim=1), lambda t: torch.log_softmax(t, dim=1)),
    (lambda t: F.sigmoid(t), torch.sigmoid),
])
def test_stable_for_large_inputs(op, torch_op):
    x = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 3.0]], dtype=np.float32)
    ours = op(mg.tensor(x)).numpy()
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, torch_op(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)
