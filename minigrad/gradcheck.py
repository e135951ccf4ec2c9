"""``gradcheck`` and ``gradgradcheck``: compare backward() with central differences, in float64."""
import numpy as np

from . import autograd, backend, operators
from .tensor import Tensor


class GradcheckError(AssertionError):
    pass


def numerical_grad(fn, inputs, index, weights, eps):
    """d sum(weights * fn(inputs)) / d inputs[index] by central differences."""
    if not inputs[index].data.flags.c_contiguous:  # so that the flat view below writes into the input
        inputs[index].data = backend.array_module(inputs[index].data).ascontiguousarray(inputs[index].data)
    array = inputs[index].data
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)  # a view: writes change the input in place
    for position in range(flat.size):
        original = flat[position].item()
        flat[position] = original + eps
        plus = float((backend.to_numpy(fn(*inputs).data) * weights).sum())
        flat[position] = original - eps
        minus = float((backend.to_numpy(fn(*inputs).data) * weights).sum())
        flat[position] = original
        grad.reshape(-1)[position] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s gradients for every input that requires grad; True, or GradcheckError.

    ``inputs`` are float64 tensors; ``fn(*inputs)`` returns a tensor. The output
    is reduced with fixed random weights so every output element is checked.
    """
    inputs = list(inputs)
    for position, value in enumerate(inputs):
        if isinstance(value, Tensor) and value.requires_grad and value.dtype != np.float64:
            raise ValueError(f"gradcheck: input {position} is {value.dtype}; use float64 for central differences")
    output = fn(*inputs)
    weights = np.random.default_rng(seed).standard_normal(output.shape)
    checked = [position for position, value in enumerate(inputs)
               if isinstance(value, Tensor) and value.requires_grad]
    xp = backend.array_module(output.data)
    # grad() rather than backward(): the inputs' own .grad stays as the caller left it
    analytic = autograd.grad(output, [inputs[position] for position in checked],
                    grad_outputs=[xp.asarray(weights, dtype=output.dtype)], allow_unused=True)
    for position, gradient in zip(checked, analytic):
        value = inputs[position]
        expected = numerical_grad(fn, inputs, position, weights, eps)
        actual = np.zeros(value.shape) if gradient is None else backend.to_numpy(gradient.data)
        if not np.allclose(actual, expected, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(actual - expected)), expected.shape) if expected.ndim else ()
            raise GradcheckError(
                f"gradcheck: gradient of input {position} (shape {value.shape}) differs from central "
                f"differences; worst at {worst}: backward {actual[worst]}, numerical {expected[worst]}")
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s second derivatives: gradcheck applied to its (differentiable) gradient.

    With fixed random weights w over the output, g(inputs, w) = d sum(w * fn(inputs)) / d inputs
    is computed by ``grad(..., create_graph=True)``; ``gradcheck`` then compares g's own
    backward (the second derivatives, and g's dependence on w) with central differences of g.
    True, or GradcheckError.
    """
    inputs = list(inputs)
    differentiable = [position for position, value in enumerate(inputs)
                      if isinstance(value, Tensor) and value.requires_grad]
    output = fn(*inputs)
    weights = np.random.default_rng(seed + 1).standard_normal(output.shape)
    output_weights = Tensor(backend.array_module(output.data).asarray(weights, dtype=output.dtype),
                            requires_grad=True)

    def first_derivatives(*values):
        *values, output_weights = values
        wanted = [values[position] for position in differentiable]
        grads = autograd.grad(fn(*values), wanted, grad_outputs=output_weights, create_graph=True,
                              allow_unused=True)
        flat = [(value * 0.0 if g is None else g).reshape(-1) for value, g in zip(wanted, grads)]
        return operators.cat(flat)

    return gradcheck(first_derivatives, inputs + [output_weights], eps=eps, atol=atol, rtol=rtol, seed=seed)
