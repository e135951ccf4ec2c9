"""Exercise: the forward and backward of one op, tanh, on raw arrays.

Chapter: docs/autograd.md (writing a new op: a forward, a backward, and a
gradient check).

An op sees NumPy arrays. ``forward(x)`` returns y = tanh(x), written with
``np.exp`` (not ``np.tanh``). ``backward(x, y, grad_output)`` returns dL/dx
given g = dL/dy: the local derivative dy/dx = 1 − y², times g. Reuse y, which
the forward already computed.

    x, y, grad_output: float64 arrays of one shape; each function returns one.

Check: ``python -m pytest exercises/test_autograd_function_backward.py``
"""


def forward(x):
    raise NotImplementedError


def backward(x, y, grad_output):
    raise NotImplementedError
