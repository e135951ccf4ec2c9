"""Exercise: undo broadcasting in a gradient.

Chapter: docs/autograd.md ("Broadcasting is undone in one place").

When an input of shape ``shape`` was broadcast to a larger output, every copy
of an entry received a gradient; the entry's gradient is their sum. Sum
``grad`` down to ``shape``: first over the leading axes that broadcasting
added, then, keeping dimensions, over the axes where ``shape`` has size 1.

    grad: a NumPy array; shape: a tuple that broadcasts to grad.shape.
    Return an array of exactly ``shape``.

Check: ``python -m pytest exercises/test_autograd_unbroadcast.py``
"""


def unbroadcast(grad, shape):
    raise NotImplementedError
