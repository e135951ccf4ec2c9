"""Higher-order gradients: the backward pass is itself differentiable.

``backward(create_graph=True)`` and ``mg.grad(..., create_graph=True)`` build a
graph of the backward pass, so a gradient can be differentiated again:
second derivatives (checked against central differences of the analytic
gradient), Hessian-vector products and gradient penalties (checked against
PyTorch), and ``mg.grad`` leaves every ``.grad`` alone.
"""
import gc
import weakref

import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F


def leaf(rng, *shape, low=-1.0, high=1.0):
    return mg.tensor(rng.uniform(low, high, size=shape), requires_grad=True, dtype=np.float64)


# ----- second derivatives against central differences of the first ------------------
ELEMENTWISE = {
    "neg": lambda a: -a * a,
    "exp": lambda a: a.exp(),
    "log": lambda a: (a * a + 0.5).log(),
    "sqrt": lambda a: (a * a + 0.5).sqrt(),
    "abs": lambda a: a.abs() * a,
    "relu": lambda a: F.relu(a) * a,
    "leaky_relu": lambda a: F.leaky_relu(a, 0.1) ** 2,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "pow_scalar": lambda a: (a * a + 0.5) ** 1.7,
    "rpow_scalar": lambda a: 2.0 ** a,
    "rsub_rdiv": lambda a: 1.0 / (2.0 - a),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_second_derivatives_of_elementwise_ops(name, rng):
    assert mg.gradgradcheck(ELEMENTWISE[name], [leaf(rng, 2, 3)])


BINARY = {
    "add": lambda a, b: (a + b) ** 2,
    "sub": lambda a, b: (a - b) ** 3,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow_tensor": lambda a, b: (a * a + 0.5) ** b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shape_b", [(2, 3), (3,), (2, 1)], ids=["same", "broadcast_row", "broadcast_column"])
def test_second_derivatives_of_binary_ops_with_broadcasting(name, shape_b, rng):
    assert mg.gradgradcheck(BINARY[name], [leaf(rng, 2, 3), leaf(rng, *shape_b)])


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4, 2)), ((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)),
                                              ((2, 1, 3, 4), (2, 4, 2))])
def test_second_derivatives_of_matmul(shape_a, shape_b, rng):
    assert mg.gradgradcheck(lambda a, b: (a @ b) ** 2, [leaf(rng, *shape_a), leaf(rng, *shape_b)])


def test_second_derivatives_of_linear(rng):
    x, weight, bias = leaf(rng, 3, 4), leaf(rng, 2, 4), leaf(rng, 2)
    assert mg.gradgradcheck(lambda x, w, b: F.linear(x, w, b).tanh(), [x, weight, bias])
    assert mg.gradgradcheck(lambda x, w: F.linear(x, w) ** 2, [leaf(rng, 2, 2, 4), weight])


# Linear ops (sum, reshape, ...) have no second derivative of their own, so each
# is cubed: the check then runs their forward inside the first derivative and
# their backward, recorded, inside the second.
REDUCTIONS_AND_SHAPES = {
    "sum": lambda a: a.sum(),
    "sum_axis": lambda a: a.sum(axis=1),
    "sum_axis_keepdims": lambda a: a.sum(axis=-1, keepdims=True),
    "mean": lambda a: a.mean(),
    "mean_axes": lambda a: a.mean(axis=(0, 2)),
    "max": lambda a: a.max(),
    "max_axis": lambda a: a.max(axis=1).values,
    "amax_axis": lambda a: a.amax(axis=1),
    "max_axis_keepdims": lambda a: a.max(axis=0, keepdims=True).values,
    "reshape": lambda a: a.reshape(4, -1),
    "permute": lambda a: a.permute(2, 0, 1),
    "transpose": lambda a: a.transpose(0, 2),
    "getitem_slice": lambda a: a[1:, ::2, 0],
    "getitem_integer_array_repeats": lambda a: a[np.array([0, 1, 0, 1])],
    "cat": lambda a: mg.cat([a, a * 2.0], axis=-1),
    "stack": lambda a: mg.stack([a, a.exp()], axis=1),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS_AND_SHAPES))
def test_second_derivatives_of_reductions_and_shape_ops(name, rng):
    op = REDUCTIONS_AND_SHAPES[name]
    # distinct values, so that every maximum is unique (no ties)
    a = mg.tensor(rng.permutation(24).reshape(2, 3, 4) / 12.0 - 1.0, requires_grad=True, dtype=np.float64)
    assert mg.gradgradcheck(lambda a: op(a) ** 3, [a])


SOFTMAX_FAMILY = {
    "softmax": lambda z: F.softmax(z, dim=-1),
    "softmax_axis0": lambda z: F.softmax(z, dim=0),
    "log_softmax": lambda z: F.log_softmax(z, dim=1),
    "cross_entropy_mean": lambda z: F.cross_entropy(z, np.array([0, 3, 1, 3])),
    "cross_entropy_sum": lambda z: F.cross_entropy(z, np.array([0, 3, 1, 3]), reduction="sum"),
    "cross_entropy_none": lambda z: F.cross_entropy(z, np.array([0, 3, 1, 3]), reduction="none"),
    "mse_loss": lambda z: F.mse_loss(z, mg.tensor(np.linspace(-1, 1, 16).reshape(4, 4))),
}


@pytest.mark.parametrize("name", sorted(SOFTMAX_FAMILY))
def test_second_derivatives_of_softmax_and_losses(name, rng):
    assert mg.gradgradcheck(SOFTMAX_FAMILY[name], [leaf(rng, 4, 4, low=-2, high=2)])


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class Cube(mg.Function):
        def forward(self, a):
            self.a = a
            return a ** 3

        def backward(self, grad):  # right value, wrong graph: the array self.a is a constant
            return 3 * self.a ** 2 * grad

    x = mg.tensor([0.5, -1.5], requires_grad=True, dtype=np.float64)
    assert mg.gradcheck(Cube.apply, [x])
    with pytest.raises(mg.GradcheckError, match="differs from central differences"):
        mg.gradgradcheck(Cube.apply, [x])


def test_second_derivative_through_a_dtype_cast():
    x = mg.tensor([0.5, -1.5, 2.0], requires_grad=True, dtype=np.float64)
    (first,) = mg.grad((x.float() ** 3).sum(), x, create_graph=True)
    (second,) = mg.grad(first.sum(), x)
    assert first.dtype == np.float64 and second.dtype == np.float64
    np.testing.assert_allclose(first.numpy(), 3 * x.numpy() ** 2, rtol=1e-6)
    np.testing.assert_allclose(second.numpy(), 6 * x.numpy(), rtol=1e-6)


# ----- against PyTorch: Hessian-vector products and a gradient penalty ----------------
def _mlp_pair(sizes, seed):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(),
                                 torch.nn.Linear(sizes[1], sizes[2])).double()
    ours = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.Tanh(), nn.Linear(sizes[1], sizes[2]))
    ours.to(np.float64)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_hessian_vector_product_of_an_mlp_matches_pytorch(loss_name):
    ours, theirs = _mlp_pair((6, 8, 4), seed=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6))
    if loss_name == "cross_entropy":
        target = rng.integers(0, 4, size=5)
        ours_loss = F.cross_entropy(ours(mg.tensor(x)), target)
        theirs_loss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(target))
    else:
        target = rng.normal(size=(5, 4))
        ours_loss = F.mse_loss(ours(mg.tensor(x)), mg.tensor(target))
        theirs_loss = torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(target))
    vectors = [rng.normal(size=p.shape) for p in ours.parameters()]

    # H v = d/dw (dL/dw . v): differentiate the gradient, dotted with v, once more
    params = list(ours.parameters())
    grads = mg.grad(ours_loss, params, create_graph=True)
    dot = sum((g * mg.tensor(v)).sum() for g, v in zip(grads, vectors))
    ours_hvp = mg.grad(dot, params)

    theirs_params = list(theirs.parameters())
    theirs_grads = torch.autograd.grad(theirs_loss, theirs_params, create_graph=True)
    theirs_dot = sum((g * torch.tensor(v)).sum() for g, v in zip(theirs_grads, vectors))
    theirs_hvp = torch.autograd.grad(theirs_dot, theirs_params)

    for ours_value, theirs_value in zip(ours_hvp, theirs_hvp):
        assert np.abs(theirs_value.numpy()).max() > 1e-3  # a real, non-vanishing curvature
        np.testing.assert_allclose(ours_value.numpy(), theirs_value.numpy(), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in params)


def test_gradient_penalty_matches_pytorch():
    """WGAN-GP's penalty: (||d critic(x) / dx||_2 - 1)^2, backpropagated to the critic's weights."""
    critic, theirs = _mlp_pair((6, 16, 1), seed=3)
    x = np.random.default_rng(4).normal(size=(8, 6))

    ours_x = mg.tensor(x, requires_grad=True)
    (ours_dx,) = mg.grad(critic(ours_x).sum(), ours_x, create_graph=True)
    ours_penalty = ((ours_dx * ours_dx).sum(axis=1).sqrt() - 1) ** 2
    ours_penalty.mean().backward()

    theirs_x = torch.tensor(x, requires_grad=True)
    (theirs_dx,) = torch.autograd.grad(theirs(theirs_x).sum(), theirs_x, create_graph=True)
    theirs_penalty = (theirs_dx.norm(dim=1) - 1) ** 2
    theirs_penalty.mean().backward()

    np.testing.assert_allclose(ours_penalty.numpy(), theirs_penalty.detach().numpy(), rtol=1e-10)
    for (name, ours_param), theirs_param in zip(critic.named_parameters(), theirs.parameters()):
        if name == "2.bias":  # d critic / dx does not depend on the last bias: no gradient in either
            assert ours_param.grad is None and theirs_param.grad is None
            continue
        np.testing.assert_allclose(ours_param.grad.numpy(), theirs_param.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----- backward(create_graph=True) and the semantics of mg.grad -----------------------
def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True, dtype=np.float64)
    y = (x ** 3).sum()
    y.backward(create_graph=True)             # x.grad = 3 x^2, with a graph
    assert x.grad.requires_grad and not x.grad.is_leaf
    np.testing.assert_allclose(x.grad.numpy(), [3, 12, 27])
    first = x.grad
    first.sum().backward()                    # adds d(sum 3x^2)/dx = 6x, as PyTorch does
    np.testing.assert_allclose(x.grad.numpy(), [3 + 6, 12 + 12, 27 + 18])
    y.backward()                              # create_graph=True retained the graph
    np.testing.assert_allclose(x.grad.numpy(), [12, 36, 72])


def test_grad_leaves_every_dot_grad_alone(rng):
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    weight, bias = model[0].weight, model[0].bias
    weight.grad = mg.tensor(np.full(weight.shape, 7.0, dtype=np.float32))
    before = weight.grad
    for create_graph in (False, True):
        loss = F.cross_entropy(model(mg.tensor(rng.normal(size=(5, 4)).astype(np.float32))), np.arange(5) % 2)
        (grad_weight,) = mg.grad(loss, weight, create_graph=create_graph)
        assert grad_weight.shape == weight.shape and np.abs(grad_weight.numpy()).max() > 0
        assert weight.grad is before and np.all(before.numpy() == 7.0)
        assert bias.grad is None and model[2].weight.grad is None


def test_grad_matches_backward_and_frees_the_graph_unless_asked(rng):
    x, w = leaf(rng, 3, 4), leaf(rng, 4, 2)
    loss = ((x @ w).tanh() ** 2).sum()
    grad_x, grad_w = mg.grad(loss, [x, w], retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(grad_x.numpy(), x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad_w.numpy(), w.grad.numpy(), rtol=1e-12)
    loss = ((x @ w).tanh() ** 2).sum()
    mg.grad(loss, [x])                        # retain_graph defaults to create_graph=False
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_grad_with_respect_to_an_intermediate_tensor_matches_pytorch(rng):
    x = rng.normal(size=(3, 4))
    ours_hidden = mg.tensor(x, requires_grad=True).exp()
    ours_loss = (ours_hidden.log_softmax() * ours_hidden).sum()
    theirs_hidden = torch.tensor(x, requires_grad=True).exp()
    theirs_loss = (theirs_hidden.log_softmax(dim=-1) * theirs_hidden).sum()
    (ours_value,) = mg.grad(ours_loss, ours_hidden, create_graph=True)
    (theirs_value,) = torch.autograd.grad(theirs_loss, theirs_hidden, create_graph=True)
    np.testing.assert_allclose(ours_value.numpy(), theirs_value.detach().numpy(), rtol=1e-12)


def test_grad_runs_only_the_part_of_the_graph_it_needs(rng):
    """A convolution in front of the input asked for is never differentiated."""
    image = mg.tensor(rng.normal(size=(2, 1, 5, 5)))
    conv = nn.Conv2d(1, 2, 3).to(np.float64)
    features = F.tanh(conv(image)).flatten(1)
    loss = (features.exp() * features).sum()
    (first,) = mg.grad(loss, features, create_graph=True)
    (second,) = mg.grad(first.sum(), features)
    f = features.numpy()
    np.testing.assert_allclose(first.numpy(), np.exp(f) * (f + 1), rtol=1e-12)
    np.testing.assert_allclose(second.numpy(), np.exp(f) * (f + 2), rtol=1e-12)
    assert conv.weight.grad is None


def test_grad_argument_errors(rng):
    x, unused = leaf(rng, 3), leaf(rng, 3)
    with pytest.raises(RuntimeError, match="grad: input 1 \\(shape \\(3,\\)\\) was not used"):
        mg.grad((x * x).sum(), [x, unused])
    grad_x, grad_unused = mg.grad((x * x).sum(), [x, unused], allow_unused=True)
    np.testing.assert_allclose(grad_x.numpy(), 2 * x.numpy())
    assert grad_unused is None
    with pytest.raises(RuntimeError, match="grad: input 0 .* does not require grad"):
        mg.grad((x * x).sum(), [mg.tensor([1.0, 2.0, 3.0])])
    with pytest.raises(RuntimeError, match="grad: output 0 does not require grad"):
        mg.grad(mg.tensor([1.0]).sum(), [x])
    with pytest.raises(RuntimeError, match="grad: grad can be created implicitly only for a scalar output"):
        mg.grad(x * 2, [x])
    with pytest.raises(ValueError, match=r"grad: grad has shape \(2,\), tensor has shape \(3,\)"):
        mg.grad(x * 2, [x], grad_outputs=[np.ones(2)])


def test_grad_of_several_outputs_that_share_a_graph(rng):
    x = leaf(rng, 4)
    y = x * x                                   # y feeds z: y's function waits for z's gradient
    z = y.exp()
    weights_y, weights_z = rng.normal(size=4), rng.normal(size=4)
    (value,) = mg.grad([y, z], x, grad_outputs=[mg.tensor(weights_y), mg.tensor(weights_z)])
    xs = x.numpy()
    np.testing.assert_allclose(value.numpy(), 2 * xs * (weights_y + weights_z * np.exp(xs * xs)), rtol=1e-12)


def test_grad_of_a_grad_through_a_chain_of_20000_ops_is_not_recursive():
    x = mg.tensor([1.5], requires_grad=True, dtype=np.float64)
    y = x * x
    for _ in range(20000):
        y = y * 1.0001
    (first,) = mg.grad(y.sum(), x, create_graph=True)   # 2 x c^N
    (second,) = mg.grad(first.sum(), x)                   # 2 c^N
    np.testing.assert_allclose(first.numpy(), [2 * 1.5 * 1.0001 ** 20000], rtol=1e-9)
    np.testing.assert_allclose(second.numpy(), [2 * 1.0001 ** 20000], rtol=1e-9)


def test_grad_without_create_graph_keeps_no_intermediate_alive(rng):
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    hidden = model[0](mg.tensor(rng.normal(size=(4, 6)).astype(np.float32)))
    activation = model[1](hidden)
    loss = F.cross_entropy(model[2](activation), np.array([0, 1, 2, 0]))
    watched = [weakref.ref(hidden), weakref.ref(activation)]
    del hidden, activation
    grads = mg.grad(loss, list(model.parameters()))
    gc.collect()
    assert all(ref() is None for ref in watched), "mg.grad left intermediates alive"
    assert len(grads) == 4 and all(not g.requires_grad for g in grads)
