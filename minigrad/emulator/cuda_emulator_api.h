// The CUDA side of the emulator (included by cuda_emulator.h, which says what the
// emulator does and cannot show): keywords and built-in variables, warp collectives,
// atomics, fences and the intrinsics kernels use.
#pragma once

namespace emu {

// ----- warp collectives -------------------------------------------------------------
inline int lane() { return worker->current->linear % 32; }
inline Warp& my_warp() { return worker->warps[worker->current->linear / 32]; }

inline std::string hex(unsigned int mask) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", mask);
    return text;
}

// Check the mask and meet the other lanes it names.
inline void warp_meet(unsigned int mask, const char* what) {
    Warp& warp = my_warp();
    const unsigned int existing = warp.lanes == 32 ? 0xffffffffu : (1u << warp.lanes) - 1u;
    if (mask & ~existing)
        throw std::runtime_error(std::string(what) + " with mask " + hex(mask) + " in a warp of " +
                                 std::to_string(warp.lanes) + " lanes: the mask names lanes that do not exist");
    if (!(mask >> lane() & 1u)) throw std::runtime_error(std::string(what) + " by a lane its mask leaves out");
    Barrier& barrier = warp.barriers[mask];
    barrier.expected = __builtin_popcount(mask);
    wait(barrier);
}

template <class T>
T exchange(unsigned int mask, T value, int source, const char* what) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    Warp& warp = my_warp();
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    warp.slots[lane()] = bits;
    warp_meet(mask, what);
    T result = value;
    if (source >= 0 && source < 32) {
        if (!(mask >> source & 1u))
            throw std::runtime_error(std::string(what) + " reads lane " + std::to_string(source) + ", outside its mask");
        std::memcpy(&result, &warp.slots[source], sizeof(T));
    }
    warp_meet(mask, what);
    return result;
}

// The lane a shuffle reads, within segments of `width` lanes; -1: keep the own value.
// Down and up shuffles keep their value past the segment's end; an xor shuffle may
// read an earlier segment, not a later one.
inline int segment_lane(int target, int width, bool earlier_allowed) {
    const int own = lane(), start = own - own % width;
    if (target >= start + width || (target < start && !earlier_allowed)) return -1;
    return target;
}

// ----- atomics ----------------------------------------------------------------------
inline void check_ticket(const void* address) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(address);
    if (at < worker->launch->tickets_begin || at >= worker->launch->tickets_end) return;
    if (!worker->current->fenced)
        throw std::runtime_error("atomic on a ticket without a __threadfence before it: the block that arrives "
                                 "last may read this block's results before they are visible");
    worker->current->fenced = false;
}

// One atomic read-modify-write: new value = change(old); returns old.
template <class T, class Change>
T atomic_update(T* address, Change change) {
    check_ticket(address);
    T old;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    T updated;
    do updated = change(old);
    while (!__atomic_compare_exchange(address, &old, &updated, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    yield();
    return old;
}

template <class T>
T atomic_add(T* address, T value) {
    check_ticket(address);
    T old;
    if constexpr (std::is_integral_v<T>) {
        old = __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
    } else {
        __atomic_load(address, &old, __ATOMIC_RELAXED);
        T sum;
        do sum = old + value;
        while (!__atomic_compare_exchange(address, &old, &sum, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    }
    yield();
    return old;
}

}  // namespace emu

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static thread_local
#define threadIdx (emu::worker->current->thread)
#define blockIdx (emu::worker->block_index)
#define blockDim (emu::worker->launch->block)
#define gridDim (emu::worker->launch->grid)
#define warpSize 32

inline void __syncthreads() { emu::wait(emu::worker->block_barrier); }
inline void __threadfence() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    emu::worker->current->fenced = true;
    emu::yield();
}
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) { emu::warp_meet(mask, "__syncwarp"); }
namespace emu {
// The lanes of `mask` whose posted value passes `test`, after every lane of the mask posted its own.
template <class Test>
unsigned int lanes_where(unsigned int mask, uint64_t posted, const char* what, Test test) {
    Warp& warp = my_warp();
    warp.slots[lane()] = posted;
    warp_meet(mask, what);
    unsigned int lanes = 0;
    for (int l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && test(warp.slots[l])) lanes |= 1u << l;
    warp_meet(mask, what);  // no lane posts again before every lane has read
    return lanes;
}

template <class T>
uint64_t bits_of(T value) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "a match takes a 32- or 64-bit value");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}
}  // namespace emu

inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
    return emu::lanes_where(mask, predicate != 0, "__ballot_sync", [](uint64_t posted) { return posted != 0; });
}
// The lanes of the mask whose value has the same bits as this lane's.
template <class T>
unsigned int __match_any_sync(unsigned int mask, T value) {
    const uint64_t own = emu::bits_of(value);
    return emu::lanes_where(mask, own, "__match_any_sync", [own](uint64_t posted) { return posted == own; });
}
// The mask if every lane of it holds the same bits (and *predicate = 1), else 0 (and *predicate = 0).
template <class T>
unsigned int __match_all_sync(unsigned int mask, T value, int* predicate) {
    const uint64_t own = emu::bits_of(value);
    const bool all = emu::lanes_where(mask, own, "__match_all_sync", [own](uint64_t posted) { return posted == own; })
                     == mask;
    *predicate = all;
    return all ? mask : 0u;
}
inline int __any_sync(unsigned int mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned int mask, int predicate) { return __ballot_sync(mask, predicate) == mask; }
template <class T>
T __shfl_sync(unsigned int mask, T value, int source, int width = 32) {
    const int own = emu::lane();
    return emu::exchange(mask, value, own - own % width + ((source % width) + width) % width, "__shfl_sync");
}
template <class T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    return emu::exchange(mask, value, emu::segment_lane(emu::lane() + (int)delta, width, false), "__shfl_down_sync");
}
template <class T>
T __shfl_up_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    return emu::exchange(mask, value, emu::segment_lane(emu::lane() - (int)delta, width, false), "__shfl_up_sync");
}
template <class T>
T __shfl_xor_sync(unsigned int mask, T value, int lane_mask, int width = 32) {
    return emu::exchange(mask, value, emu::segment_lane(emu::lane() ^ lane_mask, width, true), "__shfl_xor_sync");
}
// Overloads, not a template, so that arguments convert as they do in CUDA (atomicAdd(float*, 1.0) is a float add).
inline int atomicAdd(int* address, int value) { return emu::atomic_add(address, value); }
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) { return emu::atomic_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return emu::atomic_add(address, value);
}
inline float atomicAdd(float* address, float value) { return emu::atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return emu::atomic_add(address, value); }
#define EMU_INTEGER_ATOMICS(T)                                                                    \
    inline T atomicMax(T* address, T value) {                                                     \
        return emu::atomic_update(address, [=](T old) { return old < value ? value : old; });    \
    }                                                                                             \
    inline T atomicMin(T* address, T value) {                                                     \
        return emu::atomic_update(address, [=](T old) { return value < old ? value : old; });    \
    }                                                                                             \
    inline T atomicExch(T* address, T value) {                                                    \
        return emu::atomic_update(address, [=](T) { return value; });                             \
    }                                                                                             \
    inline T atomicCAS(T* address, T compare, T value) {                                          \
        return emu::atomic_update(address, [=](T old) { return old == compare ? value : old; });  \
    }                                                                                             \
    inline T atomicOr(T* address, T value) {                                                      \
        return emu::atomic_update(address, [=](T old) { return old | value; });                   \
    }                                                                                             \
    inline T atomicAnd(T* address, T value) {                                                     \
        return emu::atomic_update(address, [=](T old) { return old & value; });                   \
    }
EMU_INTEGER_ATOMICS(int)
EMU_INTEGER_ATOMICS(unsigned int)
EMU_INTEGER_ATOMICS(unsigned long long)
#undef EMU_INTEGER_ATOMICS
inline unsigned int atomicSub(unsigned int* address, unsigned int value) {
    return emu::atomic_add(address, 0u - value);
}
inline int atomicSub(int* address, int value) { return emu::atomic_add(address, -value); }
inline unsigned int atomicInc(unsigned int* address, unsigned int limit) {
    return emu::atomic_update(address, [=](unsigned int old) { return old >= limit ? 0u : old + 1u; });
}
inline int __syncthreads_count(int predicate) {  // a barrier that also counts the threads whose predicate holds
    static thread_local int count;
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) count = 0;
    __syncthreads();
    if (predicate) ++count;  // the block's fibers share one OS thread: no atomic needed
    __syncthreads();
    int total = count;
    __syncthreads();
    return total;
}
inline int __syncthreads_or(int predicate) { return __syncthreads_count(predicate) != 0; }
inline int __syncthreads_and(int predicate) {
    const int threads = blockDim.x * blockDim.y * blockDim.z;
    return __syncthreads_count(predicate) == threads;
}
inline int __popc(unsigned int bits) { return __builtin_popcount(bits); }
inline int __popcll(unsigned long long bits) { return __builtin_popcountll(bits); }
inline int __clz(unsigned int bits) { return bits ? __builtin_clz(bits) : 32; }
inline int __clzll(unsigned long long bits) { return bits ? __builtin_clzll(bits) : 64; }
inline int __ffs(unsigned int bits) { return __builtin_ffs((int)bits); }
inline unsigned int __brev(unsigned int bits) {
    unsigned int reversed = 0;
    for (int k = 0; k < 32; ++k) reversed |= ((bits >> k) & 1u) << (31 - k);
    return reversed;
}
inline unsigned int __float_as_uint(float value) {
    unsigned int bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}
inline float __uint_as_float(unsigned int bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}
// Cache-hinted loads and stores: plain accesses here (and a possible switch).
template <class T>
T __ldcg(const T* address) {
    emu::maybe_yield();
    return *address;
}
template <class T> T __ldg(const T* address) { return __ldcg(address); }
template <class T> T __ldcs(const T* address) { return __ldcg(address); }
template <class T> T __ldlu(const T* address) { return __ldcg(address); }
template <class T> void __stcg(T* address, T value) { emu::maybe_yield(), *address = value; }
template <class T> void __stcs(T* address, T value) { emu::maybe_yield(), *address = value; }
// Correctly rounded single operations (compiled with -ffp-contract=off, so nothing fuses them).
inline float __fmul_rn(float a, float b) { return emu::maybe_yield(), a * b; }
inline float __fadd_rn(float a, float b) { return emu::maybe_yield(), a + b; }
inline float __fsub_rn(float a, float b) { return emu::maybe_yield(), a - b; }
inline double __dmul_rn(double a, double b) { return emu::maybe_yield(), a * b; }
inline double __dadd_rn(double a, double b) { return emu::maybe_yield(), a + b; }
inline double __dsub_rn(double a, double b) { return emu::maybe_yield(), a - b; }
inline float __fdiv_rn(float a, float b) { return emu::maybe_yield(), a / b; }
inline float __frcp_rn(float a) { return emu::maybe_yield(), 1.f / a; }
inline float __fsqrt_rn(float a) { return emu::maybe_yield(), std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return emu::maybe_yield(), std::fma(a, b, c); }
inline double __ddiv_rn(double a, double b) { return emu::maybe_yield(), a / b; }
inline double __fma_rn(double a, double b, double c) { return emu::maybe_yield(), std::fma(a, b, c); }
inline float rsqrtf(float a) { return 1.f / std::sqrt(a); }  // exact here; the GPU's is approximate
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
