"""Activations beyond the basic ones: GELU, SiLU, and Softmax / LogSoftmax as layers.

    gelu(x) = x * Phi(x) = x/2 * (1 + erf(x / sqrt(2)))          (approximate='none')
    gelu(x) ~ x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))   (approximate='tanh')
    silu(x) = x * sigmoid(x)
    logsigmoid(x) = log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|))

Each is a composition of differentiable ops, so each has first and second
derivatives from the ops it is made of.
"""
import math

from ..ops_extra import Erf, LogSigmoid
from .module import Module


def gelu(input, approximate="none"):
    """The Gaussian error linear unit, exact or with the tanh approximation."""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)
        return input * 0.5 * (inner.tanh() + 1.0)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return input * 0.5 * (Erf.apply(input * (1 / math.sqrt(2))) + 1.0)


def silu(input):
    """x * sigmoid(x) (also called swish)."""
    return input * input.sigmoid()


def logsigmoid(input):
    """log(sigmoid(x)), computed without overflow for any x."""
    return LogSigmoid.apply(input)


def _implicit_softmax_dim(ndim):
    """The dim PyTorch's Softmax(dim=None) picks: 0 for 0-, 1- and 3-D input, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def forward(self, input):
        return silu(input)


class Softmax(Module):
    """softmax along ``dim`` (None: the dim PyTorch's legacy rule picks from the input's dims)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return input.softmax(_implicit_softmax_dim(input.ndim) if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log softmax along ``dim``."""

    def forward(self, input):
        return input.log_softmax(_implicit_softmax_dim(input.ndim) if self.dim is None else self.dim)
