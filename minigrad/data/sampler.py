"""Shuffling: a fresh permutation of the sample indices every epoch.

Stochastic gradient descent assumes each mini-batch is a fair random draw from
the data. Going through the data in a fixed order breaks that (batches of one
class in a row, the same neighbours every epoch), so each epoch visits the
samples in a new random order: one permutation ``order`` of
``0, 1, ..., N-1``, cut into consecutive batches ``order[0:B], order[B:2B], ...``.
Every sample is seen exactly once per epoch, in an order that differs from
epoch to epoch.

The permutation is a pure function of ``(seed, epoch)``: the generator for
epoch ``e`` is seeded with ``seed + e`` (PyTorch's ``DistributedSampler``
convention). So a run resumed at epoch ``k`` draws the same order as a run
that never stopped, and every MPI rank draws the same order without talking to
the others; ``DistributedSampler`` then hands each rank its strided share.
"""
import numpy as np

from .. import backend


def _check_seed(owner, seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{owner}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def epoch_permutation(num_samples, seed, epoch, device="cpu"):
    """The visiting order of epoch ``epoch``: a random permutation of ``range(num_samples)``.

    CPU: ``numpy.random.default_rng(seed + epoch).permutation(num_samples)``,
    an int64 array; NumPy's generator is the same on every platform, so a seed
    gives the same order on every machine.

    GPU (``device='cuda'``): drawn on the GPU, with no host round trip, by
    ``cupy.random.RandomState(seed + epoch).permutation(num_samples)``, which
    sorts ``num_samples`` random keys from cuRAND and returns the argsort. The
    same seed gives the same order on every GPU, but not the CPU's order.
    """
    if backend.normalize_device(device) == "cuda":
        cupy = backend.cupy()
        order = cupy.random.RandomState(seed + epoch).permutation(num_samples)
        return order.astype(cupy.int64, copy=False)
    return np.random.default_rng(seed + epoch).permutation(num_samples)


def default_world():
    """``(world_size, rank)`` from ``minigrad.distributed``, or ``(1, 0)`` without it.

    ``minigrad.distributed`` (MPI) is optional: when it cannot be imported,
    the program is a single process.
    """
    try:
        from .. import distributed
    except ImportError:
        return 1, 0
    return distributed.get_world_size(), distributed.get_rank()


class DistributedSampler:
    """Each of ``num_replicas`` processes gets its own share of every epoch's permutation.

    All ranks draw the same order, ``epoch_permutation(N, seed, epoch)`` (or
    ``0..N-1`` when ``shuffle=False``). So that every rank gets the same number
    of samples, and no rank waits forever in a collective another rank never
    reaches, the order is brought to ``total_size = num_replicas * num_samples``:

    - ``drop_last=False``: ``num_samples = ceil(N / R)``; the order is padded by
      repeating indices from its start (cyclically, if the padding is longer
      than N), so up to ``R - 1`` samples are seen twice per epoch.
    - ``drop_last=True``: ``num_samples = floor(N / R)``; the tail of the order
      is dropped, so up to ``R - 1`` samples are skipped this epoch.

    Rank ``r`` takes the strided share ``order[r:total_size:R]``. This is
    PyTorch's index arithmetic exactly; only the permutation differs, because
    PyTorch draws it with ``torch.randperm`` and minigrad with NumPy's
    ``Generator(seed + epoch).permutation``.

    ``num_replicas`` and ``rank`` default to the running MPI job's world size
    and rank (``minigrad.distributed``), and to 1 and 0 without one. Call
    ``set_epoch(epoch)`` before each epoch (the ``DataLoader`` does this for
    you), or every epoch repeats the same order.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            world_size, own_rank = default_world()
            num_replicas = world_size if num_replicas is None else num_replicas
            rank = own_rank if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, "
                             f"got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in "
                             f"the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = _check_seed("DistributedSampler", seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        dataset_size = len(dataset)
        if drop_last:
            self.num_samples = dataset_size // self.num_replicas
        else:
            self.num_samples = -(-dataset_size // self.num_replicas)  # ceil division
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Choose the epoch whose permutation the next iteration draws."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices for the current epoch, as one int64 NumPy array."""
        dataset_size = len(self.dataset)
        if self.shuffle:
            order = epoch_permutation(dataset_size, self.seed, self.epoch)
        else:
            order = np.arange(dataset_size, dtype=np.int64)
        if dataset_size and self.total_size != dataset_size:
            # np.resize repeats the order cyclically (padding) or cuts it (drop_last).
            order = np.resize(order, self.total_size)
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples
