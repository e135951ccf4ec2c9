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

CHUNK_BYTES = 1 << 18  # 256 KiB: a chunk's temporaries stay in L2


def _cache_chunks(array):
    """How many chunks of ``array`` make each about CHUNK_BYTES."""
    return -(-array.nbytes // CHUNK_BYTES)


def _broadcastable(values, ndim):
    """(C,) -> (1, C, 1, ...) for an ndim-D (N, C, ...) array."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


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


def _padded_channel_major(x, padding):
    """x (N, C, H, W) as a zero-padded (C, N, H + 2 ph, W + 2 pw) array, in one copy."""
    n, c, h, w = x.shape
    ph, pw = padding
    padded = np.empty((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    source = x.transpose(1, 0, 2, 3)

    def chunk(start, stop):
        part = padded[start:stop]
        if ph or pw:  # only the border is zeroed; the copy writes the rest
            part[:, :, :ph], part[:, :, h + ph:] = 0, 0
            part[:, :, :, :pw], part[:, :, :, w + pw:] = 0, 0
        part[:, :, ph:ph + h, pw:pw + w] = source[start:stop]

    for_each_chunk(c, chunk)
    return padded


def im2col(x, kernel, stride, padding):
    """The ``cols`` of functional.Conv2d.forward: (C * KH * KW, N * OH * OW), rows ordered (c, i, j),
    columns (n, oh, ow); each kernel offset is one strided copy, channels split over the threads."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    padded = _padded_channel_major(x, padding)
    out_h, out_w = (padded.shape[2] - kh) // sh + 1, (padded.shape[3] - kw) // sw + 1
    cols = np.empty((c, kh, kw, n, out_h, out_w), dtype=x.dtype)

    def chunk(start, stop):
        for i in range(kh):
            for j in range(kw):
                cols[start:stop, i, j] = padded[start:stop, :, i:i + sh * (out_h - 1) + 1:sh,
                                                j:j + sw * (out_w - 1) + 1:sw]

    for_each_chunk(c, chunk)
    return cols.reshape(c * kh * kw, n * out_h * out_w)


def nchw_from_channel_major(values):
    """(C, N, H, W) -> a contiguous (N, C, H, W) copy, split over the batch: the last copy of conv2d's
    forward (out.transpose(1, 0, 2, 3)) and of its input gradient."""
    c, n = values.shape[:2]
    out = np.empty((n, c) + values.shape[2:], dtype=values.dtype)
    source = values.transpose(1, 0, 2, 3)

    def chunk(start, stop):
        out[start:stop] = source[start:stop]

    for_each_chunk(n, chunk)
    return out


def col2im(grad_cols, input_shape, kernel, stride, padding):
    """The input gradient of functional.Conv2d.backward from ``grad_cols`` = W^T @ g, shaped
    (C * KH * KW, N * OH * OW): every column added back where im2col read it (``_fold``), then
    the padding cut off, as a contiguous (N, C, H, W) array. Channels are split over the threads."""
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    height, width = h + 2 * ph, w + 2 * pw
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    cols = grad_cols.reshape(c, kh, kw, n, out_h, out_w)
    folded = np.zeros((c, n, height, width), dtype=grad_cols.dtype)

    def chunk(start, stop):
        for i in range(kh):
            for j in range(kw):
                folded[start:stop, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw] += \
                    cols[start:stop, i, j]

    for_each_chunk(c, chunk)
    return nchw_from_channel_major(folded[:, :, ph:ph + h, pw:pw + w])


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
        top[...] = block[:, :, :sh * (out_h - 1) + 1:sh, :sw * (out_w - 1) + 1:sw]
        choice[...] = 0
        for i in range(kh):
            for j in range(kw):
                if i == j == 0:
                    continue
                candidate = block[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]
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
    covered = not overlapping and sh * out_h == input_shape[2] and sw * out_w == input_shape[3]
    out = (np.empty if covered else np.zeros)(input_shape, dtype=grad.dtype)

    def chunk(start, stop):
        g, choice, target = grad[start:stop], winner[start:stop], out[start:stop]
        for i in range(kh):
            for j in range(kw):
                where = target[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]
                chosen = choice == i * kw + j
                if overlapping:
                    where += g * chosen
                else:  # each input is in one window: write, no add
                    np.multiply(g, chosen, out=where)

    for_each_chunk(len(grad), chunk, min_chunks=_cache_chunks(grad))
    return out
