"""Max and average pooling over 2-D windows, with their gradients as ops of their own.

Both pools read the windows of x (N, C, H, W) as strided views (see
windows.py) and loop over the KH*KW kernel offsets, never over pixels.

- Max pooling keeps, per window, the offset of its first maximum (``winner``).
  Its gradient scatters g to those inputs (``MaxPool2dScatter``); the scatter's
  own derivative gathers from them (``MaxPool2dGather``), and the gather's
  derivative is the scatter again: two linear ops, adjoints of each other.
  ``max_unpool2d`` puts values back at the flat indices ``return_indices``
  gives, the same pair of scatter and gather over flat indices.
- Average pooling is linear, A x; its gradient is A^T g (``AvgPool2dSpread``),
  whose derivative is A, average pooling itself. The divisor of each window is
  KH*KW, or an (OH, OW) array when windows overhang the input
  (``ceil_mode``, ``count_include_pad=False``) or ``divisor_override`` sets it.
- Adaptive average pooling averages windows of varying size, rows @ x @ cols^T
  for two averaging matrices (``Separable2d``).

``ceil_mode`` adds the rows and columns the last windows overhang at the
bottom and right, as padding that max pooling fills with -inf and average
pooling leaves out of its divisor.
"""
import numpy as np

from .. import backend
from ..function import Function
from ..tensor import Tensor
from . import cpu_fast
from .windows import ONE, pad, pair, unpad, window_positions, windows, with_batch_axis


def _xp(array):
    return backend.array_module(array)


def _offsets(kernel_size, dilation, winner):
    """The (row, column) within the window of each winner offset i * KW + j, in input pixels."""
    return (winner // kernel_size[1]) * dilation[0], (winner % kernel_size[1]) * dilation[1]


def _flat_indices(winner, input_shape, kernel_size, stride, padding, dilation):
    """PyTorch's return_indices: each window's winner as row * W + column of its input plane."""
    xp = _xp(winner)
    rows, cols = _offsets(kernel_size, dilation, winner.astype(np.int64))
    out_h, out_w = winner.shape[2:]
    rows += (xp.arange(out_h) * stride[0] - padding[0][0]).reshape(-1, 1)
    cols += xp.arange(out_w) * stride[1] - padding[1][0]
    return rows * input_shape[3] + cols


def max_of_windows(x, kernel_size, stride, padding, dilation):
    """(best, winner) of every window: its maximum, and the offset i * KW + j of its first maximum."""
    xp = _xp(x)
    view = windows(pad(x, padding, value=-np.inf), kernel_size, stride, dilation)
    best = view[:, :, 0, 0].copy()
    winner = xp.zeros(best.shape, dtype=np.int16)
    for i, j, _ in window_positions(kernel_size, stride, best.shape[2:], dilation):
        if i == j == 0:
            continue
        candidate = view[:, :, i, j]
        better = candidate > best  # strictly: the first maximum keeps the gradient
        xp.maximum(best, candidate, out=best)
        # Offsets come in increasing order, so the last strict improvement has the largest
        # offset: a maximum, which is faster than where() or copyto(where=).
        xp.maximum(winner, better * np.int16(i * kernel_size[1] + j), out=winner)
    return best, winner


def scatter_to_winners(grad, winner, input_shape, kernel_size, stride, padding, dilation):
    """gx (N, C, H, W): each window's gradient added to the input that won it."""
    xp = _xp(grad)
    n, c, height, width = input_shape
    (top, bottom), (left, right) = padding
    out = xp.zeros((n, c, height + top + bottom, width + left + right), dtype=grad.dtype)
    overlapping = (stride[0] < dilation[0] * (kernel_size[0] - 1) + 1
                   or stride[1] < dilation[1] * (kernel_size[1] - 1) + 1)
    for i, j, where in window_positions(kernel_size, stride, grad.shape[2:], dilation):
        chosen = winner == i * kernel_size[1] + j
        if overlapping:
            out[where] += grad * chosen
        else:  # each input is in one window at most: write the product in place, no add
            xp.multiply(grad, chosen, out=out[where])
    return unpad(out, padding)


def _fast_cpu_path(array, padding, dilation):
    """The common case, a NumPy array with no padding or dilation, runs the same operations in
    cache-sized chunks on the thread pool (nn/cpu_fast.py; tests/test_cpu_fast.py compares them
    with the twins above)."""
    return type(array) is np.ndarray and padding == ((0, 0), (0, 0)) and tuple(dilation) == ONE


class MaxPool2d(Function):
    """The maximum of each window; its gradient goes to the first maximal input (PyTorch's choice).

    ``indices_out``, when given, is a dict that receives the flat indices (``return_indices``).
    """

    def forward(self, x, kernel_size, stride, padding, dilation=ONE, indices_out=None):
        if _fast_cpu_path(x, padding, dilation):
            best, winner = cpu_fast.max_pool2d_forward(x, kernel_size, stride)
        else:
            best, winner = max_of_windows(x, kernel_size, stride, padding, dilation)
        self.pool = dict(winner=winner, input_shape=x.shape, kernel_size=kernel_size, stride=stride,
                         padding=padding, dilation=dilation)
        if indices_out is not None:
            indices_out["indices"] = _flat_indices(winner, x.shape, kernel_size, stride, padding, dilation)
        return best

    def backward(self, grad):
        return MaxPool2dScatter.apply(grad, **self.pool)


class MaxPool2dScatter(Function):
    """gx (N, C, H, W): each window's g added to the input that won it (the max pool's gradient)."""

    def forward(self, grad, winner, input_shape, kernel_size, stride, padding, dilation=ONE):
        self.pool = dict(winner=winner, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
        if _fast_cpu_path(grad, padding, dilation):
            return cpu_fast.max_pool2d_backward(grad, winner, input_shape, kernel_size, stride)
        return scatter_to_winners(grad, winner, input_shape, kernel_size, stride, padding, dilation)

    def backward(self, grad_of_gx):
        return MaxPool2dGather.apply(grad_of_gx, **self.pool)


class MaxPool2dGather(Function):
    """(N, C, OH, OW): from h (N, C, H, W), each window's value at its winner (the scatter's adjoint)."""

    def forward(self, values, winner, kernel_size, stride, padding, dilation=ONE):
        view = windows(pad(values, padding), kernel_size, stride, dilation)
        out = _xp(values).zeros(winner.shape, dtype=values.dtype)
        for i, j, _ in window_positions(kernel_size, stride, winner.shape[2:], dilation):
            out += view[:, :, i, j] * (winner == i * kernel_size[1] + j)
        self.pool = dict(winner=winner, input_shape=values.shape, kernel_size=kernel_size, stride=stride,
                         padding=padding, dilation=dilation)
        return out

    def backward(self, grad):
        return MaxPool2dScatter.apply(grad, **self.pool)


def pool_geometry(op, input_shape, kernel_size, stride, padding, dilation=ONE, ceil_mode=False):
    """(per-side padding with ceil_mode's overhang at the bottom and right, (OH, OW)), PyTorch's sizes."""
    padded, sizes = [], []
    for size, kernel, step, before, spacing in zip(input_shape[2:], kernel_size, stride, padding, dilation):
        reach = spacing * (kernel - 1) + 1
        if 2 * before > reach:
            raise ValueError(f"{op}: pad should be at most half of effective kernel size, but got "
                             f"pad={before}, kernel_size={kernel} and dilation={spacing}")
        out = (size + 2 * before - reach + (step - 1 if ceil_mode else 0)) // step + 1
        if ceil_mode and (out - 1) * step >= size + before:
            out -= 1  # the last window must start inside the input or its left padding
        if out <= 0:
            raise ValueError(f"{op}: output size is too small: input {tuple(input_shape[2:])} with kernel "
                             f"{tuple(kernel_size)}, stride {tuple(stride)}, padding {tuple(padding)} "
                             f"and dilation {tuple(dilation)} leaves no window")
        overhang = max(0, (out - 1) * step + reach - (size + 2 * before))
        padded.append((before, before + overhang))
        sizes.append(out)
    return tuple(padded), tuple(sizes)


def _pool_options(kernel_size, stride, padding):
    """PyTorch's defaults: the stride is the kernel size unless given (None or empty)."""
    kernel_size = pair(kernel_size)
    return kernel_size, (kernel_size if stride is None or stride == [] or stride == () else pair(stride)), pair(padding)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """The maximum of each window of input (N, C, H, W) or (C, H, W); with the flat indices if asked."""
    kernel_size, stride, padding = _pool_options(kernel_size, stride, padding)
    dilation = pair(dilation)

    def run(x):
        sides, _ = pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        indices_out = {} if return_indices else None
        out = MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=sides, dilation=dilation,
                              indices_out=indices_out)
        return (out, Tensor(indices_out["indices"])) if return_indices else out
    return with_batch_axis("max_pool2d", input, run)


# ----- unpooling: values put back at flat indices -----------------------------------
def _plane_index(values, indices):
    """(rows, columns) indexing each (n, c) plane's flat position ``indices`` in a (N*C, H*W) matrix."""
    planes = values.shape[0] * values.shape[1]
    return _xp(values).arange(planes).reshape(-1, 1), indices.reshape(planes, -1)


class PlaneScatter(Function):
    """(N, C, H, W) zeros with values (N, C, ...) put at flat plane indices; added up when ``accumulate``."""

    def forward(self, values, indices, plane_shape, accumulate=False):
        out = _xp(values).zeros(values.shape[:2] + tuple(plane_shape), dtype=values.dtype)
        flat = out.reshape(values.shape[0] * values.shape[1], -1)
        where = _plane_index(values, indices)
        if accumulate:
            backend.scatter_add(flat, where, values.reshape(where[1].shape))
        else:
            flat[where] = values.reshape(where[1].shape)
        self.indices = indices
        return out

    def backward(self, grad):
        return PlaneGather.apply(grad, indices=self.indices)


class PlaneGather(Function):
    """(N, C, ...) of indices' shape: each plane of x (N, C, H, W) read at flat indices (the scatter's adjoint)."""

    def forward(self, x, indices):
        self.indices, self.plane_shape = indices, x.shape[2:]
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        return flat[_plane_index(x, indices)].reshape(indices.shape)

    def backward(self, grad):
        return PlaneScatter.apply(grad, indices=self.indices, plane_shape=self.plane_shape, accumulate=True)


def _unpool_size(input_shape, kernel_size, stride, padding, output_size):
    default = tuple((size - 1) * s - 2 * p + k for size, k, s, p in zip(input_shape[2:], kernel_size, stride, padding))
    if output_size is None:
        return default
    size = tuple(output_size)[-2:]
    for wanted, smallest, step in zip(size, default, stride):
        if not smallest - step < wanted < smallest + step:
            raise ValueError(f"max_unpool2d: output_size {tuple(output_size)} is not between "
                             f"{tuple(d - s + 1 for d, s in zip(default, stride))} and "
                             f"{tuple(d + s - 1 for d, s in zip(default, stride))}")
    return size


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of max_pool2d(return_indices=True): input (N, C, H, W) put at ``indices``, zeros elsewhere."""
    kernel_size, stride, padding = _pool_options(kernel_size, stride, padding)
    index = indices.data if isinstance(indices, Tensor) else indices

    def run(x):
        flat = _xp(x.data).asarray(index).reshape(x.shape)
        size = _unpool_size(x.shape, kernel_size, stride, padding, output_size)
        if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= size[0] * size[1]):
            bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
            raise ValueError(f"max_unpool2d: found an invalid max index {bad} "
                             f"(the output planes are of size {size[0]}x{size[1]})")
        return PlaneScatter.apply(x, indices=flat, plane_shape=size)
    if input.shape != tuple(index.shape):
        raise ValueError(f"max_unpool2d: indices of shape {tuple(index.shape)} do not match input {input.shape}")
    return with_batch_axis("max_unpool2d", input, run)


# ----- average pooling --------------------------------------------------------------
class AvgPool2d(Function):
    """The sum of each window over its divisor: KH*KW, or an (OH, OW) array of them."""

    def forward(self, x, kernel_size, stride, padding, divisor):
        view = windows(pad(x, padding), kernel_size, stride)
        total = view[:, :, 0, 0].copy()
        for i, j, _ in window_positions(kernel_size, stride, total.shape[2:]):
            if i or j:
                total += view[:, :, i, j]
        self.pool = dict(input_shape=x.shape, kernel_size=kernel_size, stride=stride, padding=padding,
                         divisor=divisor)
        return total / divisor

    def backward(self, grad):
        return AvgPool2dSpread.apply(grad, **self.pool)


class AvgPool2dSpread(Function):
    """gx (N, C, H, W): each input in a window gets g / divisor of that window (A^T g)."""

    def forward(self, grad, input_shape, kernel_size, stride, padding, divisor):
        n, c, height, width = input_shape
        (top, bottom), (left, right) = padding
        share = grad / divisor
        out = _xp(grad).zeros((n, c, height + top + bottom, width + left + right), dtype=grad.dtype)
        for _, _, where in window_positions(kernel_size, stride, grad.shape[2:]):
            out[where] += share
        self.pool = dict(kernel_size=kernel_size, stride=stride, padding=padding, divisor=divisor)
        return unpad(out, padding)

    def backward(self, grad_of_gx):
        return AvgPool2d.apply(grad_of_gx, **self.pool)


def _window_counts(size, kernel, stride, before, out, count_include_pad):
    """Per window along one axis: its length inside the input (and its padding, if counted)."""
    start = np.arange(out) * stride - before
    end = np.minimum(start + kernel, size + before)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def _divisor(x, kernel_size, stride, padding, sizes, count_include_pad, divisor_override):
    """KH*KW when every window divides by it (the fast path), else an (OH, OW) array like x."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor must be not zero")
        return divisor_override
    rows, cols = (_window_counts(size, k, s, p, out, count_include_pad)
                  for size, k, s, p, out in zip(x.shape[2:], kernel_size, stride, padding, sizes))
    counts = np.outer(rows, cols)
    if (counts == kernel_size[0] * kernel_size[1]).all():
        return kernel_size[0] * kernel_size[1]
    return _xp(x.data).asarray(counts.astype(x.dtype))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean of each window of input (N, C, H, W) or (C, H, W), PyTorch's divisor rules."""
    kernel_size, stride, padding = _pool_options(kernel_size, stride, padding)

    def run(x):
        sides, sizes = pool_geometry("avg_pool2d", x.shape, kernel_size, stride, padding, ONE, ceil_mode)
        divisor = _divisor(x, kernel_size, stride, padding, sizes, count_include_pad, divisor_override)
        return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=sides, divisor=divisor)
    return with_batch_axis("avg_pool2d", input, run)


# ----- adaptive average pooling -----------------------------------------------------
def _adaptive_matrix(in_size, out_size, dtype):
    """(out, in): row i averages inputs floor(i*in/out) .. ceil((i+1)*in/out) - 1 (PyTorch's windows)."""
    matrix = np.zeros((out_size, in_size), dtype=dtype)
    for i in range(out_size):
        start, end = (i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class Separable2d(Function):
    """rows @ x @ cols^T over the last two axes of x (..., H, W): a separable linear map of each plane.

    Adaptive average pooling is this map with averaging matrices; its gradient is
    the same map with the matrices transposed, so every derivative stays this op.
    """

    def forward(self, x, rows, cols):
        xp = _xp(x)
        self.rows, self.cols = rows, cols
        return xp.ascontiguousarray(xp.matmul(xp.matmul(rows, x), cols.T))

    def backward(self, grad):
        return Separable2d.apply(grad, rows=self.rows.T, cols=self.cols.T)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling of input (N, C, H, W) or (C, H, W) to ``output_size`` (an int, a pair, None keeps a size)."""
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                         f"got shape {input.shape}")
    height, width = input.shape[-2:]
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    out_h, out_w = height if out_h is None else out_h, width if out_w is None else out_w
    xp = _xp(input.data)
    rows = xp.asarray(_adaptive_matrix(height, out_h, input.dtype))
    cols = xp.asarray(_adaptive_matrix(width, out_w, input.dtype))
    return Separable2d.apply(input, rows=rows, cols=cols)
