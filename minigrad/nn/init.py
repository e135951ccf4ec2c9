"""Parameter initialisation, drawn from minigrad's seeded generator (PyTorch's defaults)."""
import math

from .. import backend, random


def _fill(tensor, values):
    tensor.data = backend.to_device(values.astype(tensor.dtype), tensor.device)
    return tensor


def fan_in_and_fan_out(tensor):
    """fan_in = inputs per output (times the kernel area); fan_out likewise."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dims, got shape {tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def uniform_(tensor, low=0.0, high=1.0):
    return _fill(tensor, random.uniform(low, high, tensor.shape, tensor.dtype))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, random.normal(mean, std, tensor.shape, tensor.dtype))


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def kaiming_uniform_(tensor, a=0.0):
    """U(-b, b) with b = gain * sqrt(3 / fan_in) and gain = sqrt(2 / (1 + a^2)) (leaky ReLU slope a)."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    bound = math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


def default_layer_init_(weight, bias):
    """What torch.nn.Linear and Conv2d do: kaiming_uniform(a=sqrt(5)), then bias U(+-1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
