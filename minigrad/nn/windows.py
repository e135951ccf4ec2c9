"""Convolution and pooling windows as strided views, the shared machinery of conv2d and the pools.

An input (N, C, H, W) and a kernel (KH, KW) moved with a stride (SH, SW) give
(OH, OW) windows. ``windows`` shows them all as one strided view, no copy;
``fold`` is its adjoint, adding window values back where they were read;
``window_positions`` lets an op loop over the KH*KW kernel offsets (4 for a
2x2 pool, 9 for a 3x3 conv), each a whole-array strided operation, instead of
over pixels.
"""
from .. import backend


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def windows(x, kernel, stride):
    """Every kernel-sized window of x (N, C, H, W) as a view (N, C, KH, KW, OH, OW); no copy."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    s_n, s_c, s_h, s_w = x.strides
    return backend.as_strided(x, (n, c, kh, kw, out_h, out_w),
                              (s_n, s_c, s_h, s_w, s_h * sh, s_w * sw))


def window_positions(kernel, stride, out_size):
    """For each kernel offset (i, j): the slice of the input it reads across all windows.

    Looping over the KH*KW offsets (4 for a 2x2 pool, 9 for a 3x3 conv), each a
    whole-array strided op, is how pooling and col2im avoid Python loops over pixels.
    """
    (kh, kw), (sh, sw), (out_h, out_w) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None),
                         slice(i, i + sh * (out_h - 1) + 1, sh), slice(j, j + sw * (out_w - 1) + 1, sw))


def fold(cols, input_shape, stride):
    """The adjoint of ``windows``: add every window's values back where they were read.

    cols (A, B, KH, KW, OH, OW) -> (A, B, H, W), for (A, B) = (N, C) or (C, N).
    """
    out = backend.array_module(cols).zeros(input_shape, dtype=cols.dtype)
    for i, j, where in window_positions(cols.shape[2:4], stride, cols.shape[4:]):
        out[where] += cols[:, :, i, j]
    return out


def pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return backend.array_module(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def unpad(x, padding):
    ph, pw = padding
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


def check_4d(op, x, kernel, padding):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    height, width = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if kernel[0] > height or kernel[1] > width:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input ({height}, {width})")
