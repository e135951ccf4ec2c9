"""Convolution and pooling windows as strided views, the shared machinery of conv2d and the pools.

An input (N, C, H, W) and a kernel (KH, KW) moved with a stride (SH, SW), its
taps spaced by a dilation (DH, DW), give (OH, OW) windows. ``windows`` shows
them all as one strided view, no copy; ``fold`` is its adjoint, adding window
values back where they were read; ``window_positions`` lets an op loop over the
KH*KW kernel offsets (4 for a 2x2 pool, 9 for a 3x3 conv), each a whole-array
strided operation, instead of over pixels.

Padding is given per side, ``((top, bottom), (left, right))``: PyTorch pads
symmetrically, except for ``padding='same'`` with an even kernel and for
``ceil_mode`` pools, which add the extra row or column at the bottom and right.
"""
import numpy as np

from .. import backend

ONE = (1, 1)


def pair(value):
    """An int or a one-element sequence for both axes, or a pair as it is (PyTorch's rule)."""
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    return value * 2 if len(value) == 1 else value


def sides(padding):
    """(PH, PW) or an int -> ((PH, PH), (PW, PW)); per-side padding passes through."""
    padding = pair(padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return tuple(tuple(side) for side in padding)


def output_size(size, kernel, stride, dilation=1):
    """How many windows of a dilated kernel fit in ``size`` (already padded) at ``stride``."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def windows(x, kernel, stride, dilation=ONE):
    """Every kernel-sized window of x (N, C, H, W) as a view (N, C, KH, KW, OH, OW); no copy."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    out_h, out_w = output_size(h, kh, sh, dh), output_size(w, kw, sw, dw)
    s_n, s_c, s_h, s_w = x.strides
    return backend.as_strided(x, (n, c, kh, kw, out_h, out_w),
                              (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw))


def window_positions(kernel, stride, out_size, dilation=ONE):
    """For each kernel offset (i, j): the slice of the input it reads across all windows.

    Looping over the KH*KW offsets (4 for a 2x2 pool, 9 for a 3x3 conv), each a
    whole-array strided op, is how pooling and col2im avoid Python loops over pixels.
    """
    (kh, kw), (sh, sw), (out_h, out_w), (dh, dw) = kernel, stride, out_size, dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None), slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw))


def _taps_inside(tap, step, out_len, in_len, before):
    """The windows o whose tap at o * step + tap lands inside the input, not in its padding: the
    (windows, input positions) slices, or None. ``before`` is the padding before the input."""
    first = max(0, -(-(before - tap) // step))
    last = min(out_len - 1, (in_len - 1 + before - tap) // step)
    if last < first:
        return None
    start = first * step + tap - before
    return slice(first, last + 1), slice(start, start + (last - first) * step + 1, step)


def fold(cols, out, stride, dilation=ONE, padding=((0, 0), (0, 0))):
    """The adjoint of ``windows`` on a padded input: add every window's values back into the
    unpadded ``out`` where they were read (taps that read padding add nothing).

    cols (N, C, KH, KW, OH, OW) is added into out (N, C, H, W).
    """
    (kh, kw), (out_h, out_w) = cols.shape[2:4], cols.shape[4:]
    for i in range(kh):
        rows = _taps_inside(i * dilation[0], stride[0], out_h, out.shape[2], padding[0][0])
        for j in range(kw):
            columns = _taps_inside(j * dilation[1], stride[1], out_w, out.shape[3], padding[1][0])
            if rows is not None and columns is not None:
                out[:, :, rows[1], columns[1]] += cols[:, :, i, j, rows[0], columns[0]]
    return out


def fold_by_planes(cols, out, planes, dilation=ONE, padding=((0, 0), (0, 0))):
    """``fold`` for stride 1 and padding >= 0 on every side, written to ``out`` instead of added.

    cols (N, C, KH, KW, OH, OW); out (N, C, H, W); planes (KH*KW, N, C, H + top + bottom,
    W + left + right), zero wherever no tap writes (zeroed once, reused: each call writes
    the same places). Each tap's values are copied into their own padded plane, the planes
    are summed, and the inside is cut out. The sums are fold's, in the same order, so the
    bits are too; NumPy copies short strided rows several times faster than it adds them.
    """
    (kh, kw), (out_h, out_w) = cols.shape[2:4], cols.shape[4:]
    for i in range(kh):
        for j in range(kw):
            row, column = i * dilation[0], j * dilation[1]
            planes[i * kw + j][:, :, row:row + out_h, column:column + out_w] = cols[:, :, i, j]
    total = np.add.reduce(planes, axis=0)  # plane by plane, in tap order: fold's order of adds
    (top, _), (left, _) = padding
    out[...] = total[:, :, top:top + out.shape[2], left:left + out.shape[3]]
    return out


def _grow(x, sides, value=0.0):
    (top, bottom), (left, right) = sides
    if top == bottom == left == right == 0:
        return x
    out = backend.array_module(x).full(x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right),
                                       value, dtype=x.dtype)
    return pad_into(x, ((top, bottom), (left, right)), out)


def _shrink(x, sides):
    (top, bottom), (left, right) = sides
    return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]


def _split(padding):
    """(the positive sides, the negative sides as counts): a negative side crops instead of padding."""
    return (tuple(tuple(max(side, 0) for side in axis) for axis in padding),
            tuple(tuple(max(-side, 0) for side in axis) for axis in padding))


def pad(x, padding, value=0.0):
    """x (N, C, H, W) with ``padding`` = ((top, bottom), (left, right)) rows and columns of ``value`` added.

    A negative side removes rows or columns instead: conv_transpose2d's
    output_padding beyond its padding leaves the last rows out of every window.
    """
    grow, shrink = _split(padding)
    return _grow(_shrink(x, shrink), grow, value)


def pad_into(x, padding, out):
    """``pad(x, padding)`` written into ``out``, whose border already holds the padding value: only
    the inside is copied, so one zeroed buffer serves chunk after chunk."""
    grow, shrink = _split(padding)
    x = _shrink(x, shrink)
    (top, _), (left, _) = grow
    out[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x
    return out


def unpad(x, padding):
    """The inner part of a padded x: ``pad``'s rows and columns cut off again (zeros where ``pad`` cropped)."""
    grow, shrink = _split(padding)
    return _shrink(_grow(x, shrink), grow)


def check_kernel_fits(op, x, kernel, padding, dilation=ONE):
    (top, bottom), (left, right) = padding
    height, width = x.shape[2] + top + bottom, x.shape[3] + left + right
    reach = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if reach[0] > height or reach[1] > width:
        raise ValueError(f"{op}: kernel {tuple(kernel)} (dilation {tuple(dilation)}) is larger than "
                         f"the padded input ({height}, {width})")


def with_batch_axis(op, input, run):
    """``run`` on a 4-D input (N, C, H, W); a 3-D (C, H, W) one runs as a batch of one, as PyTorch allows.

    ``run`` returns a tensor or a tuple of tensors (values and indices); each
    loses the batch axis again for an unbatched input.
    """
    if input.ndim == 4:
        return run(input)
    if input.ndim != 3:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    result = run(input.reshape((1,) + input.shape))
    if isinstance(result, tuple):
        return tuple(value.reshape(value.shape[1:]) for value in result)
    return result.reshape(result.shape[1:])
