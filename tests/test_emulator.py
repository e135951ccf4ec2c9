"""The CUDA emulator (minigrad/emulator) catches what a GPU would get wrong, on small test kernels.

Each kind of bug is shown on a kernel written for the test (not by breaking
kernels/*.cu), next to the correct kernel, which must pass: a missing fence
before a ticket, two launches in flight sharing tickets, a host array passed
as a pointer, a grid over 65535 in y, full-mask warp collectives in a partial
warp, lanes that skip a warp collective (a match) that the others call. Blocks run on several OS threads and threads switch between barriers,
which the last tests check.
"""
import threading
import time

import numpy as np
import pytest

from minigrad.emulator import EmulatedDevice
from minigrad.nn import batchnorm_cuda
from minigrad.prune import selection

import cuda_emulator

# Each block adds its value to a partial, takes a ticket; the last block sums the partials.
TICKETS = r'''
__device__ void sum_with_ticket(const int* values, int* partials, unsigned int* ticket, int* total, bool fence) {
    __shared__ bool last;
    if (threadIdx.x == 0) partials[blockIdx.x] = values[blockIdx.x];
    if (fence) __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(ticket, 1u) == gridDim.x - 1;
    __syncthreads();
    if (last && threadIdx.x == 0) {
        int sum = 0;
        for (unsigned int b = 0; b < gridDim.x; ++b) sum += partials[b];
        *total = sum;
        *ticket = 0u;
    }
}
extern "C" __global__ void fenced(const int* values, int* partials, unsigned int* ticket, int* total) {
    sum_with_ticket(values, partials, ticket, total, true);
}
extern "C" __global__ void unfenced(const int* values, int* partials, unsigned int* ticket, int* total) {
    sum_with_ticket(values, partials, ticket, total, false);
}
// Waits (at most about 20 s) until *flag is set from outside: keeps a launch in flight.
extern "C" __global__ void hold(unsigned int* ticket, const volatile int* flag) {
    for (int spin = 0; spin < 20000 && *flag == 0; ++spin) usleep(1000);
}
'''

WARPS = r'''
extern "C" __global__ void warp_sum(const int* values, int* sums, unsigned int mask, int width) {
    int lane = threadIdx.x & 31, value = values[threadIdx.x];
    for (int offset = width / 2; offset > 0; offset >>= 1) value += __shfl_down_sync(mask, value, offset, width);
    if (lane == 0) sums[threadIdx.x / 32] = value;
}
extern "C" __global__ void warp_ballot(const int* values, unsigned int* ballots, unsigned int mask) {
    unsigned int bits = __ballot_sync(mask, values[threadIdx.x] > 0);
    __syncwarp(mask);
    if ((threadIdx.x & 31) == 0) ballots[threadIdx.x / 32] = bits;
}
extern "C" __global__ void one_lane_per_block(int* out) {
    if (threadIdx.x == 0) out[blockIdx.y] = blockIdx.y;
}
extern "C" __global__ void worker_of_block(unsigned long long* workers) {
    if (threadIdx.x == 0) workers[blockIdx.x] = (unsigned long long)pthread_self();
    usleep(2000);  // a block takes a while: the other worker starts before the first has done them all
}
// Each thread appends its index to a log eight times, with an intrinsic (a possible switch) in between.
extern "C" __global__ void interleaving(int* log, int* length) {
    float x = 0.f;
    for (int k = 0; k < 8; ++k) {
        x = __fadd_rn(x, 1.f);
        log[(*length)++] = threadIdx.x;  // no atomic needed: a block's threads share one OS thread
    }
}
extern "C" __global__ void barrier_in_a_branch(int* out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1;
}
// __match_any_sync on 32- and 64-bit values (the high half only, as wide = 1) and __match_all_sync.
extern "C" __global__ void warp_match(const unsigned int* values, unsigned int* any, unsigned int* all, int* same,
                                      unsigned int mask, int wide) {
    const unsigned int value = values[threadIdx.x];
    any[threadIdx.x] = wide ? __match_any_sync(mask, (unsigned long long)value << 32 | threadIdx.x % 2 * 0u)
                            : __match_any_sync(mask, value);
    all[threadIdx.x] = __match_all_sync(mask, value, &same[threadIdx.x]);
}
// A warp-aggregated count (as prune.cu's histograms make it): lanes with equal bins add their number once.
extern "C" __global__ void aggregated_count(const unsigned int* bins, int n, unsigned int* counts, int* atomics) {
    const int i = threadIdx.x;
    const unsigned int bin = i < n ? bins[i] : 0xffffffffu;  // past the end: nothing to count, but still calls
    const unsigned int same = __match_any_sync(0xffffffffu, bin);
    if (bin != 0xffffffffu && __ffs(same) - 1 == i % 32) {
        atomicAdd(&counts[bin], (unsigned int)__popc(same));
        atomicAdd(atomics, 1);
    }
}
// The same, but lanes past the end leave before the match: they never reach it.
extern "C" __global__ void aggregated_count_past_the_end(const unsigned int* bins, int n, unsigned int* counts) {
    if ((int)threadIdx.x >= n) return;
    const unsigned int same = __match_any_sync(0xffffffffu, bins[threadIdx.x]);
    if (__ffs(same) - 1 == (int)threadIdx.x % 32) atomicAdd(&counts[bins[threadIdx.x]], (unsigned int)__popc(same));
}
'''


@pytest.fixture(scope="module")
def tickets():
    cuda_emulator.require_compiler()
    return EmulatedDevice(source="#include <unistd.h>\n" + TICKETS)


@pytest.fixture(scope="module")
def warps():
    cuda_emulator.require_compiler()
    return EmulatedDevice(source="#include <pthread.h>\n#include <unistd.h>\n" + WARPS)


def _sum_arguments(device, blocks=40):
    values = device.xp.arange(1, blocks + 1, dtype=np.int32)
    return values, device.xp.zeros(blocks, dtype=np.int32), device.tickets(1), device.xp.zeros(1, dtype=np.int32)


def test_a_fenced_ticket_gives_the_total_and_leaves_the_ticket_zero(tickets):
    for _ in range(5):  # blocks in a new random order, on two OS threads, each time
        arguments = _sum_arguments(tickets)
        tickets.kernel("fenced")((40,), (64,), arguments)
        assert int(arguments[3][0]) == 40 * 41 // 2
        assert int(arguments[2][0]) == 0


def test_a_ticket_taken_without_a_fence_is_an_error(tickets):
    with pytest.raises(RuntimeError, match=r"unfenced: block .* atomic on a ticket without a __threadfence"):
        tickets.kernel("unfenced")((40,), (64,), _sum_arguments(tickets))
    tickets._tickets[:] = 0  # the failed launch left its count


def test_two_launches_in_flight_sharing_tickets_is_an_error(tickets):
    flag = tickets.xp.zeros(1, dtype=np.int32)
    shared = tickets.tickets(1)
    first = threading.Thread(target=tickets.kernel("hold"), args=((1,), (32,), (shared, flag)))
    first.start()
    try:
        deadline = time.monotonic() + 10
        while not any("hold" in holder for holder in _holders()) and time.monotonic() < deadline:
            time.sleep(0.001)
        with pytest.raises(RuntimeError, match="fenced takes tickets that .*hold still holds"):
            tickets.kernel("fenced")((40,), (64,), _sum_arguments(tickets))
        own = EmulatedDevice(source="#include <unistd.h>\n" + TICKETS)  # its own tickets: no conflict
        arguments = _sum_arguments(own)
        own.kernel("fenced")((40,), (64,), arguments)
        assert int(arguments[3][0]) == 40 * 41 // 2
    finally:
        flag[0] = 1
        first.join(timeout=30)
    assert not first.is_alive()


def _holders():
    from minigrad.emulator import device
    with device._in_flight_lock:
        return list(device._in_flight.values())


def test_a_host_array_passed_as_a_pointer_is_an_error(tickets):
    values, partials, ticket, total = _sum_arguments(tickets)
    with pytest.raises(TypeError, match=r"fenced: argument 0 is a host \(NumPy\) array of shape \(40,\)"):
        tickets.kernel("fenced")((40,), (64,), (np.asarray(values).copy(), partials, ticket, total))
    tickets.kernel("fenced")((40,), (64,), (values, partials, ticket, total))  # a device array (or a view of one)
    assert int(total[0]) == 40 * 41 // 2


def test_a_host_array_passed_to_a_launcher_is_an_error(monkeypatch):
    emulated = cuda_emulator.OnEmulator(monkeypatch, batchnorm_cuda, "batchnorm")
    x = emulated.to_device(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    host_running_mean = np.zeros(3, dtype=np.float32)  # never moved to the device
    with pytest.raises(TypeError, match=r"numpy.ndarray of shape \(3,\) \(float32\) cannot reach a kernel"):
        batchnorm_cuda.steps.training_statistics(x, host_running_mean, None, 0.5, 1e-5)
    running_mean = emulated.to_device(host_running_mean)
    batchnorm_cuda.steps.training_statistics(x, running_mean, None, 0.5, 1e-5)
    np.testing.assert_allclose(np.asarray(running_mean), 0.5 * np.asarray(x).mean(axis=(0, 2)), rtol=1e-6)


def test_a_grid_over_65535_in_y_is_an_error_and_65535_runs(warps):
    out = warps.xp.full(65535, -1, dtype=np.int32)
    warps.kernel("one_lane_per_block")((1, 65535), (1,), (out,))
    assert np.array_equal(out, np.arange(65535))
    with pytest.raises(RuntimeError, match=r"grid \(1, 65536, 1\): grid.y and grid.z must be at most 65535"):
        warps.kernel("one_lane_per_block")((1, 65536), (1,), (warps.xp.zeros(65536, dtype=np.int32),))


def test_global_pruning_over_more_than_65535_tensors(monkeypatch):
    emulated = cuda_emulator.OnEmulator(monkeypatch, selection, "prune")
    rng = np.random.default_rng(0)
    flat = rng.normal(size=65537).astype(np.float32)  # distinct magnitudes: no ties
    expected = np.ones(flat.size, dtype=np.float32)
    expected[np.argsort(np.abs(flat))[:30000]] = 0
    got = selection.prune_smallest([emulated.to_device(flat[i:i + 1]) for i in range(flat.size)],
                                   [emulated.to_device(np.ones(1, np.float32)) for _ in range(flat.size)], 30000)
    assert np.array_equal(np.concatenate([np.asarray(mask) for mask in got]), expected)


def test_masked_shuffles_and_ballots_in_a_partial_warp(warps):
    values = warps.xp.arange(48, dtype=np.int32) - 20  # warps of 32 and 16 lanes
    sums = warps.xp.zeros(2, dtype=np.int32)
    with pytest.raises(RuntimeError, match=r"__shfl_down_sync with mask 0xffffffff in a warp of 16 lanes"):
        warps.kernel("warp_sum")((1,), (48,), (values, sums, np.uint32(0xffffffff), np.int32(32)))
    # a whole warp: the full mask is fine
    warps.kernel("warp_sum")((1,), (32,), (values, sums, np.uint32(0xffffffff), np.int32(32)))
    assert int(sums[0]) == sum(range(-20, 12))
    warps.kernel("warp_sum")((1,), (16,), (values, sums, np.uint32(0xffff), np.int32(16)))
    assert int(sums[0]) == sum(range(-20, -4))
    with pytest.raises(RuntimeError, match=r"__shfl_down_sync reads lane \d+, outside its mask"):
        warps.kernel("warp_sum")((1,), (16,), (values, sums, np.uint32(0xffff), np.int32(32)))
    ballots = warps.xp.zeros(2, dtype=np.uint32)
    warps.kernel("warp_ballot")((1,), (16,), (values, ballots, np.uint32(0xffff)))
    assert int(ballots[0]) == 0  # values -20..-5: none positive
    values[:] = warps.xp.arange(16, dtype=np.int32)[np.arange(48) % 16]
    warps.kernel("warp_ballot")((1,), (16,), (values, ballots, np.uint32(0xffff)))
    assert int(ballots[0]) == 0xfffe  # lane 0 holds 0
    with pytest.raises(RuntimeError, match=r"__ballot_sync with mask 0xffffffff in a warp of 16 lanes"):
        warps.kernel("warp_ballot")((1,), (16,), (values, ballots, np.uint32(0xffffffff)))


def _same_value_lanes(values, mask):
    return [sum(1 << other for other in range(32) if mask >> other & 1 and values[other] == values[lane])
            for lane in range(32)]


def test_match_any_and_match_all_in_whole_and_partial_warps(warps):
    values = warps.xp.asarray(np.arange(48) % 3 * 7, dtype=np.uint32)  # three values per warp
    any_, all_, same = (warps.xp.zeros(48, dtype=dtype) for dtype in (np.uint32, np.uint32, np.int32))
    for wide in (0, 1):
        warps.kernel("warp_match")((1,), (32,), (values, any_, all_, same, np.uint32(0xffffffff), np.int32(wide)))
        assert any_.tolist()[:32] == _same_value_lanes(values.tolist(), 0xffffffff)
        assert all_.tolist()[:32] == [0] * 32 and same.tolist()[:32] == [0] * 32
    values[:] = 5
    warps.kernel("warp_match")((1,), (32,), (values, any_, all_, same, np.uint32(0xffffffff), np.int32(0)))
    assert any_.tolist()[:32] == all_.tolist()[:32] == [0xffffffff] * 32 and same.tolist()[:32] == [1] * 32
    values[:] = warps.xp.asarray(np.arange(48) % 2, dtype=np.uint32)
    warps.kernel("warp_match")((1,), (16,), (values, any_, all_, same, np.uint32(0xffff), np.int32(0)))
    assert any_.tolist()[:16] == [0x5555, 0xaaaa] * 8  # lanes outside the mask never match
    with pytest.raises(RuntimeError, match=r"__match_any_sync with mask 0xffffffff in a warp of 16 lanes"):
        warps.kernel("warp_match")((1,), (48,), (values, any_, all_, same, np.uint32(0xffffffff), np.int32(0)))


def test_a_warp_aggregated_count_makes_one_atomic_per_distinct_bin(warps):
    rng = np.random.default_rng(0)
    for n, bins in [(75, np.full(75, 3)), (96, rng.choice([2, 9, 14], size=96)), (50, rng.integers(0, 16, size=50))]:
        counts, atomics = warps.xp.zeros(16, dtype=np.uint32), warps.xp.zeros(1, dtype=np.int32)
        warps.kernel("aggregated_count")((1,), (96,), (warps.xp.asarray(np.resize(bins, 96), dtype=np.uint32),
                                                        np.int32(n), counts, atomics))
        assert counts.tolist() == np.bincount(bins[:n], minlength=16).tolist()
        distinct_per_warp = sum(len(set(bins[start:min(start + 32, n)].tolist())) for start in range(0, n, 32))
        assert int(atomics[0]) == distinct_per_warp  # e.g. all equal: one atomic per warp, not 75
    with pytest.raises(RuntimeError, match="deadlock in block"):  # lanes that leave early never meet the match
        warps.kernel("aggregated_count_past_the_end")((1,), (96,), (warps.xp.zeros(96, dtype=np.uint32),
                                                                     np.int32(75), warps.xp.zeros(16, np.uint32)))


def test_a_barrier_that_some_threads_skip_is_a_deadlock_not_a_hang(warps):
    with pytest.raises(RuntimeError, match="deadlock in block"):
        warps.kernel("barrier_in_a_branch")((1,), (64,), (warps.xp.zeros(64, dtype=np.int32),))


def test_blocks_run_on_several_os_threads(warps):
    workers = warps.xp.zeros(64, dtype=np.uint64)
    warps.kernel("worker_of_block")((64,), (32,), (workers,))
    assert len(set(workers.tolist())) == warps.workers == 2


def test_threads_switch_between_barriers_at_random():
    cuda_emulator.require_compiler()
    runs = {}
    for chance in (0.0, 0.5):
        device = EmulatedDevice(source="#include <pthread.h>\n#include <unistd.h>\n" + WARPS, switch_chance=chance)
        log, length = device.xp.zeros(64 * 8, dtype=np.int32), device.xp.zeros(1, dtype=np.int32)
        device.kernel("interleaving")((1,), (64,), (log, length))
        assert int(length[0]) == 64 * 8 and np.array_equal(np.bincount(log), [8] * 64)
        runs[chance] = int((np.diff(log) != 0).sum()) + 1  # stretches of one thread
    assert runs[0.0] == 64  # without switches each thread runs from start to end
    assert runs[0.5] > 3 * 64


def test_python_m_minigrad_emulate_checks_every_kernel_file_against_its_twin(capsys):
    from minigrad import emulate
    assert emulate.main([]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["batchnorm.cu", "prune.cu"]
    assert printed[1].endswith("mask 0")
    with pytest.raises(SystemExit):
        emulate.main(["nonsense"])


def test_emulate_puts_the_device_back():
    from minigrad.emulator import emulate
    before = selection.device
    with emulate("prune") as device:
        assert selection.device is device and isinstance(device, EmulatedDevice)
    assert selection.device is before


MORE_INTRINSICS = r'''
extern "C" __global__ void intrinsics(const unsigned int* values, unsigned int* out, const uchar4* bytes) {
    const unsigned int value = values[threadIdx.x];
    atomicMax(&out[0], value);
    atomicMin(&out[1], value);
    atomicCAS(&out[2], 0u, threadIdx.x + 1);  // only the first thread to come swaps
    atomicOr(&out[3], 1u << (threadIdx.x % 32));
    int odd = __syncthreads_count(value % 2);
    unsigned int xor_sum = value;
    for (int mask = 16; mask > 0; mask >>= 1) xor_sum += __shfl_xor_sync(0xffffffffu, xor_sum, mask);
    uchar4 b = bytes[threadIdx.x];
    if (threadIdx.x == 0) {
        out[4] = odd;
        out[5] = xor_sum;
        out[6] = __popc(value) + __clz(value) + __ffs(value);
        out[7] = __brev(1u);
        out[8] = b.x + b.y + b.z + b.w;
    }
}
'''


def test_more_intrinsics_a_rewrite_may_use():
    cuda_emulator.require_compiler()
    device = EmulatedDevice(source=MORE_INTRINSICS)
    values = device.xp.asarray((np.arange(64) * 37 + 5) % 101, dtype=np.uint32)
    out = device.xp.asarray([0, 2 ** 32 - 1, 0, 0, 0, 0, 0, 0, 0], dtype=np.uint32)
    bytes_ = device.xp.asarray(np.arange(256) % 7, dtype=np.uint8)
    device.kernel("intrinsics")((1,), (64,), (values, out, bytes_))
    host = np.asarray(values)
    first = int(host[0])
    assert out.tolist()[:2] == [host.max(), host.min()]
    assert 1 <= int(out[2]) <= 64 and int(out[3]) == 0xffffffff
    assert int(out[4]) == int((host % 2).sum()) and int(out[5]) == int(host[:32].sum())
    assert int(out[6]) == bin(first).count("1") + (32 - first.bit_length()) + (first & -first).bit_length()
    assert int(out[7]) == 0x80000000 and int(out[8]) == 0 + 1 + 2 + 3
