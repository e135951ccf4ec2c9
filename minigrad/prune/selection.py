"""Choosing what to prune: the k smallest magnitudes, found by a radix select.

Magnitude pruning asks one question again and again: among the entries that
are still unpruned (the candidates), which k have the smallest |w|? Sorting
answers it in O(N log N) and moves every element many times. A radix select
answers it in a fixed number of passes over the data, because for a
non-negative IEEE float a larger value has a larger bit pattern when the bits
are read as an unsigned integer:

    bits(|w|) = bits(w) with the sign bit cleared, ordered exactly like |w|.

So the k-th smallest magnitude T is found 8 bits at a time, from the top:
count how many candidates have each value (0..255) of the next 8 bits among
those that match the bits decided so far (a histogram), then walk the counts to
the bin where the running count reaches the wanted rank. Four passes decide
the 32 bits of a float32 (eight for a float64). The entries to prune are then
those with bits(|w|) < T, plus, when several candidates equal T exactly, the
first few of those in tensor order (so exactly k are pruned even with ties).

Every function takes a LIST of tensors: global pruning over all the layers of a
model ranks every weight together without concatenating copies of them.

Each function here has two implementations with the same arguments: the
NumPy twin (``*_numpy``, readable, used on the CPU, and on the GPU for dtypes
other than float32) and the CUDA kernels of kernels/prune.cu (``*_cuda``, used
for contiguous float32 CuPy arrays). The kernels find the same T with fewer
passes over the data: one 11-bit digit over every candidate, then the last 20
bits over the few candidates that share that digit, compacted into a short list
(see the header of prune.cu). tests/test_prune_kernels.py checks one against
the other, on a GPU and on the CPU through the kernel emulator.
"""
import numpy as np

from .. import backend, kernels

DIGIT_BITS = 8           # the NumPy twin's digits (four passes for float32)
DIGIT_VALUES = 1 << DIGIT_BITS
# kernels/prune.cu (each must match its #define there; tests/test_prune_kernels.py checks):
BLOCK_THREADS = 256
CHUNK_ELEMENTS = 4096    # values per block: the flat chunk -> tensor table cuts tensors into these
FIRST_DIGIT_BITS = 11    # then two digits of LATER_DIGIT_BITS on the short list of candidates
LATER_DIGIT_BITS = 10
SHORT_LIST_BLOCKS_PER_MULTIPROCESSOR = 4

# The C struct TensorSlot of prune.cu, field for field (40 bytes).
TENSOR_SLOT = np.dtype([("values", "<u8"), ("mask", "<u8"), ("output", "<u8"), ("size", "<i8"),
                        ("first_chunk", "<i8")])

device = kernels.Device("prune")  # tests swap in a CPU emulator with the same members


def magnitude_bits(values):
    """|values| read as unsigned integers of the same width: ordered like |values|."""
    xp = backend.array_module(values)
    if values.dtype.kind != "f":
        raise TypeError(f"prune: magnitudes need a floating-point tensor, got dtype {values.dtype}")
    return xp.abs(values).view(f"uint{values.dtype.itemsize * 8}")


def float_bits(value, dtype):
    """The bit pattern of the non-negative number ``value`` stored as ``dtype``."""
    return int(np.asarray(value, dtype=dtype).view(f"uint{np.dtype(dtype).itemsize * 8}"))


# ----- the NumPy twins ------------------------------------------------------------------
def kth_smallest_numpy(scores, masks, k):
    """Twin of ``kth_smallest_cuda``: the k-th smallest candidate magnitude, 8 bits per pass.

    scores: list of float arrays; masks: list of arrays of the same shapes
    (non-zero = candidate); 1 <= k <= number of candidates.
    Returns ``(threshold_bits, rank, equal_count)``: the bits T of the k-th
    smallest |score|, how many candidates equal T, and how many of those
    (``rank``, 1 <= rank <= equal_count) the k smallest include.
    """
    xp = backend.array_module(scores[0])
    width = scores[0].dtype.itemsize * 8
    candidate_bits = [magnitude_bits(score).ravel()[mask.ravel() != 0] for score, mask in zip(scores, masks)]
    prefix, decided, rank = 0, 0, int(k)
    for shift in range(width - DIGIT_BITS, -1, -DIGIT_BITS):  # 24, 16, 8, 0 for float32
        histogram = xp.zeros(DIGIT_VALUES, dtype=xp.int64)
        for bits in candidate_bits:  # one histogram over every tensor, no concatenation
            as_bits = bits.dtype.type  # typed scalars: a 64-bit pattern may not fit a signed int
            in_prefix = bits[(bits & as_bits(decided)) == as_bits(prefix)]
            digits = ((in_prefix >> shift) & (DIGIT_VALUES - 1)).astype(xp.intp)
            histogram += xp.bincount(digits, minlength=DIGIT_VALUES)
        running = backend.to_numpy(xp.cumsum(histogram))
        digit = int(np.searchsorted(running, rank))  # first bin whose running count reaches rank
        rank -= int(running[digit - 1]) if digit else 0
        prefix |= digit << shift
        decided |= (DIGIT_VALUES - 1) << shift
    return prefix, rank, int(histogram[digit])


def mask_from_threshold_numpy(scores, masks, keep_from_bits):
    """Twin of ``mask_from_threshold``: new mask = candidate AND bits(|score|) >= keep_from_bits."""
    new_masks = []
    for score, mask in zip(scores, masks):
        bits = magnitude_bits(score)
        new_masks.append(((mask != 0) & (bits >= bits.dtype.type(keep_from_bits))).astype(mask.dtype))
    return new_masks


def apply_mask_numpy(values, masks):
    """Twin of ``apply_mask``: values * mask, tensor by tensor."""
    return [value * mask for value, mask in zip(values, masks)]


# ----- the CUDA path ---------------------------------------------------------------------
def kernels_apply(*array_lists):
    """True when every array is a contiguous float32 CuPy array (what prune.cu takes)."""
    return all(device.holds(array) and array.dtype == np.float32 and array.flags.c_contiguous
               for arrays in array_lists for array in arrays)


class _ChunkTable:
    """The flat launch of prune.cu: a TensorSlot per tensor and the tensor of every chunk.

    ``grid`` is one block per chunk of CHUNK_ELEMENTS values (an empty tensor has none);
    ``arguments`` are the device copies of the two tables, the kernels' first arguments.
    """

    def __init__(self, values, masks=None, outputs=None):
        slots = np.zeros(len(values), dtype=TENSOR_SLOT)
        for column, arrays in (("values", values), ("mask", masks), ("output", outputs)):
            if arrays is not None:
                slots[column] = [kernels.address(array, device) for array in arrays]
        slots["size"] = [value.size for value in values]
        chunks = -(-slots["size"] // CHUNK_ELEMENTS)
        slots["first_chunk"] = np.cumsum(chunks) - chunks
        self.chunks = int(chunks.sum())
        if self.chunks >= 2 ** 31:
            raise ValueError(f"prune: {self.chunks} blocks of {CHUNK_ELEMENTS} values exceed one launch")
        chunk_tensor = np.repeat(np.arange(len(values), dtype=np.int32), chunks)
        self.arguments = (device.xp.asarray(slots.view(np.uint8)), device.xp.asarray(chunk_tensor))

    def launch(self, kernel, *more_arguments):
        if self.chunks:
            device.kernel(kernel)((self.chunks,), (BLOCK_THREADS,), self.arguments + more_arguments)


def kth_smallest_cuda(scores, masks, k):
    """``kth_smallest_numpy`` with the kernels: one 11-bit digit over every candidate, then the
    candidates in that digit's bin compacted into a short list for the last 20 bits; one read back."""
    xp = device.xp
    table = _ChunkTable(scores, masks)
    state = xp.asarray([0, 0, int(k), 0, 0], dtype=np.uint64)
    first = xp.zeros(1 << FIRST_DIGIT_BITS, dtype=np.uint64)
    first_shift = 31 - FIRST_DIGIT_BITS
    table.launch("first_digit_histogram", first)
    select = device.kernel("select_digit")
    select((1,), (BLOCK_THREADS,), (first, np.int32(first.size), np.int32(first_shift), state))
    short_list = xp.empty(max(sum(score.size for score in scores), 1), dtype=np.uint32)
    table.launch("compact_candidates", state, short_list)
    later = xp.zeros((2, 1 << LATER_DIGIT_BITS), dtype=np.uint64)
    blocks = SHORT_LIST_BLOCKS_PER_MULTIPROCESSOR * device.multiprocessors
    for histogram, shift in zip(later, (first_shift - LATER_DIGIT_BITS, first_shift - 2 * LATER_DIGIT_BITS)):
        device.kernel("compacted_histogram")((blocks,), (BLOCK_THREADS,),
                                             (short_list, state, np.int32(shift), histogram))
        select((1,), (BLOCK_THREADS,), (histogram, np.int32(histogram.size), np.int32(shift), state))
    prefix, _, rank, equal_count, _ = (int(value) for value in backend.to_numpy(state))
    return prefix, rank, equal_count


def mask_from_threshold_cuda(scores, masks, keep_from_bits):
    new_masks = [device.xp.empty_like(mask) for mask in masks]
    _ChunkTable(scores, masks, new_masks).launch("mask_from_threshold", np.uint32(keep_from_bits))
    return new_masks


def apply_mask_cuda(values, masks, out=None):
    out = [device.xp.empty_like(value) for value in values] if out is None else out
    _ChunkTable(values, masks, out).launch("apply_mask")
    return out


# ----- what the pruning methods call ----------------------------------------------------
def kth_smallest(scores, masks, k):
    if kernels_apply(scores, masks):
        return kth_smallest_cuda(scores, masks, k)
    return kth_smallest_numpy(scores, masks, k)


def mask_from_threshold(scores, masks, keep_from_bits):
    if kernels_apply(scores, masks):
        return mask_from_threshold_cuda(scores, masks, keep_from_bits)
    return mask_from_threshold_numpy(scores, masks, keep_from_bits)


def apply_mask(values, masks):
    """[value * mask for each tensor]: the pruned values."""
    if kernels_apply(values, masks):
        return apply_mask_cuda(values, masks)
    return apply_mask_numpy(values, masks)


def prune_smallest(scores, masks, k):
    """New masks: ``masks`` with k more zeros, at the k candidates of smallest |score|.

    Exactly k candidates are pruned; among candidates equal to the threshold
    the earlier ones (first tensor first, then flat index) go first.
    """
    if k == 0:
        return [mask.copy() for mask in masks]
    threshold_bits, rank, equal_count = kth_smallest(scores, masks, k)
    if rank == equal_count:  # no tie to split: prune every candidate <= T
        return mask_from_threshold(scores, masks, threshold_bits + 1)
    new_masks = mask_from_threshold(scores, masks, threshold_bits)  # prune those < T ...
    still_to_prune = rank
    for score, mask, new_mask in zip(scores, masks, new_masks):  # ... and the first `rank` equal to T
        xp = backend.array_module(score)
        bits = magnitude_bits(score).ravel()
        tied = xp.flatnonzero((bits == bits.dtype.type(threshold_bits)) & (mask.ravel() != 0))
        chosen = tied[:still_to_prune]
        new_mask.reshape(-1)[chosen] = 0
        still_to_prune -= int(chosen.size)
        if still_to_prune == 0:
            break
    return new_masks


def threshold_masks(scores, masks, eps):
    """The seed's rule on top of ``masks``: prune every entry with |score| < eps."""
    return mask_from_threshold(scores, masks, float_bits(eps, scores[0].dtype))
