"""Exercise: a gradient by central differences, to check any backward against.

Chapter: docs/autograd.md (``mg.gradcheck``).

For a function f from an array to a float, the derivative along entry i is
(f(x + h eᵢ) − f(x − h eᵢ)) / 2h, with an error of order h². Compute it for
every entry of x (change one entry at a time, and put it back).

    f: a function of one float64 array, returning a float; x: a float64 array.
    Return an array of x's shape.

Check: ``python -m pytest exercises/test_autograd_numerical_gradient.py``
"""


def numerical_gradient(f, x, h=1e-6):
    raise NotImplementedError
