"""kernels/prune.cu against its NumPy twins (minigrad/prune/selection.py).

Each launcher of selection.py (the radix select ``kth_smallest_cuda``,
``mask_from_threshold_cuda``, ``apply_mask_cuda``), the dispatch above them
(``prune_smallest``, ``threshold_masks``) and the pruning methods that call it
are compared with the NumPy twins on fresh random inputs: several tensors of
different sizes in one launch (the multi-tensor path; sizes that are not
multiples of the 256-thread block; an empty tensor), ties within and across
tensors, all-equal magnitudes (one bin of the first digit holds every candidate)
and three magnitudes (clustered weights: the histograms' warps add a count per
distinct bin, not per lane),
signed zeros, infinities, NaNs and subnormals,
masks that have already pruned entries, and k = 0, 1, 2, n/3, n/2, n - 1, n
(n candidates). Two devices run the same checks:

- "emulated": the kernels compiled with g++ and run on the CPU by
  minigrad/emulator/cuda_emulator.h (threads as fibers, blocks in random order, argument
  types checked against the kernel's signature), so the chunk table, the
  shared-memory histograms and the short list are checked without a GPU;
- "cuda": the real GPU (marker gpu; skipped without CUDA), with larger tensors.
"""
import re

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, kernels
from minigrad.prune import selection

import cuda_emulator

nn, prune = mg.nn, mg.prune

EMULATED_SIZES = [1, 7, 255, 257, 9001, 0, (37, 11)]  # 9001: three chunks of 4096, the last partial
GPU_SIZES = EMULATED_SIZES + [4099, 65_537, 1_000_003]
SPECIAL_VALUES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-40, 3e38, 1.0, -1.0],
                          dtype=np.float32)


class _Emulated(cuda_emulator.OnEmulator):
    def __init__(self, monkeypatch):
        super().__init__(monkeypatch, selection, "prune")
        self.sizes = EMULATED_SIZES


class _Cuda(cuda_emulator.OnGpu):
    def __init__(self, monkeypatch):
        super().__init__()
        self.sizes = GPU_SIZES


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    return (_Emulated if request.param == "emulated" else _Cuda)(monkeypatch)


def _problems(sizes, rng):
    """(name, values, masks): float32 lists of several tensors, masks with about 30% already pruned."""
    def masks_for(values, keep=0.7):
        masks = [(rng.random(value.shape) < keep).astype(np.float32) for value in values]
        masks[1][...] = -0.0  # a tensor with nothing left to prune: -0.0 is not a candidate
        return masks
    normal = [rng.normal(size=size).astype(np.float32) for size in sizes]
    ties = [rng.choice(np.array([0.5, -0.25, 1.0, 0.0, -0.0, -2.0], np.float32), size=size) for size in sizes]
    equal = [np.where(rng.random(size) < 0.5, 0.75, -0.75).astype(np.float32) for size in sizes]
    three = [rng.choice(np.array([0.3, -0.3, 1.7, -2.5e-3], np.float32), size=size) for size in sizes]
    special = [np.where(rng.random(size) < 0.2, rng.choice(SPECIAL_VALUES, size=size), value)
               for size, value in zip(sizes, normal)]
    return [("normal", normal, masks_for(normal)),
            ("ties", ties, masks_for(ties)),
            ("all equal, all candidates", equal, [np.ones_like(value) for value in equal]),
            ("three magnitudes, all candidates", three, [np.ones_like(value) for value in three]),
            ("special values", special, masks_for(special, keep=0.9))]


def _ks(candidates):
    return sorted({k for k in (0, 1, 2, candidates // 3, candidates // 2, candidates - 1, candidates)
                   if 0 <= k <= candidates})


def _same_bits(actual, expected, message):
    """Equal bit for bit (so -0.0 differs from 0.0 and NaN equals the same NaN)."""
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32), err_msg=message)


def _check_every_kernel(device, values, masks, name):
    on_device = [device.to_device(value) for value in values]
    masks_on_device = [device.to_device(mask) for mask in masks]
    candidates = int(sum((mask != 0).sum() for mask in masks))
    for k in _ks(candidates):
        message = f"{name}, k={k} of {candidates} candidates"
        if k > 0:
            threshold = selection.kth_smallest_cuda(on_device, masks_on_device, k)
            assert threshold == selection.kth_smallest_numpy(values, masks, k), message
        new_masks = selection.prune_smallest(on_device, masks_on_device, k)  # dispatches to the kernels
        expected = selection.prune_smallest(values, masks, k)
        for new_mask, expected_mask in zip(new_masks, expected):
            assert backend.is_cupy_array(new_mask) == isinstance(device, _Cuda)
            _same_bits(device.to_numpy(new_mask), expected_mask, message)
        assert sum(int((mask == 0).sum()) for mask in expected) - sum(int((mask == 0).sum()) for mask in masks) == k

    threshold_bits = selection.kth_smallest_numpy(values, masks, max(candidates // 2, 1))[0]
    for keep_from in (0, 1, selection.float_bits(0.7, np.float32), threshold_bits, threshold_bits + 1,
                      selection.float_bits(np.inf, np.float32), 0x7fffffff):
        got = selection.mask_from_threshold_cuda(on_device, masks_on_device, keep_from)
        for got_mask, expected_mask in zip(got, selection.mask_from_threshold_numpy(values, masks, keep_from)):
            _same_bits(device.to_numpy(got_mask), expected_mask, f"{name}, keep_from_bits={keep_from:#x}")

    with np.errstate(invalid="ignore"):  # inf * 0 = NaN, in the kernel and the twin alike
        expected = selection.apply_mask_numpy(values, masks)
    for pruned, expected_values in zip(selection.apply_mask_cuda(on_device, masks_on_device), expected):
        _same_bits(device.to_numpy(pruned), expected_values, f"{name}, apply_mask")
    in_place = [device.to_device(value.copy()) for value in values]
    selection.apply_mask_cuda(in_place, masks_on_device, out=in_place)  # outputs alias values
    for pruned, expected_values in zip(in_place, expected):
        _same_bits(device.to_numpy(pruned), expected_values, f"{name}, apply_mask in place")


def test_every_kernel_matches_its_numpy_twin(device, rng):
    for name, values, masks in _problems(device.sizes, rng):
        _check_every_kernel(device, values, masks, name)


def test_host_constants_match_the_kernel_source():
    defines = dict(re.findall(r"#define (\w+)\s+(\d+)", kernels.source("prune")))
    for name in ("BLOCK_THREADS", "CHUNK_ELEMENTS", "FIRST_DIGIT_BITS", "LATER_DIGIT_BITS"):
        assert int(defines[name]) == getattr(selection, name), name
    assert selection.FIRST_DIGIT_BITS + 2 * selection.LATER_DIGIT_BITS == 31  # every bit of |w|, once
    assert (1 << selection.FIRST_DIGIT_BITS) % selection.BLOCK_THREADS == 0  # select_digit's runs of bins


def test_the_tensor_slot_matches_the_c_struct():
    """static_asserts on sizeof/offsetof, written from the NumPy dtype, must compile with NVRTC."""
    checks = [f'static_assert(sizeof(TensorSlot) == {selection.TENSOR_SLOT.itemsize}, "size");']
    checks += [f'static_assert(__builtin_offsetof(TensorSlot, {field}) == {selection.TENSOR_SLOT.fields[field][1]},'
               f' "{field}");' for field in selection.TENSOR_SLOT.names]
    kernels.compile_for_source(kernels.source("prune") + "\n".join(checks), "sm_90")
    with pytest.raises(RuntimeError, match="first_chunk"):
        kernels.compile_for_source(kernels.source("prune") + "\n".join(checks).replace("== 32", "== 24"), "sm_90")


def test_the_chunk_table_gives_every_element_to_exactly_one_block(monkeypatch):
    _Emulated(monkeypatch).device.host_memory = True  # the table holds these NumPy arrays' addresses
    sizes = [1, 4095, 4096, 4097, 0, 12289, 5]
    values = [np.zeros(size, dtype=np.float32) for size in sizes]
    table = selection._ChunkTable(values)
    slots, chunk_tensor = table.arguments[0].view(selection.TENSOR_SLOT), table.arguments[1]
    assert table.chunks == len(chunk_tensor) == sum(-(-size // selection.CHUNK_ELEMENTS) for size in sizes)
    assert list(slots["values"]) == [value.ctypes.data for value in values] and not slots["mask"].any()
    covered = [np.zeros(size, dtype=int) for size in sizes]
    for block, tensor in enumerate(chunk_tensor):
        start = (block - slots["first_chunk"][tensor]) * selection.CHUNK_ELEMENTS
        assert 0 <= start < sizes[tensor]
        covered[tensor][start:start + selection.CHUNK_ELEMENTS] += 1
    assert all(np.all(count == 1) for count in covered)


def test_more_tensors_than_a_grid_has_rows(monkeypatch, rng):
    """65,537 tensors in one launch: the flat table has no 65,535 limit (a grid.y per tensor had one).

    Most are empty (no block at all), so that the emulator runs a few hundred blocks; the
    last ones sit past index 65,535 of the table."""
    emulated = _Emulated(monkeypatch)
    emulated.device.host_memory = True  # 65,537 NumPy arrays, taken as device memory
    values = [rng.normal(size=(1 + index % 3) * (index % 499 == 0 or index > 65_530)).astype(np.float32)
              for index in range(65_537)]
    masks = [(rng.random(value.shape) < 0.7).astype(np.float32) for value in values]
    pruned = selection.apply_mask_cuda(values, masks)
    assert emulated.device.launches == ["apply_mask"]
    for got, value, mask in zip(pruned, values, masks):
        _same_bits(got, value * mask, "apply_mask over 65,537 tensors")


def test_a_numpy_array_never_reaches_a_gpu_kernel():
    values = [np.ones(5, dtype=np.float32)]
    with pytest.raises(TypeError, match=r"numpy.ndarray of shape \(5,\) \(float32\) cannot reach a kernel"):
        selection.apply_mask_cuda(values, values, out=values)


def test_long_runs_of_equal_candidates_fill_the_short_list(monkeypatch, rng):
    """Every candidate in one bin of the first digit: the short list holds them all, across blocks."""
    emulated = _Emulated(monkeypatch)
    emulated.device.host_memory = True
    values = [np.full(size, 0.5, dtype=np.float32) for size in (9000, 4096)]
    values[0][::7] = np.nextafter(np.float32(0.5), np.float32(1))
    masks = [np.ones_like(value) for value in values]
    for k in (1, 1286, 1287, 9000, 13096):
        assert selection.kth_smallest_cuda(values, masks, k) == selection.kth_smallest_numpy(values, masks, k), k


def _model():
    model = nn.Sequential(nn.Linear(37, 29), nn.ReLU(), nn.Linear(29, 10))
    model[0].weight.data[:3, :5] = 0.125  # a block of equal weights: ties across the cut
    return model


def _prune_in_every_way(model):
    weights = prune.prunable_parameters(model)
    prune.global_unstructured(weights, prune.L1Unstructured, amount=0.6)
    prune.l1_unstructured(model[0], "weight", amount=0.3)  # re-pruning: only unpruned entries compete
    prune.threshold(model[2], "weight", eps=0.05)
    prune.random_unstructured(model[2], "bias", amount=4)
    prune.ln_structured(model[0], "weight", amount=0.2, n=2, dim=0)  # float64 channel norms: the twin
    masks = [layer.weight_mask.numpy().copy() for layer in (model[0], model[2])] + [model[2].bias_mask.numpy()]
    prune.remove(model[0], "weight")
    return masks + [model[0].weight.numpy(), model[2].weight.numpy()]


def test_pruning_a_model_on_the_kernels_matches_the_numpy_twins(device):
    """The pruning methods, their dispatch and ``remove`` give the same masks and weights on the kernels."""
    mg.manual_seed(3)
    twin_model, kernel_model = _model(), _model()
    kernel_model.load_state_dict(twin_model.state_dict())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "device", kernels.Device("prune"))  # holds no NumPy array: the twins run
        mg.manual_seed(4)
        expected = _prune_in_every_way(twin_model)
    if isinstance(device, _Cuda):
        kernel_model.to("cuda")
    else:  # the model's tensors stay NumPy arrays: the emulator takes them as device memory
        device.device.host_memory = True
    mg.manual_seed(4)
    got = _prune_in_every_way(kernel_model)
    if isinstance(device, _Emulated):  # three selects (global, l1, random; ln ranks float64 norms), a threshold
        launches = device.device.launches
        assert launches.count("first_digit_histogram") == 3 and launches.count("mask_from_threshold") == 4
        assert launches[-1] == "apply_mask"  # remove()
    for index, (kernel_result, twin_result) in enumerate(zip(got, expected)):
        _same_bits(kernel_result, twin_result, f"result {index}")
