"""The CUDA path of batch normalization: kernels/batchnorm.cu behind the steps' interface.

``CudaSteps`` implements the six steps of ``BatchNormSteps``
(minigrad/nn/batchnorm_steps.py) with the signatures of the NumPy twins in
minigrad/nn/batchnorm.py, on contiguous float32 CuPy arrays, and launches the
kernel of the same name. Every kernel takes one ``BatchNormArguments`` struct
(the dtype ``ARGUMENTS`` below, field for field): a launch fills the fields it
needs by name and leaves the rest zero (null).

A launch sees x as (N, C, S): the planar kernels cover NCHW with S > TINY_PLANE,
the rows kernels every input whose (C, S) block of a sample is a short enough
row to read whole: (N, C) (S == 1) and tiny maps (S <= TINY_PLANE, e.g. 2x2 or
3x3; kernels/batchnorm.cu's header says why 16). float4 variants are chosen when
the inner size (S planar, C*S rows) is a multiple of 4 and every array is
16-byte aligned. ``_Layout`` decides how many
blocks share one channel's reduction: enough for one wave of resident blocks
(the occupancy query of ``kernels.Device.resident_blocks``) on every
multiprocessor, so that the GPU is busy even when C is small.
"""
import math

import numpy as np

from .. import kernels
from .batchnorm_steps import BatchNormSteps

# Each must match its #define in kernels/batchnorm.cu (tests/test_batchnorm_kernels.py checks).
PLANAR_THREADS = 256
ROWS_X, ROWS_Y = 32, 8
MIN_BLOCKS_SCALAR, MIN_BLOCKS_FLOAT4 = 6, 4  # __launch_bounds__: resident blocks when the device cannot say
TINY_PLANE = 16             # S <= this (floats per (sample, channel) plane): the rows kernels
UNITS_PER_THREAD = 4        # fewer than this per thread and a chunk is not worth a block
MAX_GRID_Y = 65535

# The C struct BatchNormArguments, field for field: geometry, pointers, scalars.
GEOMETRY = ("N", "C", "S", "chunks", "chunk_units", "group_units", "side_by_side")
POINTERS = ("x", "grad_output", "output", "weight", "bias", "running_mean", "running_var", "mean", "invstd",
            "m2", "count", "sum_dy", "sum_dy_xhat", "partial", "tickets")
ARGUMENTS = np.dtype([(name, "<i8") for name in GEOMETRY] + [(name, "<u8") for name in POINTERS]
                     + [("momentum", "<f4"), ("eps", "<f4")])

device = kernels.Device("batchnorm")  # tests swap in a CPU emulator with the same members


def _ceil_div(a, b):
    return -(-a // b)


def inner_size(shape):
    """(layout, inner) of an (N, C, *spatial) input: "rows" with inner = C*S (one sample's values, a
    row) when S <= TINY_PLANE, else "planar" with inner = S. The kernels load float4 when inner % 4 == 0."""
    s = math.prod(shape[2:])
    return ("rows", shape[1] * s) if s <= TINY_PLANE else ("planar", s)


def _row_group(units, s, vector):
    """Units of a row per block column: all of a row of fewer than ROWS_X units, else the most
    whole channels (S floats) in ROWS_X units (V floats), cut where a channel and a unit both end."""
    if units < ROWS_X:
        return units
    period = math.lcm(s, vector)  # floats
    return ROWS_X * vector // period * period // vector


def _resident_blocks(kernel, threads, vector):
    query = getattr(device, "resident_blocks", None)  # the CPU emulator has no occupancy to ask
    if query is None:
        return MIN_BLOCKS_FLOAT4 if vector == 4 else MIN_BLOCKS_SCALAR
    return query(kernel, threads)


class _Layout:
    """Grid, block, kernel suffix and the geometry (GEOMETRY) of one launch.

    Planar: S and chunk_units in units of the vector width V (4 floats or 1); grid (C * chunks,),
    each block one chunk of one channel's N*S units.
    Rows: S in floats, chunk_units in rows; a row is one sample's C*S floats, C*S/V units; grid
    (ceil(units / group_units), chunks), each block group_units units (whole channels, at most 32)
    by one chunk of rows (a row of fewer than 32 units: side_by_side = 32 // units rows in each warp).
    """

    def __init__(self, kernel, shape, arrays):
        n, c = shape[0], shape[1]
        s = math.prod(shape[2:])
        layout, inner = inner_size(shape)
        if inner >= 2 ** 31:
            what = "sample" if layout == "rows" else "(sample, channel) plane"
            raise ValueError(f"batch_norm: {inner} values per {what} exceed the kernels' 32-bit index "
                             f"(input shape {tuple(shape)})")
        rows = layout == "rows"
        aligned = all(kernels.address(array, device) % 16 == 0 for array in arrays)
        vector = 4 if inner % 4 == 0 and aligned else 1
        self.kernel = f"{kernel}_{layout}_v{vector}"
        threads = ROWS_X * ROWS_Y if rows else PLANAR_THREADS
        target_blocks = _resident_blocks(self.kernel, threads, vector) * device.multiprocessors
        if rows:
            units = c * s // vector
            group_units = _row_group(units, s, vector)
            groups = _ceil_div(units, group_units)
            side_by_side = ROWS_X // group_units  # rows a warp covers at once (kernels/batchnorm.cu, RowsLane)
            most = min(MAX_GRID_Y, max(1, _ceil_div(n, ROWS_Y * side_by_side * UNITS_PER_THREAD)))
            chunks = min(most, max(1, _ceil_div(target_blocks, groups)))
            chunk_units = _ceil_div(n, chunks)
            chunks = _ceil_div(n, chunk_units)  # no empty chunk
            self.grid, self.block, self.tickets = (groups, chunks), (ROWS_X, ROWS_Y), groups
            s_units, partials = s, c * s * chunks  # S in floats; a partial per column and chunk
        else:
            s_units = s // vector
            units = n * s_units
            most = max(1, _ceil_div(units, PLANAR_THREADS * UNITS_PER_THREAD))
            chunks = min(most, max(1, _ceil_div(target_blocks, c)))
            chunk_units = _ceil_div(units, chunks)
            chunks = _ceil_div(units, chunk_units)
            self.grid, self.block, self.tickets = (c * chunks,), (PLANAR_THREADS,), c
            group_units = side_by_side = 0
            partials = c * chunks  # a partial per channel and chunk
        self.chunks = chunks
        self.partial_size = 2 * partials  # floats: two per partial
        self.geometry = dict(zip(GEOMETRY, (n, c, s_units, chunks, chunk_units, group_units, side_by_side)))

    def launch(self, momentum=0.0, eps=0.0, **arrays):
        _launch(self.kernel, self.grid, self.block, self.geometry, momentum, eps, arrays)


def _arguments(geometry, momentum, eps, arrays):
    """The BatchNormArguments struct (a NumPy structured scalar) of one launch."""
    values = np.zeros((), dtype=ARGUMENTS)
    for name, value in geometry.items():
        values[name] = value
    for name, array in arrays.items():
        if array is not None:
            values[name] = kernels.address(array, device)
    values["momentum"], values["eps"] = momentum, eps
    return values[()]


def _launch(kernel, grid, block, geometry, momentum, eps, arrays):
    # `arrays` holds every array the struct points to until the launch is queued
    device.kernel(kernel)(grid, block, (_arguments(geometry, momentum, eps, arrays),))


def _contiguous(array):
    return None if array is None else device.xp.ascontiguousarray(array, dtype=np.float32)


def _counts(shape):
    """Values per channel, N * S for every channel, in float64 (exact up to 2^53)."""
    return device.xp.full(shape[1], float(math.prod(shape) // shape[1]), dtype=np.float64)


class CudaSteps(BatchNormSteps):
    """kernels/batchnorm.cu: every step one launch (training_statistics two with a combine hook)."""

    name = "cuda"

    def accepts(self, x, *per_channel):
        """Contiguous float32 CuPy arrays (the kernels update running statistics in place)."""
        return device.holds(x) and x.dtype == np.float32 and all(
            values is None or (device.holds(values) and values.dtype == np.float32 and values.flags.c_contiguous)
            for values in per_channel)

    def training_statistics(self, x, running_mean, running_var, momentum, eps, combine=None):
        """(count, save_mean, save_invstd); kernel batch_norm_statistics (+ batch_norm_finalize with a hook)."""
        xp = device.xp
        x = _contiguous(x)
        layout = _Layout("batch_norm_statistics", x.shape, (x,))
        count, finalize = _counts(x.shape), combine is None
        mean, m2, invstd = xp.empty((3, x.shape[1]), dtype=np.float32)
        layout.launch(momentum, eps, x=x, partial=xp.empty(layout.partial_size, dtype=np.float32),
                      tickets=device.tickets(layout.tickets), count=count, mean=mean, m2=m2,
                      invstd=invstd if finalize else None, running_mean=running_mean if finalize else None,
                      running_var=running_var if finalize else None)
        if finalize:
            return count, mean, invstd
        count, mean, m2 = combine(count, mean, m2)
        mean, invstd = self.finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps)
        return count, mean, invstd

    def finalize_statistics(self, count, mean, m2, running_mean, running_var, momentum, eps):
        """(mean, invstd); updates the running statistics in place. Kernel batch_norm_finalize."""
        channels = mean.shape[0]
        mean, m2 = _contiguous(mean), _contiguous(m2)
        invstd = device.xp.empty(channels, dtype=np.float32)
        _launch("batch_norm_finalize", (_ceil_div(channels, PLANAR_THREADS),), (PLANAR_THREADS,), {"C": channels},
                momentum, eps, dict(count=device.xp.ascontiguousarray(count, dtype=np.float64), mean=mean, m2=m2,
                                    invstd=invstd, running_mean=running_mean, running_var=running_var))
        return mean, invstd

    def _normalize(self, x, eps, **per_channel):
        x = _contiguous(x)
        y = device.xp.empty_like(x)
        if x.size:
            per_channel = {name: _contiguous(values) for name, values in per_channel.items()}
            _Layout("batch_norm_normalize", x.shape, (x, y)).launch(eps=eps, x=x, output=y, **per_channel)
        return y

    def normalize(self, x, mean, invstd, weight, bias):
        """y = (x - mean) * invstd * weight + bias. Kernel batch_norm_normalize."""
        return self._normalize(x, 0.0, mean=mean, invstd=invstd, weight=weight, bias=bias)

    def normalize_with_running_stats(self, x, running_mean, running_var, weight, bias, eps):
        """Eval forward in one launch: invstd = 1 / sqrt(running_var + eps) inside the kernel."""
        return self._normalize(x, eps, mean=running_mean, running_var=running_var, weight=weight, bias=bias)

    def gradient_sums(self, grad_output, x, mean, invstd):
        """(sum dy, sum dy * xhat) per channel. Kernel batch_norm_backward_sums."""
        xp = device.xp
        grad_output, x = _contiguous(grad_output), _contiguous(x)
        sums = xp.zeros((2, x.shape[1]), dtype=np.float32)
        if x.size:
            layout = _Layout("batch_norm_backward_sums", x.shape, (grad_output, x))
            layout.launch(grad_output=grad_output, x=x, mean=_contiguous(mean), invstd=_contiguous(invstd),
                          partial=xp.empty(layout.partial_size, dtype=np.float32),
                          tickets=device.tickets(layout.tickets), sum_dy=sums[0], sum_dy_xhat=sums[1])
        return sums[0], sums[1]

    def input_gradient(self, grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
        """dx by the closed form (training) or weight * invstd * dy (eval). Kernel batch_norm_backward_input."""
        grad_output, x = _contiguous(grad_output), _contiguous(x)
        grad_input = device.xp.empty_like(x)
        if x.size:
            sums = (dict(sum_dy=_contiguous(sum_dy), sum_dy_xhat=_contiguous(sum_dy_xhat),
                         count=device.xp.ascontiguousarray(count, dtype=np.float64)) if training else {})
            _Layout("batch_norm_backward_input", x.shape, (grad_output, x, grad_input)).launch(
                grad_output=grad_output, x=x, output=grad_input, mean=_contiguous(mean), invstd=_contiguous(invstd),
                weight=_contiguous(weight), **sums)
        return grad_input


steps = CudaSteps()
