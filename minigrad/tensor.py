"""The autograd engine: ``Tensor``, ``Function`` and the backward pass.

A ``Tensor`` wraps one array (NumPy or CuPy) and, when it was computed from
tensors that require gradients, the ``Function`` that made it. A ``Function``
remembers its input tensors; it never points back at its output, so the graph
has no reference cycles and frees itself once ``backward`` releases it.

``loss.backward()`` walks the graph once, from the loss to the leaves, in an
order where a function runs only after every function that consumed its output
has handed it a gradient (a reverse topological order, found by counting
consumers first; no recursion, so a chain 20,000 ops deep works). Broadcasting
is undone here, in one place, so that no op has to undo it itself.
"""
import numpy as np

from . import backend

_grad_enabled = True
_observer = None  # minigrad.debug installs one to trace ops or detect NaNs; None costs nothing


class _GradMode:
    """Context manager (and decorator) that switches graph building on or off inside it."""

    enabled = True

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self.enabled

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, function):
        def wrapper(*args, **kwargs):
            with type(self)():
                return function(*args, **kwargs)
        wrapper.__name__ = function.__name__
        wrapper.__doc__ = function.__doc__
        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) in which ops build no graph."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager (and decorator) in which ops build a graph, even inside ``no_grad``."""

    enabled = True


def is_grad_enabled():
    return _grad_enabled


def set_observer(observer):
    """Install an object whose ``forward(function, arrays, options)`` and
    ``backward(function, grad)`` run every op in place of the plain calls (see
    minigrad/debug.py); None removes it. Returns the previous one."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Function:
    """One differentiable op.

    Subclasses define ``forward(*arrays, **options)`` returning an array and
    ``backward(grad)`` returning one gradient array per input (``None`` where
    ``self.needs_input_grad`` says the input needs none). Both see raw arrays,
    so one code path serves NumPy and CuPy. Inputs that are Python numbers are
    constants: they reach ``forward`` as they are and get no gradient.

    For higher-order gradients (``backward(create_graph=True)``, ``mg.grad``)
    a subclass also defines ``backward_graph(grad)``: the same derivative, but
    ``grad`` is a Tensor and the result is computed with Tensor ops on the
    input Tensors ``self.inputs``, so that it has a graph of its own.
    """

    freed = False

    @classmethod
    def apply(cls, *inputs, **options):
        function = cls()
        arrays = []
        device = None
        for value in inputs:
            if isinstance(value, Tensor):
                value_device = value.device
                if device is None:
                    device = value_device
                elif value_device != device:
                    raise RuntimeError(
                        f"{cls.__name__.lower()}: inputs are on different devices "
                        f"({device} and {value_device}); move them with .to(device) first")
                arrays.append(value.data)
            else:
                arrays.append(value)
        if _observer is None:
            output = function.forward(*arrays, **options)
        else:
            output = _observer.forward(function, arrays, options)
        result = Tensor.__new__(Tensor)
        result.data = output
        result.grad = None
        result._ctx = None
        result.requires_grad = False
        if _grad_enabled:
            needs = tuple(isinstance(value, Tensor) and value.requires_grad for value in inputs)
            if any(needs):
                function.inputs = inputs
                function.needs_input_grad = needs
                result.requires_grad = True
                result._ctx = function
        return result

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def backward_graph(self, grad):
        raise RuntimeError(f"{type(self).__name__.lower()} does not support create_graph=True: it has no "
                           f"differentiable backward (backward_graph); differentiate it once only")

    def release(self):
        """Drop the inputs and saved arrays; a later backward through here is an error."""
        self.__dict__.clear()
        self.freed = True


_FREED_MESSAGE = (
    "backward: trying to backward through the graph a second time; the first "
    "backward() freed it. Pass retain_graph=True to the first call to keep it.")


def _count_consumers(root_function):
    """For every function behind the root: how many gradients it will receive."""
    consumers = {root_function: 0}
    stack = [root_function]
    while stack:
        function = stack.pop()
        if function.freed:
            raise RuntimeError(_FREED_MESSAGE)
        for value in function.inputs:
            if isinstance(value, Tensor) and value._ctx is not None:
                producer = value._ctx
                if producer in consumers:
                    consumers[producer] += 1
                else:
                    consumers[producer] = 1
                    stack.append(producer)
    return consumers


def _accumulate_leaf_grad(leaf, grad):
    # A gradient array may be shared (an add hands one array to both inputs),
    # so a leaf's first gradient is a copy that the optimizer may change in place.
    if leaf.grad is None:
        leaf.grad = Tensor(grad.astype(leaf.data.dtype, copy=True))
    else:
        leaf.grad.data = leaf.grad.data + grad


_queued_callbacks = []


def queue_callback(callback):
    """Run ``callback()`` once, when the backward pass now running has finished.

    A ``Function.backward`` calls this to act after every leaf holds its final
    gradient (PyTorch's ``Variable._execution_engine.queue_callback``);
    ``DistributedDataParallel`` averages the gradients across processes there.
    """
    _queued_callbacks.append(callback)


def run_backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (d root / d root) to every leaf that requires a gradient."""
    _queued_callbacks.clear()  # left over only if an earlier backward raised
    if root._ctx is None:
        _accumulate_leaf_grad(root, grad)
        return
    consumers = _count_consumers(root._ctx)
    pending = {root._ctx: grad}
    ready = [root._ctx]
    while ready:
        function = ready.pop()
        grad = pending.pop(function)
        input_grads = function.backward(grad) if _observer is None else _observer.backward(function, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for value, input_grad, needed in zip(function.inputs, input_grads, function.needs_input_grad):
            if not needed:
                continue
            input_grad = unbroadcast(input_grad, value.data.shape)
            producer = value._ctx
            if producer is None:
                _accumulate_leaf_grad(value, input_grad)
                continue
            if producer in pending:
                pending[producer] = pending[producer] + input_grad
            else:
                pending[producer] = input_grad
            consumers[producer] -= 1
            if consumers[producer] == 0:
                ready.append(producer)
        if not retain_graph:
            function.release()
    while _queued_callbacks:
        _queued_callbacks.pop(0)()


def output_grad(op, output, grad, argument="backward(grad)"):
    """d loss / d output as an array: ones for a one-element output, else ``grad`` checked against its shape."""
    xp = backend.array_module(output.data)
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(f"{op}: grad can be created implicitly only for a scalar output, "
                               f"but this tensor has shape {output.shape}; pass {argument}")
        return xp.ones_like(output.data)
    grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=output.dtype)
    if grad.shape != output.shape:
        raise ValueError(f"{op}: grad has shape {grad.shape}, tensor has shape {output.shape}")
    return grad


def _infer_dtype(data):
    """PyTorch's rule: Python floats become float32, ints int64; arrays keep theirs."""
    if isinstance(data, (np.ndarray, np.generic)) or backend.is_cupy_array(data):
        return None
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return np.float32
    return None


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

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    def size(self, axis=None):
        return self.data.shape if axis is None else self.data.shape[axis]

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

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut off from the graph."""
        return Tensor(self.data)

    def to(self, device=None, dtype=None):
        """A copy on ``device`` ('cpu' or 'cuda') and/or of ``dtype``; self if nothing changes."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device  # .to(np.float64)
        result = self
        if device is not None and backend.normalize_device(device) != self.device:
            result = _ops.ToDevice.apply(result, device=backend.normalize_device(device))
        if dtype is not None and np.dtype(dtype) != self.dtype:
            result = _ops.Cast.apply(result, dtype=np.dtype(dtype))
        return result

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Compute d self / d leaf for every leaf that requires a gradient, into ``leaf.grad``.

        ``grad`` is d loss / d self; it may be left out only when self holds one value.
        ``retain_graph`` keeps the graph for another backward (default: ``create_graph``).
        ``create_graph=True`` records the backward pass itself, so each ``leaf.grad``
        is a Tensor with a graph that can be differentiated again (see minigrad/autograd.py).
        That graph refers back to the leaf; set ``leaf.grad = None`` when done with it,
        or use ``mg.grad``, which returns the gradients instead.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn; "
                               "did you create the parameters with requires_grad=True?")
        if create_graph:
            _autograd.backward_with_graph(self, grad, retain_graph)
            return
        run_backward(self, output_grad("backward", self, grad), retain_graph=retain_graph)

    # ----- arithmetic (each op is defined, with its derivative, in ops.py) --------
    def __add__(self, other): return _ops.Add.apply(self, other)
    def __radd__(self, other): return _ops.Add.apply(other, self)
    def __sub__(self, other): return _ops.Sub.apply(self, other)
    def __rsub__(self, other): return _ops.Sub.apply(other, self)
    def __mul__(self, other): return _ops.Mul.apply(self, other)
    def __rmul__(self, other): return _ops.Mul.apply(other, self)
    def __truediv__(self, other): return _ops.Div.apply(self, other)
    def __rtruediv__(self, other): return _ops.Div.apply(other, self)
    def __neg__(self): return _ops.Neg.apply(self)
    def __pow__(self, exponent): return _ops.Pow.apply(self, exponent)
    def __rpow__(self, base): return _ops.Pow.apply(base, self)
    def __matmul__(self, other): return _ops.MatMul.apply(self, other)
    def __rmatmul__(self, other): return _ops.MatMul.apply(other, self)
    def __getitem__(self, index): return _ops.getitem(self, index)

    # Comparisons give boolean tensors outside the graph; hashing stays by identity.
    def __eq__(self, other): return Tensor(self.data == _raw(other))
    def __ne__(self, other): return Tensor(self.data != _raw(other))
    def __lt__(self, other): return Tensor(self.data < _raw(other))
    def __le__(self, other): return Tensor(self.data <= _raw(other))
    def __gt__(self, other): return Tensor(self.data > _raw(other))
    def __ge__(self, other): return Tensor(self.data >= _raw(other))
    __hash__ = object.__hash__

    # ----- reductions and shapes --------------------------------------------------
    def sum(self, axis=None, keepdims=False): return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return _ops.Mean.apply(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1): return _ops.flatten(self, start_dim, end_dim)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.Permute.apply(self, axes=axes)

    def transpose(self, dim0=-2, dim1=-1):
        """Swap two axes (PyTorch's meaning), the last two by default."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return _ops.Permute.apply(self, axes=tuple(axes))

    swapaxes = transpose

    @property
    def T(self):
        return _ops.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

    # ----- elementwise functions --------------------------------------------------
    def exp(self): return _ops.Exp.apply(self)
    def log(self): return _ops.Log.apply(self)
    def sqrt(self): return _ops.Sqrt.apply(self)
    def abs(self): return _ops.Abs.apply(self)
    def relu(self): return _ops.ReLU.apply(self)
    def sigmoid(self): return _ops.Sigmoid.apply(self)
    def tanh(self): return _ops.Tanh.apply(self)
    def softmax(self, axis=-1): return _ops.Softmax.apply(self, axis=axis)
    def log_softmax(self, axis=-1): return _ops.LogSoftmax.apply(self, axis=axis)


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """Make a leaf tensor from a list, a number or an array (float32 unless told otherwise)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


from . import ops as _ops  # noqa: E402  (ops needs Tensor, defined above)
from . import autograd as _autograd  # noqa: E402
