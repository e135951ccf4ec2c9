"""The CUDA path of batch normalization: kernels/batchnorm.cu behind the NumPy twins' signatures.

Each function here takes and returns what its twin in minigrad/nn/batchnorm.py
does (float32 CuPy arrays), and launches the kernel of the same name. A launch
sees x as (N, C, S): the planar kernels cover NCHW (S > 1), the rows kernels
(N, C) (S == 1); float4 variants are chosen when the inner size is a multiple
of 4 and every array is 16-byte aligned. ``_Layout`` decides how many blocks
share one channel's reduction so that the GPU is busy even when C is small.
"""
import math

import numpy as np

from .. import kernels

PLANAR_THREADS = 256        # must match kernels/batchnorm.cu
ROWS_X, ROWS_Y = 32, 8
BLOCKS_PER_MULTIPROCESSOR = 16   # two waves of 8 resident 256-thread blocks
UNITS_PER_THREAD = 4        # fewer than this per thread and a chunk is not worth a block
MAX_GRID_Y = 65535


device = kernels.Device("batchnorm")  # tests swap in a CPU emulator with the same members


def _ceil_div(a, b):
    return -(-a // b)


class _Layout:
    """Grid, block, kernel suffix and the (N, C, S, chunks, chunk_units) arguments for one launch.

    S and chunk_units are in units of the vector width (4 floats or 1).
    Planar: grid (C * chunks,), each block one chunk of one channel's N*S units.
    Rows: grid (ceil(C/V / 32), chunks), each block 32 channel units by one chunk of rows.
    """

    def __init__(self, shape, arrays):
        n, c = shape[0], shape[1]
        s = math.prod(shape[2:])
        rows = s == 1
        inner = c if rows else s
        aligned = all(kernels.address(array) % 16 == 0 for array in arrays)
        vector = 4 if inner % 4 == 0 and aligned else 1
        target_blocks = BLOCKS_PER_MULTIPROCESSOR * device.multiprocessors
        if rows:
            groups = _ceil_div(c // vector, ROWS_X)
            most = min(MAX_GRID_Y, max(1, _ceil_div(n, ROWS_Y * UNITS_PER_THREAD)))
            chunks = min(most, max(1, _ceil_div(target_blocks, groups)))
            chunk_units = _ceil_div(n, chunks)
            chunks = _ceil_div(n, chunk_units)  # no empty chunk
            self.grid, self.block, self.tickets = (groups, chunks), (ROWS_X, ROWS_Y), groups
            s_units = 1
        else:
            s_units = s // vector
            units = n * s_units
            most = max(1, _ceil_div(units, PLANAR_THREADS * UNITS_PER_THREAD))
            chunks = min(most, max(1, _ceil_div(target_blocks, c)))
            chunk_units = _ceil_div(units, chunks)
            chunks = _ceil_div(units, chunk_units)
            self.grid, self.block, self.tickets = (c * chunks,), (PLANAR_THREADS,), c
        self.suffix = f"_{'rows' if rows else 'planar'}_v{vector}"
        self.chunks = chunks
        self.geometry = tuple(np.int64(value) for value in (n, c, s_units, chunks, chunk_units))

    def launch(self, kernel, *args):
        device.kernel(kernel + self.suffix)(self.grid, self.block, args)


def _contiguous(array):
    return device.xp.ascontiguousarray(array, dtype=np.float32)


# ----- forward ------------------------------------------------------------------------
def training_statistics(x, running_mean, running_var, momentum, eps, combine=None):
    """(count, save_mean, save_invstd); kernel batch_norm_statistics (+ batch_norm_finalize with a hook)."""
    xp = device.xp
    x = _contiguous(x)
    layout = _Layout(x.shape, (x,))
    channels = x.shape[1]
    count, mean, m2, invstd = xp.empty((4, channels), dtype=np.float32)
    partial = xp.empty((3, channels * layout.chunks), dtype=np.float32)
    finalize = combine is None
    layout.launch("batch_norm_statistics", x, *layout.geometry, partial[0], partial[1], partial[2],
                  device.tickets(layout.tickets), count, mean, m2, np.int32(finalize), invstd,
                  running_mean if finalize else None, running_var if finalize else None,
                  np.float32(momentum), np.float32(eps))
    if finalize:
        return count, mean, invstd
    count, mean, m2 = combine(count, mean, m2)
    mean, invstd = finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps)
    return count, mean, invstd


def finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps):
    """(mean, invstd); updates the running statistics in place. Kernel batch_norm_finalize."""
    channels = mean.shape[0]
    count, mean, m2 = (_contiguous(values) for values in (count, mean, m2))
    invstd = device.xp.empty(channels, dtype=np.float32)
    device.kernel("batch_norm_finalize")(
        (_ceil_div(channels, PLANAR_THREADS),), (PLANAR_THREADS,),
        (np.int64(channels), count, mean, m2, invstd, running_mean, running_var,
         np.float32(momentum), np.float32(eps)))
    return mean, invstd


def _normalize(x, mean, second, second_is_var, eps, weight, bias):
    x = _contiguous(x)
    y = device.xp.empty_like(x)
    if x.size:
        layout = _Layout(x.shape, (x, y))
        weight, bias = (None if values is None else _contiguous(values) for values in (weight, bias))
        layout.launch("batch_norm_normalize", x, y, *layout.geometry, _contiguous(mean), _contiguous(second),
                      np.int32(second_is_var), np.float32(eps), weight, bias)
    return y


def normalize(x, mean, invstd, weight, bias):
    """y = (x - mean) * invstd * weight + bias. Kernel batch_norm_normalize."""
    return _normalize(x, mean, invstd, False, 0.0, weight, bias)


def normalize_with_running_stats(x, running_mean, running_var, weight, bias, eps):
    """Eval forward in one launch: invstd = 1 / sqrt(running_var + eps) inside the kernel."""
    return _normalize(x, running_mean, running_var, True, eps, weight, bias)


# ----- backward -----------------------------------------------------------------------
def gradient_sums(grad_output, x, mean, invstd):
    """(sum dy, sum dy * xhat) per channel. Kernel batch_norm_backward_sums."""
    xp = device.xp
    grad_output, x = _contiguous(grad_output), _contiguous(x)
    channels = x.shape[1]
    sums = xp.zeros((2, channels), dtype=np.float32)
    if x.size:
        layout = _Layout(x.shape, (grad_output, x))
        partial = xp.empty((2, channels * layout.chunks), dtype=np.float32)
        layout.launch("batch_norm_backward_sums", grad_output, x, *layout.geometry, _contiguous(mean),
                      _contiguous(invstd), partial[0], partial[1], device.tickets(layout.tickets),
                      sums[0], sums[1])
    return sums[0], sums[1]


def input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
    """dx by the closed form (training) or weight * invstd * dy (eval). Kernel batch_norm_backward_input."""
    grad_output, x = _contiguous(grad_output), _contiguous(x)
    grad_input = device.xp.empty_like(x)
    if x.size:
        layout = _Layout(x.shape, (grad_output, x, grad_input))
        per_channel = [None if values is None else _contiguous(values)
                       for values in (mean, invstd, weight, sum_dy, sum_dy_xhat, count)]
        layout.launch("batch_norm_backward_input", grad_output, x, grad_input, *layout.geometry,
                      *per_channel, np.int32(training))
    return grad_input
