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
                   flatten)
from .activation import gelu, logsigmoid, silu  # noqa: F401
from .batchnorm import batch_norm  # noqa: F401  (implemented beside its layers and kernels)
from .convolution import conv2d, conv_transpose2d  # noqa: F401
from .embedding import embedding  # noqa: F401
from .losses import (binary_cross_entropy_with_logits, cross_entropy, huber_loss, l1_loss,  # noqa: F401
                     mse_loss, nll_loss, smooth_l1_loss)
from .normalization import group_norm, layer_norm  # noqa: F401
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


def softmax(input, dim=-1, dtype=None):
    """exp(x) / sum exp(x) along ``dim``, computed in ``dtype`` if given."""
    return input.softmax(dim, dtype=dtype)


def log_softmax(input, dim=-1, dtype=None):
    """log softmax along ``dim``, computed in ``dtype`` if given."""
    return input.log_softmax(dim, dtype=dtype)


# ----- linear -----------------------------------------------------------------------
class Linear(Function):
    """y = x W^T + b, with x of shape (..., in_features) and W of shape (out, in)."""

    new_gradients = (0, 1, 2)  # two GEMMs and a sum: new arrays

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
