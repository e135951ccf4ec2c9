"""``pad``: PyTorch's F.pad, and the padding modes of Conv2d (zeros, reflect, replicate, circular).

``pad`` is a tuple of (before, after) counts for the last dimensions, the last
dimension first: (left, right, top, bottom) pads W and then H. A negative
count crops, as in PyTorch.

- 'constant' surrounds the input with ``value``; its gradient is the inner slice.
- 'reflect', 'replicate' and 'circular' read every output element from an
  input element: the output is x indexed by one integer array per padded axis
  (``reflect`` of [a b c d] by 2 is [c b | a b c d | c b]), so it is the
  indexing op, whose gradient adds each output's gradient back to the element
  it was read from.
"""
import numpy as np

from .. import backend
from ..function import Function
from ..ops import getitem


def _xp(array):
    return backend.array_module(array)


def _pairs(op, pad, ndim):
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise ValueError(f"{op}: padding length must be even and at most twice the input's {ndim} dimensions, "
                         f"got {len(pad)} ({tuple(pad)})")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    return list(reversed(pairs))  # first pair pads the last axis: put them in axis order


class ConstantPad(Function):
    def forward(self, x, widths, value):
        self.inside = tuple(slice(before, before + size) for (before, _), size in zip(widths, x.shape))
        return _xp(x).pad(x, widths, constant_values=value)

    def backward(self, grad):  # the inner part: the elements that came from x
        return grad[self.inside]


def _source_index(mode, size, before, after, axis):
    """The input position each output position reads along one axis, in ``mode``."""
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        if before > size or after > size:
            raise ValueError(f"pad: circular padding ({before}, {after}) of dimension {axis} must not exceed "
                             f"its size {size}")
        return positions % size
    if before >= size or after >= size:
        raise ValueError(f"pad: padding size should be less than the corresponding input dimension, "
                         f"but got padding ({before}, {after}) at dimension {axis} of size {size}")
    reflected = np.abs(positions)
    return (size - 1) - np.abs((size - 1) - reflected)


def pad(input, pad, mode="constant", value=None):
    """``input`` padded by ``pad`` = (left, right[, top, bottom[, front, back]]) in ``mode``."""
    pairs = _pairs("pad", pad, input.ndim)
    leading = input.ndim - len(pairs)
    # A negative width crops. PyTorch crops before padding in these two modes; reflect and
    # replicate read the positions the widths name in the uncropped input, as below.
    if mode in ("constant", "circular") and any(before < 0 or after < 0 for before, after in pairs):
        input = input[tuple(slice(max(-before, 0), size - max(-after, 0))
                            for (before, after), size in zip([(0, 0)] * leading + pairs, input.shape))]
        pairs = [(max(before, 0), max(after, 0)) for before, after in pairs]
    if mode == "constant":
        return ConstantPad.apply(input, widths=[(0, 0)] * leading + pairs, value=0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: unknown mode {mode!r}; expected 'constant', 'reflect', 'replicate' or 'circular'")
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: padding mode {mode!r} does not take a value, got value={value}")
    xp = _xp(input.data)
    index = [slice(None)] * leading
    for position, (before, after) in enumerate(pairs):
        axis = leading + position
        along = _source_index(mode, input.shape[axis], before, after, axis)
        index.append(xp.asarray(along.reshape((-1,) + (1,) * (len(pairs) - position - 1))))
    return getitem(input, tuple(index))
