"""The ops as Tensor operators and methods, with PyTorch's argument names.

``a + b`` is ``Add.apply(a, b)``, ``a.sum(dim=1)`` is ``Sum.apply(a, axis=1)``:
this file attaches each op to ``Tensor`` once, when minigrad is imported (as
DeZero's ``setup_variable`` does), so that minigrad/tensor.py needs to import
no op. Arguments take PyTorch's names, ``dim`` and ``keepdim``; NumPy's
``axis`` and ``keepdims`` are accepted as aliases, as PyTorch accepts them.
"""
from .ops import (Abs, Add, Concatenate, Div, Exp, Log, LogSoftmax, MatMul, Max, Mean, Mul, Neg, Permute, Pow,
                  ReLU, Reshape, Sigmoid, Softmax, Sqrt, Stack, Sub, Sum, Tanh, flatten, getitem, to)
from .tensor import Tensor


def cat(tensors, dim=None, *, axis=None):
    """Join tensors along an existing axis (``dim``, 0 by default)."""
    return Concatenate.apply(*tensors, axis=_one_dim(dim, axis, "cat", default=0))


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


def _reduction(function_class, op):
    def reduce(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _dims(op, dim, keepdim, axis, keepdims)
        return function_class.apply(self, axis=dim, keepdims=keepdim)
    reduce.__name__ = op
    reduce.__doc__ = f"{op} over ``dim`` (all axes if None); ``axis``/``keepdims`` are accepted as aliases."
    return reduce


def _argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the maximum (of the flattened tensor if ``dim`` is None); not differentiable."""
    dim, keepdim = _dims("argmax", dim, keepdim, axis, keepdims)
    return Tensor(self.data.argmax(axis=dim, keepdims=keepdim))


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _permute(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return Permute.apply(self, axes=dims)


def _transpose(self, dim0=-2, dim1=-1):
    """Swap two axes (PyTorch's meaning), the last two by default."""
    axes = list(range(self.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(self, axes=tuple(axes))


def _softmax_method(function_class, op):
    def method(self, dim=None, *, axis=None):
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
        "sum": _reduction(Sum, "sum"), "mean": _reduction(Mean, "mean"), "max": _reduction(Max, "max"),
        "argmax": _argmax, "reshape": _reshape, "view": _reshape, "flatten": flatten,
        "permute": _permute, "transpose": _transpose, "swapaxes": _transpose,
        "T": property(lambda a: Permute.apply(a, axes=tuple(reversed(range(a.ndim))))),
        "exp": lambda a: Exp.apply(a), "log": lambda a: Log.apply(a), "sqrt": lambda a: Sqrt.apply(a),
        "abs": lambda a: Abs.apply(a), "relu": lambda a: ReLU.apply(a),
        "sigmoid": lambda a: Sigmoid.apply(a), "tanh": lambda a: Tanh.apply(a),
        "softmax": _softmax_method(Softmax, "softmax"), "log_softmax": _softmax_method(LogSoftmax, "log_softmax"),
        "to": to,
    }
    for name, method in methods.items():
        setattr(Tensor, name, method)


_install_tensor_methods()
