"""What the engine guarantees: gradients add up, broadcasting is undone, graphs free themselves."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.nn.functional as F


def test_gradients_accumulate_across_uses_and_calls():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()          # d/dx = 2x + 1
    np.testing.assert_allclose(x.grad.numpy(), [3, 5, 7])
    (x * 2).sum().backward()              # accumulates: + 2
    np.testing.assert_allclose(x.grad.numpy(), [5, 7, 9])


def test_default_dtypes_follow_pytorch():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.tensor([1, 2]).dtype == np.int64
    assert mg.tensor(np.zeros(3)).dtype == np.float64
    x = mg.tensor([1.0], requires_grad=True)
    assert (x * 2.5 + 1).dtype == np.float32  # Python scalars do not promote


class _Double(mg.Function):
    """2x, its derivative 2 * grad as a new array; ``made`` keeps each array the derivative returned."""
    made = []

    def forward(self, a):
        return 2 * a

    def backward(self, grad):
        array = 2 * grad.data
        _Double.made.append(array)
        return mg.Tensor(array)


class _DoubleDeclared(_Double):
    new_gradients = (0,)


def test_a_gradient_declared_new_becomes_grad_without_a_copy():
    for function, taken in ((_Double, False), (_DoubleDeclared, True)):
        _Double.made.clear()
        x = mg.tensor([1.0, 2.0], requires_grad=True)
        function.apply(x).sum().backward()
        assert (x.grad.data is _Double.made[0]) is taken
        np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_gradients_stay_unshared_when_one_array_reaches_several_inputs():
    # a + b hands both inputs one array: each .grad is a copy of its own
    a, b = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    # a weight used three times: the later gradients are added to the first, not into it
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((5, 4)))
    start = rng.standard_normal((4, 4))

    def loss(w1, w2, w3):
        first = F.linear(x, w1)
        return first.sum() + F.linear(first @ w2, w3).sum()

    w = mg.tensor(start, requires_grad=True)
    loss(w, w, w).backward()
    apart = [mg.tensor(start, requires_grad=True) for _ in range(3)]
    loss(*apart).backward()
    np.testing.assert_allclose(w.grad.numpy(), sum(p.grad.numpy() for p in apart), rtol=1e-12)


def test_a_new_gradient_of_another_dtype_or_with_a_graph_is_still_cast():
    x = mg.tensor(np.ones((2, 3)))                    # float64
    w = mg.tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True)
    (x @ w).sum().backward()                          # the GEMM's gradient is float64
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 4), 2.0))
    v = mg.tensor(np.ones((4, 3)), requires_grad=True)
    layer = F.linear(mg.tensor(np.ones((2, 3))), v)
    (layer * layer).sum().backward(create_graph=True)
    assert v.grad.requires_grad                       # .grad is a node of the recorded graph
    second, = mg.grad(v.grad.sum(), v)
    np.testing.assert_allclose(second.numpy(), np.full((4, 3), 2 * 2 * 3.0))
    v.grad = None


def test_diamond_graph_runs_each_function_once():
    calls = []

    class Square(mg.Function):
        def forward(self, a):
            calls.append("forward")
            self.a = a
            return a * a

        def backward(self, grad):
            calls.append("backward")
            return 2 * self.a * grad

    x = mg.tensor([3.0], requires_grad=True)
    shared = Square.apply(x)
    (shared * 2 + shared.exp() + shared).sum().backward()
    assert calls.count("backward") == 1
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3 * (3 + np.exp(9)), rtol=1e-5)


def test_chain_of_20000_ops_is_not_recursive():
    x = mg.tensor([1.0], requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(20000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 20000], rtol=1e-9)


def test_no_intermediate_tensor_outlives_a_training_step():
    model = mg.nn.Sequential(mg.nn.Linear(6, 5), mg.nn.ReLU(), mg.nn.Linear(5, 3))
    x = mg.tensor(np.random.default_rng(0).normal(size=(4, 6)))
    hidden = model[0](x)
    activation = model[1](hidden)
    loss = F.cross_entropy(model[2](activation), np.array([0, 1, 2, 0]))
    watched = [weakref.ref(hidden), weakref.ref(activation)]
    del hidden, activation
    loss.backward()
    gc.collect()
    assert all(ref() is None for ref in watched), "the backward pass left intermediates alive"
    assert loss.item() > 0  # the loss itself is still usable


def test_second_backward_through_a_freed_graph_is_a_clear_error():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4, 8])


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for a scalar output.*shape \\(2,\\)"):
        (x * 2).backward()
    (x * 2).backward(mg.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2, 20])


def test_backward_without_requires_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor([1.0]).sum().backward()


def test_no_grad_builds_no_graph():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf

    @mg.no_grad()
    def double(t):
        return t * 2
    assert not double(x).requires_grad
    assert (x * 2).requires_grad  # the mode is restored


def test_detach_cuts_the_graph():
    x = mg.tensor([2.0], requires_grad=True)
    y = x * x.detach()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_gradcheck_catches_a_wrong_derivative():
    class WrongSquare(mg.Function):
        def forward(self, a):
            self.a = a
            return a * a

        def backward(self, grad):
            return self.a * grad  # should be 2a

    x = mg.tensor([0.5, -1.5], requires_grad=True, dtype=np.float64)
    with pytest.raises(mg.GradcheckError, match="differs from central differences"):
        mg.gradcheck(WrongSquare.apply, [x])


def test_gradcheck_leaves_the_inputs_grad_alone():
    x = mg.tensor([0.5, -1.5], requires_grad=True, dtype=np.float64)
    x.grad = mg.tensor([7.0, 7.0], dtype=np.float64)
    assert mg.gradcheck(lambda t: (t * t).sum(), [x])
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_broadcast_gradients_sum_back_to_each_input(data):
    shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, base_shape=data.draw(shapes))).input_shapes
    rng = np.random.default_rng(0)
    a = mg.tensor(rng.normal(size=shape_a), requires_grad=True)
    b = mg.tensor(rng.normal(size=shape_b), requires_grad=True)
    out = a * b + a
    weights = rng.normal(size=out.shape)
    out.backward(mg.tensor(weights))
    expected_a = weights * (np.broadcast_to(b.data, out.shape) + 1)
    expected_b = weights * np.broadcast_to(a.data, out.shape)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), _sum_to(expected_a, shape_a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), _sum_to(expected_b, shape_b), rtol=1e-10, atol=1e-12)


def _sum_to(array, shape):
    """The slow, obvious adjoint of broadcasting: sum over every stretched axis."""
    padded = (1,) * (array.ndim - len(shape)) + tuple(shape)
    axes = tuple(i for i, size in enumerate(padded) if size == 1 and array.shape[i] != 1)
    return array.sum(axis=axes, keepdims=True).reshape(shape)


# ----- errors name the op and the shapes ---------------------------------------------
def test_matmul_shape_error():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mg.tensor(np.ones((2, 3))) @ mg.tensor(np.ones((4, 5)))


def test_linear_feature_error():
    layer = mg.nn.Linear(784, 10)
    with pytest.raises(ValueError, match="linear: input has 300 features.*weight expects 784"):
        layer(mg.tensor(np.ones((2, 300), dtype=np.float32)))


def test_cross_entropy_label_out_of_range():
    logits = mg.tensor(np.zeros((2, 10)), requires_grad=True)
    with pytest.raises(IndexError, match="cross_entropy: target holds label 12.*10 classes"):
        F.cross_entropy(logits, np.array([1, 12]))
    with pytest.raises(ValueError, match="cross_entropy: target of shape"):
        F.cross_entropy(logits, np.array([1, 2, 3]))


def test_conv2d_rank_and_channel_errors():
    conv = mg.nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"conv2d: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input, "
                                         r"got shape \(8, 8\)"):
        conv(mg.tensor(np.ones((8, 8), dtype=np.float32)))
    with pytest.raises(ValueError, match="conv2d: input has 1 channels.*weight expects 3"):
        conv(mg.tensor(np.ones((2, 1, 8, 8), dtype=np.float32)))


def test_reshape_and_permute_errors():
    x = mg.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 0)


def test_cuda_without_a_gpu_is_a_clear_error():
    if mg.cuda_is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="device 'cuda' needs CuPy and an NVIDIA GPU"):
        mg.tensor([1.0]).to("cuda")


def test_requires_grad_on_integers_is_an_error():
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
        mg.tensor([1, 2], requires_grad=True)


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mg.tensor([1.0], device="tpu")
