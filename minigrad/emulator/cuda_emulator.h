// Runs CUDA kernels on the CPU, for testing their logic where there is no GPU.
//
// What it does:
// - Blocks run concurrently on a few OS threads (workers), taken from a seeded
//   random permutation of the grid, so "last block to arrive" logic meets real
//   interleavings and real atomics. Global atomics are atomic read-modify-writes
//   (sequentially consistent); __threadfence is std::atomic_thread_fence.
// - A block's threads are fibers on its worker (a few instructions swap stacks on
//   x86-64; ucontext elsewhere). They switch at every
//   barrier, shuffle, atomic and fence, and at random (seeded) at the emulated
//   intrinsics in between (__ldcg, the _rn arithmetic), visiting the fibers in a
//   random order each round. A kernel whose threads do not all reach a barrier is
//   reported as a deadlock instead of hanging.
// - Warps may be partial (a block of 48 threads has a warp of 16 lanes). Warp
//   collectives (__shfl*_sync, __ballot_sync, __any_sync, __all_sync,
//   __match_any_sync, __match_all_sync, __syncwarp) take a mask: every lane it
//   names must exist and call with the same mask (a lane that skips the call,
//   e.g. past the end of the data, is a deadlock), and a shuffle may read only
//   lanes of the mask.
// - __shared__ variables are per worker (static thread_local): a block finds
//   them as the previous block on its worker left them, so a kernel that forgets
//   to initialize shared memory reads stale values.
// - Tickets: an atomic on memory the launch marked as tickets must follow a
//   __threadfence in the same thread (since its previous ticket): otherwise the
//   block that arrives last could read partial results not yet visible.
// - Limits are checked: at most 1024 threads per block, grid.y and grid.z at
//   most 65535. (In Python, minigrad/emulator/device.py: a pointer argument must be
//   device memory, and two launches in flight may not share a ticket buffer.)
//
// What it cannot show:
// - Concurrency between blocks beyond what the host's threads give (two workers
//   by default; a GPU runs thousands of threads at once, and a switch inside a
//   block happens only at the points above, never between two plain loads).
// - The GPU's memory ordering: the host (x86: total store order) is stronger
//   than the GPU's, so a missing fence is caught only by the ticket rule above,
//   not by a stale read.
// - Speed, occupancy, registers, coalescing, bank conflicts, and contention:
//   an atomic costs the same whether 1 or 32 lanes hit one address (so a warp-
//   aggregated histogram is checked for its counts, never for its speed).
// - Out-of-bounds accesses (they touch host memory, or crash the process), and
//   pointers inside tables (only pointer arguments are checked, in Python).
// - The float precision of special functions (sqrtf is exact here). Arithmetic
//   is IEEE, one rounding per operation (-ffp-contract=off: no FMA).
//
// Supported (cuda_emulator_api.h): 1-3-D blocks and grids, __shared__ arrays (not
// extern __shared__), warp collectives with masks (shuffles, ballot, any, all,
// match_any and match_all on 32- and 64-bit values), __syncthreads_count/_or/_and,
// atomicAdd on int, unsigned int, unsigned long long, float and double, atomicMax,
// Min, Exch, CAS, Or, And on the integer types, atomicSub, atomicInc, float2/4,
// double2, uchar4, int4, uint4, __float_as_uint, __popc, __clz, __ffs, __brev, the
// _rn arithmetic intrinsics, rsqrtf, cache-hinted loads and stores (__ldg, __ldcg, ...).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
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
struct alignas(8) float2 {
    float x, y;
};
struct alignas(4) uchar4 {
    unsigned char x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z, unsigned char w) { return {x, y, z, w}; }

namespace emu {

struct Barrier {
    int expected = 0, arrived = 0;
    unsigned long generation = 0;
};

struct Fiber {
    ucontext_t context;         // where swapcontext switches
    void* stack_pointer = nullptr;  // where emu_switch switches
    dim3 thread;
    int linear = 0;
    bool done = false;
    bool fenced = false;  // a __threadfence since this thread's last ticket
};

struct Launch {  // one kernel launch, shared by its workers
    dim3 grid, block;
    std::function<void()> body;
    std::vector<unsigned long long> order;  // blocks, in the order workers take them
    std::atomic<size_t> next{0};
    std::mutex lock;
    std::string failure;
    uintptr_t tickets_begin = 0, tickets_end = 0;
    double switch_chance = 0.125;  // of a fiber switch at an emulated intrinsic
    unsigned int seed = 0;
};

struct Warp {
    int lanes = 32;
    std::map<unsigned int, Barrier> barriers;  // one per mask in use
    uint64_t slots[32] = {};
};

struct Worker {  // one OS thread: runs one block at a time, its threads as fibers
    Launch* launch = nullptr;
    dim3 block_index;
    std::vector<Fiber> fibers;
    std::unique_ptr<char[]> stacks;
    size_t stack_size = 256 * 1024;
    Fiber* current = nullptr;
    ucontext_t scheduler;
    void* scheduler_stack = nullptr;
    Barrier block_barrier;
    std::vector<Warp> warps;
    unsigned long events = 0;  // arrivals, releases, switches and finished fibers: progress
    std::string failure;
    uint64_t random = 1;
};

inline thread_local Worker* worker = nullptr;

inline uint64_t next_random() {  // xorshift64: cheap, seeded per block
    uint64_t& x = worker->random;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

inline std::string where() {
    const dim3& b = worker->block_index;
    const dim3& t = worker->current->thread;
    return "block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ") thread (" +
           std::to_string(t.x) + ", " + std::to_string(t.y) + ", " + std::to_string(t.z) + ")";
}

// Switches between the scheduler and the fibers. On x86-64: a few instructions that swap
// stacks and the callee-saved registers (swapcontext makes a system call each time);
// elsewhere: swapcontext.
#if defined(__x86_64__)
extern "C" void emu_switch(void** save_stack, void* stack);
asm(R"(
    .text
    .weak emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
)");
inline void fiber_entry();
inline void start(Fiber& fiber, char* stack, size_t size) {  // a stack that "returns" into fiber_entry
    auto top = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15));
    *--top = nullptr;                                      // fiber_entry's return address (it never returns)
    *--top = reinterpret_cast<void*>(&fiber_entry);        // where emu_switch's ret goes
    for (int k = 0; k < 6; ++k) *--top = nullptr;          // rbp, rbx, r12-r15
    fiber.stack_pointer = top;
}
inline void switch_out() { emu_switch(&worker->current->stack_pointer, worker->scheduler_stack); }
inline void resume(Fiber& fiber) { emu_switch(&worker->scheduler_stack, fiber.stack_pointer); }
#else
inline void fiber_entry();
inline void start(Fiber& fiber, char* stack, size_t size) {
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = stack;
    fiber.context.uc_stack.ss_size = size;
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, fiber_entry, 0);
}
inline void switch_out() { swapcontext(&worker->current->context, &worker->scheduler); }
inline void resume(Fiber& fiber) { swapcontext(&worker->scheduler, &fiber.context); }
#endif

inline void yield() {
    ++worker->events;
    switch_out();
}

// A switch at random between barriers (at the emulated intrinsics).
inline void maybe_yield() {
    if (worker != nullptr && worker->current != nullptr &&
        (next_random() >> 11) * (1.0 / 9007199254740992.0) < worker->launch->switch_chance)
        yield();
}

inline void wait(Barrier& barrier) {
    ++worker->events;
    if (++barrier.arrived == barrier.expected) {
        barrier.arrived = 0;
        ++barrier.generation;
        return;
    }
    unsigned long generation = barrier.generation;
    while (barrier.generation == generation) switch_out();
}

inline void fiber_entry() {
    try {
        worker->launch->body();
    } catch (const std::exception& error) {
        if (worker->failure.empty()) worker->failure = where() + ": " + error.what();
    }
    worker->current->done = true;
    ++worker->events;
    switch_out();
}

inline void run_block(unsigned long long linear_block) {
    Worker& w = *worker;
    const dim3 grid = w.launch->grid, block = w.launch->block;
    const int threads = block.x * block.y * block.z;
    w.block_index = dim3(linear_block % grid.x, (linear_block / grid.x) % grid.y,
                         linear_block / (grid.x * (unsigned long long)grid.y));
    w.random = (w.launch->seed + 1) * 0x9E3779B97F4A7C15ull ^ (linear_block + 1) * 0xBF58476D1CE4E5B9ull;
    if (w.random == 0) w.random = 1;
    w.block_barrier = Barrier{threads, 0, 0};
    w.warps.assign((threads + 31) / 32, Warp{});
    w.warps.back().lanes = threads - 32 * ((threads - 1) / 32);
    for (int t = 0; t < threads; ++t) {
        Fiber& fiber = w.fibers[t];
        fiber.linear = t;
        fiber.thread = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
        fiber.done = false;
        fiber.fenced = false;
        start(fiber, w.stacks.get() + t * w.stack_size, w.stack_size);
    }
    std::vector<int> visit(threads);
    for (int t = 0; t < threads; ++t) visit[t] = t;
    int alive = threads;
    while (alive > 0) {
        unsigned long before = w.events;
        for (int t = threads - 1; t > 0; --t) std::swap(visit[t], visit[next_random() % (t + 1)]);
        alive = 0;
        for (int t : visit) {
            Fiber& fiber = w.fibers[t];
            if (fiber.done) continue;
            w.current = &fiber;
            resume(fiber);
            if (!fiber.done) ++alive;
        }
        w.current = nullptr;
        if (!w.failure.empty()) throw std::runtime_error(w.failure);
        if (alive > 0 && w.events == before)
            throw std::runtime_error("deadlock in block (" + std::to_string(w.block_index.x) + ", " +
                                     std::to_string(w.block_index.y) + "): " + std::to_string(alive) +
                                     " threads wait at a barrier that the others never reach");
    }
}

inline void work(Launch* launch) {
    Worker w;
    w.launch = launch;
    const int threads = launch->block.x * launch->block.y * launch->block.z;
    w.fibers.assign(threads, Fiber{});
    w.stacks.reset(new char[threads * w.stack_size]);  // not zeroed: pages are touched as stacks grow
    worker = &w;
    try {
        for (size_t i = launch->next++; i < launch->order.size(); i = launch->next++) {
            {
                std::lock_guard<std::mutex> guard(launch->lock);
                if (!launch->failure.empty()) break;
            }
            run_block(launch->order[i]);
        }
    } catch (const std::exception& error) {
        std::lock_guard<std::mutex> guard(launch->lock);
        if (launch->failure.empty()) launch->failure = error.what();
    }
    worker = nullptr;
}

// Run `kernel_body` (one call per thread) for every block of the grid, on `workers` OS threads.
inline void launch(dim3 grid, dim3 block, unsigned int seed, int workers, uintptr_t tickets_begin,
                   uintptr_t tickets_end, double switch_chance, std::function<void()> kernel_body) {
    const long long threads = (long long)block.x * block.y * block.z;
    if (threads <= 0 || threads > 1024 || block.z > 64)
        throw std::runtime_error("block of " + std::to_string(threads) + " threads (need 1 to 1024, z at most 64)");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) throw std::runtime_error("empty grid");
    if (grid.y > 65535 || grid.z > 65535)
        throw std::runtime_error("grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
                                 std::to_string(grid.z) + "): grid.y and grid.z must be at most 65535");
    Launch state;
    state.grid = grid;
    state.block = block;
    state.seed = seed;
    state.tickets_begin = tickets_begin;
    state.tickets_end = tickets_end;
    state.switch_chance = switch_chance;
    state.body = std::move(kernel_body);
    const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    state.order.resize(blocks);
    for (unsigned long long b = 0; b < blocks; ++b) state.order[b] = b;
    std::mt19937 random(seed);
    std::shuffle(state.order.begin(), state.order.end(), random);
    workers = (int)std::max(1ull, std::min((unsigned long long)std::max(workers, 1), blocks));
    std::vector<std::thread> helpers;
    for (int k = 1; k < workers; ++k) helpers.emplace_back(work, &state);
    work(&state);
    for (auto& helper : helpers) helper.join();
    if (!state.failure.empty()) throw std::runtime_error(state.failure);
}

}  // namespace emu

// What kernels see: CUDA's keywords, built-in variables and intrinsics.
#include "cuda_emulator_api.h"
