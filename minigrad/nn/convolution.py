"""2-D convolution (cross-correlation, as PyTorch computes it) and its two gradient ops.

For x (N, C, H, W), weight (O, C, KH, KW) and bias (O,), ``conv2d`` is one
GEMM over the im2col matrix of x's windows:

    out (O, N*OH*OW) = weight (O, C*KH*KW) @ cols (C*KH*KW, N*OH*OW)

The three maps are bilinear and share one form, B(x, W, g) = <conv2d(x, W), g>:

- ``Conv2d``:           conv2d(x, W)               = dB/dg
- ``Conv2dInputGrad``:  gx = W^T g, folded (col2im) = dB/dx  (a transposed convolution)
- ``Conv2dWeightGrad``: gW = g cols^T              = dB/dW

so the derivative of each is written with the other two, and every order of
derivative stays within these three ops.
"""
from .. import backend
from ..function import Function
from .windows import check_4d, fold, pad, pair, unpad, windows


def _xp(array):
    return backend.array_module(array)


def _im2col(x, kernel, stride, padding):
    """(cols (C*KH*KW, N*OH*OW), (OH, OW), padded shape) of x (N, C, H, W)."""
    padded = pad(x, padding)
    view = windows(padded, kernel, stride)
    n, c = x.shape[:2]
    out_h, out_w = view.shape[4:]
    cols = view.transpose(1, 2, 3, 0, 4, 5).reshape(c * kernel[0] * kernel[1], n * out_h * out_w)
    return cols, (out_h, out_w), padded.shape


def _grad_matrix(grad):
    """grad (N, O, OH, OW) as (O, N*OH*OW), the layout of the GEMM's output."""
    return grad.transpose(1, 0, 2, 3).reshape(grad.shape[1], -1)


class Conv2d(Function):
    """Cross-correlation as one GEMM: (O, C*KH*KW) @ im2col (C*KH*KW, N*OH*OW)."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
        out_channels, in_channels, kh, kw = weight.shape
        check_4d("conv2d", x, (kh, kw), padding)
        if x.shape[1] != in_channels:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}), "
                             f"weight expects {in_channels} (weight shape {weight.shape})")
        cols, (out_h, out_w), _ = _im2col(x, (kh, kw), stride, padding)
        out = (weight.reshape(out_channels, -1) @ cols).reshape(out_channels, x.shape[0], out_h, out_w)
        out = _xp(x).ascontiguousarray(out.transpose(1, 0, 2, 3))
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        self.cols, self.stride, self.padding = cols, stride, padding  # cols: for the weight gradient
        return out

    def backward(self, grad):
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        options = dict(stride=self.stride, padding=self.padding)
        grad_x = Conv2dInputGrad.apply(grad, weight, input_shape=x.shape, **options) if need_x else None
        grad_weight = (Conv2dWeightGrad.apply(x, grad, weight_shape=weight.shape, cols=self.cols, **options)
                       if need_weight else None)
        grad_bias = grad.sum(axis=(0, 2, 3)) if need_bias else None
        return grad_x, grad_weight, grad_bias


class Conv2dInputGrad(Function):
    """gx (N, C, H, W) = the fold of W^T g: the gradient of conv2d with respect to its input."""

    def forward(self, grad, weight, input_shape, stride, padding):
        out_channels, in_channels, kh, kw = weight.shape
        n, _, out_h, out_w = grad.shape
        grad_cols = weight.reshape(out_channels, -1).T @ _grad_matrix(grad)
        # Fold channel-major, (C, N, H, W): each offset's add then reads a contiguous
        # (N, OH, OW) block per channel of grad_cols; one transposing copy ends it.
        grad_cols = grad_cols.reshape(in_channels, kh, kw, n, out_h, out_w).transpose(0, 3, 1, 2, 4, 5)
        height, width = input_shape[2] + 2 * padding[0], input_shape[3] + 2 * padding[1]
        grad_x = fold(grad_cols, (in_channels, n, height, width), stride)
        self.stride, self.padding = stride, padding
        return _xp(grad).ascontiguousarray(unpad(grad_x, padding).transpose(1, 0, 2, 3))

    def backward(self, grad_of_gx):  # d/dg = conv2d(h, W), d/dW = weight gradient of (h, g)
        grad, weight = self.inputs
        need_grad, need_weight = self.needs_input_grad
        options = dict(stride=self.stride, padding=self.padding)
        return (Conv2d.apply(grad_of_gx, weight, **options) if need_grad else None,
                Conv2dWeightGrad.apply(grad_of_gx, grad, weight_shape=weight.shape, **options)
                if need_weight else None)


class Conv2dWeightGrad(Function):
    """gW (O, C, KH, KW) = g cols^T: the gradient of conv2d with respect to its weight.

    ``cols`` is x's im2col matrix when the caller already has it (conv2d's forward made it).
    """

    def forward(self, x, grad, weight_shape, stride, padding, cols=None):
        if cols is None:
            cols = _im2col(x, weight_shape[2:], stride, padding)[0]
        self.stride, self.padding = stride, padding
        # (cols @ g^T)^T: OpenBLAS runs this layout 1.5-2.5x faster than g @ cols^T
        return (cols @ _grad_matrix(grad).T).T.reshape(weight_shape)

    def backward(self, grad_of_gw):  # d/dx = input gradient of (g, k), d/dg = conv2d(x, k)
        x, grad = self.inputs
        need_x, need_grad = self.needs_input_grad
        options = dict(stride=self.stride, padding=self.padding)
        return (Conv2dInputGrad.apply(grad, grad_of_gw, input_shape=x.shape, **options) if need_x else None,
                Conv2d.apply(x, grad_of_gw, **options) if need_grad else None)


def conv2d(input, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation; input (N, C, H, W), weight (O, C, KH, KW), bias (O,)."""
    options = dict(stride=pair(stride), padding=pair(padding))
    if bias is None:
        return Conv2d.apply(input, weight, **options)
    return Conv2d.apply(input, weight, bias, **options)
