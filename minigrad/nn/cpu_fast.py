"""Fast CPU versions of the pooling and BatchNorm steps, for NumPy arrays.

Each function takes the same arguments and returns the same values as a NumPy
twin that reads like the formula (named in its docstring, in functional.py or
batchnorm.py); the twin stays the reference and tests/test_cpu_fast.py
compares them. Two things make these faster:

- fewer passes over memory: a per-channel affine step ``a * u + b * v + c``
  is one fused chunk loop instead of a chain of whole-batch temporaries, and
  each chunk's temporaries stay in the cache;
- the passes are cut into chunks along the batch or channel axis and run on
  the thread pool of minigrad/parallel.py (NumPy releases the GIL inside them).

On one thread, chunks of CHUNK_BYTES keep each chunk's temporaries in the
cache. On more, each thread takes one chunk: NumPy calls on cache-sized pieces
(a few hundred KB) run no faster on two threads than on one here, while whole
shares do (the default CNN's step at 2 threads: 71.9 -> 69.7 ms).
"""
import numpy as np

from ..parallel import for_each_chunk, thread_policy
from .batchnorm_steps import merge_statistics

CHUNK_BYTES = 1 << 20  # 1 MiB: a chunk and its temporaries stay in a core's L2 (2 MiB here)


def _min_chunks(array):
    """for_each_chunk's ``min_chunks`` for a pass over ``array``: chunks of about CHUNK_BYTES on one
    thread, one chunk per thread on more (see the module docstring)."""
    if thread_policy.get_num_threads() > 1:
        return 1
    return -(-array.nbytes // CHUNK_BYTES)


def _rows(array):
    """(N, C, ...) as (N, C*S): one image per row (S = 1 for (N, C))."""
    return array.reshape(len(array), -1)


def _row_source(array):
    """``rows(start, stop)``: images start..stop of an (N, C, ...) array as (stop - start, C*S) rows.
    input_gradient reads its gradient through such a function, so that it can also be made chunk
    by chunk (``max_pool_gradient``) instead of read from a whole array."""
    if callable(array):
        return array
    values = _rows(array)
    return lambda start, stop: values[start:stop]


def _plane_size(array):
    """S, the values per channel and image of an (N, C, ...) array."""
    return int(np.prod(array.shape[2:], dtype=np.int64))


def _pattern(values, size, dtype):
    """(C,) -> (1, C*S), each channel's value repeated S = ``size`` times: one image's worth.

    NumPy's ufuncs run a (1, C*S) operand against (N, C*S) rows, whole images at a time,
    about 1.6x faster than a (1, C, 1) one against (N, C, S) (measured in-cache on the
    default CNN's shapes).
    """
    return np.repeat(np.asarray(values, dtype=dtype), size)[None]


def _per_channel(totals, channels, size):
    """(C*S,) sums over the batch -> (C,) sums over the batch and the plane of S values."""
    return totals.reshape(channels, size).sum(axis=1)


def _partial_sums(array, function):
    """``function(start, stop)`` gives a tuple of (C,) sums over one batch chunk; the tuple of their
    (P, C) stacks, chunks in batch order (so the result depends only on the chunking)."""
    partials = {}

    def chunk(start, stop):
        partials[start] = function(start, stop)

    for_each_chunk(len(array), chunk, min_chunks=_min_chunks(array))
    in_order = [partials[start] for start in sorted(partials)]
    return [np.stack(values) for values in zip(*in_order)]


def _combine(terms, like, constant=None):
    """out = sum of (array - center) * coefficient over ``terms`` + constant, per channel.

    terms: (array (N, C, ...) or a row source (``_row_source``), center (C,) or None, coefficient (C,))
    triples; ``like``: an array of out's shape and dtype; constant (C,) or None.
    One loop over cache-sized batch chunks does every term, so the temporaries never leave the
    cache; centering before scaling keeps the twin's accuracy when |mean| >> std.
    """
    size, out = _plane_size(like), np.empty(like.shape, dtype=like.dtype)  # C order: rows are views
    rows = _rows(out)

    def per_channel(values):
        return None if values is None else _pattern(values, size, like.dtype)

    terms = [(_row_source(array), per_channel(center), per_channel(coefficient))
             for array, center, coefficient in terms]
    constant = per_channel(constant)

    def chunk(start, stop):
        part = rows[start:stop]
        for index, (source, center, coefficient) in enumerate(terms):
            target = part if index == 0 else np.empty_like(part)
            if center is None:
                np.multiply(source(start, stop), coefficient, out=target)
            else:
                np.subtract(source(start, stop), center, out=target)
                target *= coefficient
            if index > 0:
                part += target
        if constant is not None:
            part += constant

    for_each_chunk(len(like), chunk, min_chunks=_min_chunks(like))
    return out


def batch_statistics(x):
    """batchnorm.batch_statistics: per-channel (count, mean, M2), each (C,).

    Each batch chunk's (count, mean, M2) is computed while the chunk is in cache
    (the twin makes two passes over the whole batch and a whole-batch centered
    copy), and the chunks are merged with Chan's formula (batchnorm.merge_statistics).
    """
    size, channels, values = _plane_size(x), x.shape[1], _rows(x)

    def chunk(start, stop):
        part = values[start:stop]
        count = len(part) * size
        mean = _per_channel(part.sum(axis=0), channels, size) / count
        centered = part - _pattern(mean, size, x.dtype)
        m2 = _per_channel(np.einsum("nk,nk->k", centered, centered), channels, size)
        return np.full(mean.shape, count, dtype=np.float64), mean, m2

    count, mean, m2 = merge_statistics(*_partial_sums(values, chunk))
    # merged in the float64 of the counts; mean and M2 in x's dtype, as the twin gives them (a float64
    # mean would make every later pass over x, gradient_sums' centered copy first, a float64 pass)
    return count, mean.astype(x.dtype, copy=False), m2.astype(x.dtype, copy=False)


def gradient_sums(grad_output, x, mean, invstd):
    """batchnorm.gradient_sums: per-channel (sum dy, sum dy * xhat), each (C,), summed chunk by chunk
    with each chunk's centered x in cache."""
    size, channels, values, grads = _plane_size(x), x.shape[1], _rows(x), _rows(grad_output)
    center = _pattern(mean, size, x.dtype)

    def chunk(start, stop):
        dy = grads[start:stop]
        return (_per_channel(dy.sum(axis=0), channels, size),
                _per_channel(np.einsum("nk,nk->k", dy, values[start:stop] - center), channels, size))

    sum_dy, sum_dy_centered = _partial_sums(values, chunk)
    return sum_dy.sum(axis=0), sum_dy_centered.sum(axis=0) * invstd


def affine_scale(invstd, weight):
    """invstd * weight per channel (invstd without an affine weight): what x - mean is multiplied by."""
    return invstd if weight is None else invstd * weight


def normalize(x, mean, invstd, weight, bias):
    """batchnorm.normalize: y = (x - mean) * (invstd * weight) + bias per channel, in one chunked pass."""
    return _combine([(x, mean, affine_scale(invstd, weight))], x, bias)


def input_gradient_coefficients(invstd, weight, sum_dy, sum_dy_xhat, count):
    """(a, b, c) per channel of the training-mode input gradient dx = a * dy + b * (x - mean) + c."""
    scale = affine_scale(invstd, weight)
    return scale, -scale * invstd * sum_dy_xhat / count, -scale * sum_dy / count


def input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
    """batchnorm.input_gradient, rewritten per channel as dx = a * dy + b * (x - mean) + c.

    With scale = weight * invstd and xhat = (x - mean) * invstd:
    dx = scale * (dy - sum_dy / M - xhat * sum_dy_xhat / M), so
    a = scale, b = -scale * invstd * sum_dy_xhat / M, c = -scale * sum_dy / M: one chunked pass
    where the twin makes six whole-batch passes and three temporaries. ``grad_output``: an array, or
    a row source (``_row_source``).
    """
    if not training:
        return _combine([(grad_output, None, affine_scale(invstd, weight))], x).astype(x.dtype, copy=False)
    scale, slope, constant = input_gradient_coefficients(invstd, weight, sum_dy, sum_dy_xhat, count)
    return _combine([(grad_output, None, scale), (x, mean, slope)], x, constant).astype(x.dtype, copy=False)


def _offsets(kernel, stride, out_size):
    """(i, j, rows, columns) for each kernel offset: the strided slices of the padded input it reads."""
    (kh, kw), (sh, sw), (out_h, out_w) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * (out_h - 1) + 1, sh), slice(j, j + sw * (out_w - 1) + 1, sw)


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
            # one copy of the strided window view, then flat passes: NumPy copies strided rows
            # faster than its comparisons and maxima read them
            candidate = np.ascontiguousarray(block[:, :, rows, columns])
            if i == j == 0:
                top[...], choice[...] = candidate, 0
                continue
            better = candidate > top  # strictly: the first maximum keeps the gradient
            np.maximum(top, candidate, out=top)
            # offsets increase, so the last strict improvement is the largest: a maximum
            np.maximum(choice, better * np.int16(i * kw + j), out=choice)

    for_each_chunk(n, chunk, min_chunks=_min_chunks(x))
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

    for_each_chunk(len(grad), chunk, min_chunks=_min_chunks(grad))
    return out


# ----- batch norm and a max-pool after it, as one op (batchnorm.BatchNormMaxPool) -------------------------
def normalize_max_pool(x, mean, invstd, weight, bias, kernel_size, stride):
    """max_pool2d_forward(normalize(x, mean, invstd, weight, bias), kernel_size, stride), chunk by chunk
    of images (cache-sized on one thread): each chunk is normalized and pooled at once, so the
    normalized batch is never written out whole. The same operations, so the same bits as the two steps."""
    n, _, h, w = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    pooled_shape = (n, x.shape[1], (h - kh) // sh + 1, (w - kw) // sw + 1)
    best, winner = np.empty(pooled_shape, dtype=x.dtype), np.empty(pooled_shape, dtype=np.int16)

    def chunk(start, stop):
        best[start:stop], winner[start:stop] = max_pool2d_forward(
            normalize(x[start:stop], mean, invstd, weight, bias), kernel_size, stride)

    for_each_chunk(n, chunk, min_chunks=_min_chunks(x))
    return best, winner


def max_pool_gradient(grad, winner, input_shape, kernel_size, stride):
    """max_pool2d_backward(grad, winner, input_shape, ...) as a row source (``_row_source``) for
    input_gradient's grad_output: each chunk of the pool's input gradient is made when the pass
    asks for it, and the whole gradient never exists."""
    def rows(start, stop):
        shape = (stop - start,) + tuple(input_shape[1:])
        return _rows(max_pool2d_backward(grad[start:stop], winner[start:stop], shape, kernel_size, stride))
    return rows


def max_pool_input_gradient(grad, winner, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training,
                            kernel_size, stride):
    """input_gradient(max_pool2d_backward(grad, winner, x.shape, ...), x, ...): batch norm's input gradient
    when a max-pool follows it, its pooled gradient ``grad`` put back at the winners chunk by chunk
    (``max_pool_gradient``)."""
    grad_output = max_pool_gradient(grad, winner, x.shape, kernel_size, stride)
    return input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training)


def max_pool_gradient_sums(grad, winner, x, mean, invstd, kernel_size, stride):
    """gradient_sums(max_pool2d_backward(grad, winner, x.shape, ...), x, mean, invstd) from the pooled
    values. The pool's input gradient is zero except at each window's winner, so the sums need only
    each window's g and x at its winner (gathered once per kernel offset): a quarter of the values
    for a 2x2 pool. The same terms added in another order, so the last bits can differ."""
    kw, pooled_size = kernel_size[1], _plane_size(grad)
    channels, grads = x.shape[1], _rows(grad)
    center = _pattern(mean, pooled_size, x.dtype)

    def chunk(start, stop):
        block, choice = x[start:stop], winner[start:stop]
        at_winner = np.zeros(choice.shape, dtype=x.dtype)
        for i, j, rows, columns in _offsets(kernel_size, stride, choice.shape[2:]):
            at_winner += block[:, :, rows, columns] * (choice == i * kw + j)
        centered = _rows(at_winner) - center
        dy = grads[start:stop]
        return (_per_channel(dy.sum(axis=0), channels, pooled_size),
                _per_channel(np.einsum("nk,nk->k", dy, centered), channels, pooled_size))

    sum_dy, sum_dy_centered = _partial_sums(x, chunk)
    return sum_dy.sum(axis=0), sum_dy_centered.sum(axis=0) * invstd
