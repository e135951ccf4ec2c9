"""minigrad: a small autograd engine on NumPy and CuPy.

    import minigrad as mg
    x = mg.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 x
"""
from . import threads as _threads

_threads.shorten_blas_spin()  # before NumPy loads OpenBLAS where it can (see threads.py)

import numpy  # noqa: E402

from . import operators, autograd  # noqa: I001  (first: they attach the ops and backward to Tensor)
from . import backend, data, debug, distributed, interop, models, nn, optim, prune, threads, viz
from .autograd import grad
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .interop import from_dlpack
from .nn import functional
from .operators import ValuesIndices, add, cat, div, mul, stack, sub, where
from .ops_extra import gather, maximum, minimum
from .random import manual_seed
from .serialization import load, save
from .function import Function
from .mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, tensor
from .threads import get_num_threads, set_num_threads

float32 = numpy.float32
float64 = numpy.float64


def cuda_is_available():
    """True when CuPy imports and sees a GPU."""
    return backend.cuda_is_available()


__all__ = ["Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed",
           "grad", "gradcheck", "gradgradcheck", "GradcheckError", "save", "load", "cat", "stack", "where",
           "gather", "add", "sub", "mul", "div", "maximum", "minimum", "ValuesIndices", "nn", "functional",
           "ops", "backend", "data", "debug", "distributed", "from_dlpack", "interop", "models", "optim", "prune",
           "threads", "viz", "get_num_threads", "set_num_threads", "cuda_is_available"]
__version__ = "0.1.0"
