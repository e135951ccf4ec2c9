"""Datasets: things with a length that hand out samples, and whole batches at once.

A ``Dataset`` maps an index ``i`` in ``range(len(dataset))`` to one sample, a
tuple of fields such as ``(image, label)``. The ``DataLoader`` asks it for a
whole batch with ``gather(indices)``. The generic ``Dataset.gather`` fetches
the samples one by one and stacks them; ``TensorDataset`` keeps every field as
one array whose first axis is the sample axis, so a batch is a single fancy
index per field, ``array[indices]``, with no Python loop over samples, and on
the GPU that index runs on the GPU.
"""
import copy

import numpy as np

from .. import backend
from ..tensor import Tensor


def _raw_array(value):
    """The numpy/cupy array behind a Tensor, array or nested list."""
    if isinstance(value, Tensor):
        return value.data
    if backend.is_cupy_array(value):
        return value
    return np.asarray(value)


def collate(samples):
    """Stack a list of samples into one batch.

    Each sample is a tuple of fields (or a single field); field ``k`` of the
    batch is ``stack([sample[k] for sample in samples])``, shape
    ``(len(samples), *field_shape)``, returned as a ``Tensor``.
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(collate([sample[field] for sample in samples]) for field in range(len(first)))
    arrays = [_raw_array(sample) for sample in samples]
    xp = backend.array_module(arrays[0])
    return Tensor(xp.stack(arrays))


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__(index)`` for one sample.

    Override ``gather`` when a whole batch can be fetched faster than one
    sample at a time (``TensorDataset`` does).
    """

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def gather(self, indices):
        """The batch for ``indices`` (a 1-D integer array): fetch each sample, then stack."""
        return collate([self[int(index)] for index in indices])


class TensorDataset(Dataset):
    """Samples are the rows of arrays that share their first dimension.

    ``TensorDataset(images, labels)`` with ``images`` of shape ``(N, C, H, W)``
    and ``labels`` of shape ``(N,)``: sample ``i`` is ``(images[i], labels[i])``.
    Arrays may be NumPy or CuPy arrays or Tensors, all on one device; the
    dataset lives where they live (``.device``) and ``.to(device)`` moves it.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        arrays = tuple(_raw_array(array) for array in arrays)
        for position, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(f"TensorDataset: array {position} is a scalar; every array "
                                 f"needs a first (sample) dimension")
        lengths = [array.shape[0] for array in arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(tuple(array.shape)) for array in arrays)
            raise ValueError(f"TensorDataset: arrays have different numbers of samples "
                             f"(first dimensions of shapes {shapes})")
        devices = {backend.device_of(array) for array in arrays}
        if len(devices) != 1:
            raise ValueError(f"TensorDataset: arrays are on different devices ({sorted(devices)}); "
                             f"move them to one device first")
        self.arrays = arrays

    @property
    def tensors(self):
        """The arrays as Tensors (PyTorch's attribute name)."""
        return tuple(Tensor(array) for array in self.arrays)

    @property
    def device(self):
        return backend.device_of(self.arrays[0])

    def __len__(self):
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        """One sample for an integer index; a whole batch for an index array or slice."""
        return tuple(Tensor(array[index]) for array in self.arrays)

    def gather(self, indices):
        """The batch for ``indices``: one fancy index per array, ``array[indices]``."""
        return self[indices]

    def to(self, device):
        """A copy of this dataset (same class and attributes) with its arrays on ``device``."""
        moved = copy.copy(self)
        moved.arrays = tuple(backend.to_device(array, device) for array in self.arrays)
        return moved
