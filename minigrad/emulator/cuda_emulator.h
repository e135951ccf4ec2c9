// Runs CUDA kernels on the CPU, for testing their logic where there is no GPU.
//
// Each block runs on its own, its threads as fibers (ucontext) on one OS
// thread; __syncthreads and warp shuffles are barriers between fibers, so a
// kernel whose threads do not all reach a barrier is reported as a deadlock
// instead of hanging. Blocks run in a seeded random order, which exercises
// "last block to arrive" logic. __shared__ variables become statics (one block
// at a time uses them); a block finds them as the previous block left them, so
// a kernel that forgets to initialize shared memory reads stale values. Not
// emulated: memory-model races between blocks, timing, the float precision of
// special functions (sqrtf is exact here). Not caught: out-of-bounds accesses
// (they touch host memory, or crash the process).
// Arithmetic is IEEE, one rounding per operation (-ffp-contract=off: no FMA).
// Supported: what kernels/*.cu use (1-/2-D blocks of whole warps, 2-D grids,
// __shared__ arrays, __shfl_down_sync with a full mask, atomicAdd on shared and
// global int, unsigned int, unsigned long long, float and double, float4,
// double2, __float_as_uint, the _rn arithmetic intrinsics).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(16) double2 {
    double x, y;
};

namespace emu {

struct Barrier {
    int expected = 0, arrived = 0;
    unsigned long generation = 0;
};

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    dim3 thread;
    int linear = 0;
    bool done = false;
};

inline dim3 block_index, block_dim, grid_dim;
inline std::vector<Fiber> fibers;
inline Fiber* current = nullptr;
inline ucontext_t scheduler;
inline Barrier block_barrier;
inline std::vector<Barrier> warp_barriers;
inline std::vector<uint64_t> shuffle_slots;
inline unsigned long events = 0;  // arrivals, releases and finished fibers: progress
inline std::function<void()> body;
inline std::string failure;

inline void yield() { swapcontext(&current->context, &scheduler); }

inline void wait(Barrier& barrier) {
    ++events;
    if (++barrier.arrived == barrier.expected) {
        barrier.arrived = 0;
        ++barrier.generation;
        return;
    }
    unsigned long generation = barrier.generation;
    while (barrier.generation == generation) yield();
}

inline void fiber_entry() {
    try {
        body();
    } catch (const std::exception& error) {
        if (failure.empty()) failure = error.what();
    }
    current->done = true;
    ++events;
    swapcontext(&current->context, &scheduler);
}

// Run `kernel_body` (one call per thread) for every block of the grid.
inline void launch(dim3 grid, dim3 block, unsigned int seed, std::function<void()> kernel_body) {
    const int threads = block.x * block.y * block.z;
    if (threads <= 0 || threads > 1024 || threads % 32 != 0)
        throw std::runtime_error("emulator: block of " + std::to_string(threads) + " threads (need whole warps, at most 1024)");
    if (grid.y > 65535 || grid.z > 65535) throw std::runtime_error("emulator: grid.y or grid.z above 65535");
    std::vector<unsigned long long> order;
    for (unsigned long long b = 0; b < (unsigned long long)grid.x * grid.y * grid.z; ++b) order.push_back(b);
    std::mt19937 random(seed);
    std::shuffle(order.begin(), order.end(), random);
    body = std::move(kernel_body);
    grid_dim = grid;
    block_dim = block;
    failure.clear();
    fibers.assign(threads, Fiber{});
    for (auto& fiber : fibers) fiber.stack.resize(256 * 1024);
    for (unsigned long long linear_block : order) {
        block_index = dim3(linear_block % grid.x, (linear_block / grid.x) % grid.y, linear_block / (grid.x * (unsigned long long)grid.y));
        block_barrier = Barrier{threads, 0, 0};
        warp_barriers.assign(threads / 32, Barrier{32, 0, 0});
        shuffle_slots.assign(threads, 0);
        for (int t = 0; t < threads; ++t) {
            Fiber& fiber = fibers[t];
            fiber.linear = t;
            fiber.thread = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            fiber.done = false;
            getcontext(&fiber.context);
            fiber.context.uc_stack.ss_sp = fiber.stack.data();
            fiber.context.uc_stack.ss_size = fiber.stack.size();
            fiber.context.uc_link = nullptr;
            makecontext(&fiber.context, fiber_entry, 0);
        }
        int alive = threads;
        while (alive > 0) {
            unsigned long before = events;
            alive = 0;
            for (auto& fiber : fibers) {
                if (fiber.done) continue;
                current = &fiber;
                swapcontext(&scheduler, &fiber.context);
                if (!fiber.done) ++alive;
            }
            if (!failure.empty()) throw std::runtime_error(failure);
            if (alive > 0 && events == before)
                throw std::runtime_error("emulator: deadlock in block (" + std::to_string(block_index.x) + ", " +
                                         std::to_string(block_index.y) + "): " + std::to_string(alive) +
                                         " threads wait at a barrier that the others never reach");
        }
    }
}

template <class T>
T shuffle_down(T value, unsigned int delta) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    const int lane = current->linear % 32, warp = current->linear / 32;
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    shuffle_slots[current->linear] = bits;
    wait(warp_barriers[warp]);
    T result = value;
    if (lane + delta < 32) std::memcpy(&result, &shuffle_slots[warp * 32 + lane + delta], sizeof(T));
    wait(warp_barriers[warp]);
    return result;
}

}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define threadIdx (emu::current->thread)
#define blockIdx (emu::block_index)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::wait(emu::block_barrier); }
inline void __threadfence() {}
template <class T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta) {
    if (mask != 0xffffffffu) throw std::runtime_error("emulator: only full-mask shuffles are emulated");
    return emu::shuffle_down(value, delta);
}
// Atomics on shared or global memory: fibers never run at once, so a plain update is atomic;
// the yield lets other threads run between an atomic and what follows. Overloads, not a
// template, so that arguments convert as they do in CUDA (atomicAdd(float*, 1.0) is a float add).
namespace emu {
template <class T>
T atomic_add(T* address, T value) {
    T old = *address;
    *address = old + value;
    ++events;
    yield();
    return old;
}
}  // namespace emu
inline int atomicAdd(int* address, int value) { return emu::atomic_add(address, value); }
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) { return emu::atomic_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return emu::atomic_add(address, value);
}
inline float atomicAdd(float* address, float value) { return emu::atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return emu::atomic_add(address, value); }
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
inline float __ldcg(const float* address) { return *address; }
// Correctly rounded single operations (compiled with -ffp-contract=off, so nothing fuses them).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
