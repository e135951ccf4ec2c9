"""Neural-network ops: layers, activations and losses as functions of tensors.

The names and arguments are PyTorch's (``torch.nn.functional``). Ops that a
network calls on every step (linear, conv2d, pooling, cross_entropy) are
single fused ``Function``s with hand-derived backward passes, so the engine's
per-op overhead stays small.
"""
import numpy as np

from .. import backend, random
from ..ops import (Abs, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh,  # noqa: F401
                   flatten)
from ..tensor import Function, Tensor
from .batchnorm import batch_norm  # noqa: F401  (implemented beside its layers and kernels)


def _xp(array):
    return backend.array_module(array)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


# ----- activations ------------------------------------------------------------------
def relu(input):
    return ReLU.apply(input)


def leaky_relu(input, negative_slope=0.01):
    return LeakyReLU.apply(input, negative_slope=negative_slope)


def sigmoid(input):
    return Sigmoid.apply(input)


def tanh(input):
    return Tanh.apply(input)


def softmax(input, dim=-1):
    return Softmax.apply(input, axis=dim)


def log_softmax(input, dim=-1):
    return LogSoftmax.apply(input, axis=dim)


# ----- linear -----------------------------------------------------------------------
class Linear(Function):
    """y = x W^T + b, with x of shape (..., in_features) and W of shape (out, in)."""

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}), "
                             f"weight expects {weight.shape[1]} (weight shape {weight.shape})")
        self.x, self.weight = x, weight
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):  # dx = g W, dW = g^T x, db = sum of g over the batch
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_x = grad @ self.weight if need_x else None
        grad_weight = grad2.T @ self.x.reshape(-1, self.x.shape[-1]) if need_weight else None
        grad_bias = grad2.sum(axis=0) if need_bias else None
        return grad_x, grad_weight, grad_bias

    def backward_graph(self, grad):  # the same products, on Tensors
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_x = grad @ weight if need_x else None
        grad_weight = grad2.T @ x.reshape(-1, x.shape[-1]) if need_weight else None
        grad_bias = grad2.sum(axis=0) if need_bias else None
        return grad_x, grad_weight, grad_bias


def linear(input, weight, bias=None):
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


# ----- convolution and pooling: windows as strided views ----------------------------
def _windows(x, kernel, stride):
    """Every kernel-sized window of x (N, C, H, W) as a view (N, C, KH, KW, OH, OW); no copy."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    s_n, s_c, s_h, s_w = x.strides
    return backend.as_strided(x, (n, c, kh, kw, out_h, out_w),
                              (s_n, s_c, s_h, s_w, s_h * sh, s_w * sw))


def _window_positions(kernel, stride, out_size):
    """For each kernel offset (i, j): the slice of the input it reads across all windows.

    Looping over the KH*KW offsets (4 for a 2x2 pool, 9 for a 3x3 conv), each a
    whole-array strided op, is how pooling and col2im avoid Python loops over pixels.
    """
    (kh, kw), (sh, sw), (out_h, out_w) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None),
                         slice(i, i + sh * (out_h - 1) + 1, sh), slice(j, j + sw * (out_w - 1) + 1, sw))


def _fold(cols, input_shape, stride):
    """The adjoint of ``_windows``: add every window's values back where they were read.

    cols (A, B, KH, KW, OH, OW) -> (A, B, H, W), for (A, B) = (N, C) or (C, N).
    """
    out = _xp(cols).zeros(input_shape, dtype=cols.dtype)
    for i, j, where in _window_positions(cols.shape[2:4], stride, cols.shape[4:]):
        out[where] += cols[:, :, i, j]
    return out


def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return _xp(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _unpad(x, padding):
    ph, pw = padding
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


def _check_4d(op, x, kernel, padding):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    height, width = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if kernel[0] > height or kernel[1] > width:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input ({height}, {width})")


class Conv2d(Function):
    """Cross-correlation as one GEMM: (O, C*KH*KW) @ im2col (C*KH*KW, N*OH*OW)."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
        out_channels, in_channels, kh, kw = weight.shape
        _check_4d("conv2d", x, (kh, kw), padding)
        if x.shape[1] != in_channels:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}), "
                             f"weight expects {in_channels} (weight shape {weight.shape})")
        n = x.shape[0]
        padded = _pad(x, padding)
        windows = _windows(padded, (kh, kw), stride)
        out_h, out_w = windows.shape[4:]
        cols = windows.transpose(1, 2, 3, 0, 4, 5).reshape(in_channels * kh * kw, n * out_h * out_w)
        out = (weight.reshape(out_channels, -1) @ cols).reshape(out_channels, n, out_h, out_w)
        out = _xp(x).ascontiguousarray(out.transpose(1, 0, 2, 3))
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        self.cols, self.weight, self.padded_shape = cols, weight, padded.shape
        self.stride, self.padding = stride, padding
        return out

    def backward(self, grad):
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        weight = self.weight
        out_channels, in_channels, kh, kw = weight.shape
        n, _, out_h, out_w = grad.shape
        grad_matrix = grad.transpose(1, 0, 2, 3).reshape(out_channels, -1)
        grad_weight = None
        if need_weight:  # (cols @ g^T)^T: OpenBLAS runs this layout 1.5-2.5x faster than g @ cols^T
            grad_weight = (self.cols @ grad_matrix.T).T.reshape(weight.shape)
        grad_bias = grad.sum(axis=(0, 2, 3)) if need_bias else None
        grad_x = None
        if need_x:
            grad_cols = weight.reshape(out_channels, -1).T @ grad_matrix
            # Fold channel-major, (C, N, H, W): each offset's add then reads a contiguous
            # (N, OH, OW) block per channel of grad_cols; one transposing copy ends it.
            grad_cols = grad_cols.reshape(in_channels, kh, kw, n, out_h, out_w).transpose(0, 3, 1, 2, 4, 5)
            _, _, height, width = self.padded_shape
            grad_x = _fold(grad_cols, (in_channels, n, height, width), self.stride)
            grad_x = _xp(grad).ascontiguousarray(_unpad(grad_x, self.padding).transpose(1, 0, 2, 3))
        return grad_x, grad_weight, grad_bias


def conv2d(input, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation; input (N, C, H, W), weight (O, C, KH, KW), bias (O,)."""
    options = dict(stride=_pair(stride), padding=_pair(padding))
    if bias is None:
        return Conv2d.apply(input, weight, **options)
    return Conv2d.apply(input, weight, bias, **options)


class MaxPool2d(Function):
    """The maximum of each window; its gradient goes to the first maximal input (PyTorch's choice)."""

    def forward(self, x, kernel_size, stride, padding):
        _check_4d("max_pool2d", x, kernel_size, padding)
        xp = _xp(x)
        padded = _pad(x, padding, value=-np.inf)
        windows = _windows(padded, kernel_size, stride)
        best = windows[:, :, 0, 0].copy()
        winner = xp.zeros(best.shape, dtype=np.int16)  # the offset i * KW + j of each window's maximum
        for i, j, _ in _window_positions(kernel_size, stride, best.shape[2:]):
            if i == j == 0:
                continue
            candidate = windows[:, :, i, j]
            better = candidate > best  # strictly: the first maximum keeps the gradient
            xp.maximum(best, candidate, out=best)
            # Offsets come in increasing order, so the last strict improvement has the largest
            # offset: a maximum, which is faster than where() or copyto(where=).
            xp.maximum(winner, better * np.int16(i * kernel_size[1] + j), out=winner)
        self.winner, self.padded_shape = winner, padded.shape
        self.kernel, self.stride, self.padding = kernel_size, stride, padding
        return best

    def backward(self, grad):
        xp = _xp(grad)
        out = xp.zeros(self.padded_shape, dtype=grad.dtype)
        overlapping = self.stride[0] < self.kernel[0] or self.stride[1] < self.kernel[1]
        for i, j, where in _window_positions(self.kernel, self.stride, grad.shape[2:]):
            chosen = self.winner == i * self.kernel[1] + j
            if overlapping:
                out[where] += grad * chosen
            else:  # each input is in one window at most: write the product in place, no add
                xp.multiply(grad, chosen, out=out[where])
        return _unpad(out, self.padding)


def _pool_options(kernel_size, stride, padding):
    """PyTorch's defaults: the stride is the kernel size unless given."""
    kernel_size = _pair(kernel_size)
    return dict(kernel_size=kernel_size, stride=kernel_size if stride is None else _pair(stride),
                padding=_pair(padding))


def max_pool2d(input, kernel_size, stride=None, padding=0):
    return MaxPool2d.apply(input, **_pool_options(kernel_size, stride, padding))


class AvgPool2d(Function):
    """The mean of each window (padding counts as zeros, as in PyTorch's default)."""

    def forward(self, x, kernel_size, stride, padding):
        _check_4d("avg_pool2d", x, kernel_size, padding)
        padded = _pad(x, padding)
        windows = _windows(padded, kernel_size, stride)
        total = windows[:, :, 0, 0].copy()
        for i, j, _ in _window_positions(kernel_size, stride, total.shape[2:]):
            if i or j:
                total += windows[:, :, i, j]
        self.padded_shape, self.kernel, self.stride, self.padding = padded.shape, kernel_size, stride, padding
        return total / (kernel_size[0] * kernel_size[1])

    def backward(self, grad):  # each input in a window gets 1/(KH*KW) of the window's gradient
        share = grad / (self.kernel[0] * self.kernel[1])
        out = _xp(grad).zeros(self.padded_shape, dtype=grad.dtype)
        for _, _, where in _window_positions(self.kernel, self.stride, grad.shape[2:]):
            out[where] += share
        return _unpad(out, self.padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    return AvgPool2d.apply(input, **_pool_options(kernel_size, stride, padding))


# ----- dropout ----------------------------------------------------------------------
class Dropout(Function):
    def forward(self, x, p):
        self.mask = random.bernoulli_mask(1 - p, x.shape, x) / (1 - p)
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask

    backward_graph = backward  # the mask is a constant


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return Dropout.apply(input, p=p)


# ----- losses -----------------------------------------------------------------------
def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class CrossEntropy(Function):
    """-log softmax(x)[target] per row; its gradient is softmax(x) - onehot(target)."""

    def forward(self, logits, target, reduction="mean"):
        xp = _xp(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = xp.arange(len(target))
        losses = xp.log(total[:, 0]) - shifted[rows, target]
        self.probabilities, self.target, self.rows, self.reduction = exp / total, target, rows, reduction
        if reduction == "mean":
            return losses.mean()
        return losses.sum() if reduction == "sum" else losses

    def backward(self, grad):
        grad_logits = self.probabilities.copy()
        grad_logits[self.rows, self.target] -= 1
        if self.reduction == "mean":
            return grad_logits * (grad / len(self.target))
        if self.reduction == "sum":
            return grad_logits * grad
        return grad_logits * grad[:, None]

    def backward_graph(self, grad):  # softmax(x) - onehot, with the softmax recomputed on Tensors
        logits = self.inputs[0]
        onehot = _xp(logits.data).zeros(logits.shape, dtype=logits.dtype)
        onehot[self.rows, self.target] = 1
        grad_logits = logits.softmax(axis=1) - onehot
        if self.reduction == "mean":
            return grad_logits * (grad / len(self.target))
        if self.reduction == "sum":
            return grad_logits * grad
        return grad_logits * grad.reshape(-1, 1)


def cross_entropy(input, target, reduction="mean"):
    """Cross-entropy of logits ``input`` (N, C) against integer labels ``target`` (N,)."""
    if reduction not in ("mean", "sum", "none"):
        _reduce(None, reduction, "cross_entropy")
    labels = target.data if isinstance(target, Tensor) else _xp(input.data).asarray(target)
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {input.shape}")
    if labels.ndim != 1 or labels.shape[0] != input.shape[0]:
        raise ValueError(f"cross_entropy: target of shape {labels.shape} does not match "
                         f"logits of shape {input.shape}; expected ({input.shape[0]},)")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class labels, got dtype {labels.dtype}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= input.shape[1]:
            bad = low if low < 0 else high
            raise IndexError(f"cross_entropy: target holds label {bad}, "
                             f"but the logits have {input.shape[1]} classes (0..{input.shape[1] - 1})")
    return CrossEntropy.apply(input, labels, reduction=reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error (input - target)^2."""
    if isinstance(target, Tensor) and target.shape != input.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    difference = input - target
    return _reduce(difference * difference, reduction, "mse_loss")
