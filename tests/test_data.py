"""What the data side guarantees: shuffling, reproducibility, resumption, sharding.

- every epoch visits each sample exactly once, in a fresh order;
- the order is a function of (seed, epoch) only, so a seed reproduces a run
  and a resumed run sees the same orders as an uninterrupted one;
- DistributedSampler gives every rank the same number of samples, the shares
  are disjoint apart from the documented padding, and the index arithmetic is
  PyTorch's exactly;
- batches are gathered with one fancy index, on the dataset's device.
"""
import sys
import types
from unittest import mock

import numpy as np
import pytest
import torch
import torch.utils.data as torch_data
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.data import (DataLoader, Dataset, DistributedSampler, TensorDataset,
                           epoch_permutation)
from minigrad.data.sampler import default_world

fast = settings(max_examples=60, deadline=None)


def indexed_dataset(num_samples):
    """Sample i is (i as a feature row, i as a label): batches reveal the visiting order."""
    features = np.arange(num_samples * 3, dtype=np.float32).reshape(num_samples, 3)
    return TensorDataset(features, np.arange(num_samples, dtype=np.int64))


def epoch_labels(loader):
    """The labels one pass over ``loader`` visits, in order."""
    return np.concatenate([labels.numpy() for _, labels in loader] or [np.zeros(0, np.int64)])


# ----- TensorDataset -------------------------------------------------------------------
def test_tensor_dataset_samples_and_batches():
    images = np.random.default_rng(0).random((5, 1, 2, 2)).astype(np.float32)
    labels = np.array([3, 1, 4, 1, 5])
    dataset = TensorDataset(mg.tensor(images), labels)
    assert len(dataset) == 5 and dataset.device == "cpu"
    image, label = dataset[2]
    assert isinstance(image, mg.Tensor) and image.shape == (1, 2, 2)
    np.testing.assert_array_equal(image.numpy(), images[2])
    assert label.numpy() == 4
    batch_images, batch_labels = dataset.gather(np.array([4, 0]))
    np.testing.assert_array_equal(batch_images.numpy(), images[[4, 0]])
    np.testing.assert_array_equal(batch_labels.numpy(), [5, 3])
    assert [t.shape for t in dataset.tensors] == [(5, 1, 2, 2), (5,)]


def test_tensor_dataset_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match=r"different numbers of samples.*\(4, 2\).*\(3,\)"):
        TensorDataset(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


# ----- DataLoader: batching --------------------------------------------------------------
@fast
@given(num_samples=st.integers(0, 70), batch_size=st.integers(1, 20), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_len_matches_the_batches_yielded(num_samples, batch_size, drop_last, shuffle):
    loader = DataLoader(indexed_dataset(num_samples), batch_size, shuffle, drop_last, seed=3)
    sizes = [len(labels) for _, labels in loader]
    assert len(sizes) == len(loader)
    expected = num_samples // batch_size if drop_last else -(-num_samples // batch_size)
    assert len(loader) == expected
    assert all(size == batch_size for size in sizes[:-1])
    if sizes:
        remainder = num_samples - batch_size * (len(sizes) - 1)
        assert sizes[-1] == (batch_size if drop_last else remainder)


def test_no_shuffle_is_the_natural_order():
    loader = DataLoader(indexed_dataset(10), batch_size=4)
    np.testing.assert_array_equal(epoch_labels(loader), np.arange(10))
    np.testing.assert_array_equal(epoch_labels(loader), np.arange(10))


def test_batch_contents_match_their_labels():
    dataset = indexed_dataset(23)
    for features, labels in DataLoader(dataset, batch_size=5, shuffle=True, seed=1):
        assert features.dtype == np.float32 and labels.dtype == np.int64
        np.testing.assert_array_equal(features.numpy(), dataset.arrays[0][labels.numpy()])


def test_tensor_dataset_batches_with_one_index_per_batch():
    class CountingDataset(TensorDataset):
        lookups = 0

        def __getitem__(self, index):
            CountingDataset.lookups += 1
            return super().__getitem__(index)

    dataset = CountingDataset(np.arange(100.0), np.arange(100))
    batches = list(DataLoader(dataset, batch_size=8, shuffle=True, seed=0))
    assert len(batches) == 13 and CountingDataset.lookups == 13  # not 100: no loop over samples


def test_generic_dataset_collates_samples_like_a_tensor_dataset():
    class Squares(Dataset):
        def __len__(self):
            return 11

        def __getitem__(self, index):
            return np.array([index, index * index], dtype=np.float32), index

    generic = list(DataLoader(Squares(), batch_size=4, shuffle=True, seed=5))
    values = np.arange(11)
    fast_path = list(DataLoader(TensorDataset(np.stack([values, values ** 2], 1).astype(np.float32),
                                              values), batch_size=4, shuffle=True, seed=5))
    assert len(generic) == len(fast_path) == 3
    for (features, labels), (expected_features, expected_labels) in zip(generic, fast_path):
        np.testing.assert_array_equal(features.numpy(), expected_features.numpy())
        np.testing.assert_array_equal(labels.numpy(), expected_labels.numpy())


def test_bad_arguments_are_named():
    dataset = indexed_dataset(4)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(dataset, batch_size=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        DataLoader(dataset, shuffle=True, seed=-1)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(dataset, shuffle=True, sampler=DistributedSampler(dataset, 1, 0))


# ----- DataLoader: shuffling -------------------------------------------------------------
@fast
@given(num_samples=st.integers(1, 200), batch_size=st.integers(1, 64),
       seed=st.integers(0, 2**40))
def test_every_epoch_is_a_permutation(num_samples, batch_size, seed):
    loader = DataLoader(indexed_dataset(num_samples), batch_size, shuffle=True, seed=seed)
    for _ in range(3):
        np.testing.assert_array_equal(np.sort(epoch_labels(loader)), np.arange(num_samples))


@fast
@given(num_samples=st.integers(1, 100), seed=st.integers(0, 2**40), epoch=st.integers(0, 50))
def test_the_order_is_the_documented_generator(num_samples, seed, epoch):
    loader = DataLoader(indexed_dataset(num_samples), batch_size=7, shuffle=True, seed=seed)
    loader.set_epoch(epoch)
    expected = np.random.default_rng(seed + epoch).permutation(num_samples)
    np.testing.assert_array_equal(epoch_labels(loader), expected)
    np.testing.assert_array_equal(epoch_permutation(num_samples, seed, epoch), expected)


def test_epochs_differ_and_a_seed_reproduces_them():
    first = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=42)
    second = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=42)
    orders = [epoch_labels(first) for _ in range(4)]
    assert len({order.tobytes() for order in orders}) == 4
    for order in orders:
        np.testing.assert_array_equal(epoch_labels(second), order)
    other_seed = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=43)
    assert not np.array_equal(epoch_labels(other_seed), orders[0])


def test_seed_none_follows_manual_seed():
    def first_orders(global_seed):
        mg.manual_seed(global_seed)
        loader = DataLoader(indexed_dataset(40), batch_size=8, shuffle=True)
        return epoch_labels(loader), epoch_labels(loader)

    np.testing.assert_array_equal(np.stack(first_orders(7)), np.stack(first_orders(7)))
    assert not np.array_equal(first_orders(7)[0], first_orders(8)[0])


def test_resumed_loader_draws_the_same_orders_as_an_uninterrupted_one(tmp_path):
    uninterrupted = DataLoader(indexed_dataset(30), batch_size=4, shuffle=True, seed=9)
    orders = [epoch_labels(uninterrupted) for _ in range(5)]

    interrupted = DataLoader(indexed_dataset(30), batch_size=4, shuffle=True, seed=9)
    for _ in range(2):
        epoch_labels(interrupted)
    mg.save({"loader": interrupted.state_dict()}, tmp_path / "checkpoint.npz")

    resumed = DataLoader(indexed_dataset(30), batch_size=4, shuffle=True)  # another seed
    resumed.load_state_dict(mg.load(tmp_path / "checkpoint.npz")["loader"])
    assert resumed.state_dict() == {"epoch": 2, "seed": 9}
    for epoch in range(2, 5):
        np.testing.assert_array_equal(epoch_labels(resumed), orders[epoch])
    uninterrupted.set_epoch(1)
    np.testing.assert_array_equal(epoch_labels(uninterrupted), orders[1])


def test_a_broken_off_loop_still_counts_as_an_epoch():
    loader = DataLoader(indexed_dataset(20), batch_size=4, shuffle=True, seed=2)
    for _ in loader:
        break
    assert loader.epoch == 1
    np.testing.assert_array_equal(epoch_labels(loader), epoch_permutation(20, 2, 1))


# ----- DistributedSampler ----------------------------------------------------------------
def all_shares(num_samples, num_replicas, epoch=0, **options):
    """Every rank's sampler, and the indices each yields in ``epoch``."""
    samplers = [DistributedSampler(range(num_samples), num_replicas, rank, **options)
                for rank in range(num_replicas)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return samplers, [np.asarray(list(sampler)) for sampler in samplers]


@fast
@given(num_samples=st.integers(1, 120), num_replicas=st.integers(1, 9), shuffle=st.booleans(),
       seed=st.integers(0, 2**31), epoch=st.integers(0, 20))
def test_shares_cover_the_dataset_padded_from_the_start(num_samples, num_replicas, shuffle, seed,
                                                        epoch):
    samplers, shares = all_shares(num_samples, num_replicas, epoch, shuffle=shuffle, seed=seed)
    num_samples_each = -(-num_samples // num_replicas)
    assert all(len(share) == len(sampler) == num_samples_each
               for share, sampler in zip(shares, samplers))
    order = epoch_permutation(num_samples, seed, epoch) if shuffle else np.arange(num_samples)
    padding = num_samples_each * num_replicas - num_samples
    assert padding < num_replicas
    # Interleaving the shares rebuilds the order followed by its first `padding` entries.
    interleaved = np.stack(shares, axis=1).reshape(-1)
    np.testing.assert_array_equal(interleaved, np.resize(order, num_samples + padding))
    assert set(interleaved.tolist()) == set(range(num_samples))


@fast
@given(num_samples=st.integers(1, 120), num_replicas=st.integers(1, 9), seed=st.integers(0, 99))
def test_drop_last_shares_are_disjoint_and_equal(num_samples, num_replicas, seed):
    samplers, shares = all_shares(num_samples, num_replicas, seed=seed, drop_last=True)
    kept = np.concatenate(shares)
    assert all(len(share) == num_samples // num_replicas for share in shares)
    assert len(set(kept.tolist())) == len(kept) == num_replicas * (num_samples // num_replicas)
    np.testing.assert_array_equal(np.sort(kept),
                                  np.sort(epoch_permutation(num_samples, seed, 0)[:len(kept)]))


@fast
@given(num_samples=st.integers(1, 120), num_replicas=st.integers(1, 6),
       batch_size=st.integers(1, 16), drop_last=st.booleans(), sampler_drop_last=st.booleans())
def test_every_rank_runs_the_same_number_of_batches(num_samples, num_replicas, batch_size,
                                                    drop_last, sampler_drop_last):
    dataset = indexed_dataset(num_samples)
    counts = []
    for rank in range(num_replicas):
        sampler = DistributedSampler(dataset, num_replicas, rank, drop_last=sampler_drop_last)
        loader = DataLoader(dataset, batch_size, drop_last=drop_last, sampler=sampler)
        counts.append((len(loader), sum(1 for _ in loader)))
    assert len(set(counts)) == 1 and counts[0][0] == counts[0][1]


def test_loader_drives_the_sampler_epoch():
    dataset = indexed_dataset(37)
    sampler = DistributedSampler(dataset, num_replicas=3, rank=1, seed=4)
    loader = DataLoader(dataset, batch_size=5, sampler=sampler)
    reference = DistributedSampler(dataset, num_replicas=3, rank=1, seed=4)
    for epoch in range(3):
        reference.set_epoch(epoch)
        np.testing.assert_array_equal(epoch_labels(loader), list(reference))
    loader.set_epoch(1)
    assert sampler.epoch == 1
    reference.set_epoch(1)
    np.testing.assert_array_equal(epoch_labels(loader), list(reference))


def test_single_replica_sampler_matches_the_shuffling_loader():
    dataset = indexed_dataset(33)
    plain = DataLoader(dataset, batch_size=4, shuffle=True, seed=11)
    sharded = DataLoader(dataset, batch_size=4, sampler=DistributedSampler(dataset, 1, 0, seed=11))
    for _ in range(3):
        np.testing.assert_array_equal(epoch_labels(plain), epoch_labels(sharded))


@fast
@given(num_samples=st.integers(1, 100), num_replicas=st.integers(1, 7), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 2**31), epoch=st.integers(0, 9), data=st.data())
def test_index_arithmetic_matches_torch(num_samples, num_replicas, drop_last, shuffle,
                                        seed, epoch, data):
    # torch draws its permutation with torch.randperm(n, generator seeded with seed + epoch);
    # hand it NumPy's permutation for that seed instead, and everything else must agree.
    def numpy_randperm(count, generator):
        order = np.random.default_rng(generator.initial_seed()).permutation(count)
        return torch.from_numpy(order)

    rank = data.draw(st.integers(0, num_replicas - 1))
    options = dict(num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                   drop_last=drop_last)
    theirs = torch_data.DistributedSampler(range(num_samples), **options)
    ours = DistributedSampler(range(num_samples), **options)
    theirs.set_epoch(epoch)
    ours.set_epoch(epoch)
    with mock.patch.object(torch, "randperm", numpy_randperm):
        their_indices = list(theirs)
    assert len(ours) == len(theirs)
    assert list(ours) == their_indices


def test_in_order_shares_match_torch_unpatched():
    for drop_last in (False, True):
        for rank in range(4):
            theirs = torch_data.DistributedSampler(range(10), 4, rank, shuffle=False,
                                                   drop_last=drop_last)
            ours = DistributedSampler(range(10), 4, rank, shuffle=False, drop_last=drop_last)
            assert list(ours) == list(theirs)


def test_invalid_rank_is_an_error():
    with pytest.raises(ValueError, match=r"invalid rank 3.*\[0, 2\]"):
        DistributedSampler(range(10), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        DistributedSampler(range(10), num_replicas=0, rank=0)


def test_world_defaults_to_a_single_process_without_minigrad_distributed(monkeypatch):
    monkeypatch.delattr(mg, "distributed", raising=False)
    monkeypatch.setitem(sys.modules, "minigrad.distributed", None)  # makes the import fail
    assert default_world() == (1, 0)
    sampler = DistributedSampler(range(10))
    assert (sampler.num_replicas, sampler.rank) == (1, 0)


def test_world_comes_from_minigrad_distributed_when_it_exists(monkeypatch):
    fake = types.ModuleType("minigrad.distributed")
    fake.get_world_size = lambda: 4
    fake.get_rank = lambda: 2
    monkeypatch.setitem(sys.modules, "minigrad.distributed", fake)
    monkeypatch.setattr(mg, "distributed", fake, raising=False)
    sampler = DistributedSampler(range(10))
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (4, 2, 3)
    assert DistributedSampler(range(10), rank=0).num_replicas == 4


# ----- GPU: device-resident batches --------------------------------------------------------
@pytest.mark.gpu
def test_gpu_dataset_shuffles_and_gathers_on_the_gpu():
    import cupy

    host = indexed_dataset(1000)
    device = host.to("cuda")
    assert device.device == "cuda" and host.device == "cpu"
    loader = DataLoader(device, batch_size=64, shuffle=True, seed=3)
    order = loader.epoch_order(0)
    assert isinstance(order, cupy.ndarray)
    np.testing.assert_array_equal(np.sort(cupy.asnumpy(order)), np.arange(1000))
    seen = []
    for features, labels in loader:
        assert features.device == "cuda" and isinstance(labels.data, cupy.ndarray)
        np.testing.assert_array_equal(features.numpy(), host.arrays[0][labels.numpy()])
        seen.append(labels.numpy())
    np.testing.assert_array_equal(np.concatenate(seen), cupy.asnumpy(order))
    again = DataLoader(device, batch_size=64, shuffle=True, seed=3)
    np.testing.assert_array_equal(cupy.asnumpy(again.epoch_order(0)), cupy.asnumpy(order))
    assert not np.array_equal(cupy.asnumpy(loader.epoch_order(1)), cupy.asnumpy(order))


@pytest.mark.gpu
def test_gpu_dataset_with_a_sampler_uses_the_host_shares():
    host = indexed_dataset(101)
    sampler = DistributedSampler(host, num_replicas=2, rank=1, seed=6)
    labels = epoch_labels(DataLoader(host.to("cuda"), batch_size=16, sampler=sampler))
    reference = DistributedSampler(host, num_replicas=2, rank=1, seed=6)
    np.testing.assert_array_equal(labels, list(reference))
