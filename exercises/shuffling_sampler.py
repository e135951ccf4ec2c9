"""Exercise: a distributed permutation sampler.

Chapter: docs/shuffling.md ("The math").

Epoch e visits the samples in the order π_e = ``np.random.default_rng(seed +
e).permutation(num_samples)`` (or 0, 1, ..., N−1 without shuffling). With R
replicas, pad π_e by repeating its start until its length is a multiple of R;
rank r takes every R-th index from position r. Every rank gets the same count.

    num_samples, num_replicas (R), rank (r), seed, epoch: ints; shuffle: bool.
    Return rank r's indices, an int64 NumPy array.

Check: ``python -m pytest exercises/test_shuffling_sampler.py``
"""


def rank_indices(num_samples, num_replicas, rank, seed, epoch, shuffle=True):
    raise NotImplementedError
