"""Exercise: one pass of the radix select that finds the pruning threshold.

Chapter: docs/pruning.md (``kth_smallest_numpy``; ``kernels/prune.cu`` runs the
same passes on the GPU).

The magnitudes |w| of float32 weights, read as uint32 bit patterns, sort like
the magnitudes. The k-th smallest is found 8 bits at a time, from the top
(shift = 24, 16, 8, 0). Before a pass, ``decided`` has ones on the bits fixed
so far and ``prefix`` their values; ``rank`` (1-based) is the position of the
wanted value among the candidates that match the prefix. One pass:

1. among the bit patterns b with (b & decided) == prefix, count each value of
   the 8-bit digit (b >> shift) & 255 (a 256-bin histogram);
2. walk the counts from digit 0 to the first digit where the running count
   reaches ``rank``: that is the wanted value's digit;
3. the new rank is ``rank`` minus the count of the candidates with a smaller digit.

    bits: uint32 NumPy array; prefix, decided, shift, rank: ints.
    Return (digit, new_rank), two ints. No sorting.

Check: ``python -m pytest exercises/test_pruning_radix_pass.py``
"""


def radix_pass(bits, prefix, decided, shift, rank):
    raise NotImplementedError
