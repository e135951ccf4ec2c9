"""kernels/batchnorm.cu against its NumPy twins (minigrad/nn/batchnorm.py).

Every step of ``CudaSteps`` (minigrad/nn/batchnorm_cuda.py) is compared with the twin
of the same name on fresh random inputs of awkward sizes (not multiples of the
block size; float4 and scalar variants; planar NCHW and rows (N, C) layouts;
several blocks per channel). Two devices run the same checks:

- "emulated": the kernels compiled with g++ and run on the CPU by
  minigrad/emulator/cuda_emulator.h (threads as fibers, blocks in random order), so the
  launch geometry, argument types and the last-block merges are checked
  without a GPU;
- "cuda": the real GPU (marker gpu; skipped without CUDA).
"""
import math
import re
import types

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, kernels
from minigrad.nn import batchnorm as reference
from minigrad.nn import batchnorm_cuda
from minigrad.nn.batchnorm_steps import BatchNormSteps

STEPS = batchnorm_cuda.steps

import cuda_emulator

# Shapes: planar scalar (S odd), planar float4 (S % 4 == 0, S > 16), rows float4 and
# scalar (C % 4), a single row per chunk, one-channel inputs, rows of fewer than 32
# units (C = 10: three rows side by side per warp; C = 12 as float4: ten).
EMULATED_SHAPES = [(3, 5, 7, 11), (33, 12, 13, 13), (5, 3, 6, 4), (257, 100), (67, 37), (2, 1, 3, 7),
                   (45, 10), (83, 12)]
# Tiny maps (S <= 16) take the rows kernels, a row being one sample's C*S values: S = 1, 2, 3, 4, 9
# with odd N and C (scalar: C*S % 4 != 0), float4 rows whose units hold part of a channel (S = 9,
# C = 20: 45 units, cut into groups of 27) or several channels (S = 2), a row cut into groups of
# 32 + 1 units (S = 4, C = 33) or 30 + 15 floats (S = 3, C = 15), side by side rows (S = 4, C = 5:
# five units, six rows per warp) and several chunks of rows (N = 67, 129).
TINY_SHAPES = [(7, 5, 1, 1), (9, 3, 1, 2), (5, 7, 3), (11, 5, 2, 2), (13, 9, 3, 3), (7, 20, 3, 3), (9, 6, 2),
               (5, 33, 2, 2), (3, 15, 1, 3), (67, 5, 2, 2), (129, 3, 3), (31, 11, 4, 4), (6, 8, 4, 4), (5, 3, 2)]
GPU_SHAPES = EMULATED_SHAPES + TINY_SHAPES + [
    (257, 1000), (33, 64, 13, 13), (4, 3, 301, 299), (8192, 36), (2, 2048, 7, 7), (1, 3, 1000, 1001),
    (256, 512, 2, 2), (255, 511, 3, 3), (1023, 257, 2, 1)]


class _Emulated(cuda_emulator.OnEmulator):
    def __init__(self, monkeypatch):
        # Several blocks per channel even for small inputs: more blocks, fewer values each.
        super().__init__(monkeypatch, batchnorm_cuda, "batchnorm", multiprocessors=6)
        monkeypatch.setattr(batchnorm_cuda, "UNITS_PER_THREAD", 1)
        self.shapes = EMULATED_SHAPES


class _Cuda(cuda_emulator.OnGpu):
    def __init__(self, monkeypatch):
        super().__init__()
        self.shapes = GPU_SHAPES


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    return (_Emulated if request.param == "emulated" else _Cuda)(monkeypatch)


def _inputs(rng, shape, misaligned=False):
    """x with a large mean (a stable-statistics test), dy, and per-channel vectors."""
    channels = shape[1]
    size = int(np.prod(shape))
    buffer = (rng.standard_normal(size + 1) * 3 + 20).astype(np.float32)
    x = (buffer[1:] if misaligned else buffer[:size]).reshape(shape)  # 4 bytes off: the scalar kernels
    per_channel = {
        "weight": rng.standard_normal(channels).astype(np.float32),
        "bias": rng.standard_normal(channels).astype(np.float32),
        "running_mean": rng.standard_normal(channels).astype(np.float32),
        "running_var": (rng.random(channels) + 0.5).astype(np.float32),
    }
    grad = rng.standard_normal(shape).astype(np.float32)
    return x, grad, per_channel


def _close(actual, expected, device, scale=1.0, rtol=2e-5):
    actual = device.to_numpy(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _check_every_step(device, shape, rng, misaligned=False):
    x, grad, vectors = _inputs(rng, shape, misaligned)
    on_device = {name: device.to_device(values.copy()) for name, values in vectors.items()}
    x_device, grad_device = device.to_device(x), device.to_device(grad)
    momentum, eps = 0.1, 1e-5
    # the twins run in float64 on the same float32 values: the reference is exact to float32's precision
    x, grad = x.astype(np.float64), grad.astype(np.float64)
    vectors = {name: values.astype(np.float64) for name, values in vectors.items()}

    # training statistics, fused finalize (running stats updated in the same launch)
    count, mean, invstd = STEPS.training_statistics(
        x_device, on_device["running_mean"], on_device["running_var"], momentum, eps)
    running_mean, running_var = vectors["running_mean"].copy(), vectors["running_var"].copy()
    count_ref, mean_ref, invstd_ref = reference.training_statistics(x, running_mean, running_var, momentum, eps)
    _close(count, count_ref, device)
    _close(mean, mean_ref, device, scale=20)
    _close(invstd, invstd_ref, device, rtol=1e-4)
    _close(on_device["running_mean"], running_mean, device, scale=2)
    _close(on_device["running_var"], running_var, device, rtol=1e-4)

    # the hook path: statistics, combine (here: double every count), finalize kernel
    def combine(count, mean, m2):
        return count * 2, mean, m2 * 2
    count_hook, mean_hook, invstd_hook = STEPS.training_statistics(x_device, None, None, momentum, eps,
                                                                            combine)
    _close(count_hook, 2 * count_ref, device)
    _close(invstd_hook, invstd_ref, device, rtol=1e-4)

    # normalize with batch statistics, and the one-launch eval forward
    y = STEPS.normalize(x_device, mean, invstd, on_device["weight"], on_device["bias"])
    y_ref = reference.normalize(x, mean_ref, invstd_ref, vectors["weight"], vectors["bias"])
    _close(y, y_ref, device, scale=4, rtol=1e-4)
    y_eval = STEPS.normalize_with_running_stats(x_device, on_device["running_mean"],
                                                         on_device["running_var"], None, None, eps)
    _close(y_eval, reference.normalize_with_running_stats(x, running_mean, running_var, None, None, eps),
           device, scale=30)

    # backward: per-channel sums, then dx in training and in eval mode
    sum_dy, sum_dy_xhat = STEPS.gradient_sums(grad_device, x_device, mean, invstd)
    sum_dy_ref, sum_dy_xhat_ref = reference.gradient_sums(grad, x, mean_ref, invstd_ref)
    values_per_channel = float(count_ref[0])
    _close(sum_dy, sum_dy_ref, device, scale=np.sqrt(values_per_channel), rtol=1e-4)
    _close(sum_dy_xhat, sum_dy_xhat_ref, device, scale=np.sqrt(values_per_channel), rtol=1e-4)
    for training in (True, False):
        sums = (sum_dy, sum_dy_xhat, count) if training else (None, None, None)  # eval dx needs no sums
        dx = STEPS.input_gradient(grad_device, x_device, mean, invstd, on_device["weight"], *sums, training)
        dx_ref = reference.input_gradient(grad, x, mean_ref, invstd_ref, vectors["weight"], sum_dy_ref,
                                          sum_dy_xhat_ref, count_ref, training)
        _close(dx, dx_ref, device, scale=float(np.abs(dx_ref).max()), rtol=1e-4)


def test_every_kernel_matches_its_numpy_twin(device, rng):
    for shape in device.shapes:
        _check_every_step(device, shape, rng)


def test_tiny_maps_take_the_rows_kernels_and_match_the_twins(monkeypatch, rng):
    emulated = _Emulated(monkeypatch)
    for shape in TINY_SHAPES:
        _check_every_step(emulated, shape, rng)
        layout = batchnorm_cuda._Layout("batch_norm_statistics", shape, ())
        assert layout.kernel.startswith("batch_norm_statistics_rows"), shape
    launched = set(emulated.device.launches)
    assert {f"batch_norm_{step}_rows_v{v}" for step in ("statistics", "normalize", "backward_sums",
                                                         "backward_input") for v in (1, 4)} <= launched
    assert batchnorm_cuda._Layout("batch_norm_statistics", (2, 3, 17), ()).kernel.endswith("planar_v1")


def test_a_row_group_holds_whole_channels_and_whole_units():
    """A block's units of a row end where a channel (S floats) and a unit (V floats) both end."""
    for s in range(1, batchnorm_cuda.TINY_PLANE + 1):
        for vector in (1, 4):
            for channels in (1, 3, 7, 20, 33, 100):
                units = channels * s // vector
                if channels * s % vector:
                    continue
                group = batchnorm_cuda._row_group(units, s, vector)
                assert 1 <= group <= batchnorm_cuda.ROWS_X and group * vector % s == 0, (s, vector, channels)
                assert group == units or (group + math.lcm(s, vector) // vector > batchnorm_cuda.ROWS_X)


def test_unaligned_data_takes_the_scalar_kernels(device, rng):
    _check_every_step(device, (9, 12, 4, 4), rng, misaligned=True)
    _check_every_step(device, (3, 4, 5, 4), rng, misaligned=True)  # planar
    _check_every_step(device, (70, 16), rng, misaligned=True)


def test_long_chunks_walk_four_values_at_a_time(monkeypatch, rng):
    """Few, long chunks: each thread takes the unrolled four-at-a-time walk and then the remainder."""
    emulated = _Emulated(monkeypatch)
    monkeypatch.setattr(batchnorm_cuda.device, "multiprocessors", 1)
    monkeypatch.setattr(batchnorm_cuda, "UNITS_PER_THREAD", 16)
    for shape in [(8, 2, 37, 41), (4, 3, 40, 44), (3000, 6)]:
        layout = batchnorm_cuda._Layout("batch_norm_statistics", shape, ())
        # chunk_units: more than four steps per thread
        assert layout.geometry["chunk_units"] > 4 * 256 or shape[2:] == ()
        _check_every_step(emulated, shape, rng)


def test_a_channel_spread_over_many_blocks_is_merged_once(monkeypatch, rng):
    emulated = _Emulated(monkeypatch)
    emulated.device.host_memory = True  # the running mean is a NumPy buffer, as a layer's is
    x, _, vectors = _inputs(rng, (40, 3, 9, 9))
    running_mean = vectors["running_mean"].copy()
    STEPS.training_statistics(x, running_mean, None, 0.5, 1e-5)
    layout = batchnorm_cuda._Layout("batch_norm_statistics", x.shape, (x,))
    assert layout.chunks > 8 and layout.grid == (3 * layout.chunks,)
    expected = 0.5 * vectors["running_mean"] + 0.5 * x.mean(axis=(0, 2, 3))
    _close(running_mean, expected, emulated, scale=20)  # moved once, not once per block


def test_layer_runs_on_the_kernels(device, rng):
    """BatchNorm2d and BatchNorm1d in train and eval mode reach the kernels and match the NumPy layer."""
    for layer_class, shape in ((mg.nn.BatchNorm2d, (6, 5, 3, 7)), (mg.nn.BatchNorm1d, (50, 12))):
        x, grad, _ = _inputs(rng, shape)
        kernel_layer, numpy_layer = layer_class(shape[1]), layer_class(shape[1])
        if isinstance(device, _Cuda):
            kernel_layer.to("cuda")
        for training in (True, False):
            kernel_layer.train(training), numpy_layer.train(training)
            outputs = []
            for layer, uses_kernels in ((kernel_layer, True), (numpy_layer, False)):
                data = device.to_device(x) if uses_kernels else x
                inputs = mg.Tensor(data, requires_grad=True)
                with pytest.MonkeyPatch.context() as patch:
                    if not uses_kernels:  # on the emulator NumPy data is "device" data: name the twins
                        patch.setattr(reference, "BACKENDS", [reference.NumPySteps()])
                    assert reference._steps_for(data).name == ("cuda" if uses_kernels else "numpy")
                    output = layer(inputs)
                    output.backward(device.to_device(grad) if uses_kernels else grad)
                outputs.append([output.numpy(), inputs.grad.numpy(), layer.weight.grad.numpy(),
                                layer.bias.grad.numpy(), layer.running_mean.numpy(), layer.running_var.numpy()])
                layer.zero_grad()
            for kernel_value, numpy_value in zip(*outputs):
                np.testing.assert_allclose(kernel_value, numpy_value, rtol=1e-4, atol=1e-4 * np.abs(numpy_value).max())


def test_host_constants_match_the_kernel_source():
    defines = dict(re.findall(r"#define (\w+)\s+(\d+)", kernels.source("batchnorm")))
    for name in ("PLANAR_THREADS", "ROWS_X", "ROWS_Y", "TINY_PLANE", "MIN_BLOCKS_SCALAR", "MIN_BLOCKS_FLOAT4"):
        assert int(defines[name]) == getattr(batchnorm_cuda, name), name


def test_the_argument_struct_matches_the_c_struct():
    """static_asserts on sizeof/offsetof, written from the NumPy dtype, must compile with NVRTC."""
    dtype = batchnorm_cuda.ARGUMENTS
    checks = [f'static_assert(sizeof(BatchNormArguments) == {dtype.itemsize}, "size");']
    checks += [f'static_assert(__builtin_offsetof(BatchNormArguments, {field}) == {dtype.fields[field][1]}, "{field}");'
               for field in dtype.names]
    source = kernels.source("batchnorm") + "\n" + "\n".join(checks)
    kernels.compile_for_source(source, "sm_90")
    with pytest.raises(RuntimeError, match="tickets"):  # the check can fail
        kernels.compile_for_source(source.replace(f"tickets) == {dtype.fields['tickets'][1]}", "tickets) == 8"),
                                   "sm_90")


def test_the_struct_reaches_cupy_as_a_one_element_array(monkeypatch):
    """CuPy passes a one-element NumPy array by value (a structured scalar it would refuse); the emulator
    takes the structured scalar itself. kernels.Device turns the one into the other."""
    launched = []
    monkeypatch.setattr(kernels, "function", lambda name, kernel: lambda grid, block, args: launched.append(args))
    arguments = batchnorm_cuda._arguments({"N": 3, "C": 2}, 0.5, 1e-5, {})
    assert isinstance(arguments, np.void) and arguments.dtype == batchnorm_cuda.ARGUMENTS
    kernels.Device("batchnorm").kernel("batch_norm_finalize")((1,), (256,), (arguments, np.int32(7)))
    (as_array, scalar), = launched
    assert isinstance(as_array, np.ndarray) and as_array.size == 1 and as_array.tobytes() == arguments.tobytes()
    assert as_array["N"] == 3 and as_array["eps"] == np.float32(1e-5) and scalar == 7


def test_counts_are_exact_beyond_two_to_the_24(monkeypatch):
    """M = 2^24 + 1 values per channel: float32 would round M to 2^24 and M - 1 to 2^24 - 1."""
    emulated = _Emulated(monkeypatch)
    emulated.device.host_memory = True
    count = 2.0 ** 24 + 1
    m2 = np.array([2.0 ** 24], dtype=np.float32)  # so that M2 / (M - 1) is exactly 1
    mean = np.zeros(1, dtype=np.float32)
    running_var, twin_running_var = np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32)
    STEPS.finalize_statistics(np.array([count]), mean, m2, None, running_var, 1.0, 0.0)
    reference.finalize_statistics(np.array([count]), mean, m2, None, twin_running_var, 1.0, 0.0)
    assert running_var[0] == twin_running_var[0] == 1.0 and emulated.device.launches == ["batch_norm_finalize"]
    assert reference.batch_statistics(np.zeros((2, 3, 4), dtype=np.float32))[0].dtype == np.float64
    assert batchnorm_cuda._counts((4097, 2, 64, 64))[0] == 4097 * 64 * 64


class _HostMemoryIsForeign(cuda_emulator.EmulatedDevice):
    """The emulator, except that it refuses the arrays in ``foreign`` as a GPU refuses host memory."""

    def __init__(self, foreign):
        super().__init__("batchnorm", host_memory=True)
        self.foreign = foreign

    def holds(self, array):
        return super().holds(array) and not any(array is other for other in self.foreign)


def test_a_host_array_never_reaches_a_kernel(monkeypatch, rng):
    x, _, vectors = _inputs(rng, (4, 3, 5, 5))
    monkeypatch.setattr(batchnorm_cuda, "device", _HostMemoryIsForeign([vectors["running_mean"]]))
    with pytest.raises(TypeError, match=r"numpy.ndarray of shape \(3,\) \(float32\) cannot reach a kernel"):
        STEPS.training_statistics(x, vectors["running_mean"], vectors["running_var"], 0.1, 1e-5)
    assert batchnorm_cuda.device.launches == []
    assert reference._steps_for(x, vectors["running_mean"]).name == "numpy-fast"  # so the layer stays on the CPU
    assert reference._steps_for(x, vectors["running_var"]).name == "cuda"


def test_launches_on_two_streams_take_tickets_from_two_buffers(monkeypatch):
    """kernels.Device.tickets keys its zeroed counters by (GPU, stream); checked with a stand-in for CuPy."""
    current = {"device": 0, "stream": 0}
    fake_cupy = types.SimpleNamespace(
        zeros=np.zeros, cuda=types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDevice=lambda: current["device"]),
            get_current_stream=lambda: types.SimpleNamespace(ptr=current["stream"])))
    monkeypatch.setattr(backend, "cupy", lambda: fake_cupy)
    gpu = kernels.Device("batchnorm")
    first = gpu.tickets(10)
    assert gpu.tickets(10) is first and not first.any()
    current["stream"] = 0x7f00
    second = gpu.tickets(10)
    assert second is not first
    current["device"] = 1
    assert gpu.tickets(10) is not second
    current.update(device=0, stream=0)
    assert gpu.tickets(5000) is not first and gpu.tickets(5000).size >= 5000  # grown for a larger launch


def test_the_backends_implement_the_declared_steps():
    steps = [name for name, value in vars(BatchNormSteps).items() if callable(value) and not name.startswith("_")]
    assert set(steps) == {"accepts", "training_statistics", "finalize_statistics", "normalize",
                          "normalize_with_running_stats", "gradient_sums", "input_gradient"}
    for backend_steps in reference.BACKENDS:
        assert isinstance(backend_steps, BatchNormSteps)
        for name in steps:
            assert getattr(type(backend_steps), name) is not getattr(BatchNormSteps, name), (backend_steps, name)
    assert reference._steps_for(np.zeros((2, 3), dtype=np.float32)).name == "numpy-fast"
    assert reference._steps_for(np.zeros((2, 3), dtype=np.float16)).name == "numpy"  # any dtype: the twins


def test_gpu_benchmark_runs_end_to_end_on_the_emulator(monkeypatch, tmp_path):
    """benchmarks/bench_batchnorm.py's GPU path with a CPU stand-in for CuPy, tiny shapes and 3 reps,
    so that a GPU run is not the first run (PyTorch's CUDA side is not exercised here)."""
    import ctypes
    import importlib.util
    import json
    import time
    import types
    from pathlib import Path

    xp = _Emulated(monkeypatch).device.xp
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_batchnorm.py"
    spec = importlib.util.spec_from_file_location("bench_batchnorm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    class Event:
        def record(self):
            self.seconds = time.perf_counter()

    runtime = types.SimpleNamespace(getDeviceProperties=lambda index: {"name": b"CPU emulator"},
                                    runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0,
                                    memcpyAsync=lambda target, source, size, kind, stream:
                                    ctypes.memmove(target, source, size))
    fake_cupy = types.SimpleNamespace(
        __version__="emulated", ones=xp.ones, zeros=xp.zeros, empty_like=xp.empty_like, asarray=xp.asarray,
        asnumpy=np.asarray, cuda=types.SimpleNamespace(
            Event=Event, Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=lambda: None)),
            get_elapsed_time=lambda start, end: 1000 * (end.seconds - start.seconds), runtime=runtime))
    monkeypatch.setattr(backend, "cupy", lambda: fake_cupy)
    monkeypatch.setattr(bench, "GPU_SHAPES", [(3, 5, 4, 4), (40, 8)])
    monkeypatch.setattr(bench, "BUSY_SIZE", 8)
    monkeypatch.setattr(bench, "COPY_BYTES", 2 ** 16)
    bench.main(["--reps", "3", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "batchnorm_cpu-emulator.json").read_text())
    assert results["meta"]["card"] == "CPU emulator" and results["meta"]["copy_gb_s"] > 0
    assert [(tuple(row["shape"]), row["pass"]) for row in results["results"]] == [
        (shape, name) for shape in [(3, 5, 4, 4), (40, 8)] for name in bench.PASSES]
    assert all(row["minigrad_us"] > 0 for row in results["results"])
    assert "| (40, 8) | backward |" in (tmp_path / "batchnorm_cpu-emulator.md").read_text()
