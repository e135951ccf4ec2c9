"""Fast CPU versions of the convolution, pooling and BatchNorm steps, for NumPy arrays.

Each function takes the same arguments and returns the same values as a NumPy
twin that reads like the formula (named in its docstring, in functional.py or
batchnorm.py); the twin stays the reference and tests/test_cpu_fast.py
compares them. Two things make these faster:

- fewer passes over memory: a per-channel affine step ``a * u + b * v + c``
  is one fused chunk loop instead of a chain of whole-batch temporaries, and
  im2col copies each kernel offset once from a channel-major padded input
  instead of reshaping a 6-D strided view;
- the passes are cut into chunks along the batch or channel axis and run on
  the thread pool of minigrad/parallel.py (NumPy releases the GIL inside them).

Chunks of CHUNK_BYTES keep each chunk's temporaries in the cache.
"""
import numpy as np

from ..parallel import for_each_chunk
from .batchnorm import merge_statistics

CHUNK_BYTES = 1 << 18  # 256 KiB: a chunk's temporaries stay in L2


def _cache_chunks(array):
    """How many chunks of ``array`` make each about CHUNK_BYTES."""
    return -(-array.nbytes // CHUNK_BYTES)


def _broadcastable(values, ndim):
    """(C,) -> (1, C, 1, ...) for an ndim-D (N, C, ...) array."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _partial_sums(array, function):
    """``function(start, stop)`` gives a tuple of (C,) sums over one batch chunk; the tuple of their
    (P, C) stacks, chunks in batch order (so the result depends only on the chunking)."""
    partials = {}

    def chunk(start, stop):
        partials[start] = function(start, stop)

    for_each_chunk(len(array), chunk, min_chunks=_cache_chunks(array))
    in_order = [partials[start] for start in sorted(partials)]
    return [np.stack(values) for values in zip(*in_order)]


def _affine(u, a, v=None, b=None, c=None):
    """out = a * u + b * v + c per channel (a, b, c of shape (C,); v, b, c optional), chunked over the batch."""
    out = np.empty_like(u)
    ndim, dtype = u.ndim, u.dtype
    a = _broadcastable(np.asarray(a, dtype=dtype), ndim)
    b = None if b is None else _broadcastable(np.asarray(b, dtype=dtype), ndim)
    c = None if c is None else _broadcastable(np.asarray(c, dtype=dtype), ndim)

    def chunk(start, stop):
        part = out[start:stop]
        np.multiply(u[start:stop], a, out=part)
        if v is not None:
            part += v[start:stop] * b  # the product is a chunk-sized temporary, in cache
        if c is not None:
            part += c

    for_each_chunk(len(u), chunk, min_chunks=_cache_chunks(u))
    return out


def batch_statistics(x):
    """batchnorm.batch_statistics: per-channel (count, mean, M2), each (C,).

    Each batch chunk's (count, mean, M2) is computed while the chunk is in cache
    (the twin makes two passes over the whole batch and a whole-batch centered
    copy), and the chunks are merged with Chan's formula (batchnorm.merge_statistics).
    """
    values = x.reshape(x.shape[0], x.shape[1], -1)

    def chunk(start, stop):
        part = values[start:stop]
        count = part.shape[0] * part.shape[2]
        mean = part.sum(axis=0).sum(axis=1) / count
        centered = part - mean[:, None]
        return np.full(mean.shape, count, dtype=mean.dtype), mean, np.einsum("ncs,ncs->c", centered, centered)

    return merge_statistics(*_partial_sums(values, chunk))


def gradient_sums(grad_output, x, mean, invstd):
    """batchnorm.gradient_sums: per-channel (sum dy, sum dy * xhat), each (C,), summed chunk by chunk
    with each chunk's centered x in cache."""
    values, grads = x.reshape(x.shape[0], x.shape[1], -1), grad_output.reshape(x.shape[0], x.shape[1], -1)

    def chunk(start, stop):
        dy = grads[start:stop]
        return dy.sum(axis=0).sum(axis=1), np.einsum("ncs,ncs->c", dy, values[start:stop] - mean[:, None])

    sum_dy, sum_dy_centered = _partial_sums(values, chunk)
    return sum_dy.sum(axis=0), sum_dy_centered.sum(axis=0) * invstd


def normalize(x, mean, invstd, weight, bias):
    """batchnorm.normalize: y = (x - mean) * invstd * weight + bias per channel, as y = x * scale + shift."""
    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return _affine(x, scale, c=shift)


def input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
    """batchnorm.input_gradient, rewritten per channel as dx = a * dy + b * x + c.

    With scale = weight * invstd and xhat = (x - mean) * invstd:
    dx = scale * (dy - sum_dy / M - xhat * sum_dy_xhat / M), so
    a = scale, b = -scale * invstd * sum_dy_xhat / M, c = -scale * sum_dy / M - b * mean.
    """
    scale = invstd if weight is None else invstd * weight
    if not training:
        return _affine(grad_output, scale).astype(x.dtype, copy=False)
    b = -scale * invstd * sum_dy_xhat / count
    c = -scale * sum_dy / count - b * mean
    return _affine(grad_output, scale, x, b, c).astype(x.dtype, copy=False)


def _offsets(kernel, stride, out_size):
    """(i, j, rows, columns) for each kernel offset: the strided slices of the padded input it reads."""
    (kh, kw), (sh, sw), (out_h, out_w) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * (out_h - 1) + 1, sh), slice(j, j + sw * (out_w - 1) + 1, sw)


def _channel_chunks(n, h, w, itemsize):
    """Channel chunks whose padded (chunk, N, H, W) scratch is about CHUNK_BYTES."""
    return -(-n * h * w * itemsize // CHUNK_BYTES)


def im2col(x, kernel, stride, padding):
    """The ``cols`` of functional.Conv2d.forward: (C * KH * KW, N * OH * OW), rows ordered (c, i, j),
    columns (n, oh, ow).

    Channel chunk by channel chunk, the chunk is padded into a small channel-major
    scratch array (in cache) and each kernel offset is one strided copy from it:
    the whole-batch padded copy and the 6-D reshape copy of the twin become one
    pass that writes cols. Chunks are split over the threads.
    """
    n, c, h, w = x.shape
    (ph, pw) = padding
    height, width = h + 2 * ph, w + 2 * pw
    out_h, out_w = (height - kernel[0]) // stride[0] + 1, (width - kernel[1]) // stride[1] + 1
    cols = np.empty((c, kernel[0], kernel[1], n, out_h, out_w), dtype=x.dtype)

    def chunk(start, stop):
        padded = np.zeros((stop - start, n, height, width), dtype=x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x[:, start:stop].transpose(1, 0, 2, 3)
        for i, j, rows, columns in _offsets(kernel, stride, (out_h, out_w)):
            cols[start:stop, i, j] = padded[:, :, rows, columns]

    for_each_chunk(c, chunk, min_chunks=_channel_chunks(n, height, width, x.itemsize))
    return cols.reshape(c * kernel[0] * kernel[1], n * out_h * out_w)


def nchw_from_channel_major(values):
    """(C, N, H, W) -> a contiguous (N, C, H, W) copy, split over the batch: the last copy of conv2d's
    forward (``ascontiguousarray(out.transpose(1, 0, 2, 3))``)."""
    c, n = values.shape[:2]
    out = np.empty((n, c) + values.shape[2:], dtype=values.dtype)
    source = values.transpose(1, 0, 2, 3)

    def chunk(start, stop):
        out[start:stop] = source[start:stop]

    for_each_chunk(n, chunk)
    return out


def col2im(grad_cols, input_shape, kernel, stride, padding):
    """The input gradient of functional.Conv2d.backward from ``grad_cols`` = W^T @ g, shaped
    (C * KH * KW, N * OH * OW): every column added back where im2col read it (``_fold``), the
    padding cut off, as a contiguous (N, C, H, W) array.

    Channel chunk by channel chunk, the fold adds into a small scratch array (in
    cache) and the chunk goes straight to its place in the (N, C, H, W) output:
    no whole-batch folded array and no final transposing copy. Chunks are split
    over the threads.
    """
    n, c, h, w = input_shape
    (ph, pw) = padding
    height, width = h + 2 * ph, w + 2 * pw
    out_h, out_w = (height - kernel[0]) // stride[0] + 1, (width - kernel[1]) // stride[1] + 1
    cols = grad_cols.reshape(c, kernel[0], kernel[1], n, out_h, out_w)
    out = np.empty(input_shape, dtype=grad_cols.dtype)

    def chunk(start, stop):
        folded = np.zeros((stop - start, n, height, width), dtype=grad_cols.dtype)
        for i, j, rows, columns in _offsets(kernel, stride, (out_h, out_w)):
            folded[:, :, rows, columns] += cols[start:stop, i, j]
        out[:, start:stop] = folded[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)

    for_each_chunk(c, chunk, min_chunks=_channel_chunks(n, height, width, grad_cols.itemsize))
    return out


def max_pool2d_forward(x, kernel_size, stride):
    """functional.MaxPool2d.forward without padding: (best, winner), winner the int16 offset
    i * KW + j of each window's first maximum; the batch is split over the threads."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    best = np.empty((n, c, out_h, out_w), dtype=x.dtype)
    winner = np.empty((n, c, out_h, out_w), dtype=np.int16)

    def chunk(start, stop):
        block, top, choice = x[start:stop], best[start:stop], winner[start:stop]
        for i, j, rows, columns in _offsets(kernel_size, stride, (out_h, out_w)):
            candidate = block[:, :, rows, columns]
            if i == j == 0:
                top[...], choice[...] = candidate, 0
                continue
            better = candidate > top  # strictly: the first maximum keeps the gradient
            np.maximum(top, candidate, out=top)
            # offsets increase, so the last strict improvement is the largest: a maximum
            np.maximum(choice, better * np.int16(i * kw + j), out=choice)

    for_each_chunk(n, chunk, min_chunks=_cache_chunks(x))
    return best, winner


def max_pool2d_backward(grad, winner, input_shape, kernel_size, stride):
    """functional.MaxPool2d.backward without padding: each window's gradient to its winner; the
    batch is split over the threads. Inputs that no window reads get 0."""
    (kh, kw), (sh, sw) = kernel_size, stride
    out_h, out_w = grad.shape[2:]
    overlapping = sh < kh or sw < kw
    # windows that tile the input exactly write every element: no zeros needed
    covered = (sh, sw) == (kh, kw) and kh * out_h == input_shape[2] and kw * out_w == input_shape[3]
    out = (np.empty if covered else np.zeros)(input_shape, dtype=grad.dtype)

    def chunk(start, stop):
        g, choice, target = grad[start:stop], winner[start:stop], out[start:stop]
        for i, j, rows, columns in _offsets(kernel_size, stride, (out_h, out_w)):
            chosen = choice == i * kw + j
            if overlapping:
                target[:, :, rows, columns] += g * chosen
            else:  # each input is in one window: write, no add
                np.multiply(g, chosen, out=target[:, :, rows, columns])

    for_each_chunk(len(grad), chunk, min_chunks=_cache_chunks(grad))
    return out
