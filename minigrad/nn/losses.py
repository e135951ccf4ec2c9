"""Losses, with PyTorch's names, options and reductions (``torch.nn.functional`` and ``torch.nn``).

Every loss is a per-element loss followed by a reduction: 'none' keeps it,
'sum' adds it up, 'mean' divides the sum by the number of elements, or, for
the class-weighted losses (nll_loss, cross_entropy with class indices), by the
total weight of the targets that count (PyTorch's weighted mean):

    nll_loss(logp, t)   = -w[t_i] logp[i, t_i]                 per i, 0 where t_i == ignore_index
    mean                = sum_i -w[t_i] logp[i, t_i] / sum_i w[t_i]

cross_entropy is nll_loss of log_softmax over the class dim (dim 1). With
label_smoothing e over C classes each target is mixed with the uniform
distribution: loss_i = (1 - e) nll_i + (e / C) sum_c -w_c logp[i, c]. With
class-probability targets p (float, the shape of the logits) the loss is
sum_c -w_c p[i, c] logp[i, c], and 'mean' divides by the number of rows.

The common case, (N, C) logits and labels with no option set, is one fused
``Function`` (``CrossEntropy``) because a training step calls it every time;
the options are written as compositions of differentiable tensor ops, so they
get first and second derivatives from the ops they are made of.
"""
import numpy as np

from .. import backend
from ..function import Function
from ..ops import softmax_backward
from ..ops_extra import LogSigmoid, Where
from ..tensor import Tensor
from .module import Module


def _xp(array):
    return backend.array_module(array)


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_reduction(reduction, op):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# ----- the fused common case -----------------------------------------------------------
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


# ----- class-index losses: nll_loss and cross_entropy ------------------------------------------
def _class_targets(op, input, target, ignore_index):
    """(labels, whether any is ignore_index): the integer labels as an array of the batch's shape,
    checked against the C classes of dim 1."""
    labels = target.data if isinstance(target, Tensor) else _xp(input.data).asarray(target)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class labels, got dtype {labels.dtype}")
    batch_shape = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if labels.shape != batch_shape:
        raise ValueError(f"{op}: target of shape {labels.shape} does not match input of shape {input.shape}; "
                         f"expected {batch_shape}")
    classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if not labels.size:
        return labels, False
    low, high = int(labels.min()), int(labels.max())
    if 0 <= low and high < classes:  # all in range: only an ignore_index among the classes can be ignored
        return labels, 0 <= ignore_index < classes and bool((labels == ignore_index).any())
    counted = labels[labels != ignore_index]
    if counted.size and (int(counted.min()) < 0 or int(counted.max()) >= classes):
        bad = int(counted.min()) if int(counted.min()) < 0 else int(counted.max())
        raise IndexError(f"{op}: target holds label {bad}, but the input has {classes} classes "
                         f"(0..{classes - 1}); shape {input.shape}")
    return labels, True


def _as_batch(input, labels):
    """An unbatched (C,) input and () target as a batch of one."""
    if input.ndim == 1:
        return input.reshape(1, -1), labels.reshape(1)
    return input, labels


def _label_weights(labels, weight, ignore_index, like):
    """w[t_i] for each target (1 without weights), 0 where t_i == ignore_index: a constant array."""
    xp = _xp(like)
    counted = labels != ignore_index
    safe = xp.where(counted, labels, 0)
    per_label = xp.ones(labels.shape, dtype=like.dtype) if weight is None else _raw(weight)[safe].astype(like.dtype)
    return per_label * counted, safe


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _weighted_reduce(losses, label_weights, reduction):
    if reduction == "mean":
        total_weight = label_weights.sum()
        if total_weight == 0:  # every target ignored: NaN, with zero gradients (as PyTorch)
            return losses.sum() * 0.0 + float("nan")
        return losses.sum() / Tensor(total_weight)
    return losses.sum() if reduction == "sum" else losses


def _check_weight(op, weight, classes):
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ValueError(f"{op}: weight has shape {tuple(weight.shape)}, expected ({classes},), one per class")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (N, C, d1, ...) or (C,) at the
    integer labels ``target`` (N, d1, ...) or (); ``weight`` (C,) weighs each class."""
    _check_reduction(reduction, "nll_loss")
    labels, _ = _class_targets("nll_loss", input, target, ignore_index)
    _check_weight("nll_loss", weight, input.shape[1] if input.ndim >= 2 else input.shape[0])
    batch, batch_labels = _as_batch(input, labels)
    label_weights, safe = _label_weights(batch_labels, weight, ignore_index, batch.data)
    picked = batch.gather(1, _xp(safe).expand_dims(safe, 1)).squeeze(1)
    losses = -picked * label_weights
    if input.ndim == 1:
        losses = losses.reshape(())
    return _weighted_reduce(losses, label_weights, reduction)


def _class_probability_loss(log_probabilities, target, weight, label_smoothing, reduction):
    classes = log_probabilities.shape[1]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    weighted = log_probabilities * target
    if weight is not None:
        weighted = weighted * _raw(weight).reshape((-1,) + (1,) * (log_probabilities.ndim - 2))
    losses = -weighted.sum(dim=1)
    if reduction == "mean":
        return losses.sum() / (losses.data.size or np.nan)
    return _reduce(losses, reduction, "cross_entropy")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (N, C, d1, ...) or (C,) against integer labels
    ``target`` (N, d1, ...) or (), or against class probabilities of the input's shape."""
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: expected logits of shape (N, C, ...) or (C,), got a 0-d tensor")
    classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    _check_weight("cross_entropy", weight, classes)
    target_dtype = target.dtype if hasattr(target, "dtype") else np.asarray(target).dtype
    if target_dtype.kind == "f":  # class probabilities, one row per input row
        if tuple(target.shape) != input.shape:
            raise ValueError(f"cross_entropy: probability target of shape {tuple(target.shape)} does not "
                             f"match input of shape {input.shape}")
        batch, probabilities = (input.reshape(1, -1), target.reshape(1, -1)) if input.ndim == 1 else (input, target)
        loss = _class_probability_loss(batch.log_softmax(dim=1), probabilities, weight, label_smoothing, reduction)
        return loss.reshape(()) if input.ndim == 1 and reduction == "none" else loss
    labels, any_ignored = _class_targets("cross_entropy", input, target, ignore_index)
    if input.ndim == 2 and weight is None and not label_smoothing and not any_ignored:
        return CrossEntropy.apply(input, labels, reduction=reduction)  # the fused common case
    log_probabilities = input.log_softmax(dim=0 if input.ndim == 1 else 1)
    if not label_smoothing:
        return nll_loss(log_probabilities, labels, weight, ignore_index, reduction)
    batch, batch_labels = _as_batch(log_probabilities, labels)
    label_weights, safe = _label_weights(batch_labels, weight, ignore_index, batch.data)
    class_weights = 1.0 if weight is None else _raw(weight).reshape((-1,) + (1,) * (batch.ndim - 2))
    smooth = -(batch * class_weights).sum(dim=1) * (label_weights != 0)
    picked = -batch.gather(1, _xp(safe).expand_dims(safe, 1)).squeeze(1) * label_weights
    losses = picked * (1 - label_smoothing) + smooth * (label_smoothing / classes)
    if input.ndim == 1:
        losses = losses.reshape(())
    return _weighted_reduce(losses, label_weights, reduction)


# ----- elementwise losses ------------------------------------------------------------------------
def _check_same_shape(op, input, target):
    if isinstance(target, Tensor) and target.shape != input.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")


def mse_loss(input, target, reduction="mean"):
    """Mean squared error (input - target)^2."""
    _check_same_shape("mse_loss", input, target)
    difference = input - target
    return _reduce(difference * difference, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    """|input - target|."""
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction, "l1_loss")


def _piecewise_quadratic(op, input, target, threshold, quadratic_scale, linear_scale, reduction):
    """quadratic_scale * d^2 / 2 where |d| < threshold, else linear_scale * (|d| - threshold / 2)."""
    _check_same_shape(op, input, target)
    _check_reduction(reduction, op)
    difference = input - target
    size = difference.abs()
    inside = (size.data < threshold)
    loss = Where.apply(difference * difference * (0.5 * quadratic_scale), (size - 0.5 * threshold) * linear_scale,
                       condition=inside)
    return _reduce(loss, reduction, op)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (d = input - target; beta=0: l1_loss)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    return _piecewise_quadratic("smooth_l1_loss", input, target, beta, 1.0 / beta, 1.0, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - delta / 2): smooth_l1_loss scaled by delta."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    return _piecewise_quadratic("huber_loss", input, target, delta, 1.0, delta, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """-[p y log s(x) + (1 - y) log(1 - s(x))] with s the sigmoid, computed stably from the logits x;
    ``pos_weight`` p weighs the positive term (per class, broadcast over the last dim), ``weight`` each element."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    # log(1 - s(x)) = log s(x) - x, so the loss is (1 - y) x - (1 + (p - 1) y) log s(x)
    log_weight = 1.0 if pos_weight is None else (pos_weight - 1.0) * target + 1.0
    loss = (1.0 - target) * input - log_weight * LogSigmoid.apply(input)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


# ----- the layers ---------------------------------------------------------------------------------
class _Loss(Module):
    """A loss as a layer: ``function(input, target, reduction=..., **options)`` with its options fixed."""

    function = None

    def __init__(self, reduction="mean", **options):
        super().__init__()
        _check_reduction(reduction, type(self).__name__)
        self.reduction, self.options = reduction, options

    def forward(self, input, target):
        return type(self).function(input, target, reduction=self.reduction, **self.options)

    def extra_repr(self):
        return ", ".join(f"{key}={value}" for key, value in dict(reduction=self.reduction, **self.options).items())


class _WeightedLoss(_Loss):
    """A loss with a per-class (or per-element) ``weight``, kept as a buffer as PyTorch does."""

    def __init__(self, weight=None, reduction="mean", **options):
        super().__init__(reduction, **options)
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return type(self).function(input, target, weight=self.weight, reduction=self.reduction, **self.options)


class CrossEntropyLoss(_WeightedLoss):
    function = staticmethod(cross_entropy)

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)


class NLLLoss(_WeightedLoss):
    function = staticmethod(nll_loss)

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction, ignore_index=ignore_index)


class BCEWithLogitsLoss(_WeightedLoss):
    function = staticmethod(binary_cross_entropy_with_logits)

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class MSELoss(_Loss):
    function = staticmethod(mse_loss)


class L1Loss(_Loss):
    function = staticmethod(l1_loss)


class SmoothL1Loss(_Loss):
    function = staticmethod(smooth_l1_loss)

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction, beta=beta)


class HuberLoss(_Loss):
    function = staticmethod(huber_loss)

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction, delta=delta)
