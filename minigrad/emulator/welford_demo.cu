// The statistics step of batch norm, cut down for reading and for the emulator
// (docs/kernels.md; the full kernel is batch_norm_statistics in kernels/batchnorm.cu).
// x is (C, M): channel c's M values are contiguous. Block b owns chunk b % chunks of
// channel b / chunks. Each thread runs Welford over its values; a warp merges its 32
// threads with shuffles, the block merges its warps through shared memory, thread 0
// writes the block's partial (count, mean, M2) and takes a ticket; the channel's last
// block merges the partials in chunk order and writes the channel's statistics.
#define THREADS 64

struct Welford {
    float count, mean, m2;  // number of values, their mean, sum of squared deviations
};

// merge: begin
// Chan's parallel formula: the statistics of the union of two sets.
__device__ Welford merge(Welford a, Welford b) {
    float count = a.count + b.count;
    if (count == 0.f) return a;
    float delta = b.mean - a.mean;
    float share = b.count / count;
    return {count, a.mean + delta * share, a.m2 + b.m2 + delta * delta * a.count * share};
}
// merge: end

__device__ Welford shuffle_down(Welford w, int offset) {
    return {__shfl_down_sync(0xffffffffu, w.count, offset), __shfl_down_sync(0xffffffffu, w.mean, offset),
            __shfl_down_sync(0xffffffffu, w.m2, offset)};
}

extern "C" __global__ void welford_statistics(const float* x, long long M, long long chunks, float* partials,
                                              unsigned int* tickets, float* statistics) {
    const long long c = blockIdx.x / chunks, chunk = blockIdx.x % chunks, C = gridDim.x / chunks;
    const long long per_chunk = (M + chunks - 1) / chunks, begin = chunk * per_chunk;
    const long long end = begin + per_chunk < M ? begin + per_chunk : M;
    Welford w = {0.f, 0.f, 0.f};
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {  // per-thread Welford
        float value = x[c * M + i];
        w.count += 1.f;
        float delta = value - w.mean;
        w.mean += delta / w.count;
        w.m2 += delta * (value - w.mean);
    }
    for (int offset = 16; offset > 0; offset >>= 1) w = merge(w, shuffle_down(w, offset));  // a warp's 32
    __shared__ Welford per_warp[THREADS / 32];
    if (threadIdx.x % 32 == 0) per_warp[threadIdx.x / 32] = w;
    __syncthreads();
    __shared__ bool last;
    if (threadIdx.x == 0) {
        for (int warp = 1; warp < THREADS / 32; ++warp) w = merge(w, per_warp[warp]);  // the block's warps
        float* partial = partials + 3 * blockIdx.x;
        partial[0] = w.count, partial[1] = w.mean, partial[2] = w.m2;
        __threadfence();  // the partial is visible to every block before the ticket is taken
        last = atomicAdd(&tickets[c], 1u) == chunks - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x != 0) return;
    Welford total = {0.f, 0.f, 0.f};
    for (long long k = 0; k < chunks; ++k) {  // the last block: every chunk's partial, in order
        const float* partial = partials + 3 * (c * chunks + k);
        total = merge(total, Welford{__ldcg(partial), __ldcg(partial + 1), __ldcg(partial + 2)});
    }
    statistics[c] = total.count, statistics[C + c] = total.mean, statistics[2 * C + c] = total.m2;
    tickets[c] = 0u;  // ready for the next launch
}
