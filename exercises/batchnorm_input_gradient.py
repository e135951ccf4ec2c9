"""Exercise: batch normalization's input gradient, in closed form.

Chapter: docs/batchnorm.md ("The math" and `input_gradient` in "The code").

For x of shape (N, C) in training mode, with per-channel batch mean μ, variance
σ² (divided by N), x̂ = (x − μ) / √(σ² + ε) and y = γ · x̂ + β, return dL/dx
given g = dL/dy. Derive it (the chapter gives the result: check your
derivation against it, then write it without looking), using only NumPy.

    x, grad_output: float64 arrays (N, C); weight: γ, a float64 array (C,)

Check: ``python -m pytest exercises/test_batchnorm_input_gradient.py``
"""


def input_gradient(x, grad_output, weight, eps=1e-5):
    raise NotImplementedError
