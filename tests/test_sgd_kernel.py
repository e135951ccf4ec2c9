"""kernels/sgd.cu: it compiles, its table matches the host's, and it equals its NumPy twin.

The first tests run on any machine: NVRTC compiles without a GPU; the table the
host builds is checked on NumPy arrays; the kernel itself runs on the CPU
through minigrad/emulator/cuda_emulator.h and must equal the twin bit for bit. The tests
marked ``gpu`` launch the fused update on random tensors of awkward sizes and
compare it, element by element, with ``sgd_update_reference`` on the same inputs.
"""
import ctypes
import re
import types

import numpy as np
import pytest

import minigrad as mg
from minigrad import kernels
from minigrad.nn import Parameter
from minigrad.optim import SGD, sgd_update_reference
from minigrad.optim import sgd_cuda
from test_optim import SGD_OPTIONS

import cuda_emulator


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_sgd_kernel_compiles_with_nvrtc(arch):
    cubin = kernels.compile_for("sgd", arch)
    assert len(cubin) > 1000 and b"sgd_update_float" in cubin and b"sgd_update_double" in cubin


def test_host_constants_match_the_kernel_source():
    defines = dict(re.findall(r"#define (\w+)\s+(\d+)", kernels.source("sgd")))
    assert int(defines["BLOCK_THREADS"]) == sgd_cuda.BLOCK_THREADS
    assert int(defines["MASK_BYTE_ALIGNMENT"]) == sgd_cuda.MASK_BYTE_ALIGNMENT
    for name in ("MOMENTUM", "FIRST_STEP", "NESTEROV", "MAXIMIZE", "MASK_SAME", "MASK_BYTE", "VECTORIZED"):
        assert int(defines[f"FLAG_{name}"]) == getattr(sgd_cuda, f"FLAG_{name}"), name
    assert sgd_cuda.CHUNK_SIZE % 4 == 0  # the vector loop needs chunks aligned to 4 floats


def _compile(source):
    from cupy_backends.cuda.libs import nvrtc
    program = nvrtc.createProgram(source, "layout_check.cu", [], [])
    try:
        nvrtc.compileProgram(program, ["--gpu-architecture=sm_90", *kernels.NVRTC_OPTIONS])
    except nvrtc.NVRTCError:
        return nvrtc.getProgramLog(program)
    finally:
        nvrtc.destroyProgram(program)
    return None


def test_table_dtypes_match_the_c_structs():
    """static_asserts on sizeof/offsetof, written from the NumPy dtypes, must compile."""
    checks = []
    for struct, dtype in (("TensorEntry<float>", sgd_cuda.TENSOR_ENTRY),
                          ("TensorEntry<double>", sgd_cuda.TENSOR_ENTRY),
                          ("GroupHyperparameters", sgd_cuda.GROUP_HYPERPARAMETERS)):
        checks.append(f'static_assert(sizeof({struct}) == {dtype.itemsize}, "size of {struct}");')
        for field in dtype.names:
            offset = dtype.fields[field][1]
            checks.append(f'static_assert(__builtin_offsetof({struct}, {field}) == {offset}, "{struct}.{field}");')
    source = kernels.source("sgd") + "\n" + "\n".join(checks) + "\n"
    assert _compile(source) is None
    # the check can fail: a wrong offset does not compile
    assert "TensorEntry<float>.numel" in _compile(source.replace("numel) == 32", "numel) == 40"))


def _numpy_parameters(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    parameters = []
    for shape in shapes:
        parameter = Parameter(rng.normal(size=shape).astype(dtype))
        parameter.grad = mg.tensor(rng.normal(size=shape).astype(dtype))
        parameters.append(parameter)
    return parameters


@pytest.fixture(scope="module")
def emulated_sgd():
    """kernels/sgd.cu on the CPU (minigrad/emulator/cuda_emulator.h: g++, IEEE arithmetic without FMA contraction)."""
    return cuda_emulator.EmulatedDevice("sgd", host_memory=True)  # these tests build tables from NumPy tensors


@pytest.fixture
def on_emulator(emulated_sgd, monkeypatch):
    """The launcher's device is the emulator: NumPy arrays are device arrays, their addresses host ones."""
    monkeypatch.setattr(sgd_cuda, "device", emulated_sgd)
    return emulated_sgd


def _one_group_items(parameters, **options):
    group = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
             "maximize": False, **options}
    return [(index, parameter, group) for index, parameter in enumerate(parameters)]


def test_a_numpy_array_never_reaches_a_gpu_kernel():
    """On the GPU device, a host array in the table is an error naming it, not a host pointer in the kernel."""
    parameters = _numpy_parameters([(3, 5)])
    with pytest.raises(TypeError, match=r"numpy.ndarray of shape \(3, 5\) \(float32\) cannot reach a kernel"):
        sgd_cuda.build_table(_one_group_items(parameters), state={})


class _DeviceMemory:
    """A stand-in GPU for the table: it holds only the arrays it made (NumPy arrays underneath)."""
    name = "sgd"

    def __init__(self):
        self.made = []
        self.xp = types.SimpleNamespace(asarray=self._make(np.array), empty_like=self._make(np.empty_like),
                                        ascontiguousarray=self._make(np.array))

    def _make(self, function):
        def make(*args, **kwargs):
            self.made.append(function(*args, **kwargs))
            return self.made[-1]
        return make

    def holds(self, array):
        return any(array is made for made in self.made)


def test_a_momentum_buffer_made_on_the_cpu_moves_with_its_parameter(monkeypatch):
    """model.to("cuda") keeps the optimizer's state objects: a host buffer is copied to the device, once."""
    gpu = _DeviceMemory()
    monkeypatch.setattr(sgd_cuda, "device", gpu)
    parameter = Parameter(gpu.xp.asarray(np.arange(6, dtype=np.float32)))
    parameter.grad = mg.Tensor(gpu.xp.asarray(np.ones(6, dtype=np.float32)))
    host_buffer = np.full(6, 0.5, dtype=np.float32)
    state = {parameter: {"momentum_buffer": host_buffer}}
    table, n_entries, *_ = sgd_cuda.build_table(_one_group_items([parameter]), state)
    moved = state[parameter]["momentum_buffer"]
    assert moved is not host_buffer and gpu.holds(moved) and np.array_equal(moved, host_buffer)
    entry = table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)[0]
    assert entry["momentum_buffer"] == moved.ctypes.data and not entry["flags"] & sgd_cuda.FLAG_FIRST_STEP
    sgd_cuda.build_table(_one_group_items([parameter]), state)
    assert state[parameter]["momentum_buffer"] is moved
    parameter.mask = mg.Tensor(np.ones(6, dtype=np.float32))  # a host mask is an error, not a host pointer
    with pytest.raises(TypeError, match="cannot reach a kernel"):
        sgd_cuda.build_table(_one_group_items([parameter]), state)


def test_the_table_gives_every_element_to_exactly_one_block(on_emulator):
    shapes = [(1,), (3, 5), (4096,), (4097,), (2, 4099), (12289,), (0,), (17,)]
    parameters = _numpy_parameters(shapes)
    groups = [{"params": parameters[:4], "lr": 0.1, "momentum": 0.9, "dampening": 0.0,
               "weight_decay": 0.0, "nesterov": True, "maximize": False},
              {"params": parameters[4:], "lr": 0.01, "momentum": 0.0, "dampening": 0.0,
               "weight_decay": 1e-4, "nesterov": False, "maximize": True}]
    items = [(index, parameter, group) for index, (parameter, group) in
             enumerate((p, g) for g in groups for p in g["params"])]
    table, n_entries, n_groups, n_chunks, _ = sgd_cuda.build_table(items, state={})
    entries = table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)
    hyperparameters = table[n_entries * 56:n_entries * 56 + n_groups * 32].view(sgd_cuda.GROUP_HYPERPARAMETERS)
    chunk_tensor = table[n_entries * 56 + n_groups * 32:].view(np.int32)
    assert (n_entries, n_groups) == (7, 2)  # the empty parameter is left out
    assert list(hyperparameters["lr"]) == [0.1, 0.01] and list(hyperparameters["weight_decay"]) == [0.0, 1e-4]
    assert len(chunk_tensor) == n_chunks == sum(-(-int(np.prod(s)) // sgd_cuda.CHUNK_SIZE) for s in shapes)

    # walk the grid the way the kernel does: block -> tensor -> chunk -> element range
    covered = [np.zeros(entry["numel"], dtype=int) for entry in entries]
    for block in range(n_chunks):
        entry = entries[chunk_tensor[block]]
        start = (block - entry["first_chunk"]) * sgd_cuda.CHUNK_SIZE
        assert 0 <= start < entry["numel"]
        covered[chunk_tensor[block]][start:min(start + sgd_cuda.CHUNK_SIZE, entry["numel"])] += 1
    assert all(np.all(count == 1) for count in covered)

    live = [p for p in parameters if p.numel()]
    assert list(entries["param"]) == [p.data.ctypes.data for p in live]
    assert list(entries["grad"]) == [p.grad.data.ctypes.data for p in live]
    assert list(entries["group"]) == [0, 0, 0, 0, 1, 1, 1]
    first_group = sgd_cuda.FLAG_MOMENTUM | sgd_cuda.FLAG_FIRST_STEP | sgd_cuda.FLAG_NESTEROV
    assert all(flags & ~sgd_cuda.FLAG_VECTORIZED == first_group for flags in entries["flags"][:4])
    assert all(flags & ~sgd_cuda.FLAG_VECTORIZED == sgd_cuda.FLAG_MAXIMIZE for flags in entries["flags"][4:])
    assert all(address == 0 for address in entries["momentum_buffer"][4:])


def test_the_table_flags_masks_alignment_and_later_steps(on_emulator):
    base = np.zeros(1001, dtype=np.float32)
    shifted = Parameter(base[1:])                # 4 bytes past an aligned start: no vector loads
    shifted.grad = mg.tensor(np.ones(1000, dtype=np.float32))
    same, byte, other = _numpy_parameters([(7, 9), (7, 9), (7, 9)], seed=1)
    same.mask = mg.tensor(np.ones((7, 9), dtype=np.float32))
    byte.mask = mg.tensor(np.ones((7, 9), dtype=bool))
    other.mask = mg.tensor(np.ones((7, 9), dtype=np.int64))  # converted to a byte mask
    other.grad = mg.tensor(np.ones((9, 7), dtype=np.float32).T)  # not contiguous: copied
    group = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
             "maximize": False}
    items = [(index, parameter, group) for index, parameter in enumerate([shifted, same, byte, other])]
    state = {}
    table, n_entries, _, _, temporaries = sgd_cuda.build_table(items, state)
    flags = table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)["flags"]
    assert not flags[0] & sgd_cuda.FLAG_VECTORIZED
    assert flags[1] & sgd_cuda.FLAG_MASK_SAME and flags[2] & sgd_cuda.FLAG_MASK_BYTE
    assert flags[3] & sgd_cuda.FLAG_MASK_BYTE and len(temporaries) == 2  # the converted mask and the grad copy
    assert all(flag & sgd_cuda.FLAG_FIRST_STEP for flag in flags)
    assert set(state) == {shifted, same, byte, other}
    table, *_ = sgd_cuda.build_table(items, state)  # the buffers exist now: no FIRST_STEP
    flags = table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)["flags"]
    assert not any(flag & sgd_cuda.FLAG_FIRST_STEP for flag in flags)


def test_a_byte_mask_read_four_bytes_at_a_time_must_be_four_byte_aligned(on_emulator):
    parameters = _numpy_parameters([(64,), (64,)])
    storage = np.ones(80, dtype=np.uint8)
    parameters[0].mask = mg.Tensor(storage[16:80])   # 16 bytes in: aligned
    parameters[1].mask = mg.Tensor(storage[1:65])    # 1 byte in: the element-by-element path
    table, n_entries, *_ = sgd_cuda.build_table(_one_group_items(parameters), state={})
    flags = table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)["flags"]
    assert flags[0] & sgd_cuda.FLAG_VECTORIZED and not flags[1] & sgd_cuda.FLAG_VECTORIZED


# ----- on a GPU -------------------------------------------------------------------
AWKWARD_SHAPES = [(1,), (3,), (255,), (256,), (257,), (1000,), (4095,), (4096,), (4097,), (8191,),
                  (12289,), (37, 91), (64, 3, 7, 7), (3, 5), (2, 2049), (1000, 13)]
MASK_KINDS = [None, "same", "bool", "uint8", "float64", "strided"]


def _gpu_problem(cupy, dtype, rng):
    """Parameters on the GPU (some misaligned views), with masks of every kind."""
    shapes = AWKWARD_SHAPES + [(int(n),) for n in rng.integers(1, 20000, size=20)]
    parameters, masks = [], []
    for index, shape in enumerate(shapes):
        values = rng.normal(size=shape).astype(dtype)
        if index % 5 == 3:  # a view one element past an aligned allocation: the scalar path
            base = cupy.empty(values.size + 1, dtype=dtype)
            base[1:] = cupy.asarray(values.ravel())
            data = base[1:].reshape(shape)
        else:
            data = cupy.asarray(values)
        parameter = Parameter(data)
        kind = MASK_KINDS[index % len(MASK_KINDS)]
        mask = None if kind is None else rng.random(shape) > 0.3
        if kind is not None:
            as_dtype = {"same": dtype, "bool": bool, "uint8": np.uint8, "float64": np.float64, "strided": dtype}
            device_mask = cupy.asarray(mask.astype(as_dtype[kind]))
            if kind == "strided" and len(shape) == 2:
                device_mask = cupy.ascontiguousarray(device_mask.T).T
            parameter.mask = mg.Tensor(device_mask)
        parameters.append(parameter)
        masks.append(mask)
    return parameters, masks


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_fused_update_equals_the_numpy_twin(options, dtype):
    cupy = mg.backend.cupy()
    rng = np.random.default_rng(42)
    parameters, masks = _gpu_problem(cupy, dtype, rng)
    half = len(parameters) // 2
    second = {"lr": 0.03, "weight_decay": 2 * options["weight_decay"]}
    optimizer = SGD([{"params": parameters[:half]}, {"params": parameters[half:], **second}], lr=0.1, **options)
    reference = [p.numpy().copy() for p in parameters]
    buffers = [None] * len(parameters)
    for step in range(3):
        grads = [rng.normal(size=p.shape).astype(dtype) for p in parameters]
        for parameter, grad in zip(parameters, grads):
            if step == 1 and grad.ndim == 2:   # a gradient that is not contiguous
                parameter.grad = mg.Tensor(cupy.ascontiguousarray(cupy.asarray(grad).T).T)
            else:
                parameter.grad = mg.Tensor(cupy.asarray(grad))
        optimizer.step()
        for index, (param, grad, mask) in enumerate(zip(reference, grads, masks)):
            group = optimizer.param_groups[0 if index < half else 1]
            if group["momentum"] != 0 and buffers[index] is None:
                buffers[index] = np.empty_like(param)
                first_step = True
            else:
                first_step = False
            sgd_update_reference(param, grad, buffers[index], mask, first_step=first_step,
                                 **{k: v for k, v in group.items() if k != "params"})
        tolerance = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        for index, parameter in enumerate(parameters):
            message = f"tensor {index} shape {parameter.shape} after step {step}"
            np.testing.assert_allclose(parameter.numpy(), reference[index], err_msg=message, **tolerance)
            if buffers[index] is not None:
                fused_buffer = cupy.asnumpy(optimizer.state[parameter]["momentum_buffer"])
                np.testing.assert_allclose(fused_buffer, buffers[index], err_msg=message, **tolerance)
            if masks[index] is not None:
                assert np.all(parameter.numpy()[~masks[index]] == 0), message
                if buffers[index] is not None:
                    assert np.all(fused_buffer[~masks[index]] == 0), message


@pytest.mark.gpu
def test_one_launch_updates_every_parameter():
    cupy = mg.backend.cupy()
    parameters, _ = _gpu_problem(cupy, np.float32, np.random.default_rng(0))
    for parameter in parameters:
        parameter.grad = mg.Tensor(cupy.ones(parameter.shape, dtype=np.float32))
    optimizer = SGD([{"params": parameters[:10]}, {"params": parameters[10:], "lr": 0.5}], lr=0.1, momentum=0.9)
    optimizer.step()
    launches = []
    kernel = optimizer._fused._kernels[np.dtype(np.float32)]
    optimizer._fused._kernels[np.dtype(np.float32)] = lambda *args: (launches.append(args[0]), kernel(*args))
    optimizer.step()
    assert len(launches) == 1 and launches[0][0] >= len(parameters)


@pytest.mark.gpu
def test_a_model_trains_the_same_on_the_gpu_and_the_cpu():
    from test_optim import batches, model_pair, train_step
    on_cpu, _ = model_pair()
    on_gpu, _ = model_pair()
    on_gpu.to("cuda")
    options = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    cpu_optimizer, gpu_optimizer = SGD(on_cpu.parameters(), **options), SGD(on_gpu.parameters(), **options)
    for x, y in batches(20):
        train_step(on_cpu, cpu_optimizer, x, y, mg)
        gpu_optimizer.zero_grad()
        ((on_gpu(mg.tensor(x, device="cuda")) - mg.tensor(y, device="cuda")) ** 2).mean().backward()
        gpu_optimizer.step()
    for cpu_parameter, gpu_parameter in zip(on_cpu.parameters(), on_gpu.parameters()):
        np.testing.assert_allclose(gpu_parameter.numpy(), cpu_parameter.numpy(), rtol=1e-9, atol=1e-12)


# ----- the kernel's own source, run on the CPU ----------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", SGD_OPTIONS[::3] + [SGD_OPTIONS[-1]],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_the_kernel_source_run_on_the_cpu_equals_the_twin_bit_for_bit(on_emulator, options, dtype):
    """The CUDA code itself (table walk, vector and scalar paths, masks), executed on host arrays."""
    rng = np.random.default_rng(7)
    shapes = [(1,), (3,), (257,), (4095,), (4097,), (37, 91), (5000,), (6, 7)]
    parameters = _numpy_parameters(shapes, dtype=dtype, seed=3)
    base = np.zeros(5001, dtype=dtype)  # parameter 6 is a misaligned view: the scalar path
    base[1:] = parameters[6].data
    parameters[6] = Parameter(base[1:])
    masks = [None, rng.random(3) > 0.5, None, (rng.random(4095) > 0.5).astype(dtype), None,
             (rng.random((37, 91)) > 0.5).astype(np.uint8), rng.random(5000) > 0.5, None]
    for parameter, mask in zip(parameters, masks):
        parameter.mask = None if mask is None else mg.tensor(mask)
    groups = [{"params": parameters[:4], "lr": 0.1, **options},
              {"params": parameters[4:], "lr": 0.03, **options, "weight_decay": 2 * options["weight_decay"]}]
    items = [(index, parameter, group) for index, (parameter, group)
             in enumerate((p, g) for g in groups for p in g["params"])]
    reference = [p.data.copy() for p in parameters]
    buffers = [None] * len(parameters)
    state = {}
    for step in range(3):
        for index, parameter in enumerate(parameters):
            parameter.grad = mg.tensor(rng.normal(size=parameter.shape).astype(dtype))
            group = items[index][2]
            first_step = group["momentum"] != 0 and buffers[index] is None
            if first_step:
                buffers[index] = np.empty_like(reference[index])
            sgd_update_reference(reference[index], parameter.grad.data, buffers[index], masks[index],
                                 first_step=first_step, **{k: v for k, v in group.items() if k != "params"})
        table, n_entries, n_groups, n_chunks, _ = sgd_cuda.build_table(items, state)
        assert all(flags & sgd_cuda.FLAG_VECTORIZED for i, flags in
                   enumerate(table[:n_entries * 56].view(sgd_cuda.TENSOR_ENTRY)["flags"]) if i != 6)
        on_emulator.kernel(sgd_cuda.KERNEL_FOR_DTYPE[np.dtype(dtype)])(
            (n_chunks,), (sgd_cuda.BLOCK_THREADS,), sgd_cuda.kernel_arguments(table, n_entries, n_groups))
        bits = np.uint32 if dtype == np.float32 else np.uint64  # compare bit patterns: -0.0 != 0.0
        for index, parameter in enumerate(parameters):
            message = f"parameter {index} of shape {parameter.shape}, step {step}"
            np.testing.assert_array_equal(parameter.data.view(bits), reference[index].view(bits), err_msg=message)
            if buffers[index] is not None:
                np.testing.assert_array_equal(state[parameter]["momentum_buffer"].view(bits),
                                              buffers[index].view(bits), err_msg=message)


def test_the_table_upload_alternates_two_staging_buffers_and_waits_only_on_the_older_copy(monkeypatch):
    """A changed table goes through the staging buffer the copy before last used; the host waits
    for that copy's event only (long done), never for the copy it has just queued."""
    log = []

    class Event:
        def __init__(self, **options):
            self.name = f"event {len([entry for entry in log if entry[0] == 'record'])}"

        def record(self, stream):
            log.append(("record", self.name))

        def synchronize(self):
            log.append(("wait", self.name))

    class DeviceBuffer:
        def __init__(self, size, dtype):
            self.bytes, self.size = np.zeros(size, dtype=dtype), size
            self.data = types.SimpleNamespace(copy_from_host_async=self.copy)

        def copy(self, address, size, stream):
            log.append(("copy", address))
            self.bytes[:size] = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(address))

    pinned = []

    def alloc_pinned_memory(size):
        pinned.append(bytearray(size))
        return pinned[-1]
    fake_cupy = types.SimpleNamespace(empty=DeviceBuffer, cuda=types.SimpleNamespace(
        alloc_pinned_memory=alloc_pinned_memory, Event=Event, get_current_stream=lambda: None))
    monkeypatch.setattr(mg.backend, "cupy", lambda: fake_cupy)
    upload = sgd_cuda._TableUpload()
    tables = [np.full(64, value, dtype=np.uint8) for value in (1, 2, 3)]
    for table in tables:
        device = upload.upload(table)
        assert np.array_equal(device.bytes[:64], table)
    assert upload.upload(tables[-1].copy()) is device and log[-1][0] == "record"  # unchanged: no copy
    waits = [entry[1] for entry in log if entry[0] == "wait"]
    assert waits == ["event 0"]  # the third upload reuses the first staging buffer: it waits for copy 0 only
    copies = [entry[1] for entry in log if entry[0] == "copy"]
    assert len(set(copies)) == 2 and copies[0] == copies[2] != copies[1]
