"""2-D convolution (cross-correlation, as PyTorch computes it), its two gradient ops, and its transpose.

For x (N, C, H, W), weight (O, C/G, KH, KW) and bias (O,), ``conv2d`` is, for
each image n, one GEMM over the im2col matrix of its windows, batched over the
G groups:

    out[n] (G, O/G, OH*OW) = weight (G, O/G, C/G*KH*KW) @ cols[n] (G, C/G*KH*KW, OH*OW)

(G = 1 is the ordinary convolution, G = C the depthwise one). out[n] is then
already image n's (O, OH, OW) block of the NCHW output, so nothing is
transposed. The three maps are bilinear and share one form,
B(x, W, g) = <conv2d(x, W), g>:

- ``Conv2d``:           conv2d(x, W)                 = dB/dg
- ``Conv2dInputGrad``:  gx = W^T g[n], folded (col2im) = dB/dx  (a transposed convolution)
- ``Conv2dWeightGrad``: gW = sum over n of g[n] cols[n]^T = dB/dW

so the derivative of each is written with the other two, and every order of
derivative stays within these three ops. ``conv_transpose2d`` is
``Conv2dInputGrad`` applied to an input instead of a gradient.

On the CPU each op walks the batch in chunks of a few images (``_batches``):
one chunk's im2col matrix (about CHUNK_BYTES) is written and read again by
the GEMM while it is still in the cache, and no op keeps a whole-batch im2col
matrix (the weight gradient makes its chunks again). On a GPU the whole batch
is one chunk. For stride 1 the input gradient folds with ``fold_by_planes``
(copies into zeroed planes, then sums), which NumPy runs faster than ``fold``'s
strided adds, with the same bits.

Every op takes the same geometry: ``stride`` and ``dilation`` pairs, ``padding``
per side ((top, bottom), (left, right)) and ``groups``.
"""
import numpy as np

from .. import backend, parallel
from ..function import Function
from .windows import (ONE, check_kernel_fits, fold, fold_by_planes, output_size, pad_into, pair, sides, windows,
                      with_batch_axis)

CHUNK_BYTES = 1 << 20  # one chunk's im2col matrix: about half of a core's L2 cache
# The weight gradient's GEMMs sum over output pixels: an image with fewer than this many is too
# short a sum for OpenBLAS to run at speed, so a chunk's images are then put side by side.
MIN_GEMM_DEPTH = 256


def _xp(array):
    return backend.array_module(array)


def _batches(array, bytes_per_image):
    """Slices of the batch axis whose im2col matrices take about CHUNK_BYTES each (one slice on a GPU)."""
    n = array.shape[0]
    step = n if backend.is_cupy_array(array) else CHUNK_BYTES // max(1, bytes_per_image)
    step = max(1, step)
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


class Geometry:
    """The shapes of one convolution, input (N, C, H, W), weight (O, C/G, KH, KW), output (N, O, OH, OW),
    and the im2col matrices of its batch chunks."""

    def __init__(self, input_shape, weight_shape, stride, padding, dilation, groups):
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        (self.n, self.channels), (self.out_channels, _, kh, kw) = input_shape[:2], weight_shape
        self.kernel = (kh, kw)
        (top, bottom), (left, right) = padding
        self.padded_size = (input_shape[2] + top + bottom, input_shape[3] + left + right)
        self.out_size = tuple(output_size(size, k, s, d)
                              for size, k, s, d in zip(self.padded_size, self.kernel, stride, dilation))
        self.pixels = self.out_size[0] * self.out_size[1]
        self.rows = self.channels // groups * kh * kw  # one group's im2col rows

    def chunks(self, array):
        return _batches(array, self.groups * self.rows * self.pixels * array.itemsize)

    def weight_by_group(self, weight):
        """weight (O, C/G, KH, KW) as (G, O/G, C/G*KH*KW)."""
        return weight.reshape(self.groups, self.out_channels // self.groups, self.rows)

    def grad_by_group(self, grad):
        """An output-shaped (B, O, OH, OW) array as (B, G, O/G, OH*OW)."""
        return grad.reshape(grad.shape[0], self.groups, self.out_channels // self.groups, self.pixels)

    def folds_by_planes(self, array):
        """Whether the input gradient folds with windows.fold_by_planes: NumPy data, stride 1, more
        than one tap and no negative padding. (Its planes take KH*KW padded copies of a chunk; on a
        GPU the chunk is the whole batch, so the GPU keeps ``fold``. A 1x1 kernel's fold is one add,
        which the planes' copies would only lengthen.)"""
        return (_xp(array) is np and tuple(self.stride) == ONE and self.kernel != (1, 1)
                and min(side for axis in self.padding for side in axis) >= 0)

    def in_chunks(self, array, work, padded=True, planes=False):
        """``work(batches, scratch)`` over the batch chunks of ``array``; its results, in batch order.

        One thread runs every chunk with one scratch (a chunk's padded input, its border zeroed
        once, room for its im2col matrix, and with ``planes`` the zeroed planes of
        windows.fold_by_planes), reused while it is in the cache. With minigrad's
        threads (mg.set_num_threads), each thread takes a contiguous share of the chunks with a
        scratch of its own, and the BLAS runs each thread's GEMMs on that thread alone.
        """
        xp, chunks = _xp(array), self.chunks(array)
        threads = 1 if xp is not np else min(parallel.thread_policy.get_num_threads(), len(chunks))
        size = chunks[0].stop - chunks[0].start if chunks else 0

        def scratch():
            taps = self.kernel[0] * self.kernel[1]
            return (xp.zeros((size, self.channels) + self.padded_size, dtype=array.dtype) if padded else None,
                    xp.empty(size * self.groups * self.rows * self.pixels, dtype=array.dtype),
                    xp.zeros((taps, size, self.channels) + self.padded_size, dtype=array.dtype) if planes else None)

        if threads <= 1:
            return [work(chunks, scratch())]
        results = {}

        def share(start, stop):
            results[start] = work(chunks[start:stop], scratch())

        with parallel.blas_threads(1):
            parallel.for_each_chunk(len(chunks), share, threads=threads)
        return [results[start] for start in sorted(results)]

    def columns(self, x, scratch, side_by_side=False):
        """im2col of a chunk x (B, C, H, W): (B, G, C/G*KH*KW, OH*OW), image b's windows as its columns;
        ``side_by_side``: (G, C/G*KH*KW, B*OH*OW), the chunk's images next to each other."""
        padded, flat, _ = scratch
        view = windows(pad_into(x, self.padding, padded[:len(x)]), self.kernel, self.stride, self.dilation)
        if not side_by_side:  # view (B, C, KH, KW, OH, OW)
            cols = flat[:view.size].reshape(view.shape)
            cols[...] = view
            return cols.reshape(len(x), self.groups, self.rows, self.pixels)
        view = view.transpose(1, 2, 3, 0, 4, 5)
        cols = flat[:view.size].reshape(view.shape)
        cols[...] = view
        return cols.reshape(self.groups, self.rows, -1)


def _check_channels(x, weight, groups):
    out_channels, group_channels = weight.shape[:2]
    if x.shape[1] != group_channels * groups:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}), weight expects "
                         f"{group_channels * groups} (weight shape {weight.shape}, groups={groups})")
    if out_channels % groups:
        raise ValueError(f"conv2d: {out_channels} output channels (weight shape {weight.shape}) "
                         f"are not divisible by groups={groups}")


class Conv2d(Function):
    """Cross-correlation: for each image, weight @ its im2col matrix (batched over groups)."""

    new_gradients = (0, 1, 2)  # the two gradient ops' and a sum's new arrays

    def forward(self, x, weight, bias=None, stride=ONE, padding=((0, 0), (0, 0)), dilation=ONE, groups=1):
        if x.ndim != 4:
            raise ValueError(f"conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")
        _check_channels(x, weight, groups)
        check_kernel_fits("conv2d", x, weight.shape[2:], padding, dilation)
        xp, shape = _xp(x), Geometry(x.shape, weight.shape, stride, padding, dilation, groups)
        self.options = shape.options
        matrix = shape.weight_by_group(weight)
        out = xp.empty((shape.n, groups, shape.out_channels // groups, shape.pixels), dtype=x.dtype)

        def work(chunks, scratch):
            for batch in chunks:
                xp.matmul(matrix, shape.columns(x[batch], scratch), out=out[batch])
        shape.in_chunks(x, work)
        out = out.reshape((shape.n, shape.out_channels) + shape.out_size)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        return out

    def backward(self, grad):
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        grad_x = Conv2dInputGrad.apply(grad, weight, input_shape=x.shape, **self.options) if need_x else None
        grad_weight = (Conv2dWeightGrad.apply(x, grad, weight_shape=weight.shape, **self.options)
                       if need_weight else None)
        grad_bias = grad.sum(axis=(0, 2, 3)) if need_bias else None
        return grad_x, grad_weight, grad_bias


class Conv2dInputGrad(Function):
    """gx (N, C, H, W) = the fold of W^T g: the gradient of conv2d with respect to its input."""

    def forward(self, grad, weight, input_shape, stride, padding, dilation=ONE, groups=1):
        xp, shape = _xp(grad), Geometry(input_shape, weight.shape, stride, padding, dilation, groups)
        self.options = shape.options
        matrix_t = shape.weight_by_group(weight).transpose(0, 2, 1)  # (G, C/G*KH*KW, O/G)
        by_planes = shape.folds_by_planes(grad)  # written, not added: no zeros needed
        grad_x = (xp.empty if by_planes else xp.zeros)(input_shape, dtype=grad.dtype)

        def work(chunks, scratch):
            _, room, planes = scratch  # no padded input here: room for the chunk's W^T g, and planes
            for batch in chunks:
                grad_cols = room[:(batch.stop - batch.start) * groups * shape.rows * shape.pixels]
                grad_cols = xp.matmul(matrix_t, shape.grad_by_group(grad[batch]),
                                      out=grad_cols.reshape(-1, groups, shape.rows, shape.pixels))
                grad_cols = grad_cols.reshape((-1, shape.channels) + shape.kernel + shape.out_size)
                if by_planes:
                    fold_by_planes(grad_cols, grad_x[batch], planes[:, :len(grad_cols)], dilation, padding)
                else:
                    fold(grad_cols, grad_x[batch], stride, dilation, padding)
        shape.in_chunks(grad, work, padded=False, planes=by_planes)
        return grad_x

    def backward(self, grad_of_gx):  # d/dg = conv2d(h, W), d/dW = weight gradient of (h, g)
        grad, weight = self.inputs
        need_grad, need_weight = self.needs_input_grad
        return (Conv2d.apply(grad_of_gx, weight, **self.options) if need_grad else None,
                Conv2dWeightGrad.apply(grad_of_gx, grad, weight_shape=weight.shape, **self.options)
                if need_weight else None)


class Conv2dWeightGrad(Function):
    """gW (O, C/G, KH, KW) = sum over images of g[n] cols[n]^T: the gradient of conv2d with respect to its weight.

    The im2col matrices are made again, chunk by chunk, rather than kept from the forward.
    Images of fewer than MIN_GEMM_DEPTH output pixels are too short for a GEMM on their own:
    a chunk's images then go side by side into one GEMM.
    """

    def forward(self, x, grad, weight_shape, stride, padding, dilation=ONE, groups=1):
        xp, shape = _xp(x), Geometry(x.shape, weight_shape, stride, padding, dilation, groups)
        self.options = shape.options
        side_by_side = shape.pixels < MIN_GEMM_DEPTH

        def work(chunks, scratch):  # summed as gW^T (G, C/G*KH*KW, O/G): OpenBLAS runs cols @ g^T faster
            total = xp.zeros((groups, shape.rows, shape.out_channels // groups), dtype=x.dtype)
            for batch in chunks:
                cols, chunk_grad = shape.columns(x[batch], scratch, side_by_side), shape.grad_by_group(grad[batch])
                if side_by_side:  # g as (G, O/G, B*OH*OW), the images in the same order as the columns
                    chunk_grad = chunk_grad.transpose(1, 2, 0, 3).reshape(groups, -1, cols.shape[2])
                    total += cols @ chunk_grad.swapaxes(1, 2)
                else:
                    total += (cols @ chunk_grad.swapaxes(-1, -2)).sum(axis=0)
            return total
        return sum(shape.in_chunks(x, work)).swapaxes(-1, -2).reshape(weight_shape)

    def backward(self, grad_of_gw):  # d/dx = input gradient of (g, k), d/dg = conv2d(x, k)
        x, grad = self.inputs
        need_x, need_grad = self.needs_input_grad
        return (Conv2dInputGrad.apply(grad, grad_of_gw, input_shape=x.shape, **self.options) if need_x else None,
                Conv2d.apply(x, grad_of_gw, **self.options) if need_grad else None)


def same_padding(kernel_size, dilation):
    """padding='same' per side: dilation*(kernel-1) in all, the odd one at the bottom and right (PyTorch's)."""
    total = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    return tuple((size // 2, size - size // 2) for size in total)


def conv_padding(op, padding, kernel_size, stride, dilation):
    """PyTorch's ``padding`` (an int, a pair, 'same' or 'valid') as ((top, bottom), (left, right))."""
    if not isinstance(padding, str):
        return sides(padding)
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    if any(step != 1 for step in stride):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
    return same_padding(kernel_size, dilation)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation; input (N, C, H, W) or (C, H, W), weight (O, C/groups, KH, KW), bias (O,).

    ``padding`` is an int, a pair, or 'same' / 'valid'.
    """
    stride, dilation = pair(stride), pair(dilation)
    options = dict(stride=stride, padding=conv_padding("conv2d", padding, weight.shape[2:], stride, dilation),
                   dilation=dilation, groups=groups)
    tensors = (weight,) if bias is None else (weight, bias)
    return with_batch_axis("conv2d", input, lambda x: Conv2d.apply(x, *tensors, **options))


def transposed_output_size(input_size, kernel_size, stride, padding, output_padding, dilation):
    """(H, W) of conv_transpose2d: (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1."""
    return tuple((size - 1) * s - 2 * p + d * (k - 1) + extra + 1
                 for size, k, s, p, extra, d in zip(input_size, kernel_size, stride, padding, output_padding, dilation))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transposed convolution (conv2d's input gradient as a layer); weight (C_in, C_out/groups, KH, KW).

    input (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out), H_out by ``transposed_output_size``.
    """
    stride, padding, output_padding, dilation = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    if any(extra >= max(s, d) for extra, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller than "
                         f"either stride {stride} or dilation {dilation}")
    in_channels, group_out, kh, kw = weight.shape

    def run(x):
        if x.shape[1] != in_channels:
            raise ValueError(f"conv_transpose2d: input has {x.shape[1]} channels (shape {x.shape}), "
                             f"weight expects {in_channels} (weight shape {weight.shape})")
        size = transposed_output_size(x.shape[2:], (kh, kw), stride, padding, output_padding, dilation)
        if min(size) <= 0:
            raise ValueError(f"conv_transpose2d: output size {size} is too small (input shape {x.shape})")
        # output_padding adds rows at the bottom: the conv this transposes pads them one less each
        bottom_right = tuple((p, p - extra) for p, extra in zip(padding, output_padding))
        out = Conv2dInputGrad.apply(x, weight, input_shape=(x.shape[0], group_out * groups) + size,
                                    stride=stride, padding=bottom_right, dilation=dilation, groups=groups)
        return out if bias is None else out + bias.reshape(1, -1, 1, 1)
    return with_batch_axis("conv_transpose2d", input, run)
