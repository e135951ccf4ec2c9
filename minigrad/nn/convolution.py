"""2-D convolution (cross-correlation, as PyTorch computes it), its two gradient ops, and its transpose.

For x (N, C, H, W), weight (O, C/G, KH, KW) and bias (O,), ``conv2d`` is one
GEMM over the im2col matrix of x's windows, batched over the G groups:

    out (G, O/G, N*OH*OW) = weight (G, O/G, C/G*KH*KW) @ cols (G, C/G*KH*KW, N*OH*OW)

(G = 1 is the ordinary convolution, G = C the depthwise one). The three maps
are bilinear and share one form, B(x, W, g) = <conv2d(x, W), g>:

- ``Conv2d``:           conv2d(x, W)               = dB/dg
- ``Conv2dInputGrad``:  gx = W^T g, folded (col2im) = dB/dx  (a transposed convolution)
- ``Conv2dWeightGrad``: gW = g cols^T              = dB/dW

so the derivative of each is written with the other two, and every order of
derivative stays within these three ops. ``conv_transpose2d`` is
``Conv2dInputGrad`` applied to an input instead of a gradient.

Every op takes the same geometry: ``stride`` and ``dilation`` pairs, ``padding``
per side ((top, bottom), (left, right)) and ``groups``.
"""
from .. import backend
from ..function import Function
from .windows import ONE, check_kernel_fits, fold, pad, pair, sides, unpad, windows, with_batch_axis


def _xp(array):
    return backend.array_module(array)


def _im2col(x, kernel, stride, padding, dilation):
    """(cols (C*KH*KW, N*OH*OW), (OH, OW)) of x (N, C, H, W)."""
    view = windows(pad(x, padding), kernel, stride, dilation)
    n, c = x.shape[:2]
    out_h, out_w = view.shape[4:]
    cols = view.transpose(1, 2, 3, 0, 4, 5).reshape(c * kernel[0] * kernel[1], n * out_h * out_w)
    return cols, (out_h, out_w)


def _grad_matrix(grad):
    """grad (N, O, OH, OW) as (O, N*OH*OW), the layout of the GEMM's output."""
    return grad.transpose(1, 0, 2, 3).reshape(grad.shape[1], -1)


def _by_group(matrix, groups):
    """A (rows, columns) matrix as (groups, rows / groups, columns): each group's block of rows."""
    return matrix.reshape(groups, matrix.shape[0] // groups, matrix.shape[1])


def _check_channels(x, weight, groups):
    out_channels, group_channels = weight.shape[:2]
    if x.shape[1] != group_channels * groups:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}), weight expects "
                         f"{group_channels * groups} (weight shape {weight.shape}, groups={groups})")
    if out_channels % groups:
        raise ValueError(f"conv2d: {out_channels} output channels (weight shape {weight.shape}) "
                         f"are not divisible by groups={groups}")


class Conv2d(Function):
    """Cross-correlation as one (batched over groups) GEMM: weight @ im2col."""

    def forward(self, x, weight, bias=None, stride=ONE, padding=((0, 0), (0, 0)), dilation=ONE, groups=1):
        out_channels, _, kh, kw = weight.shape
        if x.ndim != 4:
            raise ValueError(f"conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")
        _check_channels(x, weight, groups)
        check_kernel_fits("conv2d", x, (kh, kw), padding, dilation)
        cols, (out_h, out_w) = _im2col(x, (kh, kw), stride, padding, dilation)
        out = _by_group(weight.reshape(out_channels, -1), groups) @ _by_group(cols, groups)
        out = _xp(x).ascontiguousarray(out.reshape(out_channels, x.shape[0], out_h, out_w).transpose(1, 0, 2, 3))
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        self.cols = cols  # for the weight gradient
        self.geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return out

    def backward(self, grad):
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        # one transposing copy of g, shared by the two gradient ops
        matrix = _grad_matrix(grad.data) if need_x or need_weight else None
        grad_x = (Conv2dInputGrad.apply(grad, weight, input_shape=x.shape, grad_matrix=matrix, **self.geometry)
                  if need_x else None)
        grad_weight = (Conv2dWeightGrad.apply(x, grad, weight_shape=weight.shape, cols=self.cols, grad_matrix=matrix,
                                              **self.geometry) if need_weight else None)
        grad_bias = grad.sum(axis=(0, 2, 3)) if need_bias else None
        return grad_x, grad_weight, grad_bias


class Conv2dInputGrad(Function):
    """gx (N, C, H, W) = the fold of W^T g: the gradient of conv2d with respect to its input.

    ``grad_matrix`` is g as (O, N*OH*OW) when the caller already has it.
    """

    def forward(self, grad, weight, input_shape, stride, padding, dilation=ONE, groups=1, grad_matrix=None):
        out_channels, _, kh, kw = weight.shape
        n, _, out_h, out_w = grad.shape
        in_channels = input_shape[1]
        weight_t = _by_group(weight.reshape(out_channels, -1), groups).transpose(0, 2, 1)
        matrix = _grad_matrix(grad) if grad_matrix is None else grad_matrix
        grad_cols = weight_t @ _by_group(matrix, groups)
        # Fold channel-major, (C, N, H, W): each offset's add then reads a contiguous
        # (N, OH, OW) block per channel of grad_cols; one transposing copy ends it.
        grad_cols = grad_cols.reshape(in_channels, kh, kw, n, out_h, out_w).transpose(0, 3, 1, 2, 4, 5)
        (top, bottom), (left, right) = padding
        height, width = input_shape[2] + top + bottom, input_shape[3] + left + right
        grad_x = fold(grad_cols, (in_channels, n, height, width), stride, dilation)
        self.geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return _xp(grad).ascontiguousarray(unpad(grad_x, padding).transpose(1, 0, 2, 3))

    def backward(self, grad_of_gx):  # d/dg = conv2d(h, W), d/dW = weight gradient of (h, g)
        grad, weight = self.inputs
        need_grad, need_weight = self.needs_input_grad
        return (Conv2d.apply(grad_of_gx, weight, **self.geometry) if need_grad else None,
                Conv2dWeightGrad.apply(grad_of_gx, grad, weight_shape=weight.shape, **self.geometry)
                if need_weight else None)


class Conv2dWeightGrad(Function):
    """gW (O, C/G, KH, KW) = g cols^T: the gradient of conv2d with respect to its weight.

    ``cols`` is x's im2col matrix and ``grad_matrix`` g as (O, N*OH*OW), when the caller already
    has them (conv2d's forward made cols; its backward shares grad_matrix with the input gradient).
    """

    def forward(self, x, grad, weight_shape, stride, padding, dilation=ONE, groups=1, cols=None, grad_matrix=None):
        if cols is None:
            cols = _im2col(x, weight_shape[2:], stride, padding, dilation)[0]
        self.geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        # (cols @ g^T)^T: OpenBLAS runs this layout 1.5-2.5x faster than g @ cols^T
        matrix = _grad_matrix(grad) if grad_matrix is None else grad_matrix
        grad_t = _by_group(matrix, groups).transpose(0, 2, 1)
        return (_by_group(cols, groups) @ grad_t).transpose(0, 2, 1).reshape(weight_shape)

    def backward(self, grad_of_gw):  # d/dx = input gradient of (g, k), d/dg = conv2d(x, k)
        x, grad = self.inputs
        need_x, need_grad = self.needs_input_grad
        return (Conv2dInputGrad.apply(grad, grad_of_gw, input_shape=x.shape, **self.geometry) if need_x else None,
                Conv2d.apply(x, grad_of_gw, **self.geometry) if need_grad else None)


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
