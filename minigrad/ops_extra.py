"""More differentiable ops: selection, clamping, gathering, and the shape helpers built on them.

Each op is a ``Function`` as in minigrad/ops.py, its derivative written once
with Tensor ops. Most of PyTorch's tensor API needs no op of its own: expand is
a broadcast, repeat a broadcast between two reshapes, chunk and split are
slices, masked_fill is a ``where``, max(dim) is a gather at the argmax. Only
what cannot be composed gets a ``Function`` here.
"""
import math

import numpy as np

from . import backend
from .function import Function
from .ops import BroadcastTo, GetItem, Reshape, Where
from .tensor import Tensor


def _xp(array):
    return backend.array_module(array)


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


class Clamp(Function):
    """min(max(a, low), high) with low/high numbers, tensors or None (PyTorch's clamp).

    The gradient goes to a where low <= a <= high, to low where a < low < high,
    to high where a > high or high < low (PyTorch's rules, ties included).
    """

    def forward(self, a, low, high):
        xp = _xp(a)
        out, chosen_a = a, xp.ones(a.shape, dtype=bool)
        if low is not None:
            out = xp.maximum(out, low)
            chosen_a = chosen_a & (a >= low)
            self.chosen_low = a < low if high is None else (a < low) & (xp.asarray(low) < high)
        if high is not None:
            out = xp.minimum(out, high)
            chosen_a = chosen_a & (a <= high)
            self.chosen_high = a > high if low is None else (a > high) | (xp.asarray(high) < low)
        self.chosen_a = chosen_a
        return out

    def backward(self, grad):
        need_a, need_low, need_high = self.needs_input_grad
        return (Where.apply(grad, 0.0, condition=self.chosen_a) if need_a else None,
                Where.apply(grad, 0.0, condition=self.chosen_low) if need_low else None,
                Where.apply(grad, 0.0, condition=self.chosen_high) if need_high else None)


class Maximum(Function):
    """Elementwise max(a, b); at a tie each side gets half the gradient, at a NaN both all (as PyTorch)."""

    def forward(self, a, b):
        xp = _xp(a if not isinstance(a, (int, float)) else b)
        half_at_ties = xp.where(xp.asarray(a) == b, 0.5, 1.0)
        out = xp.maximum(a, b)
        self.share_a = (half_at_ties * ~(xp.asarray(a) < b)).astype(out.dtype)
        self.share_b = (half_at_ties * ~(xp.asarray(a) > b)).astype(out.dtype)
        return out

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        return grad * self.share_a if need_a else None, grad * self.share_b if need_b else None


def maximum(a, b):
    return Maximum.apply(a, b)


def minimum(a, b):
    """Elementwise min: -max(-a, -b), with the same tie rule."""
    return -Maximum.apply(-a, -b)


class Gather(Function):
    """out[..., i, ...] = a[..., index[..., i, ...], ...] along ``dim`` (PyTorch's gather)."""

    def forward(self, a, index, dim):
        self.shape, self.dim = a.shape, dim
        if a.ndim == 0:
            return a[index.reshape(-1)].reshape(index.shape) if index.size else a.reshape(index.shape) * 0
        self.index = _full_index(index, dim)
        return a[self.index]

    def backward(self, grad):
        return ScatterAlong.apply(grad, shape=self.shape, index=self.index, dim=self.dim)


class ScatterAlong(Function):
    """zeros(shape) with ``values`` added at a gather's positions: the adjoint of gather."""

    def forward(self, values, shape, index, dim):
        self.index, self.dim = index, dim
        full = _xp(values).zeros(shape, dtype=values.dtype)
        backend.scatter_add(full, index, values)
        return full

    def backward(self, grad):
        return GetItem.apply(grad, index=self.index)


def _full_index(index, dim):
    """The advanced index that picks a[..., index, ...] along ``dim``, one position per element of index."""
    positions = list(np.indices(index.shape, sparse=True))
    positions = [_xp(index).asarray(p) for p in positions]
    positions[dim] = index
    return tuple(positions)


def gather(input, dim, index):
    """input gathered along ``dim`` at the integer tensor ``index`` (same number of axes)."""
    index_array = _xp(input.data).asarray(_raw(index))
    dim = _axis(dim, input.ndim, "gather")
    if index_array.size == 0:  # PyTorch answers any empty index with an empty result
        return input.reshape(-1)[index_array.reshape(-1)].reshape(index_array.shape)
    if index_array.ndim != max(input.ndim, 1) and not (input.ndim == 0 and index_array.ndim == 0):
        raise ValueError(f"gather: index has {index_array.ndim} dims, input of shape {input.shape} "
                         f"needs {input.ndim}")
    if input.ndim == 0:
        return Reshape.apply(input, shape=(1,)).gather(0, index_array.reshape(-1)).reshape(index_array.shape)
    for axis, size in enumerate(index_array.shape):
        if axis != dim and size > input.shape[axis]:
            raise ValueError(f"gather: index of shape {index_array.shape} is larger than input of shape "
                             f"{input.shape} in dim {axis}")
    if index_array.size and (index_array.min() < -input.shape[dim] or index_array.max() >= input.shape[dim]):
        raise IndexError(f"gather: index out of range for dim {dim} of size {input.shape[dim]}")
    return Gather.apply(input, index=index_array, dim=dim)


def _axis(dim, ndim, op):
    """``dim`` as a non-negative axis; a 0-d tensor has the one axis 0 (-1)."""
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims")
    return dim % size


class Erf(Function):
    """The error function, elementwise (NumPy has none: math.erf per element, or CuPy's)."""

    def forward(self, a):
        if backend.is_cupy_array(a):
            import cupyx.scipy.special
            return cupyx.scipy.special.erf(a)
        return np.asarray(_np_erf(a), dtype=a.dtype)

    def backward(self, grad):  # d erf(a) = 2/sqrt(pi) exp(-a^2)
        a = self.inputs[0]
        return grad * (2 / math.sqrt(math.pi)) * (-(a * a)).exp()


_np_erf = np.frompyfunc(math.erf, 1, 1)


class LogSigmoid(Function):
    """log(sigmoid(a)) = min(a, 0) - log(1 + exp(-|a|)), stable for every a."""

    def forward(self, a):
        xp = _xp(a)
        return xp.minimum(a, 0) - xp.log1p(xp.exp(-xp.abs(a)))

    def backward(self, grad):  # d log sigmoid(a) = 1 - sigmoid(a) = sigmoid(-a)
        return grad * (-self.inputs[0]).sigmoid()


class Log1p(Function):
    def forward(self, a):
        return _xp(a).log1p(a)

    def backward(self, grad):  # d log(1 + a) = 1 / (1 + a)
        return grad / (1 + self.inputs[0])


class RoundedDiv(Function):
    """a / b rounded toward zero ('trunc') or down ('floor'); piecewise constant, so its gradient is 0."""

    def forward(self, a, b, rounding_mode):
        xp = _xp(a if not isinstance(a, (int, float)) else b)
        if rounding_mode == "trunc":
            quotient = xp.true_divide(a, b) if xp.result_type(a, b).kind == "f" else None
            return xp.trunc(quotient) if quotient is not None else _int_trunc_div(xp, a, b)
        return xp.floor_divide(a, b)

    def backward(self, grad):
        return grad * 0.0, grad * 0.0


def _int_trunc_div(xp, a, b):
    quotient = xp.floor_divide(a, b)
    return quotient + ((quotient < 0) & (quotient * b != a))


def expand_to(tensor, shape):
    """``tensor`` broadcast to ``shape``, where -1 keeps a size (PyTorch's expand)."""
    extra = len(shape) - tensor.ndim
    if extra < 0:
        raise ValueError(f"expand: the shape {tuple(shape)} has fewer dims than the tensor's {tensor.shape}")
    sizes = tuple(tensor.shape[axis - extra] if size == -1 and axis >= extra else size
                  for axis, size in enumerate(shape))
    for axis in range(extra, len(shape)):
        if tensor.shape[axis - extra] not in (1, sizes[axis]):
            raise ValueError(f"expand: the size {tensor.shape[axis - extra]} of dim {axis - extra} "
                             f"(shape {tensor.shape}) cannot be expanded to {sizes[axis]} (shape {tuple(shape)})")
    if sizes == tensor.shape:
        return tensor
    return BroadcastTo.apply(tensor, shape=sizes)


def repeat(tensor, sizes):
    """The tensor tiled ``sizes[i]`` times along each dim (PyTorch's repeat): a broadcast between reshapes."""
    if len(sizes) < tensor.ndim:
        raise ValueError(f"repeat: got {len(sizes)} repeat counts for a tensor of {tensor.ndim} dims "
                         f"(shape {tensor.shape}); give at least one per dim")
    shape = (1,) * (len(sizes) - tensor.ndim) + tensor.shape
    interleaved = tuple(size for pair in zip((1,) * len(shape), shape) for size in pair)
    stretched = tuple(size for pair in zip(sizes, shape) for size in pair)
    tiled = BroadcastTo.apply(Reshape.apply(tensor, shape=interleaved), shape=stretched)
    return Reshape.apply(tiled, shape=tuple(count * size for count, size in zip(sizes, shape)))
