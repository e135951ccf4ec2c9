"""``Tensor``: one array (NumPy or CuPy), its gradient, and the function that made it.

A tensor computed from tensors that require gradients remembers the
``Function`` that made it (``_ctx``); a tensor made by the user is a leaf
(``_ctx`` is None). This file holds only what a tensor *is*. What can be done
with one is attached elsewhere, once, at import: the differentiable operators
and methods (``+``, ``@``, ``sum``, ``reshape``, ``exp``, ``to`` ...) by
minigrad/ops.py, and ``backward`` by minigrad/autograd.py. That keeps the
engine's imports in one direction: tensor <- function <- ops <- autograd.
"""
import numpy as np

from . import backend


def _infer_dtype(data):
    """PyTorch's rule: Python floats become float32, ints int64; arrays keep theirs."""
    if isinstance(data, (np.ndarray, np.generic)) or backend.is_cupy_array(data):
        return None
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return np.float32
    return None


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


class Tensor:
    """An array plus the function that made it (if any) and its gradient.

    ``data`` is a numpy or cupy array; ``grad`` is a Tensor of the same shape
    after ``backward()``, or None.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: array * tensor works

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None:
            dtype = _infer_dtype(data)
        if backend.is_cupy_array(data):
            array = data if dtype is None else data.astype(dtype, copy=False)
        else:
            array = np.asarray(data, dtype=dtype)
        if device is not None:
            array = backend.to_device(array, device)
        if requires_grad and array.dtype.kind != "f":
            raise RuntimeError(
                f"tensor: only floating-point tensors can require gradients, got dtype {array.dtype}")
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None

    # ----- what it is -------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        extra = ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        body = np.array2string(backend.to_numpy(self.data), precision=4, separator=", ", prefix="tensor(")
        return f"tensor({body}{extra})"

    # ----- leaving the graph and the device ---------------------------------------
    def numpy(self):
        """The data as a NumPy array (copied from the GPU if it lives there)."""
        return backend.to_numpy(self.data)

    def __dlpack__(self, **options):
        """DLPack export: ``torch.from_dlpack(t)``, ``cupy.from_dlpack(t)`` share this tensor's memory, no copy."""
        return self.data.__dlpack__(**options)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut off from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # Comparisons give boolean tensors outside the graph; hashing stays by identity.
    def __eq__(self, other): return Tensor(self.data == _raw(other))
    def __ne__(self, other): return Tensor(self.data != _raw(other))
    def __lt__(self, other): return Tensor(self.data < _raw(other))
    def __le__(self, other): return Tensor(self.data <= _raw(other))
    def __gt__(self, other): return Tensor(self.data > _raw(other))
    def __ge__(self, other): return Tensor(self.data >= _raw(other))
    __hash__ = object.__hash__


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """Make a leaf tensor from a list, a number or an array (float32 unless told otherwise)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
