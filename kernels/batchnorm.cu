// Batch normalization kernels: float32 in and out, float32 accumulation.
// NumPy twins: minigrad/nn/batchnorm.py (same names without the layout suffix);
// launchers: minigrad/nn/batchnorm_cuda.py.
//
// Every kernel takes one argument, a BatchNormArguments struct passed by value:
// the host fills the fields a kernel reads (by name, from the NumPy dtype of the
// same layout) and leaves the others null. A null pointer also chooses a variant:
// statistics with invstd == null stops before finalize (SyncBatchNorm combines the
// statistics first); normalize with invstd == null computes it from running_var
// (eval); backward_input with count == null is the eval-mode dx.
//
// An input (N, C, S...) is seen as (N, C, S) with S the product of the spatial
// axes; a channel's M = N*S values are normalised together. Two layouts:
//   planar (S > TINY_PLANE, NCHW): a channel is N runs of S contiguous values; a
//     block owns one channel and one chunk of its N*S values (blockIdx.x =
//     c*chunks + k), 256 threads, so a channel's reduction is spread over `chunks`
//     blocks.
//   rows (S <= TINY_PLANE: (N, C) with S == 1, and tiny maps such as 2x2 or 3x3):
//     a sample's C*S values are one contiguous row, column j of it belonging to
//     channel j / S. A block is 32 x 8 threads, threadIdx.x over group_units
//     units of the row (coalesced), threadIdx.y over rows; blockIdx.x picks the
//     group, blockIdx.y one chunk of the rows. A group holds whole channels and
//     whole units (the host cuts the row where a channel and a unit both end), so
//     each channel's columns meet in one block: partials are kept per column and
//     the last block of a group merges a channel's S column totals (Chan) in
//     column order. A row of fewer than 32 units takes 32 / units rows side by
//     side in a warp, so lanes do not idle (RowsLane).
// Why TINY_PLANE = 16 (floats): memory is read in 32-byte sectors, and a warp's
// load asks for 32 units (128 bytes as floats, 512 as float4). In the planar
// layout those are runs of 4*S bytes, one per (n, c) plane, far apart; each run
// that starts or ends inside a sector pays for the whole sector. With planes of
// at most 64 bytes a load is split into 2 to 32 runs: of the sectors a warp load
// touches, 2x2 maps (16-byte runs) use 50%, 3x3 51%, 2x1 25%, S = 3 31%, while
// S = 8 and 16 (whole sectors) use 100%. The rows layout reads one run of up to
// 128 (float4: 512) bytes per warp-row instead: 97-100% of its sectors used
// with float4 (C*S % 4 == 0), 78-85% without, at the cost of up to S - 1
// (at most 10) idle lanes where 32 units hold no whole number of channels. Past
// 16 a group holds one channel only (S = 17: 17 of 32 lanes busy, 68-byte loads)
// while the planar runs grow long enough to use 62% (S = 17) and more of their
// sectors, so planar stays. (Sector shares: a model of the addresses a warp asks
// for, over 64 rows and C = 63 and 64; no GPU has measured them.)
// V = 4 variants load float4 (planar: S % 4 == 0; rows: C*S % 4 == 0, so a unit
// may hold parts of two channels; 16-byte aligned data); V = 1 variants take any
// size. Every position is 64-bit; a rows column (< C*S < 2^31) is 32-bit.
// A thread loads UNITS_IN_FLIGHT units (of V floats, from every input it reads)
// before it uses the first, so that many loads are in flight per thread; the
// host sizes the grid to one wave of resident blocks (an occupancy query).
// Registers: __launch_bounds__(threads, MIN_BLOCKS_SCALAR = 6) keeps the V = 1
// kernels at 40 registers or fewer (6 blocks of 256 threads per multiprocessor).
// The V = 4 kernels hold 4 float4 units of up to two inputs (32 registers of data
// alone) plus their 64-bit positions, so they are allowed 64 registers
// (MIN_BLOCKS_FLOAT4 = 4 blocks, 1024 threads per multiprocessor): with 64 to 128
// bytes in flight per thread that is 64 to 128 KB per multiprocessor, more than
// the latency of memory needs, and nothing spills (capped at 40, they spilled).
// The rows kernels take group_units and side_by_side from the host: values the
// whole grid shares, which ptxas keeps in uniform registers; divided out per
// thread they cost one more register across the walk, and backward_sums_rows
// spilled. tests/test_kernel_registers.py checks that no kernel spills.
//
// Kernels (B = 4*N*C*S bytes, one pass over one tensor):
//   batch_norm_statistics_{planar,rows}_v{1,4}: each thread sums x - shift and
//     (x - shift)^2 over its values (shift: the channel's first value, so the
//     sums stay small and no value needs a division), turns them into its
//     (count, mean, M2) once, the block merges those with Chan's formula, one
//     (mean, M2) partial per block (rows: per block and column); the last block
//     of each channel (atomic ticket) merges the partials in a fixed order
//     (deterministic), writes mean/M2 and, when invstd is given, invstd and the
//     running-statistics update. The count per channel (N*S) is the host's, in double: exact.
//                                                                  Floor: B.
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
// The ticket counters (one per channel, planar, or per group, rows) must be
// zero before a launch; the last block resets its counter, so one zeroed
// buffer serves every launch on a stream (the host keeps one per stream).

#define PLANAR_THREADS 256
#define ROWS_X 32
#define ROWS_Y 8
#define TINY_PLANE 16  // floats: S <= TINY_PLANE takes the rows layout (the host decides; see the header)
#define MIN_BLOCKS_SCALAR 6  // resident 256-thread blocks per multiprocessor: <= 40 registers (V = 1)
#define MIN_BLOCKS_FLOAT4 4  // <= 64 registers (V = 4): see the header
#define UNITS_IN_FLIGHT 4
#define FULL_MASK 0xffffffffu

struct BatchNormArguments {
    long long N, C, S, chunks, chunk_units;  // planar: S, chunk_units in units of V floats; rows: S in floats,
    long long group_units, side_by_side;     // chunk_units in rows, group_units: a block's units of a row,
                                             // side_by_side: rows a warp covers at once (32 / group_units)
    const float *x, *grad_output;            // (N, C, S)
    float* output;                           // (N, C, S): y, or dx
    const float *weight, *bias;              // (C,) each, from here on
    float *running_mean, *running_var;
    float *mean, *invstd, *m2;               // written by statistics, read by the others
    const double* count;                     // values per channel
    float *sum_dy, *sum_dy_xhat;
    float* partial;                          // 2 per block and channel (planar) or column (rows): partials
    unsigned int* tickets;
    float momentum, eps;
};

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

// The statistics of `count` values from their sums of (x - shift) and (x - shift)^2.
__device__ __forceinline__ Welford from_shifted_sums(float count, float shift, float sum, float sum_squares) {
    if (count == 0.f) return {0.f, 0.f, 0.f};
    const float offset = sum / count;
    return {count, shift + offset, fmaxf(sum_squares - sum * offset, 0.f)};
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

// Rows: a sample's C*S values are one row; column j of it belongs to channel j / S.
template <int V>
__device__ __forceinline__ long long row_units(const BatchNormArguments& a) { return a.C * a.S / V; }

// The unit of a row a thread owns (unit < C*S/V: the thread has one) and which of the block's
// `slots` rows it walks first. Block column blockIdx.x owns per_row = group_units units of every
// row (whole channels: the host cuts the row at multiples of S and V). A row of fewer than 32
// units (e.g. C = 10, S = 1) puts 32 / per_row rows side by side in the lanes instead of
// leaving lanes idle: lane = row_in_warp * per_row + unit.
struct RowsLane {
    int unit;  // C*S < 2^31 (the host checks)
    int per_row, side_by_side, slot, slots;
    bool mine;
};

template <int V>
__device__ __forceinline__ RowsLane rows_lane(const BatchNormArguments& a) {
    RowsLane at;
    at.per_row = (int)a.group_units;
    at.side_by_side = (int)a.side_by_side;
    const int row_in_warp = threadIdx.x / at.per_row, unit_in_row = threadIdx.x - row_in_warp * at.per_row;
    at.unit = blockIdx.x * at.per_row + unit_in_row;
    at.slot = threadIdx.y * at.side_by_side + row_in_warp;
    at.slots = ROWS_Y * at.side_by_side;
    at.mine = row_in_warp < at.side_by_side && at.unit < row_units<V>(a);
    return at;
}

// The channel of column `lane` of the V a rows thread owns (C*S < 2^31: the host checks).
template <int V>
__device__ __forceinline__ int channel_of(const BatchNormArguments& a, const RowsLane& at, int lane) {
    return (at.unit * V + lane) / (int)a.S;
}

// Merge the values of every slot of a unit, per lane, in slot order; valid where slot == 0.
template <class T, int V>
__device__ void column_merge(T (&value)[V], const RowsLane& at) {
    __shared__ T rows[ROWS_Y][ROWS_X * V];
    __syncthreads();
    for (int lane = 0; lane < V; ++lane) rows[threadIdx.y][threadIdx.x * V + lane] = value[lane];
    __syncthreads();
    if (at.slot == 0)  // threadIdx.x is then the unit's offset in the warp
        for (int slot = 1; slot < at.slots; ++slot) {
            const int x = (slot % at.side_by_side) * at.per_row + threadIdx.x;
            for (int lane = 0; lane < V; ++lane)
                value[lane] = merge(value[lane], rows[slot / at.side_by_side][x * V + lane]);
        }
}

// ----- loads, stores, and walking a channel's values -------------------------------
template <int V>
__device__ __forceinline__ void load(const float* data, long long unit, float (&out)[V]) {
    if constexpr (V == 4) {
        float4 q = reinterpret_cast<const float4*>(data)[unit];
        out[0] = q.x; out[1] = q.y; out[2] = q.z; out[3] = q.w;
    } else { out[0] = data[unit]; }
}

template <int V>
__device__ __forceinline__ void store(float* data, long long unit, const float (&in)[V]) {
    if constexpr (V == 4) {
        reinterpret_cast<float4*>(data)[unit] = make_float4(in[0], in[1], in[2], in[3]);
    } else { data[unit] = in[0]; }
}

// K unit positions, visited together: a visit loads all K before it uses any.
template <int K>
struct Units {
    long long at[K];
};

// Planar: unit u = n*S + s (n < N, s < S, units of V floats) of channel c lives at
// (n*C + c)*S + s. Each thread visits u = begin + threadIdx.x, stepping by the
// block size; the position advances by additions only (no division per value).
template <class Visit>
__device__ __forceinline__ void walk_chunk(const BatchNormArguments& a, long long c, long long begin,
                                           long long end, Visit visit) {
    const long long first = begin + threadIdx.x;
    if (first >= end) return;
    const int S = (int)a.S, step = blockDim.x;  // S < 2^31 (the host checks)
    int s = (int)(first % S);
    long long index = ((first / S) * a.C + c) * S + s;
    const int step_rows = step / S, step_cols = step - step_rows * S;
    const long long jump = step_rows * a.C * S + step_cols, wrap = (a.C - 1) * S;
    auto advance = [&]() {
        index += jump;
        s += step_cols;
        if (s >= S) { s -= S; index += wrap; }
    };
    int remaining = (int)((end - first + step - 1) / step);  // this thread's units
    for (; remaining >= UNITS_IN_FLIGHT; remaining -= UNITS_IN_FLIGHT) {
        Units<UNITS_IN_FLIGHT> units;
#pragma unroll
        for (int k = 0; k < UNITS_IN_FLIGHT; ++k) { units.at[k] = index; advance(); }
        visit(units);
    }
    for (; remaining > 0; --remaining) {
        visit(Units<1>{{index}});
        advance();
    }
}

// Rows: the thread's unit in the rows of chunk blockIdx.y, from its slot on in steps of `slots`.
template <int V, class Visit>
__device__ __forceinline__ void walk_rows(const BatchNormArguments& a, const RowsLane& at, Visit visit) {
    const long long units_per_row = row_units<V>(a), jump = at.slots * units_per_row;
    long long n = blockIdx.y * a.chunk_units + at.slot, index = n * units_per_row + at.unit;
    int remaining = (int)((min(a.N, (blockIdx.y + 1) * a.chunk_units) - n + at.slots - 1) / at.slots);
    for (; remaining >= UNITS_IN_FLIGHT; remaining -= UNITS_IN_FLIGHT) {
        Units<UNITS_IN_FLIGHT> units;
#pragma unroll
        for (int k = 0; k < UNITS_IN_FLIGHT; ++k) { units.at[k] = index; index += jump; }
        visit(units);
    }
    for (; remaining > 0; --remaining, index += jump) visit(Units<1>{{index}});
}

template <int K, int V>
__device__ __forceinline__ void load_units(const float* data, const Units<K>& units, float (&out)[K][V]) {
#pragma unroll
    for (int k = 0; k < K; ++k) load<V>(data, units.at[k], out[k]);
}

struct PlanarChunk {  // which channel and which of its units this block owns
    long long c, chunk, begin, end;
};

__device__ __forceinline__ PlanarChunk planar_chunk(const BatchNormArguments& a) {
    PlanarChunk at;
    at.c = blockIdx.x / a.chunks;
    at.chunk = blockIdx.x - at.c * a.chunks;
    at.begin = at.chunk * a.chunk_units;
    at.end = min(a.N * a.S, at.begin + a.chunk_units);
    return at;
}

// How many values chunk k of a channel holds (the last chunk may be short).
__device__ __forceinline__ float chunk_count(const BatchNormArguments& a, long long k, long long units, int V) {
    return (float)((min(units, (k + 1) * a.chunk_units) - k * a.chunk_units) * V);
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

// ----- the end of a reduction: partials per block, merged by the last block ----------
// partial[2 * slot] and partial[2 * slot + 1] hold one block's two numbers, slot = channel * chunks + chunk
// (planar) or column * chunks + chunk (rows).
__device__ __forceinline__ void store_partial(const BatchNormArguments& a, long long slot, Welford w) {
    reinterpret_cast<float2*>(a.partial)[slot] = make_float2(w.mean, w.m2);
}

__device__ __forceinline__ void store_partial(const BatchNormArguments& a, long long slot, Sums sums) {
    reinterpret_cast<float2*>(a.partial)[slot] = make_float2(sums.dy, sums.dy_xc);
}

// A block's partial back; `values` is how many values its chunk held (Welford needs it, Sums not).
__device__ __forceinline__ Welford load_partial(const BatchNormArguments& a, long long slot, float values, Welford) {
    const float2 pair = __ldcg(reinterpret_cast<const float2*>(a.partial) + slot);
    return {values, pair.x, pair.y};
}

__device__ __forceinline__ Sums load_partial(const BatchNormArguments& a, long long slot, float, Sums) {
    const float2 pair = __ldcg(reinterpret_cast<const float2*>(a.partial) + slot);
    return {pair.x, pair.y};
}

// Planar: merge the lanes and the block's threads, store its partial; the channel's last block merges
// every partial in chunk order (deterministic) and calls write(channel, total) in thread 0.
template <int V, class T, class Write>
__device__ void finish_planar(const BatchNormArguments& a, const PlanarChunk& at, const T (&lanes)[V], Write write) {
    T value = lanes[0];
    for (int lane = 1; lane < V; ++lane) value = merge(value, lanes[lane]);
    value = block_merge(value);
    if (threadIdx.x == 0) store_partial(a, at.c * a.chunks + at.chunk, value);
    if (!last_to_arrive(a.tickets + at.c, (unsigned int)a.chunks)) return;
    T total{};
    for (long long k = threadIdx.x; k < a.chunks; k += blockDim.x)
        total = merge(total, load_partial(a, at.c * a.chunks + k, chunk_count(a, k, a.N * a.S, V), T{}));
    total = block_merge(total);
    if (threadIdx.x == 0) write(at.c, total);
}

// Rows, the last block: the S column totals of each channel of the block's group (valid where
// slot == 0) merged in column order, then write(channel, total).
template <int V, class T, class Write>
__device__ void write_channels(const BatchNormArguments& a, const RowsLane& at, const T (&value)[V], Write write) {
    __shared__ T columns[ROWS_X * V];
    if (at.slot == 0 && at.mine)  // threadIdx.x is then the unit's offset in the group
        for (int lane = 0; lane < V; ++lane) columns[threadIdx.x * V + lane] = value[lane];
    __syncthreads();
    const long long first_column = (long long)blockIdx.x * at.per_row * V;
    const int S = (int)a.S, channels = (int)(min(a.C * a.S - first_column, (long long)at.per_row * V) / S);
    for (int c = threadIdx.y * ROWS_X + threadIdx.x; c < channels; c += ROWS_X * ROWS_Y) {
        T total = columns[c * S];
        for (int s = 1; s < S; ++s) total = merge(total, columns[c * S + s]);
        write(first_column / S + c, total);
    }
}

// Rows: the same per column (unit and lane); blockIdx.y is the chunk of rows.
template <int V, class T, class Write>
__device__ void finish_rows(const BatchNormArguments& a, const RowsLane& at, T (&value)[V], Write write) {
    column_merge(value, at);
    const bool owner = at.slot == 0 && at.mine;
    if (owner)
        for (int lane = 0; lane < V; ++lane)
            store_partial(a, (long long)(at.unit * V + lane) * a.chunks + blockIdx.y, value[lane]);
    if (!last_to_arrive(a.tickets + blockIdx.x, (unsigned int)a.chunks)) return;
    for (int lane = 0; lane < V; ++lane) {
        value[lane] = T{};
        if (at.mine)
            for (long long k = at.slot; k < a.chunks; k += at.slots)
                value[lane] = merge(value[lane], load_partial(a, (long long)(at.unit * V + lane) * a.chunks + k,
                                                              chunk_count(a, k, a.N, 1), T{}));
    }
    column_merge(value, at);
    write_channels<V>(a, at, value, write);
}

// ----- finalize: invstd and the running statistics of one channel ------------------
__device__ __forceinline__ void finalize_channel(const BatchNormArguments& a, long long c, double count, float mean,
                                                 float m2) {
    a.invstd[c] = 1.f / sqrtf((float)(m2 / count) + a.eps);
    const float momentum = a.momentum;
    if (a.running_mean != nullptr) a.running_mean[c] = (1.f - momentum) * a.running_mean[c] + momentum * mean;
    if (a.running_var != nullptr)
        a.running_var[c] = (1.f - momentum) * a.running_var[c] + momentum * (float)(m2 / (count - 1.0));
}

extern "C" __global__ void __launch_bounds__(PLANAR_THREADS) batch_norm_finalize(const BatchNormArguments a) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c < a.C) finalize_channel(a, c, a.count[c], a.mean[c], a.m2[c]);
}

__device__ __forceinline__ void write_statistics(const BatchNormArguments& a, long long c, Welford w) {
    a.mean[c] = w.mean;
    a.m2[c] = w.m2;
    if (a.invstd != nullptr) finalize_channel(a, c, a.count[c], w.mean, w.m2);
}

// ----- training statistics -----------------------------------------------------------
// Adds (x - shift) and (x - shift)^2 of K units to the per-lane sums; counts the rows seen.
template <int K, int V>
__device__ __forceinline__ void add_shifted_units(const BatchNormArguments& a, const Units<K>& units,
                                                  const float (&shift)[V], float (&sum)[V], float (&sum_squares)[V],
                                                  float& seen) {
    float v[K][V];
    load_units(a.x, units, v);
#pragma unroll
    for (int k = 0; k < K; ++k)
        for (int lane = 0; lane < V; ++lane) {
            const float d = v[k][lane] - shift[lane];
            sum[lane] += d;
            sum_squares[lane] += d * d;
        }
    seen += K;
}

template <int V>
__device__ void statistics_planar(const BatchNormArguments a) {
    const PlanarChunk at = planar_chunk(a);
    float shift[V], sum[V] = {}, sum_squares[V] = {}, seen = 0.f;
    for (int lane = 0; lane < V; ++lane) shift[lane] = a.x[at.c * a.S * V];  // the channel's first value
    walk_chunk(a, at.c, at.begin, at.end,
               [&](const auto& units) { add_shifted_units(a, units, shift, sum, sum_squares, seen); });
    Welford w[V];
    for (int lane = 0; lane < V; ++lane) w[lane] = from_shifted_sums(seen, shift[lane], sum[lane], sum_squares[lane]);
    finish_planar<V>(a, at, w, [&](long long c, Welford total) { write_statistics(a, c, total); });
}

template <int V>
__device__ void statistics_rows(const BatchNormArguments a) {
    const RowsLane at = rows_lane<V>(a);
    float shift[V], sum[V] = {}, sum_squares[V] = {}, seen = 0.f;
    for (int lane = 0; lane < V; ++lane) shift[lane] = at.mine ? a.x[at.unit * V + lane] : 0.f;  // row 0's values
    if (at.mine)
        walk_rows<V>(a, at, [&](const auto& units) { add_shifted_units(a, units, shift, sum, sum_squares, seen); });
    Welford w[V];
    for (int lane = 0; lane < V; ++lane) w[lane] = from_shifted_sums(seen, shift[lane], sum[lane], sum_squares[lane]);
    finish_rows<V>(a, at, w, [&](long long c, Welford total) { write_statistics(a, c, total); });
}

// ----- normalize: y = (x - mean) * invstd * weight + bias ------------------------------
struct Affine {
    float center, scale, shift;
    __device__ __forceinline__ float operator()(float value) const { return (value - center) * scale + shift; }
};

// scale = invstd * weight; invstd is given, or 1/sqrt(running_var + eps) in eval mode.
__device__ __forceinline__ Affine affine_of(const BatchNormArguments& a, long long c) {
    const float invstd = a.invstd != nullptr ? a.invstd[c] : 1.f / sqrtf(a.running_var[c] + a.eps);
    return {a.mean[c], a.weight != nullptr ? invstd * a.weight[c] : invstd, a.bias != nullptr ? a.bias[c] : 0.f};
}

// Loads K units of `first` (and of x, when with_x), stores f(lane, first value, x value) of
// each to the output: normalize (first = x) and the input gradient (first = dy).
template <int V, class PerLane>
struct MapUnits {
    const BatchNormArguments& a;
    const float* first;
    bool with_x;
    PerLane f;
    template <int K>
    __device__ __forceinline__ void operator()(const Units<K>& units) const {
        float v[K][V], x[K][V] = {};
        load_units(first, units, v);
        if (with_x) load_units(a.x, units, x);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            for (int lane = 0; lane < V; ++lane) v[k][lane] = f(lane, v[k][lane], x[k][lane]);
            store<V>(a.output, units.at[k], v[k]);
        }
    }
};

template <int V>
__device__ void normalize_planar(const BatchNormArguments a) {
    const PlanarChunk at = planar_chunk(a);
    const Affine affine = affine_of(a, at.c);
    auto per_lane = [affine](int, float value, float) { return affine(value); };
    walk_chunk(a, at.c, at.begin, at.end, MapUnits<V, decltype(per_lane)>{a, a.x, false, per_lane});
}

template <int V>
__device__ void normalize_rows(const BatchNormArguments a) {
    const RowsLane at = rows_lane<V>(a);
    if (!at.mine) return;
    Affine affine[V];
    for (int lane = 0; lane < V; ++lane) affine[lane] = affine_of(a, channel_of<V>(a, at, lane));
    auto per_lane = [&affine](int lane, float value, float) { return affine[lane](value); };
    walk_rows<V>(a, at, MapUnits<V, decltype(per_lane)>{a, a.x, false, per_lane});
}

// ----- backward: per-channel sums, then dx ----------------------------------------------
// Adds dy and dy * (x - center) of K units to `sums` (one per lane).
template <int K, int V>
__device__ __forceinline__ void add_gradient_units(const BatchNormArguments& a, const Units<K>& units,
                                                   const float (&center)[V], Sums (&sums)[V]) {
    float dy[K][V], v[K][V];
    load_units(a.grad_output, units, dy);
    load_units(a.x, units, v);
#pragma unroll
    for (int k = 0; k < K; ++k)
        for (int lane = 0; lane < V; ++lane) {
            sums[lane].dy += dy[k][lane];
            sums[lane].dy_xc += dy[k][lane] * (v[k][lane] - center[lane]);
        }
}

__device__ __forceinline__ void write_sums(const BatchNormArguments& a, long long c, Sums total) {
    a.sum_dy[c] = total.dy;
    a.sum_dy_xhat[c] = total.dy_xc * a.invstd[c];
}

template <int V>
__device__ void backward_sums_planar(const BatchNormArguments a) {
    const PlanarChunk at = planar_chunk(a);
    float center[V];
    Sums lanes[V];
    for (int lane = 0; lane < V; ++lane) { center[lane] = a.mean[at.c]; lanes[lane] = {0.f, 0.f}; }
    walk_chunk(a, at.c, at.begin, at.end, [&](const auto& units) { add_gradient_units(a, units, center, lanes); });
    finish_planar<V>(a, at, lanes, [&](long long c, Sums total) { write_sums(a, c, total); });
}

template <int V>
__device__ void backward_sums_rows(const BatchNormArguments a) {
    const RowsLane at = rows_lane<V>(a);
    Sums sums[V];
    float center[V];
    for (int lane = 0; lane < V; ++lane) {
        sums[lane] = {0.f, 0.f};
        center[lane] = at.mine ? a.mean[channel_of<V>(a, at, lane)] : 0.f;
    }
    if (at.mine) walk_rows<V>(a, at, [&](const auto& units) { add_gradient_units(a, units, center, sums); });
    finish_rows<V>(a, at, sums, [&](long long c, Sums total) { write_sums(a, c, total); });
}

// dx = scale * (dy - mean_dy) - slope * (x - mean): scale = weight*invstd,
// mean_dy = sum_dy/M, slope = scale*invstd*sum_dy_xhat/M (both 0 in eval mode).
struct InputGradient {
    float scale, mean_dy, slope, center;
    __device__ __forceinline__ float operator()(float dy, float value) const {
        return scale * (dy - mean_dy) - slope * (value - center);
    }
};

__device__ __forceinline__ InputGradient input_gradient_of(const BatchNormArguments& a, long long c) {
    InputGradient g;
    const float invstd = a.invstd[c];
    g.scale = a.weight != nullptr ? a.weight[c] * invstd : invstd;
    g.center = a.mean[c];
    const bool training = a.count != nullptr;
    g.mean_dy = training ? (float)(a.sum_dy[c] / a.count[c]) : 0.f;
    g.slope = training ? g.scale * invstd * (float)(a.sum_dy_xhat[c] / a.count[c]) : 0.f;
    return g;
}

template <int V>
__device__ void backward_input_planar(const BatchNormArguments a) {
    const PlanarChunk at = planar_chunk(a);
    const InputGradient g = input_gradient_of(a, at.c);
    auto per_lane = [g](int, float dy, float value) { return g(dy, value); };
    // x is read in training only (count given)
    walk_chunk(a, at.c, at.begin, at.end,
               MapUnits<V, decltype(per_lane)>{a, a.grad_output, a.count != nullptr, per_lane});
}

template <int V>
__device__ void backward_input_rows(const BatchNormArguments a) {
    const RowsLane at = rows_lane<V>(a);
    if (!at.mine) return;
    InputGradient g[V];
    for (int lane = 0; lane < V; ++lane) g[lane] = input_gradient_of(a, channel_of<V>(a, at, lane));
    auto per_lane = [&g](int lane, float dy, float value) { return g[lane](dy, value); };
    walk_rows<V>(a, at, MapUnits<V, decltype(per_lane)>{a, a.grad_output, a.count != nullptr, per_lane});
}

// ----- the entry points: one per layout and vector width --------------------------------
#define ENTRY(name, body, threads)                                                                          \
    extern "C" __global__ void __launch_bounds__(threads, MIN_BLOCKS_SCALAR) name##_v1(const BatchNormArguments a) { \
        body<1>(a);                                                                                           \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(threads, MIN_BLOCKS_FLOAT4) name##_v4(const BatchNormArguments a) { \
        body<4>(a);                                                                                           \
    }

ENTRY(batch_norm_statistics_planar, statistics_planar, PLANAR_THREADS)
ENTRY(batch_norm_statistics_rows, statistics_rows, ROWS_X * ROWS_Y)
ENTRY(batch_norm_normalize_planar, normalize_planar, PLANAR_THREADS)
ENTRY(batch_norm_normalize_rows, normalize_rows, ROWS_X * ROWS_Y)
ENTRY(batch_norm_backward_sums_planar, backward_sums_planar, PLANAR_THREADS)
ENTRY(batch_norm_backward_sums_rows, backward_sums_rows, ROWS_X * ROWS_Y)
ENTRY(batch_norm_backward_input_planar, backward_input_planar, PLANAR_THREADS)
ENTRY(batch_norm_backward_input_rows, backward_input_rows, ROWS_X * ROWS_Y)
