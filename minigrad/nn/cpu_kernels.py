"""Compiled CPU kernels for batch norm followed by a 2x2 max-pool (numba): ``BatchNormMaxPool`` in three loops.

NumPy runs each step of a formula as its own pass over the batch, and minigrad's
threads hand the GIL to each other between those calls. For train.py's default
CNN, batch norm, ReLU and the pool were then half of a training step. The three
passes of ``batchnorm.BatchNormMaxPool`` are written here as plain loops over
one (image, channel) plane at a time, for a 2x2 window with stride 2 (the
default CNN's pool):

- ``normalize_max_pool``: y = (x - mean) * scale + bias at the four values of a
  window, the largest y, and which of the four won (the first maximum, as the
  engine's max-pool);
- ``max_pool_gradient_sums``: batch norm's sums, sum g and sum g * (x - mean)
  with x at each window's winner;
- ``max_pool_input_gradient``: dx = a * dy + b * (x - mean) + c, where dy is
  the pooled gradient g at each window's winner and 0 elsewhere.

Each loop reads x once and writes its output once, and the plane it works on
stays in the cache. numba compiles the loops to machine code the first time
they run and keeps the code in ``__pycache__``; they release the GIL, so each
of minigrad's threads (``parallel.for_each_chunk``) runs one call on its share
of the batch.

Each is the twin of a NumPy function in cpu_fast.py, with the same arguments
and results: the forward and the input gradient do the same operations on each
value in the same order, so they give the same bits; the sums add in another
order, in float64 (tests/test_cpu_kernels.py). Without numba (the ``fast``
extra: ``pip install minigrad[fast]``), with ``MINIGRAD_NUMBA=0``, or for any
other window, ``BatchNormMaxPool`` runs cpu_fast.py's passes instead.
"""
import importlib.util
import os
import warnings

import numpy as np

from ..parallel import for_each_chunk
from . import cpu_fast

# numba is optional: the NumPy passes of cpu_fast.py give the same results without it.
use_numba = importlib.util.find_spec("numba") is not None and os.environ.get("MINIGRAD_NUMBA", "1") != "0"
WINDOW = (2, 2)  # the window and stride these kernels compute


def fits(x, kernel_size, stride):
    """Whether the kernels run BatchNormMaxPool on x (a float32/64 NumPy batch): numba is there,
    switched on and importable, the pool's window and stride are 2x2, and x is C-contiguous."""
    return (use_numba and tuple(kernel_size) == WINDOW and tuple(stride) == WINDOW
            and x.flags.c_contiguous and _kernels() is not None)


# ----- the loops: x (N, C, H, W), g and winner (N, C, H // 2, W // 2), per-channel arrays (C,) -----------
def _normalize_max_pool(x, mean, scale, bias, best, winner, start, stop):
    """best, winner[n, c, r, q] for the images start..stop: the window's largest (x - mean) * scale + bias
    and its offset 2 * i + j. Returns whether a value was NaN: the loop keeps a NaN out of the maximum,
    while the NumPy pass's np.maximum lets it in, so such a chunk is run again by the NumPy pass."""
    nan = False
    for n in range(start, stop):
        for c in range(x.shape[1]):
            for r in range(best.shape[2]):
                for q in range(best.shape[3]):
                    top, choice = (x[n, c, 2 * r, 2 * q] - mean[c]) * scale[c] + bias[c], 0
                    for offset in range(1, 4):
                        value = (x[n, c, 2 * r + offset // 2, 2 * q + offset % 2] - mean[c]) * scale[c] + bias[c]
                        nan |= value != value  # a flag, not a branch: the loop stays vectorized
                        if value > top:  # strictly: the first maximum wins
                            top, choice = value, offset
                    best[n, c, r, q] = top
                    winner[n, c, r, q] = choice
    return nan


def _max_pool_gradient_sums(grad, winner, x, mean, start, stop):
    """Per channel, over the images start..stop: (sum g, sum g * (x at the winner - mean)), in float64."""
    sum_dy, sum_dy_centered = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for n in range(start, stop):
        for c in range(x.shape[1]):
            total, centered = 0.0, 0.0
            for r in range(grad.shape[2]):
                for q in range(grad.shape[3]):
                    offset = winner[n, c, r, q]
                    total += grad[n, c, r, q]
                    centered += grad[n, c, r, q] * (x[n, c, 2 * r + offset // 2, 2 * q + offset % 2] - mean[c])
            sum_dy[c] += total
            sum_dy_centered[c] += centered
    return sum_dy, sum_dy_centered


def _max_pool_input_gradient(grad, winner, x, mean, a, b, c, out, start, stop):
    """out = a * dy + b * (x - mean) + c per channel for the images start..stop, dy being grad at each
    window's winner and 0 elsewhere."""
    zero = x.dtype.type(0)
    for n in range(start, stop):
        for channel in range(x.shape[1]):
            # read once into locals: the compiler cannot tell that writing ``out`` leaves them unchanged
            center, slope_dy, slope_x, constant = mean[channel], a[channel], b[channel], c[channel]
            for r in range(grad.shape[2]):
                for i in range(2):
                    for q in range(grad.shape[3]):
                        g, offset = grad[n, channel, r, q], winner[n, channel, r, q]
                        for j in range(2):
                            dy = g if offset == 2 * i + j else zero
                            row, column = 2 * r + i, 2 * q + j
                            centered = x[n, channel, row, column] - center
                            out[n, channel, row, column] = dy * slope_dy + centered * slope_x + constant
            for row in range(x.shape[2]):  # a last odd row or column, which no window reads: dy = 0
                for column in range(2 * grad.shape[3] if row < 2 * grad.shape[2] else 0, x.shape[3]):
                    centered = x[n, channel, row, column] - center
                    out[n, channel, row, column] = zero * slope_dy + centered * slope_x + constant


_compiled = None


def _compile(loop, **options):
    """``loop`` as machine code (nogil: minigrad's threads run one call each at once), kept in numba's
    cache; where no cache directory is writable (a read-only install without a home), compiled anew
    in each process instead of failing."""
    import numba
    try:
        return numba.njit(nogil=True, cache=True, **options)(loop)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, **options)(loop)


def _kernels():
    """The three loops compiled (numba is imported on first use, so ``import minigrad`` does not wait for it),
    or None, with a warning, when numba is installed but cannot be imported (built for another NumPy)."""
    global _compiled, use_numba
    if _compiled is None:
        try:
            import numba  # noqa: F401
        except ImportError as error:
            use_numba = False
            warnings.warn(f"minigrad: numba is installed but cannot be imported ({error}); batch norm and "
                          f"max-pool run on NumPy's passes", RuntimeWarning, stacklevel=2)
            return None
        # the sums may be reassociated, so that the compiler can vectorize them; they are float64
        _compiled = (_compile(_normalize_max_pool), _compile(_max_pool_gradient_sums, fastmath={"reassoc"}),
                     _compile(_max_pool_input_gradient))
    return _compiled


def _per_channel(values, dtype):
    return np.ascontiguousarray(values, dtype=dtype)


def _check_window(op, kernel_size, stride):
    if tuple(kernel_size) != WINDOW or tuple(stride) != WINDOW:
        raise ValueError(f"{op}: the compiled kernels take a 2x2 window with stride 2, "
                         f"got kernel_size={kernel_size}, stride={stride}")


# ----- the twins of cpu_fast.py's functions, same arguments, same results ----------------------------------
def normalize_max_pool(x, mean, invstd, weight, bias, kernel_size, stride):
    """cpu_fast.normalize_max_pool: (best, winner) of the 2x2 max-pool of batch norm's output."""
    _check_window("normalize_max_pool", kernel_size, stride)
    n, channels, height, width = x.shape
    best = np.empty((n, channels, height // 2, width // 2), dtype=x.dtype)
    winner = np.empty(best.shape, dtype=np.int16)
    per_channel = (_per_channel(mean, x.dtype), _per_channel(cpu_fast.affine_scale(invstd, weight), x.dtype),
                   # no bias: + (-0.0), which leaves every value as it is, -0.0 included
                   np.full(channels, -0.0, dtype=x.dtype) if bias is None else _per_channel(bias, x.dtype))
    loop = _kernels()[0]

    def chunk(start, stop):
        if loop(x, *per_channel, best, winner, start, stop):  # a NaN: the NumPy pass's rule for it
            best[start:stop], winner[start:stop] = cpu_fast.normalize_max_pool(x[start:stop], mean, invstd, weight,
                                                                               bias, kernel_size, stride)
    for_each_chunk(n, chunk)
    return best, winner


def max_pool_gradient_sums(grad, winner, x, mean, invstd, kernel_size, stride):
    """cpu_fast.max_pool_gradient_sums: (sum dy, sum dy * xhat) per channel, dy being the pool's input
    gradient, from the pooled gradient and x at the winners."""
    _check_window("max_pool_gradient_sums", kernel_size, stride)
    grad, mean, loop = np.ascontiguousarray(grad), _per_channel(mean, x.dtype), _kernels()[1]
    sum_dy, sum_dy_centered = cpu_fast._partial_sums(x, lambda start, stop: loop(grad, winner, x, mean, start, stop))
    return sum_dy.sum(axis=0).astype(x.dtype), sum_dy_centered.sum(axis=0).astype(x.dtype) * invstd


def max_pool_input_gradient(grad, winner, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training,
                            kernel_size, stride):
    """cpu_fast.max_pool_input_gradient: batch norm's input gradient from the pooled gradient ``grad``.
    In eval mode dx = scale * dy alone, which cpu_fast.py computes."""
    _check_window("max_pool_input_gradient", kernel_size, stride)
    if not training:
        return cpu_fast.max_pool_input_gradient(grad, winner, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count,
                                                training, kernel_size, stride)
    a, b, c = (_per_channel(values, x.dtype)
               for values in cpu_fast.input_gradient_coefficients(invstd, weight, sum_dy, sum_dy_xhat, count))
    grad, mean, out, loop = np.ascontiguousarray(grad), _per_channel(mean, x.dtype), np.empty_like(x), _kernels()[2]
    for_each_chunk(len(x), lambda start, stop: loop(grad, winner, x, mean, a, b, c, out, start, stop))
    return out
