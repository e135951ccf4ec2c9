"""``DataLoader``: one epoch = one permutation of the indices, cut into batches.

    loader = DataLoader(TensorDataset(images, labels), batch_size=128, shuffle=True, seed=0)
    for epoch in range(epochs):
        for images, labels in loader:      # a new order every epoch
            ...

The shuffle itself (why, and how the order is drawn) is explained in
``minigrad/data/sampler.py``.
"""
import numpy as np

from .. import backend, random
from .dataset import Dataset
from .sampler import _check_seed, epoch_permutation


def _sampler_indices(sampler):
    """All indices a sampler yields this epoch, as one int64 array."""
    if hasattr(sampler, "indices"):
        return np.asarray(sampler.indices(), dtype=np.int64)
    return np.fromiter(iter(sampler), dtype=np.int64)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    Each batch is what ``dataset.gather(indices)`` returns: for a
    ``TensorDataset`` a tuple of Tensors, field ``k`` of shape
    ``(batch_size, *field_shape)``, gathered with one fancy index per field on
    the dataset's device. The last batch is smaller when ``batch_size`` does not
    divide the number of samples, unless ``drop_last=True`` drops it, so
    ``len(loader)`` is ``ceil(N / batch_size)`` or ``floor(N / batch_size)``.

    Order of epoch ``e``:

    - ``shuffle=False``: ``0, 1, ..., N-1``.
    - ``shuffle=True``: ``epoch_permutation(N, seed, e, device)``, a fresh
      permutation every epoch, drawn on the GPU for a GPU dataset.
    - ``sampler=s``: the indices ``s`` yields (for example this rank's share
      from ``DistributedSampler``); ``s.set_epoch(e)`` is called first when
      ``s`` has it. ``shuffle`` must then be False, as in PyTorch.

    ``seed=None`` draws the loader's seed once, at construction, from minigrad's
    global generator, so ``mg.manual_seed`` makes the whole run reproducible.

    The loader counts epochs: each ``iter(loader)`` (each ``for`` loop) uses
    epoch ``loader.epoch`` and then advances it, so consecutive loops see
    different orders. ``state_dict()`` is ``{"epoch", "seed"}``; a state saved
    after an epoch's loop, loaded into a new loader, makes it draw exactly the
    next epoch's order, the same order an uninterrupted run draws (resume is
    at epoch boundaries). ``set_epoch(e)`` jumps to epoch ``e``; with a sampler,
    drive epochs through the loader, which forwards them to the sampler.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, sampler=None,
                 seed=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size should be a positive integer, "
                             f"got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        if seed is None:
            seed = int(random.generator().integers(2**62))
        self.seed = _check_seed("DataLoader", seed)
        self.epoch = 0

    @property
    def device(self):
        """Where batches are gathered: the dataset's device ('cpu' without one)."""
        return getattr(self.dataset, "device", "cpu")

    def _num_indices(self):
        return len(self.sampler) if self.sampler is not None else len(self.dataset)

    def __len__(self):
        count = self._num_indices()
        if self.drop_last:
            return count // self.batch_size
        return -(-count // self.batch_size)  # ceil division

    def set_epoch(self, epoch):
        """Make the next iteration draw epoch ``epoch``'s order (forwarded to the sampler)."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def state_dict(self):
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state):
        self.seed = _check_seed("DataLoader", state["seed"])
        self.set_epoch(state["epoch"])

    def epoch_order(self, epoch):
        """The indices epoch ``epoch`` visits, in order, on the dataset's device."""
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            # One host-to-device copy per epoch, of this rank's indices only.
            return backend.to_device(_sampler_indices(self.sampler), self.device)
        if self.shuffle:
            return epoch_permutation(len(self.dataset), self.seed, epoch, self.device)
        if self.device == "cuda":
            return backend.cupy().arange(len(self.dataset), dtype=np.int64)
        return np.arange(len(self.dataset), dtype=np.int64)

    def __iter__(self):
        # The order is drawn and the epoch advanced now, not at the first batch,
        # so a loop that is broken off still counts as one epoch.
        order = self.epoch_order(self.epoch)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order):
        gather = getattr(self.dataset, "gather", None)
        if gather is None:  # a duck-typed dataset with only __len__ and __getitem__
            def gather(indices):
                return Dataset.gather(self.dataset, indices)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield gather(order[start:start + self.batch_size])
