// Magnitude pruning on the GPU: choose a threshold, build a mask, apply it.
//
// NumPy twins (same math, same passes): minigrad/prune/selection.py.
//
// Every kernel here works on a LIST of float32 tensors at once (global pruning
// over all layers of a model) without concatenating them: it receives a device
// array of pointers, one per tensor, and a device array of their sizes. The
// launch grid is 2-D: blockIdx.y picks the tensor, blockIdx.x and a grid-stride
// loop walk its elements. A block whose tensor is smaller than its start exits
// at once, so small tensors next to a big one cost only a few idle blocks.
//
//   grid  = (blocks_per_tensor, number_of_tensors), block = 256 threads
//   blocks_per_tensor = min(ceil(largest_size / 256), 4096)   (host side)
//
// Magnitudes as integers. For a non-negative IEEE float, a larger value has a
// larger bit pattern when read as an unsigned integer. So |w| is ordered like
// bits(w) & 0x7fffffff, and "the k-th smallest magnitude" is found on these
// 31-bit integers, 8 bits at a time (a radix select, never a sort):
//
//   pass 0 looks at bits 31..24, pass 1 at 23..16, pass 2 at 15..8, pass 3 at 7..0.
//   magnitude_histogram: among the candidates whose higher bits equal the
//     prefix found so far, count how many have each value (0..255) of the
//     current 8 bits.
//   select_digit: walk the 256 counts; the digit where the running count first
//     reaches the wanted rank is the next 8 bits of the answer; subtract the
//     counts before it from the rank.
//
// After four passes `state` holds the bit pattern T of the k-th smallest
// magnitude, how many candidates equal T, and how many of those must still be
// pruned. A candidate is an entry whose current mask is non-zero (re-pruning
// never revives an entry; only unpruned entries compete), or every entry when
// the tensor has no mask (a null pointer in the mask list).
//
// mask_from_threshold: new_mask = old_mask AND (bits(|w|) >= keep_from_bits).
//   With keep_from_bits = bits(eps) this is the seed's rule (w = 0 where
//   |w| < eps); with keep_from_bits = T + 1 it prunes the k smallest.
// apply_mask: out = w * mask (out may be w itself).
//
// Memory floor (N elements in all, 4-byte values and masks):
//   magnitude_histogram: reads w and mask, 8 N bytes per pass, 4 passes = 32 N;
//   select_digit: 2 KB; mask_from_threshold: reads w, old mask, writes mask = 12 N;
//   apply_mask: reads w, mask, writes out = 12 N.
// A full sort of N floats moves several times more (every radix-sort pass
// reads and writes keys and indices).
//
// state[] layout (unsigned long long):
//   [0] prefix: the bits of T decided so far     [1] decided: which bits those are
//   [2] rank: 1-based rank still wanted           [3] count of candidates equal to T

#define DIGIT_BITS 8
#define DIGIT_VALUES 256
#define MAGNITUDE_BITS 0x7fffffffu

__device__ __forceinline__ unsigned int magnitude_bits(float value) {
    return __float_as_uint(value) & MAGNITUDE_BITS;
}

__device__ __forceinline__ bool is_candidate(const float* mask, long long i) {
    return mask == nullptr || mask[i] != 0.0f;
}

// One pass of the radix select: a 256-bin histogram of the current digit.
// grid (blocks_per_tensor, number_of_tensors), block 256 (= DIGIT_VALUES).
// Each block counts into shared memory (32-bit counters: one block sees at most
// ceil(size / blocks_per_tensor) elements, which the host keeps below 2^31),
// then adds its counts to the 64-bit global histogram.
extern "C" __global__ void magnitude_histogram(
        const float* const* values, const float* const* masks, const long long* sizes,
        int pass, const unsigned long long* state, unsigned long long* histogram) {
    __shared__ unsigned int counts[DIGIT_VALUES];
    for (int bin = threadIdx.x; bin < DIGIT_VALUES; bin += blockDim.x) counts[bin] = 0u;
    __syncthreads();

    const int tensor = blockIdx.y;
    const float* value = values[tensor];
    const float* mask = masks[tensor];
    const long long size = sizes[tensor];
    const unsigned int prefix = (unsigned int)state[0];
    const unsigned int decided = (unsigned int)state[1];
    const int shift = 32 - DIGIT_BITS * (pass + 1);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += stride) {
        if (!is_candidate(mask, i)) continue;
        const unsigned int bits = magnitude_bits(value[i]);
        if ((bits & decided) != prefix) continue;
        atomicAdd(&counts[(bits >> shift) & (DIGIT_VALUES - 1)], 1u);
    }
    __syncthreads();
    for (int bin = threadIdx.x; bin < DIGIT_VALUES; bin += blockDim.x) {
        if (counts[bin] != 0u) atomicAdd(&histogram[bin], (unsigned long long)counts[bin]);
    }
}

// Pick the digit that holds the wanted rank and narrow the search to it.
// grid (1), block 256: the threads load the histogram, one thread walks it.
extern "C" __global__ void select_digit(
        const unsigned long long* histogram, int pass, unsigned long long* state) {
    __shared__ unsigned long long counts[DIGIT_VALUES];
    for (int bin = threadIdx.x; bin < DIGIT_VALUES; bin += blockDim.x) counts[bin] = histogram[bin];
    __syncthreads();
    if (threadIdx.x != 0) return;

    const int shift = 32 - DIGIT_BITS * (pass + 1);
    const unsigned long long rank = state[2];
    unsigned long long below = 0;  // candidates in the bins before `digit`
    int digit = DIGIT_VALUES - 1;  // the rank is never above the total (checked on the host)
    for (int bin = 0; bin < DIGIT_VALUES; ++bin) {
        if (below + counts[bin] >= rank) { digit = bin; break; }
        below += counts[bin];
    }
    state[0] |= (unsigned long long)digit << shift;
    state[1] |= (unsigned long long)(DIGIT_VALUES - 1) << shift;
    state[2] = rank - below;
    state[3] = counts[digit];
}

// new_mask[i] = 1 if the entry was a candidate and bits(|w[i]|) >= keep_from_bits, else 0.
// grid (blocks_per_tensor, number_of_tensors), block 256. new_masks may alias old_masks.
extern "C" __global__ void mask_from_threshold(
        const float* const* values, const float* const* old_masks, float* const* new_masks,
        const long long* sizes, unsigned int keep_from_bits) {
    const int tensor = blockIdx.y;
    const float* value = values[tensor];
    const float* old_mask = old_masks[tensor];
    float* new_mask = new_masks[tensor];
    const long long size = sizes[tensor];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += stride) {
        const bool keep = is_candidate(old_mask, i) && magnitude_bits(value[i]) >= keep_from_bits;
        new_mask[i] = keep ? 1.0f : 0.0f;
    }
}

// out[i] = w[i] * mask[i]. grid (blocks_per_tensor, number_of_tensors), block 256.
// outputs may alias values (prune in place).
extern "C" __global__ void apply_mask(
        const float* const* values, const float* const* masks, float* const* outputs,
        const long long* sizes) {
    const int tensor = blockIdx.y;
    const float* value = values[tensor];
    const float* mask = masks[tensor];
    float* output = outputs[tensor];
    const long long size = sizes[tensor];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += stride) {
        output[i] = value[i] * mask[i];
    }
}
