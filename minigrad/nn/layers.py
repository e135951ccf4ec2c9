"""The layers a small network needs, as Modules over ``nn.functional``."""
from collections import OrderedDict

import numpy as np

from . import functional as F
from .init import default_layer_init_
from .module import Module, Parameter
from .convolution import conv_padding, transposed_output_size
from .batchnorm import fuses_with_max_pool
from .pooling import _pool_options, pool_geometry
from .windows import pair


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        default_layer_init_(self.weight, self.bias)
        if device is not None:
            self.to(device)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: the options, the weight and bias, the repr."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, weight_shape, device, dtype):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: in_channels {in_channels} and out_channels {out_channels} "
                             f"must both be divisible by groups={groups}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{type(self).__name__}: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding = padding if isinstance(padding, str) else pair(padding)
        self.padding_mode = padding_mode
        self.weight = Parameter(np.empty(weight_shape + self.kernel_size, dtype=dtype or np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype or np.float32)) if bias else None
        default_layer_init_(self.weight, self.bias)
        if device is not None:
            self.to(device)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        for name, default in (("dilation", (1, 1)), ("groups", 1), ("padding_mode", "zeros")):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution; weight (out_channels, in_channels / groups, KH, KW), bias (out_channels,).

    ``padding`` is an int, a pair, 'same' or 'valid'; ``padding_mode`` 'zeros',
    'reflect', 'replicate' or 'circular' says what the padding holds.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, (out_channels, in_channels // groups), device, dtype)

    def forward(self, input):
        if self.padding_mode == "zeros":
            return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        (top, bottom), (left, right) = conv_padding("Conv2d", self.padding, self.kernel_size, self.stride,
                                                    self.dilation)
        padded = F.pad(input, (left, right, top, bottom), mode=self.padding_mode)
        return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """The transposed convolution; weight (in_channels, out_channels / groups, KH, KW), bias (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only 'zeros' padding_mode is supported, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, (in_channels, out_channels // groups), device, dtype)
        self.output_padding = pair(output_padding)

    def forward(self, input, output_size=None):
        output_padding = self.output_padding
        if output_size is not None:  # the output_padding that gives this size
            smallest = transposed_output_size(input.shape[-2:], self.kernel_size, self.stride, self.padding,
                                              (0, 0), self.dilation)
            output_padding = tuple(wanted - size for wanted, size in zip(tuple(output_size)[-2:], smallest))
            largest = tuple(size + max(s, d) - 1 for size, s, d in zip(smallest, self.stride, self.dilation))
            if any(not 0 <= extra <= high - low for extra, low, high in zip(output_padding, smallest, largest)):
                raise ValueError(f"ConvTranspose2d: requested an output size of {tuple(output_size)[-2:]}, "
                                 f"but valid sizes range from {smallest} to {largest}")
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)


class _Stateless(Module):
    """A layer that is one function of its input, with fixed options."""

    function = None

    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, input):
        return type(self).function(input, **self.options)

    def extra_repr(self):
        return ", ".join(f"{key}={value}" for key, value in self.options.items())


class ReLU(_Stateless):
    function = F.relu


class Sigmoid(_Stateless):
    function = F.sigmoid


class Tanh(_Stateless):
    function = F.tanh


class LeakyReLU(_Stateless):
    function = F.leaky_relu

    def __init__(self, negative_slope=0.01):
        super().__init__(negative_slope=negative_slope)


class Flatten(_Stateless):
    function = F.flatten

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__(start_dim=start_dim, end_dim=end_dim)


class MaxPool2d(_Stateless):
    function = F.max_pool2d

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode, return_indices=return_indices)


class AvgPool2d(_Stateless):
    function = F.avg_pool2d

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, divisor_override=divisor_override)


class AdaptiveAvgPool2d(_Stateless):
    function = F.adaptive_avg_pool2d

    def __init__(self, output_size):
        super().__init__(output_size=output_size)


class MaxUnpool2d(Module):
    """Puts max_pool2d's values back at its indices: forward(input, indices, output_size=None)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input, indices, output_size=None):
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Identity(Module):
    """Returns its input; takes (and ignores) any arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Dropout(Module):
    """Zero each element with probability p while training; identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def _batch_norm_then_pool(module, following, input):
    """(kernel_size, stride) when Sequential runs ``module``, a BatchNorm2d, and ``following``, a
    MaxPool2d, as one op (batchnorm.BatchNormMaxPool: the same values, the same gradients to the
    last bits, fewer passes over memory), else None. Only on the fast CPU path (float32/64 NumPy
    data; a pool without padding, dilation, ceil_mode overhang or indices) and without pre-hooks."""
    if type(following) is not MaxPool2d or following._forward_pre_hooks or module._forward_pre_hooks:
        return None
    options = following.options
    if options["return_indices"] or pair(options["dilation"]) != (1, 1) or not fuses_with_max_pool(module, input):
        return None
    kernel_size, stride, padding = _pool_options(options["kernel_size"], options["stride"], options["padding"])
    sides, _ = pool_geometry("max_pool2d", input.shape, kernel_size, stride, padding, (1, 1), options["ceil_mode"])
    return (kernel_size, stride) if sides == ((0, 0), (0, 0)) else None


def _pool_first(module, following):
    """Whether Sequential runs ``module``, a ReLU, and ``following``, a max-pool, as the pool then the ReLU.

    ReLU is monotone, so it commutes with taking a maximum: maxpool(relu(x)) = relu(maxpool(x)).
    The gradients agree as well: either way a window's gradient reaches the input that won it
    (the first maximum), and only when that maximum is positive. Pooling first runs the ReLU and
    its derivative on the pooled map, a quarter of the values for a 2x2 pool: on train.py's
    default CNN that saves about a tenth of a training step (see the README's benchmarks).
    Not when either module has a pre-hook (it would see the other order), nor when the pool
    also returns indices.
    """
    return (type(module) is ReLU and type(following) is MaxPool2d and not following.options["return_indices"]
            and not module._forward_pre_hooks and not following._forward_pre_hooks)


class Sequential(Module):
    """Modules applied in order; named '0', '1', ... or by an OrderedDict's keys.

    Two rewrites give the same values and gradients (to the last bits) with less work: a ReLU
    directly followed by a MaxPool2d runs as the max-pool, then the ReLU (``_pool_first``); and a
    BatchNorm2d followed by a MaxPool2d (a ReLU between them moved behind the pool) runs as one op
    on the CPU (``_batch_norm_then_pool``).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, input):
        modules = list(self._modules.values())
        index = 0
        while index < len(modules):
            module, following = modules[index], modules[index + 1:index + 3]
            relu_between = len(following) == 2 and _pool_first(*following)  # batch norm, ReLU, pool
            pool = following and _batch_norm_then_pool(module, following[-1 if relu_between else 0], input)
            if pool:
                input = module(input, max_pool=pool)
                if relu_between:
                    input = following[0](input)
                index += 3 if relu_between else 2
            elif following and _pool_first(module, following[0]):
                input = module(following[0](input))
                index += 2
            else:
                input = module(input)
                index += 1
        return input

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def __setitem__(self, index, module):
        name = list(self._modules)[index]
        self._modules[name] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
