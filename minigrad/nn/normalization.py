"""Layer and group normalization: batch norm's formula over other sets of values.

For each sample separately (not over the batch, so there are no running statistics):

    layer_norm: the values of the last len(normalized_shape) dims
    group_norm: the values of one group of C / G channels (all their positions)

    y = (x - mean) / sqrt(var + eps) * weight + bias      (var biased, as batch norm)

layer_norm's weight and bias have the normalized shape (one per element);
group_norm's have one value per channel. Both are compositions of
differentiable ops, so they have first and second derivatives for free.
"""
import math

import numpy as np

from .module import Module, Parameter


def _normalize(values, dims, eps):
    centered = values - values.mean(dim=dims, keepdim=True)
    variance = (centered * centered).mean(dim=dims, keepdim=True)
    return centered * (variance + eps) ** -0.5


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize each sample of ``input`` (..., *normalized_shape) over its last dims."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    count = len(normalized_shape)
    if count == 0 or input.shape[input.ndim - count:] != normalized_shape or input.ndim < count:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end with the normalized "
                         f"shape {normalized_shape}")
    output = _normalize(input, tuple(range(input.ndim - count, input.ndim)), eps)
    if weight is not None:
        output = output * weight
    return output if bias is None else output + bias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize ``input`` (N, C, ...) over each group of C / num_groups channels, per sample."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ValueError(f"group_norm: input of shape {input.shape} does not have a number of channels "
                         f"(dim 1) divisible by num_groups={num_groups}")
    batch, channels = input.shape[:2]
    per_group = channels // num_groups * math.prod(input.shape[2:])
    output = _normalize(input.reshape(batch, num_groups, per_group), 2, eps).reshape(input.shape)
    per_channel = (-1,) + (1,) * (input.ndim - 2)
    if weight is not None:
        output = output * weight.reshape(per_channel)
    return output if bias is None else output + bias.reshape(per_channel)


class LayerNorm(Module):
    """layer_norm over the last dims, ``normalized_shape``; weight (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=np.float32):
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        affine_bias = elementwise_affine and bias
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if affine_bias else None
        if device is not None:
            self.to(device)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """group_norm with ``num_groups`` groups of ``num_channels``; weight (ones) and bias (zeros) per channel."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=np.float32, *,
                 bias=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(np.ones(num_channels, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype=dtype)) if affine and bias else None
        if device is not None:
            self.to(device)

    def forward(self, input):
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
