// Magnitude pruning on the GPU: choose a threshold, build a mask, apply it.
//
// NumPy twins (same results): minigrad/prune/selection.py; its launchers build the table below.
//
// Every kernel here works on a LIST of float32 tensors at once (global pruning
// over all layers of a model) without concatenating them. The host uploads a
// table, as sgd.cu's launcher does:
//   tensors[t]       (TensorSlot) the tensor's values, its mask (null: every entry
//                    is a candidate), an output (a new mask, or the pruned values),
//                    its size and the index of its first chunk;
//   chunk_tensor[b]  which tensor block b works on.
// Every tensor is cut into chunks of CHUNK_ELEMENTS values, one block each, so
// the grid is (sum_t ceil(size_t / CHUNK_ELEMENTS)) x 256 threads: flat (grid.x
// only, no 65535 limit on the number of tensors), with no empty block.
// A thread handles UNROLL values per round, loaded together before any is used
// (values and masks alike: the mask never decides whether the value is read),
// so UNROLL * 2 loads are in flight per thread. Offsets within a chunk are
// 32-bit and a thread's loads share one base pointer (immediate offsets), which
// keeps every streaming kernel at 40 registers or fewer with MIN_BLOCKS = 6
// blocks per multiprocessor (tests/test_kernel_registers.py: no spills).
//
// Magnitudes as integers. For a non-negative IEEE float, a larger value has a
// larger bit pattern when read as an unsigned integer. So |w| is ordered like
// bits(w) & 0x7fffffff, and "the k-th smallest magnitude" is found on these
// 31-bit integers one digit at a time, from the top (a radix select, never a sort):
//
//   digit 0 = bits 30..20 (11 bits, 2048 bins): first_digit_histogram counts the
//     candidates of every tensor per bin (each block in shared memory);
//     select_digit walks the counts to the bin where the running count reaches
//     the wanted rank, and subtracts the counts before it from the rank.
//   compact_candidates: the candidates whose digit 0 is that bin (usually a few
//     per cent of them) are copied, as their 31-bit patterns, into one short list.
//   digit 1 = bits 19..10, digit 2 = bits 9..0 (1024 bins each):
//     compacted_histogram + select_digit on the short list only.
//
// Clustered weights. A shared-memory atomic on one address is served once per
// lane: 32 lanes with equal digits (all weights equal, a few distinct values,
// or the short list, whose candidates all share digit 0 and often more) would
// wait on each other 32 times. So the histograms aggregate per warp
// (warp_count): __match_any_sync finds the lanes with the same bin and the
// lowest of them adds their number, one atomic per distinct bin of the warp;
// and compact_candidates reserves room for a warp's matches with one atomic
// (__ballot_sync and a prefix count) instead of one per match. Both need every
// lane of the warp at the collective, so for_each_slot walks the same rounds
// and slots in every lane of a warp (a lane past the end takes part with
// nothing to count). With spread-out weights the match costs one instruction
// per slot and saves little; the emulator checks the counts, not the speed.
//
// After these six launches `state` holds the bit pattern T of the k-th smallest
// magnitude, how many candidates equal T, and how many of those must still be
// pruned. A candidate is an entry whose current mask is non-zero (re-pruning
// never revives an entry; only unpruned entries compete).
//
// mask_from_threshold: new_mask = old_mask AND (bits(|w|) >= keep_from_bits).
//   With keep_from_bits = bits(eps) this is the seed's rule (w = 0 where
//   |w| < eps); with keep_from_bits = T + 1 it prunes the k smallest.
// apply_mask: out = w * mask (out may be w itself).
//
// Memory floor (N elements in all, 4-byte values and masks):
//   first_digit_histogram 8 N, compact_candidates 8 N (+ 4 bytes per copied
//   candidate), the two short-list passes 4 bytes per copied candidate each:
//   about 16 N to find T (the 8-bit, four-pass version read 32 N);
//   mask_from_threshold 12 N; apply_mask 12 N.
//
// state[] layout (unsigned long long):
//   [0] prefix: the bits of T decided so far     [1] decided: which bits those are
//   [2] rank: 1-based rank still wanted           [3] count of candidates equal to T
//   [4] length of the short list

#define BLOCK_THREADS 256
#define UNROLL 8
#define CHUNK_ELEMENTS 4096  // BLOCK_THREADS * UNROLL * 2 rounds
#define MIN_BLOCKS 6         // resident blocks per multiprocessor the streaming kernels are built for: <= 40 registers
#define FIRST_DIGIT_BITS 11
#define LATER_DIGIT_BITS 10
#define MAGNITUDE_BITS 0x7fffffffu
#define FULL_MASK 0xffffffffu
#define NO_BIN 0xffffffffu  // warp_count: this lane counts nothing

struct TensorSlot {
    const float* values;
    const float* mask;    // null: every entry is a candidate
    float* output;        // mask_from_threshold: the new mask; apply_mask: values * mask
    long long size;
    long long first_chunk;
};

__device__ __forceinline__ unsigned int magnitude_bits(float value) {
    return __float_as_uint(value) & MAGNITUDE_BITS;
}

// This block's tensor and the [start, end) of its chunk.
struct Chunk {
    TensorSlot tensor;
    long long start, end;
};

__device__ __forceinline__ Chunk chunk_of_block(const TensorSlot* tensors, const int* chunk_tensor) {
    Chunk chunk;
    chunk.tensor = tensors[chunk_tensor[blockIdx.x]];
    chunk.start = ((long long)blockIdx.x - chunk.tensor.first_chunk) * CHUNK_ELEMENTS;
    chunk.end = min(chunk.tensor.size, chunk.start + CHUNK_ELEMENTS);
    return chunk;
}

// Calls visit(offset, value, mask value) for UNROLL slots per thread and round, where offset
// counts from the thread's first element (chunk.start + threadIdx.x): all the round's loads are
// issued before the first visit. The lanes of a warp take the same rounds and slots (those in
// which the warp has an element), so a warp collective inside visit meets all 32 lanes; a slot
// past the chunk's end reads as value 0, mask 0 (not a candidate). A missing mask reads as 1.
template <class Visit>
__device__ __forceinline__ void for_each_slot(const Chunk& chunk, Visit visit) {
    const int length = (int)(chunk.end - chunk.start);  // <= CHUNK_ELEMENTS
    const int lane_limit = length - threadIdx.x, warp_limit = length - (threadIdx.x & ~31u);  // offsets below: data
    const float* values = chunk.tensor.values + chunk.start + threadIdx.x;
    const float* mask = chunk.tensor.mask != nullptr ? chunk.tensor.mask + chunk.start + threadIdx.x : nullptr;
    for (int round = 0; round < warp_limit; round += UNROLL * BLOCK_THREADS) {
        float value[UNROLL], keep[UNROLL];
#pragma unroll
        for (int k = 0; k < UNROLL; ++k) {
            const int offset = round + k * BLOCK_THREADS;
            value[k] = offset < lane_limit ? __ldcg(values + offset) : 0.f;  // read once: L2 only, global loads
            keep[k] = offset >= lane_limit ? 0.f : mask != nullptr ? __ldcg(mask + offset) : 1.f;
        }
#pragma unroll
        for (int k = 0; k < UNROLL; ++k)
            if (round + k * BLOCK_THREADS < warp_limit) visit(round + k * BLOCK_THREADS, value[k], keep[k]);
    }
}

// for_each_slot, visiting only the chunk's elements; visit(output + offset, value, mask value)
// with output = the tensor's output from the thread's first element.
template <class Visit>
__device__ __forceinline__ void for_each_in_chunk(const Chunk& chunk, Visit visit) {
    const int lane_limit = (int)(chunk.end - chunk.start) - threadIdx.x;
    float* output = chunk.tensor.output + chunk.start + threadIdx.x;
    for_each_slot(chunk, [&](int offset, float value, float keep) {
        if (offset < lane_limit) visit(output + offset, value, keep);
    });
}

// Adds 1 to counts[bin] (shared memory) for every lane of the warp whose bin is not NO_BIN;
// every lane of the warp must call it. Lanes with equal bins (__match_any_sync) make one
// atomicAdd of their number, from the lowest of them: when weights cluster (many equal
// magnitudes, or the short list, whose candidates share digit 0), a warp on one bin makes one
// atomic instead of 32 that the shared memory serialises. Spread bins cost one match per slot.
__device__ __forceinline__ void warp_count(unsigned int* counts, unsigned int bin) {
    const unsigned int same = __match_any_sync(FULL_MASK, bin);
    if (bin != NO_BIN && __ffs(same) - 1 == (int)(threadIdx.x & 31)) atomicAdd(&counts[bin], (unsigned int)__popc(same));
}

// ----- the radix select ----------------------------------------------------------------
// Digit 0 of every candidate, counted per block in shared memory, then added to `histogram`.
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS, MIN_BLOCKS)
first_digit_histogram(const TensorSlot* tensors, const int* chunk_tensor, unsigned long long* histogram) {
    __shared__ unsigned int counts[1 << FIRST_DIGIT_BITS];
    for (int bin = threadIdx.x; bin < (1 << FIRST_DIGIT_BITS); bin += BLOCK_THREADS) counts[bin] = 0u;
    __syncthreads();
    const Chunk chunk = chunk_of_block(tensors, chunk_tensor);
    const int shift = 31 - FIRST_DIGIT_BITS;
    for_each_slot(chunk, [&](int, float value, float keep) {
        warp_count(counts, keep != 0.f ? magnitude_bits(value) >> shift : NO_BIN);
    });
    __syncthreads();
    for (int bin = threadIdx.x; bin < (1 << FIRST_DIGIT_BITS); bin += BLOCK_THREADS)
        if (counts[bin] != 0u) atomicAdd(&histogram[bin], (unsigned long long)counts[bin]);
}

// Copies the 31-bit patterns of the candidates whose digit 0 is the one select_digit chose
// (the top FIRST_DIGIT_BITS bits of state[0]) into `short_list`; state[4] counts them. Each block
// stages its matches in shared memory (a warp reserves room for all its matches of a slot
// with one atomic: with clustered weights every candidate matches) and reserves its range
// of the list with one atomic.
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS, MIN_BLOCKS)
compact_candidates(const TensorSlot* tensors, const int* chunk_tensor, unsigned long long* state,
                   unsigned int* short_list) {
    __shared__ unsigned int staged[CHUNK_ELEMENTS];
    __shared__ unsigned int staged_count;
    __shared__ unsigned long long list_start;
    if (threadIdx.x == 0) staged_count = 0u;
    __syncthreads();
    const Chunk chunk = chunk_of_block(tensors, chunk_tensor);
    const int shift = 31 - FIRST_DIGIT_BITS;
    const unsigned int digit = (unsigned int)state[0] >> shift;
    const unsigned int lanes_before = (1u << (threadIdx.x & 31)) - 1u;
    for_each_slot(chunk, [&](int, float value, float keep) {
        const unsigned int bits = magnitude_bits(value);
        const bool match = keep != 0.f && bits >> shift == digit;
        const unsigned int matching = __ballot_sync(FULL_MASK, match);
        if (matching == 0u) return;  // the same in every lane
        const unsigned int rank = __popc(matching & lanes_before);  // this lane's place among the warp's matches
        unsigned int first = 0u;
        if (match && rank == 0u) first = atomicAdd(&staged_count, (unsigned int)__popc(matching));
        first = __shfl_sync(FULL_MASK, first, __ffs(matching) - 1);
        if (match) staged[first + rank] = bits;
    });
    __syncthreads();
    if (threadIdx.x == 0 && staged_count != 0u) list_start = atomicAdd(&state[4], (unsigned long long)staged_count);
    __syncthreads();
    for (unsigned int k = threadIdx.x; k < staged_count; k += BLOCK_THREADS) short_list[list_start + k] = staged[k];
}

// One later digit (bits shift+9..shift) of the short list, which holds state[4] patterns
// that all match the prefix of digit 0. Any grid: blocks stride over the list.
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS, MIN_BLOCKS)
compacted_histogram(const unsigned int* short_list, const unsigned long long* state, int shift,
                    unsigned long long* histogram) {
    __shared__ unsigned int counts[1 << LATER_DIGIT_BITS];
    for (int bin = threadIdx.x; bin < (1 << LATER_DIGIT_BITS); bin += BLOCK_THREADS) counts[bin] = 0u;
    __syncthreads();
    const long long length = (long long)state[4];
    const unsigned int prefix = (unsigned int)state[0], decided = (unsigned int)state[1];
    for (long long round = (long long)blockIdx.x * BLOCK_THREADS; round < length;
         round += (long long)gridDim.x * BLOCK_THREADS) {  // the same rounds in every thread (warp_count)
        const long long i = round + threadIdx.x;
        const unsigned int bits = i < length ? short_list[i] : 0u;
        const bool counted = i < length && (bits & decided) == prefix;
        warp_count(counts, counted ? (bits >> shift) & ((1u << LATER_DIGIT_BITS) - 1u) : NO_BIN);
    }
    __syncthreads();
    for (int bin = threadIdx.x; bin < (1 << LATER_DIGIT_BITS); bin += BLOCK_THREADS)
        if (counts[bin] != 0u) atomicAdd(&histogram[bin], (unsigned long long)counts[bin]);
}

// Pick the digit that holds the wanted rank and narrow the search to it.
// grid (1), block 256; bins is 2048 or 1024 (a multiple of 256). Each thread sums a run
// of bins bins/256 long, then one thread finds the run and the bin within it.
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS)
select_digit(const unsigned long long* histogram, int bins, int shift, unsigned long long* state) {
    __shared__ unsigned long long run_total[BLOCK_THREADS];
    const int run = bins / BLOCK_THREADS;
    unsigned long long total = 0;
    for (int bin = threadIdx.x * run; bin < (threadIdx.x + 1) * run; ++bin) total += histogram[bin];
    run_total[threadIdx.x] = total;
    __syncthreads();
    if (threadIdx.x != 0) return;

    const unsigned long long rank = state[2];
    unsigned long long below = 0;  // candidates in the bins before `digit`
    int first = BLOCK_THREADS - 1;  // the rank is never above the total (checked on the host)
    for (int r = 0; r < BLOCK_THREADS; ++r) {
        if (below + run_total[r] >= rank) { first = r; break; }
        below += run_total[r];
    }
    int digit = (first + 1) * run - 1;
    for (int bin = first * run; bin < (first + 1) * run; ++bin) {
        if (below + histogram[bin] >= rank) { digit = bin; break; }
        below += histogram[bin];
    }
    state[0] |= (unsigned long long)digit << shift;
    state[1] |= (unsigned long long)(bins - 1) << shift;
    state[2] = rank - below;
    state[3] = histogram[digit];
}

// ----- masks ----------------------------------------------------------------------------
// output = 1 where the entry was a candidate and bits(|w|) >= keep_from_bits, else 0.
// output may alias mask.
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS, MIN_BLOCKS)
mask_from_threshold(const TensorSlot* tensors, const int* chunk_tensor, unsigned int keep_from_bits) {
    for_each_in_chunk(chunk_of_block(tensors, chunk_tensor), [&](float* output, float value, float keep) {
        *output = keep != 0.f && magnitude_bits(value) >= keep_from_bits ? 1.0f : 0.0f;
    });
}

// output = w * mask; output may alias values (prune in place).
extern "C" __global__ void __launch_bounds__(BLOCK_THREADS, MIN_BLOCKS)
apply_mask(const TensorSlot* tensors, const int* chunk_tensor) {
    for_each_in_chunk(chunk_of_block(tensors, chunk_tensor),
                      [&](float* output, float value, float keep) { *output = value * keep; });
}
