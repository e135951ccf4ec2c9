"""Check for exercises/pruning_radix_pass.py: four passes find the k-th smallest magnitude,
as minigrad's kth_smallest_numpy, np.sort and torch.kthvalue do."""
import numpy as np
import torch

from minigrad.prune import selection
from exercises import pruning_radix_pass as exercise
from exercises.checking import run


def select(radix_pass, bits, k):
    prefix, decided, rank = 0, 0, k
    for shift in (24, 16, 8, 0):
        digit, rank = (int(value) for value in radix_pass(bits.copy(), prefix, decided, shift, rank))
        assert 0 <= digit < 256, f"pass at shift {shift}: digit {digit} is not 8 bits"
        prefix |= digit << shift
        decided |= 0xFF << shift
    return prefix, rank


def check(radix_pass):
    rng = np.random.default_rng(0)
    weights = np.concatenate([rng.standard_normal(500) * 0.1, [0.0, -0.0, 0.25, -0.25, 0.25]]).astype(np.float32)
    bits = selection.magnitude_bits(weights)
    magnitudes = torch.tensor(np.abs(weights))
    for k in (1, 2, 3, 17, 250, 503, 504, len(weights)):
        threshold_bits, rank = select(radix_pass, bits, k)
        expected_bits, expected_rank, _ = selection.kth_smallest_numpy([weights], [np.ones_like(weights)], k)
        assert threshold_bits == expected_bits, f"k={k}: threshold differs from minigrad's radix select"
        assert rank == expected_rank, f"k={k}: the rank left after the last pass differs from minigrad's"
        threshold = np.array(threshold_bits, dtype=np.uint32).view(np.float32)
        assert threshold == np.sort(np.abs(weights))[k - 1], f"k={k}: not the k-th smallest |w|"
        assert threshold == torch.kthvalue(magnitudes, k).values.item(), f"k={k}: differs from torch.kthvalue"


def reference(bits, prefix, decided, shift, rank):
    """The pass that minigrad's kth_smallest_numpy makes, found by running it on the candidates."""
    candidates = bits[(bits & np.uint32(decided)) == np.uint32(prefix)]
    threshold_bits, _, _ = selection.kth_smallest_numpy([candidates.view(np.float32)],
                                                        [np.ones(candidates.shape)], rank)
    digit = (threshold_bits >> shift) & 0xFF
    smaller = int(((candidates >> np.uint32(shift)) & np.uint32(0xFF) < digit).sum())
    return digit, rank - smaller


def wrong(bits, prefix, decided, shift, rank):
    """Counts every value, not only those matching the prefix decided so far."""
    histogram = np.bincount((bits >> np.uint32(shift)) & np.uint32(0xFF), minlength=256)
    running = np.cumsum(histogram)
    digit = int(np.searchsorted(running, rank))
    return digit, rank - (int(running[digit - 1]) if digit else 0)


def test_exercise():
    run(check, exercise.radix_pass)
