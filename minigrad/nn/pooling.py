"""Max and average pooling over 2-D windows, with their gradients as ops of their own.

Both pools read the windows of x (N, C, H, W) as strided views (see
windows.py) and loop over the KH*KW kernel offsets, never over pixels.

- Max pooling keeps, per window, the offset of its first maximum (``winner``).
  Its gradient scatters g to those inputs (``MaxPool2dScatter``); the scatter's
  own derivative gathers from them (``MaxPool2dGather``), and the gather's
  derivative is the scatter again: two linear ops, adjoints of each other.
- Average pooling is linear, A x; its gradient is A^T g (``AvgPool2dSpread``),
  whose derivative is A, average pooling itself.
"""
import numpy as np

from .. import backend
from ..function import Function
from .windows import check_4d, pad, pair, unpad, window_positions, windows


def _xp(array):
    return backend.array_module(array)


class MaxPool2d(Function):
    """The maximum of each window; its gradient goes to the first maximal input (PyTorch's choice)."""

    def forward(self, x, kernel_size, stride, padding):
        check_4d("max_pool2d", x, kernel_size, padding)
        xp = _xp(x)
        view = windows(pad(x, padding, value=-np.inf), kernel_size, stride)
        best = view[:, :, 0, 0].copy()
        winner = xp.zeros(best.shape, dtype=np.int16)  # the offset i * KW + j of each window's maximum
        for i, j, _ in window_positions(kernel_size, stride, best.shape[2:]):
            if i == j == 0:
                continue
            candidate = view[:, :, i, j]
            better = candidate > best  # strictly: the first maximum keeps the gradient
            xp.maximum(best, candidate, out=best)
            # Offsets come in increasing order, so the last strict improvement has the largest
            # offset: a maximum, which is faster than where() or copyto(where=).
            xp.maximum(winner, better * np.int16(i * kernel_size[1] + j), out=winner)
        self.pool = dict(winner=winner, input_shape=x.shape, kernel_size=kernel_size, stride=stride,
                         padding=padding)
        return best

    def backward(self, grad):
        return MaxPool2dScatter.apply(grad, **self.pool)


class MaxPool2dScatter(Function):
    """gx (N, C, H, W): each window's g added to the input that won it (the max pool's gradient)."""

    def forward(self, grad, winner, input_shape, kernel_size, stride, padding):
        xp = _xp(grad)
        n, c, height, width = input_shape
        out = xp.zeros((n, c, height + 2 * padding[0], width + 2 * padding[1]), dtype=grad.dtype)
        overlapping = stride[0] < kernel_size[0] or stride[1] < kernel_size[1]
        for i, j, where in window_positions(kernel_size, stride, grad.shape[2:]):
            chosen = winner == i * kernel_size[1] + j
            if overlapping:
                out[where] += grad * chosen
            else:  # each input is in one window at most: write the product in place, no add
                xp.multiply(grad, chosen, out=out[where])
        self.pool = dict(winner=winner, kernel_size=kernel_size, stride=stride, padding=padding)
        return unpad(out, padding)

    def backward(self, grad_of_gx):
        return MaxPool2dGather.apply(grad_of_gx, **self.pool)


class MaxPool2dGather(Function):
    """(N, C, OH, OW): from h (N, C, H, W), each window's value at its winner (the scatter's adjoint)."""

    def forward(self, values, winner, kernel_size, stride, padding):
        view = windows(pad(values, padding), kernel_size, stride)
        out = _xp(values).zeros(winner.shape, dtype=values.dtype)
        for i, j, _ in window_positions(kernel_size, stride, winner.shape[2:]):
            out += view[:, :, i, j] * (winner == i * kernel_size[1] + j)
        self.pool = dict(winner=winner, input_shape=values.shape, kernel_size=kernel_size, stride=stride,
                         padding=padding)
        return out

    def backward(self, grad):
        return MaxPool2dScatter.apply(grad, **self.pool)


def _pool_options(kernel_size, stride, padding):
    """PyTorch's defaults: the stride is the kernel size unless given."""
    kernel_size = pair(kernel_size)
    return dict(kernel_size=kernel_size, stride=kernel_size if stride is None else pair(stride),
                padding=pair(padding))


def max_pool2d(input, kernel_size, stride=None, padding=0):
    return MaxPool2d.apply(input, **_pool_options(kernel_size, stride, padding))


class AvgPool2d(Function):
    """The mean of each window (padding counts as zeros, as in PyTorch's default)."""

    def forward(self, x, kernel_size, stride, padding):
        check_4d("avg_pool2d", x, kernel_size, padding)
        view = windows(pad(x, padding), kernel_size, stride)
        total = view[:, :, 0, 0].copy()
        for i, j, _ in window_positions(kernel_size, stride, total.shape[2:]):
            if i or j:
                total += view[:, :, i, j]
        self.pool = dict(input_shape=x.shape, kernel_size=kernel_size, stride=stride, padding=padding)
        return total / (kernel_size[0] * kernel_size[1])

    def backward(self, grad):
        return AvgPool2dSpread.apply(grad, **self.pool)


class AvgPool2dSpread(Function):
    """gx (N, C, H, W): each input in a window gets 1/(KH*KW) of the window's g (A^T g)."""

    def forward(self, grad, input_shape, kernel_size, stride, padding):
        n, c, height, width = input_shape
        share = grad / (kernel_size[0] * kernel_size[1])
        out = _xp(grad).zeros((n, c, height + 2 * padding[0], width + 2 * padding[1]), dtype=grad.dtype)
        for _, _, where in window_positions(kernel_size, stride, grad.shape[2:]):
            out[where] += share
        self.pool = dict(kernel_size=kernel_size, stride=stride, padding=padding)
        return unpad(out, padding)

    def backward(self, grad_of_gx):
        return AvgPool2d.apply(grad_of_gx, **self.pool)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    return AvgPool2d.apply(input, **_pool_options(kernel_size, stride, padding))
