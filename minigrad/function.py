"""``Function``: one differentiable op, its forward on arrays and its derivative on Tensors.

A subclass defines

- ``forward(*arrays, **options)``: raw arrays in (NumPy or CuPy: ``xp =
  backend.array_module(x)`` picks the module), one array out. It may keep on
  ``self`` what its derivative needs (a mask, an index, saved statistics).
- ``backward(grad)``: d loss / d output as a Tensor in, one Tensor (or None
  where ``self.needs_input_grad`` says no gradient is wanted) per input out,
  written with Tensor ops on ``self.inputs`` and ``self.output``.

Because the derivative is written with Tensor ops, it is written once and
serves twice: the ordinary ``backward()`` runs it under ``no_grad`` (no graph,
fast), and ``backward(create_graph=True)`` runs the same code recording a graph,
whose own backward gives second derivatives. Where a derivative is a big array
computation (conv2d's input gradient, max-pool's scatter, batch norm's closed
form) it is a Function of its own, whose derivative is again written once.

Inputs that are not Tensors (Python numbers, arrays) are constants: they reach
``forward`` as they are and get no gradient.

A leaf's first gradient becomes its ``.grad`` as a copy, because a derivative may
hand one array to several inputs (``a + b`` gives both the same gradient). A
Function whose derivative makes a new array for an input, which nothing else
holds (a GEMM's result, a sum), names that input's position in
``new_gradients``; a leaf then takes that array as it is (minigrad/autograd.py).
"""
import weakref

import numpy as np

from . import backend, mode
from .tensor import Tensor


def _check_same_device(function_class, first, array):
    first_device, device = backend.device_of(first), backend.device_of(array)
    if device != first_device:
        raise RuntimeError(f"{function_class.__name__.lower()}: inputs are on different devices "
                           f"({first_device} and {device}); move them with .to(device) first")


class Function:
    """One differentiable op; see the module docstring for what a subclass defines."""

    freed = False
    new_gradients = ()  # positions of the inputs whose gradient backward makes as a new, unshared array

    @classmethod
    def apply(cls, *inputs, **options):
        function = cls()
        arrays = []
        first = None
        for value in inputs:
            if isinstance(value, Tensor):
                array = value.data
                if first is None:
                    first = array
                elif type(array) is not np.ndarray or type(first) is not np.ndarray:
                    _check_same_device(cls, first, array)
                arrays.append(array)
            else:
                arrays.append(value)
        if mode._observer is None:
            output = function.forward(*arrays, **options)
        else:
            output = mode._observer.forward(function, arrays, options)
        result = Tensor.__new__(Tensor)
        result.data = output
        result.grad = None
        result._ctx = None
        result.requires_grad = False
        if mode._grad_enabled:
            needs = tuple(isinstance(value, Tensor) and value.requires_grad for value in inputs)
            if any(needs):
                function.inputs = inputs
                function.needs_input_grad = needs
                function._output = weakref.ref(result)  # weak: the graph holds no cycle
                result.requires_grad = True
                result._ctx = function
        return result

    @property
    def output(self):
        """The Tensor this function made (the backward pass keeps it alive while it runs here)."""
        return self._output()

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def release(self):
        """Drop the inputs and saved arrays; a later backward through here is an error."""
        self.__dict__.clear()
        self.freed = True
