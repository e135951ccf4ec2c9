"""Exercise: the chain rule by hand, on scalars.

Chapter: docs/autograd.md ("Warm-up: the chain rule on scalars").

f(x) = x² · log(1 + eˣ). Write f and its derivative f'(x) by hand, with the
product rule and the chain rule (log(1 + eˣ) is softplus; its derivative is the
sigmoid 1 / (1 + e⁻ˣ)). Use only ``math``: no autograd.

    x: a Python float. Return (f(x), f'(x)), two floats.

Check: ``python -m pytest exercises/test_autograd_chain_rule.py``
"""


def value_and_derivative(x):
    raise NotImplementedError
