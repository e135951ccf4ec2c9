"""``compact(model)``: make structured pruning pay off as a smaller dense model.

A mask only zeroes numbers; the pruned model does as many multiply-adds as
the dense one. But when a whole output neuron of a Linear (a row of its
weight) or a whole output channel of a Conv2d is zero, that unit can be cut
out of the network:

    its output is a constant: its bias b (zero weights see no input), then
    whatever the layers in between do to a constant (ReLU(b), BatchNorm of b,
    max-pooling of a constant map is the same constant);
    so the next Linear or Conv2d receives a constant on those inputs, and
    W_next[:, j] * c can be added to the next bias once and for all;
    then row j of this layer, channel j of any BatchNorm in between, and input
    column(s) j of the next layer are deleted.

Likewise a unit whose input columns in the next layer are all zero is unused,
and goes. For Conv2d -> Flatten -> Linear, channel j owns the H*W consecutive
input columns j*H*W ... (j+1)*H*W - 1 of the Linear.

Folding a non-zero constant into a following Conv2d is exact only without
zero padding (a padded border sees 0, not the constant) and through average
pooling only without padding; in those cases such a channel is kept. The
compacted model computes the same function as the original in eval mode
(Dropout off, BatchNorm with its running statistics) up to float rounding.

``count_flops(model, input_shape)`` counts 2 x the multiply-adds of the
Linear and Conv2d layers for one input, to compare before and after.
"""
import copy

import numpy as np

from .. import backend, nn
from ..mode import no_grad
from ..nn.windows import pair
from ..tensor import Tensor
from . import methods

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh)
_UNCHANGED = (nn.Identity, nn.Dropout, nn.MaxPool2d, nn.Flatten)


def _batchnorm_types():
    return tuple(getattr(nn, name) for name in ("BatchNorm1d", "BatchNorm2d") if hasattr(nn, name))


def _passes_channels(layer):
    """True for layers that act on each channel on its own, so a channel can be followed through."""
    return isinstance(layer, _ELEMENTWISE + _UNCHANGED + (nn.AvgPool2d,) + _batchnorm_types())


def _make_permanent(layer):
    for name in [hook._tensor_name for hook in layer._forward_pre_hooks.values()
                 if isinstance(hook, methods.PruningContainer)]:
        methods.remove(layer, name)


def _batchnorm_constant(layer, value, constant):
    """A constant channel through BatchNorm in eval mode; a channel with gamma = 0 becomes beta.

    With running statistics: (c - running_mean) / sqrt(running_var + eps) * gamma + beta.
    Without them BatchNorm uses the batch's own mean, which for a constant is c: the output is beta.
    """
    xp = backend.array_module(value)
    if layer.running_mean is None:
        value = xp.zeros_like(value)
    else:
        value = (value - layer.running_mean.data) / xp.sqrt(layer.running_var.data + layer.eps)
    if layer.weight is not None:
        constant = constant | (layer.weight.data == 0)
        value = value * layer.weight.data + layer.bias.data
    return value, constant


def _slice_batchnorm(layer, keep):
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(layer, name, None)
        if tensor is not None:
            tensor.data = tensor.data[keep]
    layer.num_features = int(keep.sum())


def _compact_pair(producer, middle, consumer):
    """Cut the removable output units of ``producer`` (and their inputs in ``consumer``)."""
    weight = producer.weight.data
    xp = backend.array_module(weight)
    channels = weight.shape[0]
    if isinstance(consumer, nn.Conv2d):
        if isinstance(producer, nn.Linear) or consumer.weight.shape[1] != channels:
            return
        grouped = consumer.weight.data.reshape(consumer.weight.shape[0], channels, -1)
    else:  # a Linear: one input column per unit, or H*W columns per channel after Flatten
        if consumer.weight.shape[1] % channels:
            return
        grouped = consumer.weight.data.reshape(consumer.weight.shape[0], channels, -1)
        if isinstance(producer, nn.Linear) and grouped.shape[2] != 1:
            return

    unused = ~grouped.any(axis=(0, 2))
    constant = ~weight.reshape(channels, -1).any(axis=1)
    value = producer.bias.data.astype(np.float64) if producer.bias is not None else xp.zeros(channels)
    foldable = consumer.bias is not None and not (isinstance(consumer, nn.Conv2d) and any(consumer.padding))
    with no_grad():
        for layer in middle:
            if isinstance(layer, _ELEMENTWISE):
                value = layer(Tensor(value)).data
            elif isinstance(layer, _batchnorm_types()):
                value, constant = _batchnorm_constant(layer, value, constant)
            elif isinstance(layer, nn.AvgPool2d) and any(pair(layer.options["padding"])):
                foldable = False
    removable = unused | (constant & (foldable | (value == 0)))
    keep = ~removable
    if not keep.any():
        keep[0] = True  # a layer of width 0 would be legal math but a surprising model
    folded = ~keep & ~unused & (value != 0)
    if folded.any():
        contribution = (grouped[:, folded, :].sum(axis=2) * value[folded]).sum(axis=1)
        consumer.bias.data = (consumer.bias.data + contribution).astype(consumer.bias.dtype)

    producer.weight.data = weight[keep]
    if producer.bias is not None:
        producer.bias.data = producer.bias.data[keep]
    kept = int(keep.sum())
    if isinstance(producer, nn.Linear):
        producer.out_features = kept
    else:
        producer.out_channels = kept
    for layer in middle:
        if isinstance(layer, _batchnorm_types()):
            _slice_batchnorm(layer, keep)
    new_inputs = grouped[:, keep, :]
    if isinstance(consumer, nn.Linear):
        consumer.weight.data = xp.ascontiguousarray(new_inputs.reshape(new_inputs.shape[0], -1))
        consumer.in_features = consumer.weight.shape[1]
    else:
        consumer.weight.data = xp.ascontiguousarray(new_inputs.reshape((-1, kept) + consumer.kernel_size))
        consumer.in_channels = kept


def compact(model):
    """A smaller dense copy of ``model`` without its structurally pruned units.

    model: an ``nn.Sequential`` of Linear, Conv2d, BatchNorm, activations, Dropout,
    MaxPool2d, AvgPool2d and Flatten layers (pruned or not). The original is not
    changed; the copy has plain Parameters (pruning made permanent) and, in eval
    mode, the same outputs. Rows and channels become removable through
    ``ln_structured(..., dim=0)`` (or dim=1 on the next layer), or any pruning
    that happens to zero a whole unit.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"compact: expects an nn.Sequential of layers, got {type(model).__name__}")
    layers = [copy.deepcopy(layer) for layer in model]
    for layer in layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            _make_permanent(layer)
    units = [index for index, layer in enumerate(layers) if isinstance(layer, (nn.Linear, nn.Conv2d))]
    for producer_index, consumer_index in zip(units, units[1:]):
        middle = layers[producer_index + 1:consumer_index]
        if all(_passes_channels(layer) for layer in middle):
            _compact_pair(layers[producer_index], middle, layers[consumer_index])
    compacted = nn.Sequential(*layers)
    return compacted.train(model.training)


def count_flops(model, input_shape):
    """2 x multiply-adds of every Linear and Conv2d for one input of ``input_shape`` (no batch axis)."""
    multiply_adds = []

    def count(module, inputs):
        x = inputs[0]
        if isinstance(module, nn.Linear):
            multiply_adds.append(x.data.size // x.shape[-1] * module.in_features * module.out_features)
        else:
            kh, kw = module.kernel_size
            (sh, sw), (ph, pw) = module.stride, module.padding
            out_h, out_w = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
            multiply_adds.append(x.shape[0] * module.out_channels * module.in_channels * kh * kw * out_h * out_w)

    modules = list(model.modules())
    handles = [module.register_forward_pre_hook(count) for module in modules
               if isinstance(module, (nn.Linear, nn.Conv2d))]
    modes = [module.training for module in modules]
    parameter = next(model.parameters())
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros((1,) + tuple(input_shape), dtype=parameter.dtype), device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in zip(modules, modes):
            module.training = mode
    return 2 * int(sum(multiply_adds))
