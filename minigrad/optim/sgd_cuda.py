"""The GPU path of SGD: one launch of ``kernels/sgd.cu`` updates every parameter.

Each step the host writes a small table and uploads it (asynchronously, through
pinned memory) next to the kernel's arguments:

    entries[t]       pointers of parameter t's weight, gradient, momentum buffer and
                     mask, its size, its first block, its group and its flags
    groups[k]        lr, momentum, dampening, weight_decay of param group k
    chunk_tensor[b]  which tensor block b updates

Every tensor is cut into chunks of ``CHUNK_SIZE`` elements and each chunk is one
block, so one launch covers tensors of every size (see the header of sgd.cu for
the launch shape and the memory floor). Gradients are fresh arrays after every
backward, so the pointers are gathered each step; the upload is skipped when the
table is byte-for-byte the one already on the device. Copies and launches go on
CuPy's current stream: keep one stream for the optimizer's steps.

Every address in the table comes from ``kernels.address``, which refuses an array
the GPU cannot read. A momentum buffer left in host memory (made before
``model.to("cuda")``) moves to the GPU with its parameter on the next step.
"""
import numpy as np

from .. import backend, kernels
from .optimizer import parameter_mask

CHUNK_SIZE = 4096       # elements per block; a multiple of the 4-wide float vectors
BLOCK_THREADS = 256     # must equal BLOCK_THREADS in sgd.cu (its __launch_bounds__)
MASK_BYTE_ALIGNMENT = 4  # a byte mask is read 4 bytes (2 for float64) at a time on the vector path

device = kernels.Device("sgd")  # tests swap in a CPU emulator with the same members

# Bit values of TensorEntry.flags, as #defined in sgd.cu.
FLAG_MOMENTUM, FLAG_FIRST_STEP, FLAG_NESTEROV, FLAG_MAXIMIZE = 1, 2, 4, 8
FLAG_MASK_SAME, FLAG_MASK_BYTE, FLAG_VECTORIZED = 16, 32, 64

# The C structs of sgd.cu, field for field (56 and 32 bytes, 8-byte aligned).
TENSOR_ENTRY = np.dtype([("param", "<u8"), ("grad", "<u8"), ("momentum_buffer", "<u8"), ("mask", "<u8"),
                         ("numel", "<i8"), ("first_chunk", "<i8"), ("group", "<i4"), ("flags", "<i4")])
GROUP_HYPERPARAMETERS = np.dtype([("lr", "<f8"), ("momentum", "<f8"), ("dampening", "<f8"),
                                  ("weight_decay", "<f8")])
KERNEL_FOR_DTYPE = {np.dtype(np.float32): "sgd_update_float", np.dtype(np.float64): "sgd_update_double"}


def _momentum_buffer(index, parameter, state, xp):
    """(the parameter's momentum buffer on the device, whether it is new: FIRST_STEP)."""
    parameter_state = state.setdefault(parameter, {})
    buffer = parameter_state.get("momentum_buffer")
    if buffer is None:
        parameter_state["momentum_buffer"] = xp.empty_like(parameter.data)
        return parameter_state["momentum_buffer"], True
    param = parameter.data
    if buffer.dtype != param.dtype or buffer.shape != param.shape or not buffer.flags.c_contiguous:
        raise ValueError(f"SGD: the momentum buffer of parameter {index} has shape {buffer.shape} "
                         f"and dtype {buffer.dtype}; expected a contiguous {param.dtype} array "
                         f"of shape {param.shape}")
    if not device.holds(buffer):  # made before the model moved to the GPU: it moves too
        buffer = parameter_state["momentum_buffer"] = xp.asarray(backend.to_numpy(buffer))
    return buffer, False


def _entry(index, parameter, group, state, temporaries):
    """One table row (param, grad, buffer, mask addresses, numel, flags) of a parameter.

    Makes whatever the kernel needs that is not there yet: a contiguous gradient of the
    parameter's dtype, the momentum buffer (FIRST_STEP: the kernel writes it without
    reading), a one-byte mask for a mask of another dtype.
    """
    param, grad = parameter.data, parameter.grad.data
    if not param.flags.c_contiguous:
        raise ValueError(f"SGD: parameter {index} (shape {parameter.shape}) is not contiguous; "
                         f"the fused GPU update needs contiguous parameters")
    param_address, xp = kernels.address(param, device), device.xp
    if grad.dtype != param.dtype or not grad.flags.c_contiguous:
        grad = xp.ascontiguousarray(grad, dtype=param.dtype)
        temporaries.append(grad)
    flags = (FLAG_NESTEROV if group["nesterov"] else 0) | (FLAG_MAXIMIZE if group["maximize"] else 0)
    buffer_address = mask_address = 0
    if group["momentum"] != 0:
        buffer, first_step = _momentum_buffer(index, parameter, state, xp)
        flags |= FLAG_MOMENTUM | (FLAG_FIRST_STEP if first_step else 0)
        buffer_address = kernels.address(buffer, device)
    mask = given_mask = parameter_mask("SGD", parameter, index)
    if mask is not None:
        if mask.dtype == param.dtype:
            flags |= FLAG_MASK_SAME
        else:
            flags |= FLAG_MASK_BYTE
            if not (mask.dtype.itemsize == 1 and mask.dtype.kind in "bui"):
                mask = mask != 0
        if not mask.flags.c_contiguous:
            mask = xp.ascontiguousarray(mask)
        if mask is not given_mask:
            temporaries.append(mask)
        mask_address = kernels.address(mask, device)
    return param_address, kernels.address(grad, device), buffer_address, mask_address, param.size, flags


def build_table(items, state):
    """The host table for one dtype. items: (index, parameter, group) with a gradient.

    Returns (table bytes, entry count, group count, chunk count, temporaries that must
    live until the launch is queued). On the CPU emulator (``device`` swapped for
    it) the arrays are NumPy arrays and the addresses host addresses.
    """
    group_row, rows, groups_of_rows, temporaries = {}, [], [], []
    for index, parameter, group in items:
        if parameter.data.size:
            rows.append(_entry(index, parameter, group, state, temporaries))
            groups_of_rows.append(group_row.setdefault(id(group), (len(group_row), group))[0])
    n_entries, n_groups = len(rows), len(group_row)
    columns = np.array(rows, dtype=np.uint64).reshape(n_entries, 6)
    flags = columns[:, 5].astype(np.int32)
    # 16-byte vector loads need every pointer they touch aligned (absent ones are 0)
    mask_alignment = np.where(flags & FLAG_MASK_SAME, 16, np.where(flags & FLAG_MASK_BYTE, MASK_BYTE_ALIGNMENT, 1))
    mask_aligned = columns[:, 3] % mask_alignment.astype(np.uint64) == 0
    aligned = np.all(columns[:, :3] % 16 == 0, axis=1) & mask_aligned
    flags |= np.where(aligned, FLAG_VECTORIZED, 0).astype(np.int32)
    chunks = (-(-columns[:, 4].astype(np.int64) // CHUNK_SIZE))
    n_chunks = int(chunks.sum())
    if n_chunks >= 2 ** 31:
        raise ValueError(f"SGD: {n_chunks} blocks exceed one launch; the parameters are too large")

    entries_end = n_entries * TENSOR_ENTRY.itemsize
    groups_end = entries_end + n_groups * GROUP_HYPERPARAMETERS.itemsize
    table = np.zeros(groups_end + 4 * n_chunks, dtype=np.uint8)
    entries = table[:entries_end].view(TENSOR_ENTRY)
    for column, field in enumerate(("param", "grad", "momentum_buffer", "mask", "numel")):
        entries[field] = columns[:, column]
    entries["first_chunk"] = np.cumsum(chunks) - chunks
    entries["group"] = groups_of_rows
    entries["flags"] = flags
    hyperparameters = table[entries_end:groups_end].view(GROUP_HYPERPARAMETERS)
    for field in GROUP_HYPERPARAMETERS.names:
        hyperparameters[field] = [group[field] for _, group in sorted(group_row.values(), key=lambda row: row[0])]
    table[groups_end:].view(np.int32)[:] = np.repeat(np.arange(n_entries, dtype=np.int32), chunks)
    return table, n_entries, n_groups, n_chunks, temporaries


def kernel_arguments(table, n_entries, n_groups):
    """The kernel's (entries, groups, chunk_tensor, chunk_size): slices of one table (CuPy or NumPy)."""
    entries_end = n_entries * TENSOR_ENTRY.itemsize
    groups_end = entries_end + n_groups * GROUP_HYPERPARAMETERS.itemsize
    return table[:entries_end], table[entries_end:groups_end], table[groups_end:], np.int64(CHUNK_SIZE)


class _TableUpload:
    """Copies a host table to the device on the current stream without stalling the host.

    The bytes go through one of two pinned staging buffers, used in turn. Before a
    staging buffer is written again, the copy that last read it (two uploads ago)
    must be done; by then it has long been, so the host does not wait. The device
    copy is reused in stream order.
    """

    def __init__(self):
        self.staging = [None, None]   # pinned host buffers
        self.copied = [None, None]    # the event after the last copy out of each
        self.turn = 0
        self.device = None
        self.last = None

    def upload(self, table):
        cupy = backend.cupy()
        if self.last is not None and np.array_equal(self.last, table):
            return self.device
        turn = self.turn
        self.turn ^= 1
        if self.copied[turn] is not None:
            self.copied[turn].synchronize()
        pinned = self.staging[turn]
        if pinned is None or pinned.size < table.size:
            capacity = max(table.size, 2 * (0 if pinned is None else pinned.size))
            pinned = self.staging[turn] = np.frombuffer(cupy.cuda.alloc_pinned_memory(capacity), np.uint8, capacity)
        if self.device is None or self.device.size < table.size:
            self.device = cupy.empty(max(table.size, 2 * (0 if self.device is None else self.device.size)),
                                     dtype=np.uint8)
        pinned[:table.size] = table
        stream = cupy.cuda.get_current_stream()
        self.device.data.copy_from_host_async(pinned.ctypes.data, table.size, stream)
        self.copied[turn] = cupy.cuda.Event(block=False, disable_timing=True)
        self.copied[turn].record(stream)
        self.last = table.copy()
        return self.device


class FusedSGD:
    """Launches the fused update: one kernel per parameter dtype (float32, float64)."""

    def __init__(self):
        self._uploads = {}   # dtype -> _TableUpload
        self._kernels = {}   # dtype -> the compiled __global__ function

    def step(self, items, state):
        """items: (index, parameter, group) for every CuPy parameter that has a gradient."""
        by_dtype = {}
        for item in items:
            by_dtype.setdefault(item[1].dtype, []).append(item)
        for dtype, same_dtype in by_dtype.items():
            if dtype not in KERNEL_FOR_DTYPE:
                raise TypeError(f"SGD: the fused GPU update supports float32 and float64 parameters, "
                                f"parameter {same_dtype[0][0]} is {dtype}")
            table, n_entries, n_groups, n_chunks, temporaries = build_table(same_dtype, state)
            if n_chunks == 0:
                continue
            uploaded = self._uploads.setdefault(dtype, _TableUpload()).upload(table)
            kernel = self._kernels.get(dtype)
            if kernel is None:
                kernel = self._kernels[dtype] = device.kernel(KERNEL_FOR_DTYPE[dtype])
            kernel((n_chunks,), (BLOCK_THREADS,), kernel_arguments(uploaded, n_entries, n_groups))
            del temporaries  # freed into CuPy's stream-ordered pool after the launch is queued
