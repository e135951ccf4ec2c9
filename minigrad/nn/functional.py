"""Neural-network ops: layers, activations and losses as functions of tensors.

The names and arguments are PyTorch's (``torch.nn.functional``). Ops that a
network calls on every step (linear, conv2d, pooling, cross_entropy) are
single fused ``Function``s, so the engine's per-op overhead stays small. Where
such an op's derivative is itself a big array computation (conv2d's input and
weight gradients, the pools' scatter, cross-entropy's softmax minus one-hot)
it is an op of its own below its forward, with its own derivative, so every
op here can be differentiated twice.
"""
from .. import backend, random
from ..function import Function
from ..ops import (Abs, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh,  # noqa: F401
                   flatten, softmax_backward)
from ..tensor import Tensor
from .batchnorm import batch_norm  # noqa: F401  (implemented beside its layers and kernels)
from .convolution import conv2d, conv_transpose2d  # noqa: F401
from .padding import pad  # noqa: F401
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_unpool2d  # noqa: F401


def _xp(array):
    return backend.array_module(array)


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
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):  # dx = g W, dW = g^T x, db = sum of g over the batch
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = (self.needs_input_grad + (False,))[:3]
        grad2 = grad if grad.ndim == 2 else grad.reshape(-1, grad.shape[-1])
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        grad_x = grad @ weight if need_x else None
        grad_weight = grad2.T @ x2 if need_weight else None
        grad_bias = grad2.sum(axis=0) if need_bias else None
        return grad_x, grad_weight, grad_bias


def linear(input, weight, bias=None):
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


# ----- dropout ----------------------------------------------------------------------
class Dropout(Function):
    def forward(self, x, p):
        self.mask = random.bernoulli_mask(1 - p, x.shape, x) / (1 - p)
        return x * self.mask

    def backward(self, grad):  # the mask is a constant
        return grad * self.mask


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
    """-log softmax(x)[target] per row; its gradient is (softmax(x) - onehot(target)) * d loss."""

    def forward(self, logits, target, reduction="mean"):
        xp = _xp(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = xp.arange(len(target))
        losses = xp.log(total[:, 0]) - shifted[rows, target]
        self.probabilities, self.target, self.reduction = exp / total, target, reduction
        if reduction == "mean":
            return losses.mean()
        return losses.sum() if reduction == "sum" else losses

    def backward(self, grad):
        return CrossEntropyGrad.apply(self.inputs[0], grad, probabilities=self.probabilities,
                                      target=self.target, reduction=self.reduction)


def _per_row(grad, reduction, rows):
    """d loss / d (each row's loss), shaped to scale (N, C) rows: g/N, g, or g[:, None]."""
    if reduction == "mean":
        return grad / rows
    return grad if reduction == "sum" else grad.reshape(-1, 1)


class CrossEntropyGrad(Function):
    """(softmax(x) - onehot(target)) * d loss / d row loss: cross-entropy's gradient for its logits.

    ``probabilities`` is softmax(x), which the forward pass already computed.
    """

    def forward(self, logits, grad, probabilities, target, reduction):
        grad_logits = probabilities.copy()
        grad_logits[_xp(logits).arange(len(target)), target] -= 1
        self.target, self.reduction = target, reduction
        return grad_logits * _per_row(grad, reduction, len(target))

    def backward(self, grad_of_gz):
        logits, grad = self.inputs
        need_logits, need_grad = self.needs_input_grad
        softmax = logits.softmax(dim=1)  # a Tensor: differentiable once more
        for_logits = for_grad = None
        if need_logits:  # the softmax Jacobian applied to h * (d loss / d row loss)
            scaled = grad_of_gz * _per_row(grad, self.reduction, len(self.target))
            for_logits = softmax_backward(softmax, scaled, axis=1)
        if need_grad:  # the forward is linear in grad: its derivative is the rest, summed per row
            onehot = _xp(logits.data).zeros(logits.shape, dtype=logits.dtype)
            onehot[_xp(logits.data).arange(len(self.target)), self.target] = 1
            per_row = (grad_of_gz * (softmax - onehot)).sum(axis=1)
            for_grad = per_row if self.reduction == "none" else per_row.sum()
            if self.reduction == "mean":
                for_grad = for_grad / len(self.target)
        return for_logits, for_grad


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
