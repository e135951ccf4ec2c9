// Batch normalization kernels: float32 in and out, float32 accumulation.
// NumPy twins: minigrad/nn/batchnorm.py (same names without the layout suffix);
// launchers: minigrad/nn/batchnorm_cuda.py.
//
// An input (N, C, S...) is seen as (N, C, S) with S the product of the spatial
// axes; a channel's M = N*S values are normalised together. Two layouts:
//   planar (S > 1, NCHW): a channel is N runs of S contiguous values; a block
//     owns one channel and one chunk of its N*S values (blockIdx.x = c*chunks + k),
//     256 threads, so a channel's reduction is spread over `chunks` blocks.
//   rows (S == 1, (N, C)): values of a channel are C apart; a block is 32 x 8
//     threads, threadIdx.x over 32 channel units (coalesced), threadIdx.y over
//     rows; blockIdx.x picks the 32 units, blockIdx.y one chunk of the rows.
// V = 4 variants load float4 (S % 4 == 0, planar; C % 4 == 0, rows; 16-byte
// aligned data); V = 1 variants take any size. Every index is 64-bit.
//
// Kernels (B = 4*N*C*S bytes, one pass over one tensor):
//   batch_norm_statistics_{planar,rows}_v{1,4}: per-thread Welford over its
//     values, Chan merge across the block, one (count, mean, M2) partial per
//     block; the last block of each channel (atomic ticket) merges the partials
//     in a fixed order (deterministic), writes count/mean/M2 and, when
//     finalize != 0, invstd and the running-statistics update.   Floor: B.
//   batch_norm_finalize: one thread per channel; invstd and the running update
//     from combined (count, mean, M2) (used when SyncBatchNorm combines them
//     between launches). Grid ceil(C/256) x 256.                 Floor: ~24*C.
//   batch_norm_normalize_{planar,rows}_v{1,4}: y = (x - mean)*invstd*weight + bias;
//     invstd is given (training) or 1/sqrt(running_var + eps) (eval, so the
//     eval forward is this one launch: x read once, y written once). Floor: 2B.
//   batch_norm_backward_sums_{planar,rows}_v{1,4}: per-channel sum dy and
//     sum dy*xhat (= dbias, dweight), partials per block merged by the last
//     block as above.                                              Floor: 2B.
//   batch_norm_backward_input_{planar,rows}_v{1,4}:
//     dx = weight*invstd*(dy - sum_dy/M - xhat*sum_dy_xhat/M) (training) or
//     weight*invstd*dy (eval, x not read).                 Floor: 3B (eval 2B).
// So a training forward moves 3B (two launches), a backward 5B (two launches).
// The ticket counters (one per channel or per 32-unit column group) must be
// zero before a launch; the last block resets its counter, so one zeroed
// buffer serves every launch on a stream.

#define PLANAR_THREADS 256
#define ROWS_X 32
#define ROWS_Y 8
#define FULL_MASK 0xffffffffu

// ----- the two reductions: Welford statistics and plain sums ----------------------
struct Welford {
    float count, mean, m2;  // number of values, their mean, sum of squared deviations
};

// Chan's parallel formula: the statistics of the union of two sets.
__device__ __forceinline__ Welford merge(Welford a, Welford b) {
    float count = a.count + b.count;
    if (count == 0.f) return a;
    float delta = b.mean - a.mean;
    float share = b.count / count;
    return {count, a.mean + delta * share, a.m2 + b.m2 + delta * delta * a.count * share};
}

__device__ __forceinline__ void push(Welford& w, float value) {  // Welford's update
    w.count += 1.f;
    float delta = value - w.mean;
    w.mean += delta / w.count;
    w.m2 += delta * (value - w.mean);
}

__device__ __forceinline__ Welford shuffle_down(Welford w, int offset) {
    return {__shfl_down_sync(FULL_MASK, w.count, offset), __shfl_down_sync(FULL_MASK, w.mean, offset),
            __shfl_down_sync(FULL_MASK, w.m2, offset)};
}

struct Sums {
    float dy, dy_xc;  // sum dy and sum dy * (x - mean)
};

__device__ __forceinline__ Sums merge(Sums a, Sums b) { return {a.dy + b.dy, a.dy_xc + b.dy_xc}; }

__device__ __forceinline__ Sums shuffle_down(Sums s, int offset) {
    return {__shfl_down_sync(FULL_MASK, s.dy, offset), __shfl_down_sync(FULL_MASK, s.dy_xc, offset)};
}

// Merge one value per thread of a PLANAR_THREADS block; the result is valid in thread 0.
template <class T>
__device__ T block_merge(T value) {
    __shared__ T per_warp[PLANAR_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) value = merge(value, shuffle_down(value, offset));
    __syncthreads();  // per_warp may still be read by a previous call
    if (lane == 0) per_warp[warp] = value;
    __syncthreads();
    if (warp == 0) {
        value = lane < PLANAR_THREADS / 32 ? per_warp[lane] : T{};
        for (int offset = 16; offset > 0; offset >>= 1) value = merge(value, shuffle_down(value, offset));
    }
    return value;
}

// Merge over threadIdx.y of a ROWS_X x ROWS_Y block, per lane; valid where threadIdx.y == 0.
template <class T, int V>
__device__ void column_merge(T (&value)[V]) {
    __shared__ T rows[ROWS_Y][ROWS_X * V];
    __syncthreads();
    for (int lane = 0; lane < V; ++lane) rows[threadIdx.y][threadIdx.x * V + lane] = value[lane];
    __syncthreads();
    if (threadIdx.y == 0)
        for (int y = 1; y < ROWS_Y; ++y)
            for (int lane = 0; lane < V; ++lane) value[lane] = merge(value[lane], rows[y][threadIdx.x * V + lane]);
}

// ----- loads, stores, and walking a channel's values -------------------------------
template <int V>
__device__ __forceinline__ void load(const float* data, long long unit, float (&out)[V]) {
    if constexpr (V == 4) {
        float4 q = reinterpret_cast<const float4*>(data)[unit];
        out[0] = q.x; out[1] = q.y; out[2] = q.z; out[3] = q.w;
    } else {
        out[0] = data[unit];
    }
}

template <int V>
__device__ __forceinline__ void store(float* data, long long unit, const float (&in)[V]) {
    if constexpr (V == 4) {
        reinterpret_cast<float4*>(data)[unit] = make_float4(in[0], in[1], in[2], in[3]);
    } else {
        data[unit] = in[0];
    }
}

// Planar: unit u = n*S + s (n < N, s < S, units of V floats) of channel c lives at
// (n*C + c)*S + s. Each thread visits u = begin + threadIdx.x, stepping by the
// block size; the position advances by additions only (no division per value).
// Positions are taken four at a time before visiting, so that the four loads
// can be in flight together (the pointers are __restrict__).
template <class Visit>
__device__ __forceinline__ void walk_chunk(long long begin, long long end, long long C, long long S,
                                           long long c, Visit visit) {
    long long u = begin + threadIdx.x;
    if (u >= end) return;
    long long n = u / S, s = u - n * S;
    long long index = (n * C + c) * S + s;
    const long long step = blockDim.x, step_rows = step / S, step_cols = step - step_rows * S;
    const long long jump = step_rows * C * S + step_cols, wrap = (C - 1) * S;
    auto advance = [&]() {
        index += jump;
        s += step_cols;
        if (s >= S) { s -= S; index += wrap; }
    };
    for (; u + 3 * step < end; u += 4 * step) {
        long long at[4];
        for (int k = 0; k < 4; ++k) { at[k] = index; advance(); }
        for (int k = 0; k < 4; ++k) visit(at[k]);
    }
    for (; u < end; u += step) {
        visit(index);
        advance();
    }
}

struct PlanarChunk {  // which channel and which of its units this block owns
    long long c, chunk, begin, end;
};

__device__ __forceinline__ PlanarChunk planar_chunk(long long units, long long chunks, long long chunk_units) {
    PlanarChunk at;
    at.c = blockIdx.x / chunks;
    at.chunk = blockIdx.x - at.c * chunks;
    at.begin = at.chunk * chunk_units;
    at.end = min(units, at.begin + chunk_units);
    return at;
}

// True in every thread of the block that arrives last at `ticket` (of `arrivals`).
// The block's partial results must be stored before the call.
__device__ __forceinline__ bool last_to_arrive(unsigned int* ticket, unsigned int arrivals) {
    __shared__ bool last;
    __threadfence();  // publish this block's partial before taking a ticket
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        unsigned int arrived = atomicAdd(ticket, 1u);
        last = arrived == arrivals - 1;
        if (last) *ticket = 0u;  // every other block has arrived: reset for the next launch
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

// ----- finalize: invstd and the running statistics of one channel ------------------
__device__ __forceinline__ void finalize_channel(long long c, Welford w, float* invstd, float* running_mean,
                                                 float* running_var, float momentum, float eps) {
    invstd[c] = 1.f / sqrtf(w.m2 / w.count + eps);
    if (running_mean != nullptr) running_mean[c] = (1.f - momentum) * running_mean[c] + momentum * w.mean;
    if (running_var != nullptr)
        running_var[c] = (1.f - momentum) * running_var[c] + momentum * (w.m2 / (w.count - 1.f));
}

extern "C" __global__ void batch_norm_finalize(long long C, const float* count, const float* mean, const float* m2,
                                               float* invstd, float* running_mean, float* running_var,
                                               float momentum, float eps) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c < C) finalize_channel(c, {count[c], mean[c], m2[c]}, invstd, running_mean, running_var, momentum, eps);
}

// Outputs shared by both statistics kernels: partial_* hold C*chunks entries (channel-major).
#define STATISTICS_ARGS                                                                               \
    const float *x, long long N, long long C, long long S, long long chunks, long long chunk_units,  \
        float *partial_count, float *partial_mean, float *partial_m2, unsigned int *tickets,          \
        float *count, float *mean, float *m2, int finalize, float *invstd, float *running_mean,       \
        float *running_var, float momentum, float eps

__device__ __forceinline__ void write_statistics(long long c, Welford w, float* count, float* mean, float* m2,
                                                 int finalize, float* invstd, float* running_mean,
                                                 float* running_var, float momentum, float eps) {
    count[c] = w.count; mean[c] = w.mean; m2[c] = w.m2;
    if (finalize) finalize_channel(c, w, invstd, running_mean, running_var, momentum, eps);
}

// ----- training statistics -----------------------------------------------------------
template <int V>
__device__ void statistics_planar(STATISTICS_ARGS) {
    PlanarChunk at = planar_chunk(N * S, chunks, chunk_units);
    Welford w = {0.f, 0.f, 0.f};
    walk_chunk(at.begin, at.end, C, S, at.c, [&](long long unit) {
        float v[V];
        load<V>(x, unit, v);
        if constexpr (V == 1) {
            push(w, v[0]);
        } else {  // the four values' own statistics, merged in once
            float group_mean = (v[0] + v[1] + v[2] + v[3]) * 0.25f, group_m2 = 0.f;
            for (int lane = 0; lane < V; ++lane) group_m2 += (v[lane] - group_mean) * (v[lane] - group_mean);
            w = merge(w, Welford{4.f, group_mean, group_m2});
        }
    });
    w = block_merge(w);
    long long slot = at.c * chunks + at.chunk;
    if (threadIdx.x == 0) { partial_count[slot] = w.count; partial_mean[slot] = w.mean; partial_m2[slot] = w.m2; }
    if (!last_to_arrive(tickets + at.c, (unsigned int)chunks)) return;
    Welford total = {0.f, 0.f, 0.f};
    for (long long k = threadIdx.x; k < chunks; k += blockDim.x) {
        long long from = at.c * chunks + k;
        total = merge(total, Welford{__ldcg(partial_count + from), __ldcg(partial_mean + from), __ldcg(partial_m2 + from)});
    }
    total = block_merge(total);
    if (threadIdx.x == 0) write_statistics(at.c, total, count, mean, m2, finalize, invstd, running_mean, running_var, momentum, eps);
}

template <int V>
__device__ void statistics_rows(STATISTICS_ARGS) {
    const long long units_per_row = C / V, unit = (long long)blockIdx.x * ROWS_X + threadIdx.x;
    const long long row_begin = blockIdx.y * chunk_units, row_end = min(N, row_begin + chunk_units);
    float seen = 0.f, mean_[V] = {}, m2_[V] = {};
    if (unit < units_per_row) {
        for (long long n = row_begin + threadIdx.y; n < row_end; n += ROWS_Y) {
            float v[V];
            load<V>(x, n * units_per_row + unit, v);
            seen += 1.f;
            float share = 1.f / seen;  // one division for the V channels of this row
            for (int lane = 0; lane < V; ++lane) {
                float delta = v[lane] - mean_[lane];
                mean_[lane] += delta * share;
                m2_[lane] += delta * (v[lane] - mean_[lane]);
            }
        }
    }
    Welford w[V];
    for (int lane = 0; lane < V; ++lane) w[lane] = {seen, mean_[lane], m2_[lane]};
    column_merge(w);
    if (threadIdx.y == 0 && unit < units_per_row)
        for (int lane = 0; lane < V; ++lane) {
            long long slot = (unit * V + lane) * chunks + blockIdx.y;
            partial_count[slot] = w[lane].count; partial_mean[slot] = w[lane].mean; partial_m2[slot] = w[lane].m2;
        }
    if (!last_to_arrive(tickets + blockIdx.x, (unsigned int)chunks)) return;
    for (int lane = 0; lane < V; ++lane) {
        w[lane] = {0.f, 0.f, 0.f};
        if (unit < units_per_row)
            for (long long k = threadIdx.y; k < chunks; k += ROWS_Y) {
                long long from = (unit * V + lane) * chunks + k;
                w[lane] = merge(w[lane], Welford{__ldcg(partial_count + from), __ldcg(partial_mean + from), __ldcg(partial_m2 + from)});
            }
    }
    column_merge(w);
    if (threadIdx.y == 0 && unit < units_per_row)
        for (int lane = 0; lane < V; ++lane)
            write_statistics(unit * V + lane, w[lane], count, mean, m2, finalize, invstd, running_mean, running_var, momentum, eps);
}

// ----- normalize: y = (x - mean) * invstd * weight + bias ------------------------------
#define NORMALIZE_ARGS                                                                              \
    const float *__restrict__ x, float *__restrict__ y, long long N, long long C, long long S, long long chunks, \
        long long chunk_units, const float *mean, const float *second, int second_is_var, float eps, \
        const float *weight, const float *bias

// scale = invstd * weight; `second` is invstd, or running_var in eval mode.
__device__ __forceinline__ void channel_affine(long long c, const float* second, int second_is_var, float eps,
                                               const float* weight, const float* bias, float& scale, float& shift) {
    float invstd = second_is_var ? 1.f / sqrtf(second[c] + eps) : second[c];
    scale = weight != nullptr ? invstd * weight[c] : invstd;
    shift = bias != nullptr ? bias[c] : 0.f;
}

template <int V>
__device__ void normalize_planar(NORMALIZE_ARGS) {
    PlanarChunk at = planar_chunk(N * S, chunks, chunk_units);
    float scale, shift, center = mean[at.c];
    channel_affine(at.c, second, second_is_var, eps, weight, bias, scale, shift);
    walk_chunk(at.begin, at.end, C, S, at.c, [&](long long unit) {
        float v[V];
        load<V>(x, unit, v);
        for (int lane = 0; lane < V; ++lane) v[lane] = (v[lane] - center) * scale + shift;
        store<V>(y, unit, v);
    });
}

template <int V>
__device__ void normalize_rows(NORMALIZE_ARGS) {
    const long long units_per_row = C / V, unit = (long long)blockIdx.x * ROWS_X + threadIdx.x;
    if (unit >= units_per_row) return;
    float scale[V], shift[V], center[V];
    for (int lane = 0; lane < V; ++lane) {
        center[lane] = mean[unit * V + lane];
        channel_affine(unit * V + lane, second, second_is_var, eps, weight, bias, scale[lane], shift[lane]);
    }
    const long long row_end = min(N, (blockIdx.y + 1) * chunk_units);
    for (long long n = blockIdx.y * chunk_units + threadIdx.y; n < row_end; n += ROWS_Y) {
        float v[V];
        load<V>(x, n * units_per_row + unit, v);
        for (int lane = 0; lane < V; ++lane) v[lane] = (v[lane] - center[lane]) * scale[lane] + shift[lane];
        store<V>(y, n * units_per_row + unit, v);
    }
}

// ----- backward: per-channel sums, then dx ----------------------------------------------
#define BACKWARD_SUMS_ARGS                                                                          \
    const float *grad_output, const float *x, long long N, long long C, long long S, long long chunks, \
        long long chunk_units, const float *mean, const float *invstd, float *partial_dy,             \
        float *partial_dy_xc, unsigned int *tickets, float *sum_dy, float *sum_dy_xhat

template <int V>
__device__ void backward_sums_planar(BACKWARD_SUMS_ARGS) {
    PlanarChunk at = planar_chunk(N * S, chunks, chunk_units);
    const float center = mean[at.c];
    Sums sums = {0.f, 0.f};
    walk_chunk(at.begin, at.end, C, S, at.c, [&](long long unit) {
        float dy[V], v[V];
        load<V>(grad_output, unit, dy);
        load<V>(x, unit, v);
        for (int lane = 0; lane < V; ++lane) { sums.dy += dy[lane]; sums.dy_xc += dy[lane] * (v[lane] - center); }
    });
    sums = block_merge(sums);
    long long slot = at.c * chunks + at.chunk;
    if (threadIdx.x == 0) { partial_dy[slot] = sums.dy; partial_dy_xc[slot] = sums.dy_xc; }
    if (!last_to_arrive(tickets + at.c, (unsigned int)chunks)) return;
    Sums total = {0.f, 0.f};
    for (long long k = threadIdx.x; k < chunks; k += blockDim.x)
        total = merge(total, Sums{__ldcg(partial_dy + at.c * chunks + k), __ldcg(partial_dy_xc + at.c * chunks + k)});
    total = block_merge(total);
    if (threadIdx.x == 0) { sum_dy[at.c] = total.dy; sum_dy_xhat[at.c] = total.dy_xc * invstd[at.c]; }
}

template <int V>
__device__ void backward_sums_rows(BACKWARD_SUMS_ARGS) {
    const long long units_per_row = C / V, unit = (long long)blockIdx.x * ROWS_X + threadIdx.x;
    const long long row_begin = blockIdx.y * chunk_units, row_end = min(N, row_begin + chunk_units);
    Sums sums[V];
    float center[V];
    for (int lane = 0; lane < V; ++lane) {
        sums[lane] = {0.f, 0.f};
        center[lane] = unit < units_per_row ? mean[unit * V + lane] : 0.f;
    }
    if (unit < units_per_row)
        for (long long n = row_begin + threadIdx.y; n < row_end; n += ROWS_Y) {
            float dy[V], v[V];
            load<V>(grad_output, n * units_per_row + unit, dy);
            load<V>(x, n * units_per_row + unit, v);
            for (int lane = 0; lane < V; ++lane) {
                sums[lane].dy += dy[lane];
                sums[lane].dy_xc += dy[lane] * (v[lane] - center[lane]);
            }
        }
    column_merge(sums);
    if (threadIdx.y == 0 && unit < units_per_row)
        for (int lane = 0; lane < V; ++lane) {
            long long slot = (unit * V + lane) * chunks + blockIdx.y;
            partial_dy[slot] = sums[lane].dy; partial_dy_xc[slot] = sums[lane].dy_xc;
        }
    if (!last_to_arrive(tickets + blockIdx.x, (unsigned int)chunks)) return;
    for (int lane = 0; lane < V; ++lane) {
        sums[lane] = {0.f, 0.f};
        if (unit < units_per_row)
            for (long long k = threadIdx.y; k < chunks; k += ROWS_Y) {
                long long from = (unit * V + lane) * chunks + k;
                sums[lane] = merge(sums[lane], Sums{__ldcg(partial_dy + from), __ldcg(partial_dy_xc + from)});
            }
    }
    column_merge(sums);
    if (threadIdx.y == 0 && unit < units_per_row)
        for (int lane = 0; lane < V; ++lane) {
            long long c = unit * V + lane;
            sum_dy[c] = sums[lane].dy;
            sum_dy_xhat[c] = sums[lane].dy_xc * invstd[c];
        }
}

#define BACKWARD_INPUT_ARGS                                                                          \
    const float *__restrict__ grad_output, const float *__restrict__ x, float *__restrict__ grad_input, long long N, \
        long long C, long long S,                                                                     \
        long long chunks, long long chunk_units, const float *mean, const float *invstd,              \
        const float *weight, const float *sum_dy, const float *sum_dy_xhat, const float *count, int training

// dx = scale * (dy - mean_dy) - slope * (x - mean): scale = weight*invstd,
// mean_dy = sum_dy/M, slope = scale*invstd*sum_dy_xhat/M (both 0 in eval mode).
struct InputGradient {
    float scale, mean_dy, slope, center;
    __device__ __forceinline__ float operator()(float dy, float value) const {
        return scale * (dy - mean_dy) - slope * (value - center);
    }
};

__device__ __forceinline__ InputGradient input_gradient_of(long long c, const float* mean, const float* invstd,
                                                           const float* weight, const float* sum_dy,
                                                           const float* sum_dy_xhat, const float* count, int training) {
    InputGradient g;
    g.scale = weight != nullptr ? weight[c] * invstd[c] : invstd[c];
    g.center = mean[c];
    g.mean_dy = training ? sum_dy[c] / count[c] : 0.f;
    g.slope = training ? g.scale * invstd[c] * (sum_dy_xhat[c] / count[c]) : 0.f;
    return g;
}

template <int V>
__device__ void backward_input_planar(BACKWARD_INPUT_ARGS) {
    PlanarChunk at = planar_chunk(N * S, chunks, chunk_units);
    const InputGradient g = input_gradient_of(at.c, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training);
    walk_chunk(at.begin, at.end, C, S, at.c, [&](long long unit) {
        float dy[V], v[V] = {};
        load<V>(grad_output, unit, dy);
        if (training) load<V>(x, unit, v);  // eval mode: dx = scale * dy, x is not needed
        for (int lane = 0; lane < V; ++lane) dy[lane] = g(dy[lane], v[lane]);
        store<V>(grad_input, unit, dy);
    });
}

template <int V>
__device__ void backward_input_rows(BACKWARD_INPUT_ARGS) {
    const long long units_per_row = C / V, unit = (long long)blockIdx.x * ROWS_X + threadIdx.x;
    if (unit >= units_per_row) return;
    InputGradient g[V];
    for (int lane = 0; lane < V; ++lane)
        g[lane] = input_gradient_of(unit * V + lane, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training);
    const long long row_end = min(N, (blockIdx.y + 1) * chunk_units);
    for (long long n = blockIdx.y * chunk_units + threadIdx.y; n < row_end; n += ROWS_Y) {
        float dy[V], v[V] = {};
        load<V>(grad_output, n * units_per_row + unit, dy);
        if (training) load<V>(x, n * units_per_row + unit, v);
        for (int lane = 0; lane < V; ++lane) dy[lane] = g[lane](dy[lane], v[lane]);
        store<V>(grad_input, n * units_per_row + unit, dy);
    }
}

// ----- the entry points: one per layout and vector width --------------------------------
#define ENTRY(name, body, args, threads, params)                                   \
    extern "C" __global__ void __launch_bounds__(threads) name##_v1(args) { body<1> params; } \
    extern "C" __global__ void __launch_bounds__(threads) name##_v4(args) { body<4> params; }

#define STATISTICS_PARAMS (x, N, C, S, chunks, chunk_units, partial_count, partial_mean, partial_m2, tickets, \
                           count, mean, m2, finalize, invstd, running_mean, running_var, momentum, eps)
#define NORMALIZE_PARAMS (x, y, N, C, S, chunks, chunk_units, mean, second, second_is_var, eps, weight, bias)
#define BACKWARD_SUMS_PARAMS (grad_output, x, N, C, S, chunks, chunk_units, mean, invstd, partial_dy, \
                              partial_dy_xc, tickets, sum_dy, sum_dy_xhat)
#define BACKWARD_INPUT_PARAMS (grad_output, x, grad_input, N, C, S, chunks, chunk_units, mean, invstd, weight, \
                               sum_dy, sum_dy_xhat, count, training)

ENTRY(batch_norm_statistics_planar, statistics_planar, STATISTICS_ARGS, PLANAR_THREADS, STATISTICS_PARAMS)
ENTRY(batch_norm_statistics_rows, statistics_rows, STATISTICS_ARGS, ROWS_X * ROWS_Y, STATISTICS_PARAMS)
ENTRY(batch_norm_normalize_planar, normalize_planar, NORMALIZE_ARGS, PLANAR_THREADS, NORMALIZE_PARAMS)
ENTRY(batch_norm_normalize_rows, normalize_rows, NORMALIZE_ARGS, ROWS_X * ROWS_Y, NORMALIZE_PARAMS)
ENTRY(batch_norm_backward_sums_planar, backward_sums_planar, BACKWARD_SUMS_ARGS, PLANAR_THREADS, BACKWARD_SUMS_PARAMS)
ENTRY(batch_norm_backward_sums_rows, backward_sums_rows, BACKWARD_SUMS_ARGS, ROWS_X * ROWS_Y, BACKWARD_SUMS_PARAMS)
ENTRY(batch_norm_backward_input_planar, backward_input_planar, BACKWARD_INPUT_ARGS, PLANAR_THREADS, BACKWARD_INPUT_PARAMS)
ENTRY(batch_norm_backward_input_rows, backward_input_rows, BACKWARD_INPUT_ARGS, ROWS_X * ROWS_Y, BACKWARD_INPUT_PARAMS)
