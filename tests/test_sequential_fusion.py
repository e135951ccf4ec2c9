"""nn.Sequential's two rewrites (nn/layers.py) must give the values and gradients of the written order.

- a ReLU directly followed by a MaxPool2d runs as the pool, then the ReLU;
- a BatchNorm2d followed by a MaxPool2d (a ReLU between them moved behind the pool) runs as one
  op on the fast CPU path, batchnorm.BatchNormMaxPool.

Each test runs a model through Sequential and through its modules called one by one, and
compares outputs and running statistics bit for bit, and gradients bit for bit where the
rewrite does the same arithmetic (the ReLU behind the pool) or to the last bits where it sums
in another order (batch norm's sums from the pooled values).
"""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad.nn.batchnorm import BatchNormMaxPool


def _one_by_one(modules, x):
    """The modules applied one after the other, in their written order (no rewrite)."""
    for module in modules:
        x = module(x)
    return x


def _functions_in_graph(tensor):
    """The types of every Function behind ``tensor``."""
    seen, stack, types = set(), [tensor._ctx], set()
    while stack:
        function = stack.pop()
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        types.add(type(function))
        stack.extend(value._ctx for value in function.inputs if isinstance(value, mg.Tensor))
    return types


def _run_both_ways(model, images, weights):
    """[output, input gradient, parameter gradients..., buffers...] through Sequential and one by one,
    each from the same starting state, and the types of the Functions in Sequential's graph."""
    state = {name: value.numpy().copy() for name, value in model.state_dict().items()}
    results, graphs = [], []
    for run in (model, lambda x: _one_by_one(list(model), x)):
        model.load_state_dict(state)
        model.zero_grad()
        x = mg.tensor(images, requires_grad=True)
        out = run(x)
        graphs.append(_functions_in_graph(out))  # before backward frees the graph
        (out * mg.tensor(weights.reshape((1, -1) + (1,) * (out.ndim - 2)))).sum().backward()
        results.append([out.numpy(), x.grad.numpy()]
                       + [p.grad.numpy() for p in model.parameters() if p.grad is not None]
                       + [value.numpy().copy() for value in model.buffers()])
    return results, graphs[0]


@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=2, stride=1), dict(kernel_size=3, stride=2, ceil_mode=True),
                                  dict(kernel_size=2, dilation=2)])
def test_relu_then_max_pool_runs_as_pool_then_relu(pool, monkeypatch):
    """On data with many ties and zeros (rounded values), overlapping windows, padding, ceil_mode
    and dilation."""
    rng = np.random.default_rng(7)
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(**pool))
    images = np.round(rng.standard_normal((5, 2, 11, 13)) * 2).astype(np.float32)
    images[0, 0, :2, :2] = -0.0
    (reordered, written), _ = _run_both_ways(model, images, np.linspace(-1, 1, 4, dtype=np.float32))
    for ours, theirs in zip(reordered, written):
        np.testing.assert_array_equal(ours, theirs)
    shapes = []  # and the ReLU did run on the pooled map
    relu = nn.ReLU.function
    monkeypatch.setattr(nn.ReLU, "function", staticmethod(lambda x: shapes.append(x.shape) or relu(x)))
    model(mg.tensor(images))
    assert shapes == [model[2](model[0](mg.tensor(images))).shape]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layers, pool, fused", [
    ("bn relu pool", dict(kernel_size=2), True),
    ("bn pool", dict(kernel_size=2), True),
    ("bn relu pool", dict(kernel_size=2, stride=1), True),                 # overlapping windows
    ("bn relu pool", dict(kernel_size=5, stride=3), True),                 # windows that leave the last row out
    ("bn relu pool", dict(kernel_size=2, ceil_mode=True), True),           # ceil_mode without an overhang
    ("bn relu pool", dict(kernel_size=3, stride=2, padding=1), False),     # padded
    ("bn relu pool", dict(kernel_size=3, stride=2, ceil_mode=True), False),  # ceil_mode's overhang
])
def test_batch_norm_and_max_pool_run_as_one_op(threads, dtype, training, layers, pool, fused):
    rng = np.random.default_rng(11)
    mg.manual_seed(1)
    norm = nn.BatchNorm2d(6, momentum=None) if layers == "bn pool" else nn.BatchNorm2d(6)
    norm.weight.data[...] = rng.uniform(-1.5, 1.5, 6)  # negative scales too
    norm.bias.data[...] = rng.uniform(-0.5, 0.5, 6)
    middle = [nn.ReLU()] if "relu" in layers else []
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), norm, *middle, nn.MaxPool2d(**pool)).to(dtype)
    norm.running_mean.data[...] = rng.standard_normal(6)
    norm.running_var.data[...] = rng.uniform(0.5, 2, 6)
    model.train(training)
    images = np.round(rng.standard_normal((9, 3, 12, 12)) * 3).astype(dtype)  # ties after the conv
    (rewritten, written), graph = _run_both_ways(model, images, rng.standard_normal(6).astype(dtype))
    for ours, theirs in zip(rewritten, written):
        assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(rewritten[0], written[0])  # the output: the same arithmetic
    for ours, theirs in zip(rewritten[-3:], written[-3:]):      # and the running statistics
        np.testing.assert_array_equal(ours, theirs)
    # the gradients: batch norm's sums added in another order. Some are sums that cancel to about
    # zero (the conv's bias, which batch norm removes), so the rounding is measured against the
    # largest gradient.
    gradients = list(zip(rewritten[1:-3], written[1:-3]))
    scale = max(float(np.abs(theirs).max()) for _, theirs in gradients)
    tolerance = (2e-5 if dtype == np.float32 else 1e-12) * scale
    for ours, theirs in gradients:
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)
    assert (BatchNormMaxPool in graph) == fused


def test_batch_norm_and_max_pool_without_affine_and_second_derivatives():
    """affine=False, and create_graph=True: the op's derivative is differentiable again (through
    the pool's scatter and batch norm's gradient ops), as the two ops are."""
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.ReLU(), nn.MaxPool2d(2)).double()
    conv_weight = rng.standard_normal((3, 3, 3, 3))
    images = rng.standard_normal((4, 3, 8, 8))
    second = []
    for run in (model, lambda x: _one_by_one(list(model), x)):
        weight = mg.tensor(conv_weight, requires_grad=True)
        x = mg.tensor(images, requires_grad=True)
        out = run(nn.functional.conv2d(x, weight, padding=1))
        (grad_x,) = mg.autograd.grad((out * out).sum(), [x], create_graph=True)
        (grad_x * grad_x).sum().backward()
        second.append((out.numpy(), grad_x.numpy(), weight.grad.numpy()))
    assert BatchNormMaxPool in _functions_in_graph(model(mg.tensor(images, requires_grad=True)))
    for ours, theirs in zip(*second):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_the_written_order_is_kept_for_pre_hooks_indices_and_other_layers():
    x = mg.tensor(np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4) - 16)
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    seen = []
    relu.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape))
    out = nn.Sequential(relu, pool)(x)
    assert seen == [(2, 1, 4, 4)]
    np.testing.assert_array_equal(out.numpy(), np.maximum(x.numpy(), 0)[:, :, 1::2, 1::2])
    values, indices = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))(x)
    assert values.shape == indices.shape == (2, 1, 2, 2)
    norm = nn.BatchNorm2d(1)
    norm.register_forward_pre_hook(lambda module, inputs: seen.append("norm"))
    out = nn.Sequential(norm, nn.MaxPool2d(2))(x)
    assert seen[-1] == "norm" and BatchNormMaxPool not in _functions_in_graph(out)
    half = mg.tensor(x.numpy().astype(np.float16), requires_grad=True)  # not the fast CPU path
    out = nn.Sequential(nn.BatchNorm2d(1), nn.MaxPool2d(2))(half)
    assert out.shape == (2, 1, 2, 2) and BatchNormMaxPool not in _functions_in_graph(out)
