"""Exercise: merge two partial statistics with Chan's formula.

Chapter: docs/batchnorm.md (``merge_statistics``; the GPU kernels and
SyncBatchNorm merge partial statistics this way).

A part of the data is summarised by (count, mean, M2), M2 = Σ (x − mean)².
Given the triples of two disjoint parts A and B, return the triple of A ∪ B
without the data: with δ = mean_B − mean_A and n = n_A + n_B,

    mean = mean_A + δ · n_B / n
    M2   = M2_A + M2_B + δ² · n_A · n_B / n

An empty part (count 0) leaves the other unchanged.

    a, b: tuples (count, mean, M2) of floats (or of NumPy arrays, one value per channel).
    Return the merged (count, mean, M2).

Check: ``python -m pytest exercises/test_batchnorm_chan_merge.py``
"""


def merge(a, b):
    raise NotImplementedError
