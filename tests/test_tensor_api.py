"""PyTorch's tensor API in minigrad: each op checked against central differences (first and second
derivatives, float64) and against PyTorch, and the edge cases PyTorch defines."""
import numpy as np
import pytest
import torch

import minigrad as mg


def leaf(rng, *shape):
    return mg.tensor(rng.uniform(-1, 1, size=shape), requires_grad=True, dtype=np.float64)


INDEX = np.array([[0, 2, 1, 2], [3, 0, 0, 1]])

OPS = {
    "where": lambda a, b: mg.where(a.data > 0, a, b * b),
    "where_number": lambda a, b: mg.where(b.data > 0, a, 0.5),
    "clamp_numbers": lambda a, b: a.clamp(-0.4, 0.3),
    "clamp_min_only": lambda a, b: a.clamp(min=-0.2),
    "clamp_tensors": lambda a, b: a.clamp(b * 0.5, b * 0.5 + 0.4),
    "maximum": lambda a, b: mg.maximum(a, b),
    "minimum": lambda a, b: mg.minimum(a, b * 2),
    "max_dim_values": lambda a, b: a.max(dim=1).values * b.sum(),
    "min_dim_keepdim": lambda a, b: a.min(0, keepdim=True)[0] + b,
    "max_all": lambda a, b: a.max() * b,
    "min_all": lambda a, b: a.min() * b,
    "gather": lambda a, b: a.gather(1, mg.tensor(INDEX[:, :3] % 4)) * b[:, :3],
    "masked_fill_number": lambda a, b: a.masked_fill(b.data > 0, 0.25) * a,
    "masked_fill_tensor": lambda a, b: a.masked_fill(b.data > 0, b.sum()),
    "expand": lambda a, b: a[:1].expand(3, 2, 4) * b,
    "expand_minus_one": lambda a, b: a.unsqueeze(0).expand(2, -1, -1) * b,
    "repeat": lambda a, b: a.repeat(2, 1, 3) * a.repeat(2, 1, 3),
    "chunk": lambda a, b: a.chunk(3, dim=1)[1] * b.chunk(3, dim=1)[0],
    "split_sizes": lambda a, b: a.split([1, 3], dim=1)[1] * a.split([1, 3], dim=1)[1],
    "squeeze_unsqueeze": lambda a, b: (a.unsqueeze(1) * b.unsqueeze(-1)).squeeze(1),
    "add_alpha": lambda a, b: a.add(b * b, alpha=-2.5),
    "sub_alpha": lambda a, b: a.sub(b * a, alpha=0.5),
    "div_floor": lambda a, b: a.div(b + 3.0, rounding_mode="floor") + a * b,
    "div_trunc": lambda a, b: (a * 3).div(b + 3.0, rounding_mode="trunc") + a,
    "softmax_dtype": lambda a, b: (a * b).softmax(1, dtype=np.float64),
    "log_softmax_dtype": lambda a, b: (a * b).log_softmax(dim=0, dtype=np.float64),
    "log1p": lambda a, b: (a * b + 1.5).log1p(),
    "logsigmoid": lambda a, b: mg.functional.logsigmoid(a * 30) * b,
    "amin": lambda a, b: a.amin(dim=1) * b.sum(),
    "view_as": lambda a, b: a.view_as(b.T) * b.T,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_first_and_second_derivatives_match_central_differences(name, rng):
    a, b = leaf(rng, 2, 4), leaf(rng, 2, 4)
    if name == "expand":
        a, b = leaf(rng, 1, 2, 4), leaf(rng, 3, 2, 4)
    if name == "repeat":
        a = leaf(rng, 2, 4)
    assert mg.gradcheck(OPS[name], [a, b])
    assert mg.gradgradcheck(OPS[name], [a, b])


def test_max_and_min_with_dim_return_values_and_indices_as_pytorch(rng):
    values = rng.integers(0, 3, size=(3, 4, 5)).astype(np.float64)  # ties, so the index rule matters
    ours, theirs = mg.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    for op in ("max", "min"):
        for dim, keepdim in ((1, False), (-1, True), (0, False)):
            our_result = getattr(ours, op)(dim, keepdim=keepdim)
            their_result = getattr(theirs, op)(dim, keepdim=keepdim)
            np.testing.assert_array_equal(our_result.values.numpy(), their_result.values.detach().numpy())
            np.testing.assert_array_equal(our_result.indices.numpy(), their_result.indices.numpy())
            our_values, our_indices = our_result  # unpacks like PyTorch's
            assert our_indices.dtype == np.int64
            weights = rng.normal(size=our_values.shape)
            (our_values * mg.tensor(weights)).sum().backward()
            (their_result.values * torch.tensor(weights)).sum().backward()
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)  # to the index only
            ours.grad, theirs.grad = None, None


def test_argmax_argmin_keepdim_and_no_dim(rng):
    values = rng.integers(0, 4, size=(3, 4)).astype(np.float64)
    for op in ("argmax", "argmin"):
        for kwargs in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": None, "keepdim": True}):
            ours = getattr(mg.tensor(values), op)(**kwargs).numpy()
            theirs = getattr(torch.tensor(values), op)(**kwargs).numpy()
            np.testing.assert_array_equal(ours, theirs)
            assert ours.shape == theirs.shape


def test_max_against_another_tensor_is_maximum():
    a, b = mg.tensor([1.0, 5.0, 2.0]), mg.tensor([3.0, 4.0, 2.0])
    np.testing.assert_array_equal(a.max(b).numpy(), [3.0, 5.0, 2.0])
    np.testing.assert_array_equal(a.min(b).numpy(), [1.0, 4.0, 2.0])


def test_ties_and_nans_share_the_gradient_as_pytorch():
    values_a, values_b = [1.0, 2.0, np.nan, 3.0], [1.0, 3.0, 1.0, np.nan]
    for op in ("maximum", "minimum"):
        ours_a, ours_b = (mg.tensor(v, requires_grad=True, dtype=np.float64) for v in (values_a, values_b))
        theirs_a, theirs_b = (torch.tensor(v, requires_grad=True, dtype=torch.float64) for v in (values_a, values_b))
        getattr(mg, op)(ours_a, ours_b).sum().backward()
        getattr(torch, op)(theirs_a, theirs_b).sum().backward()
        np.testing.assert_array_equal(ours_a.grad.numpy(), theirs_a.grad.numpy())
        np.testing.assert_array_equal(ours_b.grad.numpy(), theirs_b.grad.numpy())


def test_clamp_gradient_goes_where_pytorch_sends_it():
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 2.0]
    low, high = [1.0, 1.0, 1.0, 3.5, 5.0, 3.0], [3.0, 3.0, 1.5, 3.0, 3.0, 3.0]  # ties and low > high
    ours = [mg.tensor(v, requires_grad=True, dtype=np.float64) for v in (x, low, high)]
    theirs = [torch.tensor(v, requires_grad=True, dtype=torch.float64) for v in (x, low, high)]
    ours[0].clamp(ours[1], ours[2]).sum().backward()
    theirs[0].clamp(theirs[1], theirs[2]).sum().backward()
    for our_value, their_value in zip(ours, theirs):
        np.testing.assert_array_equal(our_value.grad.numpy(), their_value.grad.numpy())


def test_div_rounding_modes_match_pytorch(rng):
    a, b = rng.normal(size=20) * 7, rng.normal(size=20) * 2
    for mode in ("trunc", "floor"):
        np.testing.assert_array_equal(mg.tensor(a).div(mg.tensor(b), rounding_mode=mode).numpy(),
                                      torch.tensor(a).div(torch.tensor(b), rounding_mode=mode).numpy())
    integers = np.array([7, -7, 7, -7]), np.array([2, 2, -2, -2])
    np.testing.assert_array_equal(mg.tensor(integers[0]).div(mg.tensor(integers[1]), rounding_mode="trunc").numpy(),
                                  [3, -3, -3, 3])
    with pytest.raises(ValueError, match="rounding_mode"):
        mg.tensor(a).div(2.0, rounding_mode="round")


def test_gather_split_chunk_repeat_expand_match_pytorch(rng):
    values = rng.normal(size=(3, 5, 2))
    ours, theirs = mg.tensor(values), torch.tensor(values)
    index = rng.integers(0, 5, size=(2, 4, 2))
    np.testing.assert_array_equal(ours.gather(1, mg.tensor(index)).numpy(),
                                  theirs.gather(1, torch.tensor(index)).numpy())
    for pieces_ours, pieces_theirs in ((ours.chunk(2, 1), theirs.chunk(2, 1)), (ours.split(2, 1), theirs.split(2, 1)),
                                       (ours.split([1, 4], 1), theirs.split([1, 4], 1)),
                                       (ours.chunk(4, 0), theirs.chunk(4, 0))):
        assert [p.shape for p in pieces_ours] == [tuple(p.shape) for p in pieces_theirs]
    np.testing.assert_array_equal(ours.repeat(2, 1, 1, 3).numpy(), theirs.repeat(2, 1, 1, 3).numpy())
    np.testing.assert_array_equal(ours[:, :1].expand(2, -1, 4, -1).numpy(), theirs[:, :1].expand(2, -1, 4, -1).numpy())
    assert ours.unsqueeze(-1).shape == tuple(theirs.unsqueeze(-1).shape)
    assert ours[:1].squeeze(0).shape == (5, 2) and ours.squeeze(1).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="expand"):
        ours.expand(3, 4, 2)
    with pytest.raises(IndexError, match="gather"):
        ours.gather(1, mg.tensor(np.full((3, 1, 2), 5)))


# ----- the edge cases PyTorch defines ------------------------------------------------------------
def test_a_0d_tensor_reduced_over_dim_0_or_minus_1_forward_and_backward():
    for op in ("sum", "mean", "amax"):
        for dim in (0, -1, (0,)):
            ours, theirs = mg.tensor(2.5, requires_grad=True), torch.tensor(2.5, requires_grad=True)
            our_value, their_value = getattr(ours, op)(dim=dim), getattr(theirs, op)(dim=dim)
            assert our_value.shape == tuple(their_value.shape) == ()
            our_value.backward()
            their_value.backward()
            assert ours.grad.item() == theirs.grad.item() == 1.0
        with pytest.raises(IndexError):
            getattr(mg.tensor(2.5), op)(dim=1)
    values, indices = mg.tensor(2.5).max(0)
    assert values.item() == 2.5 and indices.item() == 0 and mg.tensor(2.5).argmax(0).item() == 0


def test_flatten_and_transpose_of_a_0d_tensor():
    scalar = mg.tensor(3.0, requires_grad=True)
    assert scalar.flatten().shape == (1,) == tuple(torch.tensor(3.0).flatten().shape)
    assert scalar.transpose(0, 0).shape == () and scalar.transpose(-1, 0).shape == ()
    scalar.flatten().sum().backward()
    assert scalar.grad.item() == 1.0


def test_cat_with_a_legacy_empty_1d_tensor():
    a = mg.tensor(np.ones((2, 3)), requires_grad=True)
    joined = mg.cat([a, mg.tensor(np.zeros(0))], dim=1)
    assert joined.shape == tuple(torch.cat([torch.ones(2, 3), torch.zeros(0)], dim=1).shape) == (2, 3)
    joined.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_a_zero_length_dim(op):
    for shape, dim in (((5, 0, 0), -1), ((0, 3), 0), ((2, 0), 1)):
        x = mg.tensor(np.zeros(shape), requires_grad=True)
        y = getattr(x, op)(dim)
        assert y.shape == tuple(getattr(torch.zeros(shape), op)(dim).shape)
        y.sum().backward()
        assert x.grad.shape == shape


def test_softmax_of_a_0d_tensor_is_one():
    assert mg.tensor(4.0).softmax(0).item() == 1.0 and mg.tensor(4.0).log_softmax(0).item() == 0.0
