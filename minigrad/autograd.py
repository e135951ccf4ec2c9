"""Higher-order gradients: a backward pass that is itself differentiable, and ``grad``.

``loss.backward()`` (``run_backward`` in tensor.py) is the fast path: every
``Function.backward`` maps arrays to arrays and the graph is freed as it goes.
This module is the general path, for two things the fast path cannot do:

- ``create_graph=True``: each function runs ``backward_graph(grad)``, the same
  derivative written with Tensor ops on its input Tensors. The gradients are
  then Tensors with a graph of their own, and differentiating them again gives
  second derivatives: for a scalar loss L(w) and a vector v,

      H v = d/dw ( dL/dw . v )           (a Hessian-vector product)

  is ``grad((grad(L, w, create_graph=True)[0] * v).sum(), w)``.
- ``grad(outputs, inputs)`` (PyTorch's ``torch.autograd.grad``): the gradients
  are returned instead of summed into ``.grad``, and only the part of the graph
  between the outputs and the inputs runs.

The walk is the same as the fast path's (count each function's consumers,
run a function once all of them have handed it a gradient; iterative, so deep
graphs work), over several roots and with gradients that may be Tensors.
"""
from . import tensor as _tensor
from .tensor import Function, Tensor, _FREED_MESSAGE, output_grad, unbroadcast


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
    seeds = [_seed("grad", output, position, g, create_graph)
             for position, (output, g) in enumerate(zip(outputs, grad_outputs))]
    retain_graph = create_graph if retain_graph is None else retain_graph
    found = _walk(outputs, seeds, retain_graph, create_graph, targets=inputs)
    results = []
    for position, value in enumerate(inputs):
        gradient = found.get(value)
        if gradient is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {position} (shape {value.shape}) was not used to compute "
                                   f"the outputs; pass allow_unused=True to get None for it")
        elif create_graph:
            gradient = gradient.to(dtype=value.dtype)
        else:  # a copy: one gradient array may have been handed to several inputs
            gradient = Tensor(gradient.astype(value.dtype, copy=True))
        results.append(gradient)
    return tuple(results)


def backward_with_graph(output, grad, retain_graph=None):
    """``output.backward(grad, retain_graph, create_graph=True)``: leaf ``.grad`` become Tensors with graphs."""
    retain_graph = True if retain_graph is None else retain_graph
    _walk((output,), [_seed("backward", output, None, grad, True)], retain_graph, True, targets=None)


def _as_tuple(values):
    return (values,) if isinstance(values, Tensor) else tuple(values)


def _seed(op, output, position, grad, create_graph):
    """The gradient that starts the walk at ``output``: an array, or a Tensor when creating a graph."""
    if not (isinstance(output, Tensor) and output.requires_grad):
        which = "the tensor" if position is None else f"output {position}"
        raise RuntimeError(f"{op}: {which} does not require grad and has no grad_fn")
    array = output_grad(op, output, grad, "backward(grad)" if op == "backward" else "grad_outputs")
    if not create_graph:
        return array
    return grad if isinstance(grad, Tensor) else Tensor(array)


def _add(store, key, gradient):
    store[key] = gradient if key not in store else store[key] + gradient


def _accumulate_into_leaf(leaf, gradient):
    # The first gradient is a copy made by a differentiable op (Cast), so that
    # .grad shares no data with other gradients and stays part of the graph.
    if leaf.grad is None:
        leaf.grad = _tensor._ops.Cast.apply(gradient, dtype=leaf.data.dtype)
    else:
        leaf.grad = leaf.grad + gradient


def _walk(roots, seeds, retain_graph, create_graph, targets):
    """Propagate ``seeds`` (d loss / d root) backwards from ``roots``.

    ``targets`` None: every leaf that requires a gradient gets it in ``.grad``.
    Otherwise returns {target tensor: its gradient}, and only the functions that
    lead to a target run.
    """
    targets = None if targets is None else set(targets)  # by identity: Tensor == is elementwise
    root_functions = {root._ctx for root in roots if root._ctx is not None}
    users = _users(root_functions)
    live, useful = _functions_leading_to(targets, users)
    consumers = {function: 0 for function in live}
    for key, functions in users.items():
        if key in consumers:
            consumers[key] = sum(1 for function in functions if function in useful)
    target_of = {} if targets is None else {value._ctx: value for value in targets if value._ctx is not None}
    found, pending = {}, {}
    with _tensor.enable_grad() if create_graph else _tensor.no_grad():
        for root, seed in zip(roots, seeds):
            if root._ctx is None:
                _deliver_to_leaf(root, seed, targets, found)
            elif root._ctx in live:
                _add(pending, root._ctx, seed)
        ready = [function for function in pending if consumers[function] == 0]
        while ready:
            function = ready.pop()
            gradient = pending.pop(function)
            if function in target_of:
                found[target_of[function]] = gradient
            if function not in useful:
                continue
            input_grads = _differentiate(function, gradient, create_graph)
            for value, input_grad, needed in zip(function.inputs, input_grads, function.needs_input_grad):
                if not needed:
                    continue
                input_grad = unbroadcast(input_grad, value.shape)  # works on arrays and Tensors alike
                producer = value._ctx
                if producer is None:
                    _deliver_to_leaf(value, input_grad, targets, found)
                elif producer in live:
                    _add(pending, producer, input_grad)
                    consumers[producer] -= 1
                    if consumers[producer] == 0:
                        ready.append(producer)
            if not retain_graph:
                function.release()
    return found


def _differentiate(function, gradient, create_graph):
    if create_graph:
        input_grads = function.backward_graph(gradient)
    elif _tensor._observer is None:
        input_grads = function.backward(gradient)
    else:
        input_grads = _tensor._observer.backward(function, gradient)
    return input_grads if isinstance(input_grads, tuple) else (input_grads,)


def _deliver_to_leaf(leaf, gradient, targets, found):
    if targets is None:
        _accumulate_into_leaf(leaf, gradient)
    elif leaf in targets:
        _add(found, leaf, gradient)


def _users(root_functions):
    """For every function behind the roots and every leaf: the functions that take it as an input.

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


def _functions_leading_to(targets, users):
    """(live, useful): the functions that run their backward (useful: a target lies behind
    them) and those that also just receive a gradient (a target's producer)."""
    functions = {key for key in users if isinstance(key, Function)}
    if targets is None:
        return functions, functions
    useful = set()
    stack = [value if value._ctx is None else value._ctx for value in targets]
    while stack:
        for function in users.get(stack.pop(), ()):
            if function not in useful:
                useful.add(function)
                stack.append(function)
    producers = {value._ctx for value in targets if value._ctx in functions}
    return useful | producers, useful
