"""Check for exercises/shuffling_sampler.py: parity with mg.data.DistributedSampler and, without
shuffling, with PyTorch's DistributedSampler; every sample seen, each epoch a new order."""
import numpy as np
import torch.utils.data

import minigrad as mg
from exercises import shuffling_sampler as exercise
from exercises.checking import run


def check(rank_indices):
    for num_samples, replicas in ((10, 3), (12, 4), (7, 1), (5, 8)):
        dataset = mg.data.TensorDataset(np.arange(num_samples))
        for epoch in (0, 1):
            shares = []
            for rank in range(replicas):
                found = np.asarray(rank_indices(num_samples, replicas, rank, seed=3, epoch=epoch))
                sampler = mg.data.DistributedSampler(dataset, num_replicas=replicas, rank=rank, seed=3)
                sampler.set_epoch(epoch)
                assert found.tolist() == sampler.indices().tolist(), \
                    f"{num_samples} samples, rank {rank} of {replicas}, epoch {epoch}: differs from DistributedSampler"
                shares.append(found)
                in_order = rank_indices(num_samples, replicas, rank, seed=3, epoch=epoch, shuffle=False)
                torch_sampler = torch.utils.data.DistributedSampler(range(num_samples), num_replicas=replicas,
                                                                    rank=rank, shuffle=False)
                assert np.asarray(in_order).tolist() == list(torch_sampler), \
                    f"shuffle=False, rank {rank} of {replicas}: differs from PyTorch's DistributedSampler"
            assert set(np.concatenate(shares).tolist()) == set(range(num_samples)), "a sample was never visited"
            assert len({len(share) for share in shares}) == 1, "ranks got different counts"
    first = rank_indices(100, 1, 0, seed=0, epoch=0)
    assert np.asarray(first).tolist() != np.asarray(rank_indices(100, 1, 0, seed=0, epoch=1)).tolist(), \
        "two epochs gave the same order"


def reference(num_samples, num_replicas, rank, seed, epoch, shuffle=True):
    """minigrad's DistributedSampler."""
    dataset = mg.data.TensorDataset(np.arange(num_samples))
    sampler = mg.data.DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, seed=seed, shuffle=shuffle)
    sampler.set_epoch(epoch)
    return sampler.indices()


def wrong(num_samples, num_replicas, rank, seed, epoch, shuffle=True):
    """Cuts the order into contiguous blocks instead of taking every R-th index."""
    order = np.random.default_rng(seed + epoch).permutation(num_samples) if shuffle else np.arange(num_samples)
    per_rank = -(-num_samples // num_replicas)
    order = np.resize(order, per_rank * num_replicas)
    return order[rank * per_rank:(rank + 1) * per_rank]


def test_exercise():
    run(check, exercise.rank_indices)
