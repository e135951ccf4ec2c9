"""The backward pass: one walk of the graph, for ``backward()`` and ``grad()`` alike.

``loss.backward()`` hands d loss / d loss = 1 to the function that made
``loss``, then runs every function's ``backward`` in an order where a function
runs only after every function that consumed its output has handed it a
gradient (a reverse topological order, found by counting consumers first; no
recursion, so a chain 20,000 ops deep works). Along the way it

- undoes broadcasting, here and nowhere else (``unbroadcast``);
- sums the gradients a tensor receives from its several consumers;
- hands each leaf that requires a gradient its total, by one rule: the first
  becomes ``.grad`` as a copy in the leaf's dtype (without the copy when the
  derivative made it as a new array of that dtype: ``Function.new_gradients``),
  later ones are added to it;
- frees each function once it has run (unless ``retain_graph``), so a second
  backward through the same graph is an error, not a wrong answer.

The derivatives are written with Tensor ops (minigrad/function.py). The walk
runs them under ``no_grad`` (plain arrays, fast) or, for
``create_graph=True``, recording a graph: the gradients are then Tensors that
can be differentiated again. For a scalar loss L(w) and a vector v,

    H v = d/dw ( dL/dw . v )           (a Hessian-vector product)

is ``grad((grad(L, w, create_graph=True)[0] * v).sum(), w)``.
"""
from . import backend, mode
from .function import Function
from .ops import Cast, unbroadcast
from .tensor import Tensor

_FREED_MESSAGE = (
    "backward: trying to backward through the graph a second time; the first "
    "backward() freed it. Pass retain_graph=True to the first call to keep it.")

_queued_callbacks = []


def queue_callback(callback):
    """Run ``callback()`` once, when the backward pass now running has finished.

    A ``Function.backward`` calls this to act after every leaf holds its final
    gradient (PyTorch's ``Variable._execution_engine.queue_callback``);
    ``DistributedDataParallel`` averages the gradients across processes there.
    """
    _queued_callbacks.append(callback)


def backward(tensor, grad=None, retain_graph=None, create_graph=False):
    """Compute d tensor / d leaf for every leaf that requires a gradient, into ``leaf.grad``.

    ``grad`` is d loss / d tensor; it may be left out only when the tensor holds one value.
    ``retain_graph`` keeps the graph for another backward (default: ``create_graph``).
    ``create_graph=True`` records the backward pass itself, so each ``leaf.grad``
    is a Tensor with a graph that can be differentiated again. That graph refers
    back to the leaf; set ``leaf.grad = None`` when done with it, or use
    ``mg.grad``, which returns the gradients instead.
    """
    if not tensor.requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no grad_fn; "
                           "did you create the parameters with requires_grad=True?")
    seed = _seed("backward", tensor, grad, "backward(grad)")
    retain_graph = create_graph if retain_graph is None else retain_graph
    _walk((tensor,), (seed,), retain_graph, create_graph, targets=None)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """d sum_i(grad_outputs[i] * outputs[i]) / d inputs[j] for each j, as a tuple of Tensors.

    ``outputs`` and ``inputs`` are Tensors or sequences of Tensors; each
    ``grad_outputs[i]`` has the shape of ``outputs[i]`` (None: ones, for an
    output with one element). No ``.grad`` is read or written. With
    ``create_graph=True`` the results carry a graph, so they can be
    differentiated again (gradient penalties, Hessian-vector products).
    ``retain_graph`` defaults to ``create_graph``. An input the outputs do not
    depend on is an error, or None with ``allow_unused=True``.
    """
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    grad_outputs = (None,) * len(outputs) if grad_outputs is None else _as_tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for position, value in enumerate(inputs):
        if not (isinstance(value, Tensor) and value.requires_grad):
            raise RuntimeError(f"grad: input {position} (shape {getattr(value, 'shape', None)}) "
                               f"does not require grad")
    for position, output in enumerate(outputs):
        if not (isinstance(output, Tensor) and output.requires_grad):
            raise RuntimeError(f"grad: output {position} does not require grad and has no grad_fn")
    seeds = [_seed("grad", output, g, "grad_outputs") for output, g in zip(outputs, grad_outputs)]
    retain_graph = create_graph if retain_graph is None else retain_graph
    found = _walk(outputs, seeds, retain_graph, create_graph, targets=inputs)
    results = []
    for position, value in enumerate(inputs):
        gradient = found.get(value)
        if gradient is None and not allow_unused:
            raise RuntimeError(f"grad: input {position} (shape {value.shape}) was not used to compute "
                               f"the outputs; pass allow_unused=True to get None for it")
        if gradient is not None:  # without a graph, a copy: one array may have gone to several inputs
            with mode.backward_pass(create_graph):
                gradient = gradient.to(dtype=value.dtype) if create_graph else Cast.apply(gradient, dtype=value.dtype)
        results.append(gradient)
    return tuple(results)


def _as_tuple(values):
    return (values,) if isinstance(values, Tensor) else tuple(values)


def _seed(op, output, grad, argument):
    """d loss / d output as a Tensor: ones for a one-element output, else ``grad`` checked against its shape."""
    if isinstance(grad, Tensor):
        if grad.shape != output.shape:
            raise ValueError(f"{op}: grad has shape {grad.shape}, tensor has shape {output.shape}")
        return grad
    xp = backend.array_module(output.data)
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(f"{op}: grad can be created implicitly only for a scalar output, "
                               f"but this tensor has shape {output.shape}; pass {argument}")
        return Tensor(xp.ones_like(output.data))
    array = xp.asarray(grad, dtype=output.dtype)
    if array.shape != output.shape:
        raise ValueError(f"{op}: grad has shape {array.shape}, tensor has shape {output.shape}")
    return Tensor(array)


def _users(root_functions):
    """Every function behind the roots, and every leaf, with the functions that take it as an input.

    A non-leaf input is keyed by the function that produced it (a function has one output).
    """
    users = {function: [] for function in root_functions}
    stack = list(root_functions)
    while stack:
        function = stack.pop()
        if function.freed:
            raise RuntimeError(_FREED_MESSAGE)
        for value, needed in zip(function.inputs, function.needs_input_grad):
            if not needed:
                continue
            key = value if value._ctx is None else value._ctx
            if key not in users:
                users[key] = []
                if value._ctx is not None:
                    stack.append(key)
            users[key].append(function)
    return users


def _useful(targets, users):
    """The functions worth running: all of them, or (for ``grad``) those with a target behind them."""
    functions = [key for key in users if isinstance(key, Function)]
    if targets is None:
        return set(functions)
    useful = set()
    stack = [value if value._ctx is None else value._ctx for value in targets]
    while stack:
        for function in users.get(stack.pop(), ()):
            if function not in useful:
                useful.add(function)
                stack.append(function)
    return useful


def _walk(roots, seeds, retain_graph, create_graph, targets):
    """Propagate ``seeds`` (d loss / d root, Tensors) backwards from ``roots``.

    ``targets`` None: every leaf that requires a gradient gets it in ``.grad``.
    Otherwise returns {target tensor: its gradient}, and only the functions that
    lead to a target run.
    """
    _queued_callbacks.clear()  # left over only if an earlier backward raised
    targets = None if targets is None else set(targets)  # by identity: Tensor == is elementwise
    users = _users({root._ctx for root in roots if root._ctx is not None})
    useful = _useful(targets, users)
    consumers = {key: len(functions) if targets is None else sum(1 for user in functions if user in useful)
                 for key, functions in users.items() if isinstance(key, Function)}
    target_of = {} if targets is None else {value._ctx: value for value in targets if value._ctx is not None}
    found, pending, outputs = {}, {}, {}
    with mode.backward_pass(create_graph):
        for root, seed in zip(roots, seeds):
            _deliver(root, seed, targets, found, pending, outputs)
        ready = [function for function in pending if consumers[function] == 0]
        while ready:
            function = ready.pop()
            gradient = pending.pop(function)
            if function in target_of:
                found[target_of[function]] = gradient
            if function in useful:
                _run(function, gradient, targets, found, pending, outputs, consumers, ready)
                if not retain_graph:
                    function.release()
            outputs.pop(function)  # held until now so that the derivative could read function.output
    while _queued_callbacks:
        _queued_callbacks.pop(0)()
    return found


def _run(function, gradient, targets, found, pending, outputs, consumers, ready):
    """One function's derivative, and its input gradients handed on."""
    observer = mode.observer()
    input_grads = function.backward(gradient) if observer is None else observer.backward(function, gradient)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    for position, (value, input_grad, needed) in enumerate(zip(function.inputs, input_grads,
                                                               function.needs_input_grad)):
        if not needed or input_grad is None:
            continue
        if not isinstance(input_grad, Tensor):  # a derivative written on arrays, as constants
            input_grad = Tensor(input_grad)
        input_grad = unbroadcast(input_grad, value.shape)
        producer = value._ctx
        new = position in function.new_gradients
        if _deliver(value, input_grad, targets, found, pending, outputs, new):
            consumers[producer] -= 1
            if consumers[producer] == 0:
                ready.append(producer)


def _deliver(value, gradient, targets, found, pending, outputs, new=False):
    """Hand ``gradient`` to ``value``: a leaf takes it, a produced tensor's function adds it up.
    ``new``: the gradient's array is new and held by nothing else (``Function.new_gradients``).

    Returns whether it went to a function that takes part in this walk.
    """
    producer = value._ctx
    if producer is None:
        if targets is None:
            _accumulate(value, gradient, new)
        elif value in targets:
            found[value] = gradient if value not in found else found[value] + gradient
        return False
    if producer in pending:
        pending[producer] = pending[producer] + gradient
    else:
        pending[producer] = gradient
        outputs[producer] = value
    return True


def _accumulate(leaf, gradient, new=False):
    """The one leaf rule: the first gradient becomes ``.grad`` as a copy in the leaf's dtype (it
    may share its array with other gradients); later gradients are added to it.

    ``new``: the derivative made the array for this input alone, so it becomes ``.grad`` without
    the copy when it has the leaf's dtype and no graph is being recorded (with ``create_graph``,
    ``.grad`` is a new node of the graph)."""
    if leaf.grad is None:
        if new and not mode.is_grad_enabled() and gradient.data.dtype == leaf.data.dtype:
            leaf.grad = gradient
        else:
            leaf.grad = Cast.apply(gradient, dtype=leaf.data.dtype)
    else:
        leaf.grad = leaf.grad + gradient


Tensor.backward = backward
