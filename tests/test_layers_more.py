"""LayerNorm, GroupNorm, Embedding, GELU, SiLU, Softmax, LogSoftmax, Identity, and BatchNorm's
affine/bias options and empty batches: against PyTorch (same weights, same inputs) and central
differences, first and second derivatives, in float64."""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn.functional as F


def leaf(rng, *shape):
    return mg.tensor(rng.normal(size=shape), requires_grad=True, dtype=np.float64)


def _copy_weights(ours, theirs):
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    ours.to(dtype=np.float64)


def _layer_matches_torch(ours, theirs, x):
    """Same output, and same gradients for the input and every parameter, for a random weighting."""
    theirs = theirs.double()
    _copy_weights(ours, theirs)
    theirs_x = torch.tensor(x.numpy(), requires_grad=x.dtype.kind == "f")
    our_out, their_out = ours(x), theirs(theirs_x)
    np.testing.assert_allclose(our_out.numpy(), their_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = np.random.default_rng(3).normal(size=our_out.shape)
    (our_out * mg.tensor(weights)).sum().backward()
    (their_out * torch.tensor(weights)).sum().backward()
    if theirs_x.requires_grad:
        np.testing.assert_allclose(x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (name, ours_p), (_, theirs_p) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(ours_p.grad.numpy(), theirs_p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("make", [
    lambda nn: nn.LayerNorm(5), lambda nn: nn.LayerNorm((3, 5), eps=1e-3), lambda nn: nn.LayerNorm(5, bias=False),
    lambda nn: nn.LayerNorm(5, elementwise_affine=False), lambda nn: nn.GroupNorm(2, 4),
    lambda nn: nn.GroupNorm(4, 4, affine=False), lambda nn: nn.GroupNorm(1, 4, bias=False),
    lambda nn: nn.GELU(), lambda nn: nn.GELU(approximate="tanh"), lambda nn: nn.SiLU(),
    lambda nn: nn.Softmax(dim=1), lambda nn: nn.LogSoftmax(dim=-1), lambda nn: nn.Softmax(),
    lambda nn: nn.Identity(54, unused=1)])
def test_layers_match_pytorch(rng, make):
    ours, theirs = make(mg.nn), make(torch.nn)
    if isinstance(ours, mg.nn.Module) and ours.parameters():
        for parameter in theirs.parameters():  # not the initial ones and zeros: real weights
            parameter.data.normal_()
    _layer_matches_torch(ours, theirs, leaf(rng, 2, 4, 3, 5))


@pytest.mark.parametrize("fn", [
    lambda x, w, b: F.layer_norm(x, (3, 5), w, b, eps=1e-3),
    lambda x, w, b: F.group_norm(x.reshape(2, 3, 5), 3, w.reshape(-1)[:3], b.reshape(-1)[:3]),
    lambda x, w, b: F.gelu(x) * w, lambda x, w, b: F.gelu(x, approximate="tanh") + b, lambda x, w, b: F.silu(x * w),
    lambda x, w, b: F.embedding(mg.tensor(np.array([[0, 2], [2, 1]])), x[0]) * w[:2]])
def test_first_and_second_derivatives(rng, fn):
    inputs = [leaf(rng, 2, 3, 5), leaf(rng, 3, 5), leaf(rng, 3, 5)]
    assert mg.gradcheck(fn, inputs)
    assert mg.gradgradcheck(fn, inputs)


def test_embedding_padding_idx_gets_no_gradient_and_max_norm_renormalizes(rng):
    ours, theirs = mg.nn.Embedding(6, 4, padding_idx=2), torch.nn.Embedding(6, 4, padding_idx=2)
    np.testing.assert_array_equal(ours.weight.numpy()[2], 0)  # the padding row starts at zero
    indices = np.array([[0, 2, 5], [2, 2, 1]])
    _layer_matches_torch(ours, theirs, mg.tensor(indices))
    np.testing.assert_array_equal(ours.weight.grad.numpy()[2], 0)
    assert ours.weight.grad.numpy()[0].any()
    ours, theirs = mg.nn.Embedding(5, 3, max_norm=1.0), torch.nn.Embedding(5, 3, max_norm=1.0)
    theirs.weight.data.mul_(3)
    _layer_matches_torch(ours, theirs, mg.tensor(np.array([1, 3, 3])))
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-10)
    with pytest.raises(IndexError, match="embedding"):
        ours(mg.tensor(np.array([5])))


@pytest.mark.parametrize("options", [dict(affine=False), dict(bias=False), dict(affine=False, bias=True),
                                     dict(track_running_stats=False), dict(momentum=None)])
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                        ("BatchNorm2d", (2, 3, 4, 4))])
def test_batch_norm_parameters_as_pytorch(rng, cls, shape, options):
    ours, theirs = getattr(mg.nn, cls)(3, **options), getattr(torch.nn, cls)(3, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        _layer_matches_torch(ours, theirs, leaf(rng, *shape))
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-10)


def test_batch_norm_of_an_empty_batch(rng):
    for cls, shape in (("BatchNorm1d", (0, 3)), ("BatchNorm1d", (0, 3, 4)), ("BatchNorm2d", (0, 3, 2, 2))):
        ours, theirs = getattr(mg.nn, cls)(3), getattr(torch.nn, cls)(3).double()
        x = mg.tensor(np.zeros(shape), requires_grad=True)
        y, their_y = ours(x), theirs(torch.zeros(shape, dtype=torch.float64))
        assert y.shape == tuple(their_y.shape) == shape
        y.sum().backward()
        np.testing.assert_array_equal(ours.weight.grad.numpy(), 0)
        for key, value in theirs.state_dict().items():  # running stats untouched, the count moved
            np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy(), err_msg=key)
        assert ours.num_batches_tracked.item() == 1


def test_batch_norm_1d_takes_c_l_as_n_c_and_rejects_1d_input_as_pytorch():
    layer = mg.nn.BatchNorm1d(3)
    assert layer(mg.tensor(np.random.default_rng(0).normal(size=(5, 3)))).shape == (5, 3)  # (N, C)
    with pytest.raises(ValueError, match="input has 5 channels"):
        layer(mg.tensor(np.zeros((3, 5))))  # (C, L) is read as (N=3, C=5), as PyTorch does
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        layer(mg.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(mg.tensor(np.zeros((1, 3))))
