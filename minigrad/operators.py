"""The ops as Tensor operators and methods, with PyTorch's argument names.

``a + b`` is ``Add.apply(a, b)``, ``a.sum(dim=1)`` is ``Sum.apply(a, axis=1)``:
this file attaches each op to ``Tensor`` once, when minigrad is imported (as
DeZero's ``setup_variable`` does), so that minigrad/tensor.py needs to import
no op. Arguments take PyTorch's names, ``dim`` and ``keepdim``; NumPy's
``axis`` and ``keepdims`` are accepted as aliases, as PyTorch accepts them.
"""
from collections import namedtuple

import numpy as np

from . import backend
from .ops import (Abs, Add, Concatenate, Div, Exp, Log, LogSoftmax, MatMul, Max, Mean, Mul, Neg, Permute, Pow,
                  ReLU, Reshape, Sigmoid, Softmax, Sqrt, Stack, Sub, Sum, Tanh, flatten, getitem, to)
from .ops_extra import (Clamp, Log1p, RoundedDiv, Where, _axis, expand_to, gather, maximum, minimum,
                        repeat)
from .tensor import Tensor

# What max(dim) and min(dim) return, as torch.return_types.max: a tuple with .values and .indices.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def cat(tensors, dim=None, *, axis=None):
    """Join tensors along an existing axis (``dim``, 0 by default).

    As in PyTorch, a legacy empty 1-D tensor (shape (0,)) may be joined with anything: it is skipped.
    """
    dim = _one_dim(dim, axis, "cat", default=0)
    tensors = list(tensors)
    kept = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
    return Concatenate.apply(*kept, axis=dim)


def stack(tensors, dim=None, *, axis=None):
    """Join tensors along a new axis (``dim``, 0 by default)."""
    return Stack.apply(*tensors, axis=_one_dim(dim, axis, "stack", default=0))


def _one_dim(dim, axis, op, default=None):
    """``dim``, or its NumPy alias ``axis`` (PyTorch accepts both), else ``default``; a list becomes a tuple."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim={dim!r} and its alias axis={axis!r}")
        dim = axis
    if dim is None:
        dim = default
    return tuple(dim) if isinstance(dim, list) else dim


def _dims(op, dim, keepdim, axis, keepdims):
    """(dim, keepdim) from PyTorch's names or NumPy's aliases."""
    return _one_dim(dim, axis, op), bool(keepdim if keepdims is None else keepdims)


def _zero_d_dims(tensor, dim):
    """A 0-d tensor reduced over dim 0 or -1 (PyTorch allows it): the tensor as shape (1,) and axis 0."""
    for axis in (dim if isinstance(dim, tuple) else (dim,)):
        _axis(axis, 0, "reduction")
    return Reshape.apply(tensor, shape=(1,)), 0


def _reduction(function_class, op):
    def reduce(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _dims(op, dim, keepdim, axis, keepdims)
        if self.ndim == 0 and dim is not None and dim != ():
            self, dim = _zero_d_dims(self, dim)
            keepdim = False
        return function_class.apply(self, axis=dim, keepdims=keepdim)
    reduce.__name__ = op
    reduce.__doc__ = f"{op} over ``dim`` (all axes if None); ``axis``/``keepdims`` are accepted as aliases."
    return reduce


_amax = _reduction(Max, "amax")


def _amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The minimum over ``dim`` as -amax(-x): ties share the gradient evenly, as in amax."""
    return -_amax(-self, dim, keepdim, axis=axis, keepdims=keepdims)


def _arg_reduction(op):
    def arg_reduce(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _dims(op, dim, keepdim, axis, keepdims)
        data = self.data
        if data.ndim == 0:
            dim, data = (None if dim is None else _axis(dim, 0, op)), data.reshape(1)
            keepdim = False
        if data.size == 0 and (dim is None or data.shape[dim] == 0):
            raise IndexError(f"{op}: expected a non-empty tensor along the reduced dim, got shape {self.shape}")
        found = getattr(data, op)(axis=dim, keepdims=keepdim)
        if dim is None and keepdim:
            found = found.reshape((1,) * self.ndim)
        return Tensor(found.astype(np.int64, copy=False))
    arg_reduce.__name__ = op
    arg_reduce.__doc__ = f"Index of the {op[3:]}imum (of the flattened tensor if ``dim`` is None); not differentiable."
    return arg_reduce


def _value_reduction(op):
    """max / min: over everything (a tensor), against another tensor (elementwise),
    or along ``dim`` ((values, indices), the gradient going to the index found)."""
    def reduce(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        if isinstance(dim, Tensor):
            return maximum(self, dim) if op == "max" else minimum(self, dim)
        dim, keepdim = _dims(op, dim, keepdim, axis, keepdims)
        if dim is None:
            return Max.apply(self) if op == "max" else -Max.apply(-self)
        indices = getattr(self, "arg" + op)(dim, keepdim=True)
        source, axis = (Reshape.apply(self, shape=(1,)), 0) if self.ndim == 0 else (self, _axis(dim, self.ndim, op))
        values = gather(source, axis, indices.data.reshape((1,)) if self.ndim == 0 else indices)
        if not keepdim or self.ndim == 0:  # a 0-d tensor's result is 0-d either way
            values = _squeeze(values, axis)
            indices = Tensor(indices.data.reshape(values.shape))
        return ValuesIndices(values, indices)
    reduce.__name__ = op
    return reduce


def _squeeze(self, dim=None):
    """Drop dims of size 1 (all of them, or those of ``dim``, an int or a tuple, that have size 1)."""
    if dim is None:
        dims = [axis for axis, size in enumerate(self.shape) if size == 1]
    else:
        dims = [_axis(axis, self.ndim, "squeeze") for axis in (dim if isinstance(dim, (tuple, list)) else (dim,))]
    shape = tuple(size for axis, size in enumerate(self.shape) if not (axis in dims and size == 1))
    return Reshape.apply(self, shape=shape)


def _unsqueeze(self, dim):
    """Insert a dim of size 1 at ``dim`` (-1: at the end)."""
    position = _axis(dim, self.ndim + 1, "unsqueeze")
    return Reshape.apply(self, shape=self.shape[:position] + (1,) + self.shape[position:])


def _split(self, split_size_or_sections, dim=0):
    """Pieces along ``dim``: of ``split_size`` each (the last smaller), or of the listed sizes."""
    axis = _axis(dim, self.ndim, "split")
    length = self.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [min(size, length - start) for start in range(0, length, size)] if size > 0 else [length]
        sizes = sizes or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} do not add up to {length}, the size of dim {dim} "
                             f"of shape {self.shape}")
    before, starts = (slice(None),) * axis, np.cumsum([0] + sizes)
    return tuple(self[before + (slice(int(start), int(start) + size),)] for start, size in zip(starts, sizes))


def _chunk(self, chunks, dim=0):
    """At most ``chunks`` pieces of ceil(size / chunks) along ``dim`` (PyTorch's chunk)."""
    if chunks <= 0:
        raise ValueError(f"chunk: expected a positive number of chunks, got {chunks}")
    length = self.shape[_axis(dim, self.ndim, "chunk")]
    return _split(self, max(-(-length // chunks), 1), dim)


def _sizes(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _scaled(other, alpha):
    return other if alpha == 1 else other * alpha


def _operands(input, other):
    """Two numbers become a tensor and a number (float32 for a float, as PyTorch), so the result is a tensor."""
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        return Tensor(input), other
    return input, other


def add(input, other, *, alpha=1):
    """input + alpha * other (either may be a number)."""
    input, other = _operands(input, other)
    return Add.apply(input, _scaled(other, alpha))


def sub(input, other, *, alpha=1):
    """input - alpha * other (either may be a number)."""
    input, other = _operands(input, other)
    return Sub.apply(input, _scaled(other, alpha))


def mul(input, other):
    return Mul.apply(*_operands(input, other))


def div(self, other, *, rounding_mode=None):
    """self / other; rounding_mode 'trunc' or 'floor' rounds the quotient (and has zero gradient)."""
    self, other = _operands(self, other)
    if rounding_mode is None:
        return Div.apply(self, other)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    return RoundedDiv.apply(self, other, rounding_mode=rounding_mode)


def where(condition, input, other):
    """input where condition holds, else other (each a tensor or a number; broadcast together)."""
    like = next((value.data for value in (input, other) if isinstance(value, Tensor)), None)
    condition = condition.data if isinstance(condition, Tensor) else condition
    condition = (np if like is None else backend.array_module(like)).asarray(condition)  # on the data's device
    return Where.apply(input, other, condition=condition.astype(bool, copy=False))


def _masked_fill(self, mask, value):
    """The tensor with ``value`` (a number or a one-element tensor) where ``mask`` is True."""
    return where(mask, value, self)


def _clamp(self, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(self, min, max)


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _reshape_as(self, other):
    return Reshape.apply(self, shape=other.shape)


def _permute(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return Permute.apply(self, axes=dims)


def _transpose(self, dim0=-2, dim1=-1):
    """Swap two axes (PyTorch's meaning), the last two by default; a 0-d tensor's only axis is 0 (-1)."""
    if self.ndim == 0:
        _axis(dim0, 0, "transpose"), _axis(dim1, 0, "transpose")
        return Reshape.apply(self, shape=())
    axes = list(range(self.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(self, axes=tuple(axes))


def _softmax_method(function_class, op):
    def method(self, dim=None, dtype=None, *, axis=None):
        """Along ``dim`` (-1 by default), computed in ``dtype`` if given (the input is cast first)."""
        if dtype is not None:
            self = to(self, dtype=dtype)
        return function_class.apply(self, axis=_one_dim(dim, axis, op, default=-1))
    method.__name__ = op
    return method


def _install_tensor_methods():
    """Attach the ops to Tensor as operators and methods: done once, when minigrad is imported."""
    methods = {
        "__add__": lambda a, b: Add.apply(a, b), "__radd__": lambda a, b: Add.apply(b, a),
        "__sub__": lambda a, b: Sub.apply(a, b), "__rsub__": lambda a, b: Sub.apply(b, a),
        "__mul__": lambda a, b: Mul.apply(a, b), "__rmul__": lambda a, b: Mul.apply(b, a),
        "__truediv__": lambda a, b: Div.apply(a, b), "__rtruediv__": lambda a, b: Div.apply(b, a),
        "__neg__": lambda a: Neg.apply(a),
        "__pow__": lambda a, b: Pow.apply(a, b), "__rpow__": lambda a, b: Pow.apply(b, a),
        "__matmul__": lambda a, b: MatMul.apply(a, b), "__rmatmul__": lambda a, b: MatMul.apply(b, a),
        "__getitem__": getitem,
        "sum": _reduction(Sum, "sum"), "mean": _reduction(Mean, "mean"), "amax": _amax, "amin": _amin,
        "max": _value_reduction("max"), "min": _value_reduction("min"),
        "argmax": _arg_reduction("argmax"), "argmin": _arg_reduction("argmin"),
        "reshape": _reshape, "view": _reshape, "flatten": flatten,
        "reshape_as": _reshape_as, "view_as": _reshape_as,
        "permute": _permute, "transpose": _transpose, "swapaxes": _transpose,
        "T": property(lambda a: Permute.apply(a, axes=tuple(reversed(range(a.ndim))))),
        "exp": lambda a: Exp.apply(a), "log": lambda a: Log.apply(a), "sqrt": lambda a: Sqrt.apply(a),
        "abs": lambda a: Abs.apply(a), "relu": lambda a: ReLU.apply(a),
        "sigmoid": lambda a: Sigmoid.apply(a), "tanh": lambda a: Tanh.apply(a),
        "softmax": _softmax_method(Softmax, "softmax"), "log_softmax": _softmax_method(LogSoftmax, "log_softmax"),
        "to": to,
        "add": add, "sub": sub, "mul": mul, "div": div,
        "where": lambda a, condition, other: where(condition, a, other),
        "clamp": _clamp, "clip": _clamp, "maximum": maximum, "minimum": minimum,
        "log1p": lambda a: Log1p.apply(a),
        "expand": lambda a, *shape: expand_to(a, _sizes(shape)), "expand_as": lambda a, b: expand_to(a, b.shape),
        "repeat": lambda a, *sizes: repeat(a, _sizes(sizes)),
        "split": _split, "chunk": _chunk, "gather": gather, "masked_fill": _masked_fill,
        "squeeze": _squeeze, "unsqueeze": _unsqueeze,
    }
    for name, method in methods.items():
        setattr(Tensor, name, method)


_install_tensor_methods()
