"""The differentiable ops, each with its local derivative beside its forward.

Every op is a ``Function`` (minigrad/function.py): ``forward`` computes on raw
arrays, ``backward`` maps d loss / d output to d loss / d input for each input,
written with Tensor ops, so that the same line serves the ordinary backward
pass and, recorded, the second derivative. Elementwise ops return gradients in
the broadcast shape; the backward walk sums them back down (``unbroadcast``).

A derivative that needs the op's result reads ``self.output`` (exp, tanh,
softmax): a Tensor whose own graph leads back here, so second derivatives flow
through it. Masks and signs (relu, abs, max) are piecewise constant and stay
plain arrays. minigrad/operators.py makes these ops Tensor operators and
methods (``a + b``, ``a.sum(dim=1)``).
"""
import numpy as np

from . import backend, parallel
from .function import Function
from .tensor import Tensor


def _xp(array):
    return backend.array_module(array)


def unbroadcast(grad, shape):
    """Sum the Tensor ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = Sum.apply(grad, axis=tuple(range(extra)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = Sum.apply(grad, axis=stretched, keepdims=True)
    return grad


# ----- arithmetic -------------------------------------------------------------------
class Where(Function):
    """condition ? a : b elementwise (condition a constant boolean array); a, b tensors or numbers."""

    def forward(self, a, b, condition):
        self.condition = condition
        return _xp(condition).where(condition, a, b)

    def backward(self, grad):  # the gradient goes to the side that was chosen
        need_a, need_b = self.needs_input_grad
        return (Where.apply(grad, 0.0, condition=self.condition) if need_a else None,
                Where.apply(0.0, grad, condition=self.condition) if need_b else None)



class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):  # d(a+b)/da = 1, d(a+b)/db = 1
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, -grad


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, grad):  # d(ab)/da = b, d(ab)/db = a
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return grad * b if need_a else None, grad * a if need_b else None


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, grad):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -(a/b)/b
        b = self.inputs[1]
        need_a, need_b = self.needs_input_grad
        grad_a = grad / b
        return grad_a if need_a else None, -(grad_a * self.output) if need_b else None


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Pow(Function):
    def forward(self, base, exponent):
        return base ** exponent

    def backward(self, grad):  # d(b^e)/db = e b^(e-1), d(b^e)/de = b^e log b
        base, exponent = self.inputs
        need_base, need_exponent = self.needs_input_grad
        base_array, exponent_array = _raw(base), _raw(exponent)
        grad_base = grad_exponent = None
        if need_base:  # 0 where the exponent is 0 (not 0 * inf at base 0), as PyTorch
            grad_base = _zero_where(grad * exponent * base ** (exponent - 1), exponent_array == 0)
        if need_exponent:  # a constant base (2 ** x) is a number or an array; 0 at 0 ** (e >= 0)
            log_base = base.log() if isinstance(base, Tensor) else _xp(grad.data).log(base).astype(grad.dtype)
            grad_exponent = _zero_where(grad * self.output * log_base, (base_array == 0) & (exponent_array >= 0))
        return grad_base, grad_exponent


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _zero_where(values, condition):
    """values with 0 where the constant ``condition`` holds (only built when it holds somewhere)."""
    condition = _xp(values.data).asarray(condition)  # also when a number's exponent made it a bool
    return Where.apply(0.0, values, condition=condition) if condition.any() else values


def _promoted_grad_shape(grad_shape, a_ndim, b_ndim):
    """The output gradient's shape with the axes that 1-D operands dropped put back as size 1."""
    if b_ndim == 1:  # the column axis first, so that 1-D @ 1-D (a scalar) works too
        grad_shape = grad_shape + (1,)
    if a_ndim == 1:
        grad_shape = grad_shape[:-1] + (1,) + grad_shape[-1:]
    return grad_shape


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands are promoted, leading axes broadcast."""

    new_gradients = (0, 1)  # each a GEMM's new array

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                             f"(the last axis of the first must equal the second-to-last of the second)")
        return a @ b

    def backward(self, grad):  # d(ab)/da = grad b^T, d(ab)/db = a^T grad
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        grad2 = grad.reshape(_promoted_grad_shape(grad.shape, a.ndim, b.ndim))
        grad_a = grad2 @ b2.swapaxes(-1, -2) if need_a else None
        grad_b = a2.swapaxes(-1, -2) @ grad2 if need_b else None
        if grad_a is not None and a.ndim == 1:
            grad_a = unbroadcast(grad_a, (1,) + a.shape).reshape(a.shape)
        if grad_b is not None and b.ndim == 1:
            grad_b = unbroadcast(grad_b, b.shape + (1,)).reshape(b.shape)
        return grad_a, grad_b


# ----- reductions -------------------------------------------------------------------
def _expand_reduced(grad, shape, axis, keepdims):
    """Put back the axes a reduction removed, so ``grad`` broadcasts against the input."""
    if keepdims:
        return grad
    if axis is None:
        return grad.reshape((1,) * len(shape))
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    return grad.reshape(tuple(1 if a in axes else size for a, size in enumerate(shape)))


class BroadcastTo(Function):
    """a stretched to ``shape`` by NumPy's rules (a view); its adjoint sums back down."""

    def forward(self, a, shape):
        self.shape = a.shape
        return _xp(a).broadcast_to(a, shape)

    def backward(self, grad):
        return unbroadcast(grad, self.shape)


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, grad):  # every input element contributes once
        return BroadcastTo.apply(_expand_reduced(grad, self.shape, self.axis, self.keepdims), shape=self.shape)


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        out = a.mean(axis=axis, keepdims=keepdims)
        self.count = a.size // max(out.size, 1) if a.size else 1
        return out

    def backward(self, grad):  # each element contributes 1/count
        grad = _expand_reduced(grad, self.shape, self.axis, self.keepdims) / self.count
        return BroadcastTo.apply(grad, shape=self.shape)


class Max(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.a, self.axis, self.keepdims = a, axis, keepdims
        self.out = a.max(axis=axis, keepdims=True)
        return self.out if keepdims else self.out.reshape(a.max(axis=axis).shape)

    def backward(self, grad):  # the gradient goes to the maxima, split evenly between ties
        winners = (self.a == self.out).astype(grad.dtype)
        winners /= winners.sum(axis=self.axis, keepdims=True)
        return _expand_reduced(grad, self.a.shape, self.axis, self.keepdims) * winners


# ----- shapes -----------------------------------------------------------------------
class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                             f"({a.size} elements) into {tuple(shape)}") from None

    def backward(self, grad):
        return grad.reshape(self.shape)


class Permute(Function):
    def forward(self, a, axes):
        if sorted(x % a.ndim for x in axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {a.ndim} axes of {a.shape}")
        self.axes = axes
        return a.transpose(axes)

    def backward(self, grad):  # apply the inverse permutation
        return grad.permute(tuple(int(x) for x in np.argsort([x % grad.ndim for x in self.axes])))


def flatten(tensor, start_dim=0, end_dim=-1):
    """Merge axes start_dim..end_dim into one (PyTorch's flatten); a 0-d tensor becomes shape (1,)."""
    shape = tensor.shape or (1,)  # a 0-d tensor has the one dim 0 (-1)
    for dim in (start_dim, end_dim):
        if not -len(shape) <= dim < len(shape):
            raise IndexError(f"flatten: dim {dim} is out of range for a tensor of shape {tensor.shape}")
    start, end = start_dim % len(shape), end_dim % len(shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {tensor.shape})")
    merged = int(np.prod(shape[start:end + 1]))
    return Reshape.apply(tensor, shape=shape[:start] + (merged,) + shape[end + 1:])


def _scatter(values, shape, index):
    full = _xp(values).zeros(shape, dtype=values.dtype)
    backend.scatter_add(full, index, values)
    return full


class GetItem(Function):
    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        return a[index]

    def backward(self, grad):  # scatter back; repeated integer indices add up
        return ScatterAdd.apply(grad, shape=self.shape, index=self.index)


class ScatterAdd(Function):
    """zeros(shape) with ``values`` added at ``index`` (repeats add up): the adjoint of a[index]."""

    def forward(self, values, shape, index):
        self.index = index
        return _scatter(values, shape, index)

    def backward(self, grad):
        return GetItem.apply(grad, index=self.index)


def getitem(tensor, index):
    """tensor[index] for basic slices and integer (or boolean) arrays, with tensors as indices."""
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, Tensor):
        index = index.data
    try:
        return GetItem.apply(tensor, index=index)
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} is out of range for shape {tensor.shape}: {error}") from None


class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return _xp(arrays[0]).concatenate(arrays, axis=axis)

    def backward(self, grad):  # each input's gradient is its slice of grad
        before = (slice(None),) * (self.axis % grad.ndim)
        ends = np.cumsum(self.sizes)
        return tuple(grad[before + (slice(int(end) - size, int(end)),)] for size, end in zip(self.sizes, ends))


class Stack(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        return _xp(arrays[0]).stack(arrays, axis=axis)

    def backward(self, grad):
        before = (slice(None),) * (self.axis % grad.ndim)
        return tuple(grad[before + (i,)] for i in range(grad.shape[self.axis]))


# ----- elementwise functions --------------------------------------------------------
class Exp(Function):
    def forward(self, a):
        return _xp(a).exp(a)

    def backward(self, grad):  # d e^a = e^a
        return grad * self.output


class Log(Function):
    def forward(self, a):
        return _xp(a).log(a)

    def backward(self, grad):  # d log a = 1/a
        return grad / self.inputs[0]


class Sqrt(Function):
    def forward(self, a):
        return _xp(a).sqrt(a)

    def backward(self, grad):  # d sqrt(a) = 1 / (2 sqrt(a))
        return grad / (2 * self.output)


class Abs(Function):
    def forward(self, a):
        # piecewise constant: 0 at 0 and at NaN, as in PyTorch
        self.sign = ((a > 0).astype(a.dtype) - (a < 0)).astype(a.dtype, copy=False)
        return _xp(a).abs(a)

    def backward(self, grad):
        return grad * self.sign


def _split_over_threads(*arrays):
    """Whether an elementwise pass over these NumPy arrays runs in batch chunks on minigrad's threads
    (minigrad/parallel.py): with more than one thread, on arrays of a MiB or more. The chunks run
    the same operations, so the bits are the same."""
    first = arrays[0]
    return (all(type(array) is np.ndarray and array.shape == first.shape for array in arrays)
            and first.ndim > 0 and first.nbytes >= 1 << 20 and parallel.thread_policy.get_num_threads() > 1)


class ReLU(Function):
    def forward(self, a):
        if not _split_over_threads(a):
            out = _xp(a).maximum(a, 0)  # NaN stays NaN, -inf becomes 0 (as PyTorch)
            self.positive = out != 0  # where the gradient passes: a > 0, and at NaN (as PyTorch)
            return out
        out, positive = np.empty(a.shape, dtype=a.dtype), np.empty(a.shape, dtype=bool)

        def chunk(start, stop):  # the two lines above, on images start..stop
            np.maximum(a[start:stop], 0, out=out[start:stop])
            np.not_equal(out[start:stop], 0, out=positive[start:stop])
        parallel.for_each_chunk(len(a), chunk)
        self.positive = positive
        return out

    def backward(self, grad):  # 1 where a > 0, else 0: a constant mask
        return ReLUMask.apply(grad, self.positive)


class ReLUMask(Function):
    """grad * mask for a constant boolean mask: ReLU's derivative, and (linear in grad) its own."""

    def forward(self, grad, positive):
        self.positive = positive
        if not _split_over_threads(grad, positive):
            return grad * positive
        out = np.empty(grad.shape, dtype=grad.dtype)
        parallel.for_each_chunk(len(grad), lambda start, stop: np.multiply(grad[start:stop], positive[start:stop],
                                                                           out=out[start:stop]))
        return out

    def backward(self, grad_of_out):
        return ReLUMask.apply(grad_of_out, self.positive), None


class LeakyReLU(Function):
    def forward(self, a, negative_slope=0.01):
        self.slope = _xp(a).where(a > 0, 1, negative_slope).astype(a.dtype)
        return a * self.slope

    def backward(self, grad):
        return grad * self.slope


class Sigmoid(Function):
    def forward(self, a):
        xp = _xp(a)
        # exp of a non-positive number only, so it never overflows
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype)

    def backward(self, grad):  # s (1 - s)
        s = self.output
        return grad * s * (1 - s)


class Tanh(Function):
    def forward(self, a):
        return _xp(a).tanh(a)

    def backward(self, grad):  # 1 - tanh^2
        t = self.output
        return grad * (1 - t * t)


def _empty_or_scalar(a, axis):
    """Softmax's axis for a 0-d input (all of it), and whether there is nothing to normalise."""
    return (None if a.ndim == 0 else axis), a.size == 0


class Softmax(Function):
    def forward(self, a, axis=-1):
        xp = _xp(a)
        self.axis, empty = _empty_or_scalar(a, axis)
        if empty:
            return a.copy()
        axis = self.axis
        shifted = xp.exp(a - a.max(axis=axis, keepdims=True))
        return shifted / shifted.sum(axis=axis, keepdims=True)

    def backward(self, grad):
        return softmax_backward(self.output, grad, self.axis)


def softmax_backward(softmax, grad, axis):
    """s * (grad - sum(grad * s)): the (symmetric) Jacobian of softmax at s, applied to grad."""
    return softmax * (grad - (grad * softmax).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, axis=-1):
        xp = _xp(a)
        self.axis, empty = _empty_or_scalar(a, axis)
        if empty:
            return a.copy()
        axis = self.axis
        shifted = a - a.max(axis=axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(self, grad):  # grad - softmax * sum(grad), softmax = exp(output)
        return grad - self.output.exp() * grad.sum(axis=self.axis, keepdims=True)


# ----- moving between devices and dtypes (differentiable) ---------------------------
class ToDevice(Function):
    def forward(self, a, device):
        self.source = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, grad):
        return grad.to(self.source)


class Cast(Function):
    """a as ``dtype``, always a new array (so it also serves as a differentiable copy)."""

    def forward(self, a, dtype):
        self.source = a.dtype
        return a.astype(dtype, copy=True)

    def backward(self, grad):
        return grad.to(dtype=self.source)


def to(tensor, device=None, dtype=None):
    """A copy on ``device`` ('cpu' or 'cuda') and/or of ``dtype``; the tensor itself if nothing changes."""
    if device is not None and not isinstance(device, str):
        device, dtype = None, device  # .to(np.float64)
    result = tensor
    if device is not None and backend.normalize_device(device) != tensor.device:
        result = ToDevice.apply(result, device=backend.normalize_device(device))
    if dtype is not None and np.dtype(dtype) != tensor.dtype:
        result = Cast.apply(result, dtype=np.dtype(dtype))
    return result
