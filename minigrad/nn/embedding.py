"""Embedding: a lookup table, row ``weight[i]`` for each integer ``i`` of the input.

The forward is indexing, weight[input]; its gradient adds each output row's
gradient into the row it came from (repeated indices add up). The row
``padding_idx`` gets no gradient, so it stays what it was (zeros by default).
"""
import numpy as np

from .. import backend, mode
from ..ops_extra import Where
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _renormalize_(weight, indices, max_norm, norm_type):
    """Rescale in place the looked-up rows whose norm exceeds max_norm to norm max_norm (as PyTorch)."""
    xp = backend.array_module(weight.data)
    looked_up = xp.unique(indices)
    rows = weight.data[looked_up]
    norms = (xp.abs(rows) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(rows.dtype)
    weight.data[looked_up] = rows * scale[:, None]


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer ``input`` (any shape)."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not supported")
    indices = input.data if isinstance(input, Tensor) else np.asarray(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got dtype {indices.dtype}")
    rows = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        raise IndexError(f"embedding: index {int(indices.max()) if indices.max() >= rows else int(indices.min())} "
                         f"is out of range for a table of {rows} rows")
    if max_norm is not None and indices.size:
        with mode.no_grad():
            _renormalize_(weight, indices, max_norm, norm_type)
    looked_up = weight[indices]
    if padding_idx is None:
        return looked_up
    padding_idx = padding_idx % rows
    return Where.apply(looked_up.detach(), looked_up, condition=(indices == padding_idx)[..., None])


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, drawn from N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, device=None, dtype=np.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} rows")
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
            init.normal_(self.weight)
            if self.padding_idx is not None:
                self.weight.data[self.padding_idx] = 0
        else:
            self.weight = Parameter(_weight.data if isinstance(_weight, Tensor) else np.asarray(_weight))
        if device is not None:
            self.to(device)

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
