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
table is byte-for-byte the one already on the device.
"""
import numpy as np

from .. import backend, kernels
from .optimizer import parameter_mask

CHUNK_SIZE = 4096       # elements per block; a multiple of the 4-wide float vectors
BLOCK_THREADS = 256     # must equal BLOCK_THREADS in sgd.cu (its __launch_bounds__)

# Bit values of TensorEntry.flags, as #defined in sgd.cu.
FLAG_MOMENTUM, FLAG_FIRST_STEP, FLAG_NESTEROV, FLAG_MAXIMIZE = 1, 2, 4, 8
FLAG_MASK_SAME, FLAG_MASK_BYTE, FLAG_VECTORIZED = 16, 32, 64

# The C structs of sgd.cu, field for field (56 and 32 bytes, 8-byte aligned).
TENSOR_ENTRY = np.dtype([("param", "<u8"), ("grad", "<u8"), ("momentum_buffer", "<u8"), ("mask", "<u8"),
                         ("numel", "<i8"), ("first_chunk", "<i8"), ("group", "<i4"), ("flags", "<i4")])
GROUP_HYPERPARAMETERS = np.dtype([("lr", "<f8"), ("momentum", "<f8"), ("dampening", "<f8"),
                                  ("weight_decay", "<f8")])
KERNEL_FOR_DTYPE = {np.dtype(np.float32): "sgd_update_float", np.dtype(np.float64): "sgd_update_double"}


def _address(array):
    """The device (or host) address of an array's first element; 0 for None."""
    if array is None:
        return 0
    return int(array.data.ptr) if backend.is_cupy_array(array) else array.ctypes.data


def build_table(items, state):
    """The host table for one dtype. items: (index, parameter, group) with a gradient.

    Creates missing momentum buffers in ``state`` (flagged FIRST_STEP, so the kernel
    writes them without reading). Returns (table bytes, entry count, group count,
    chunk count, temporaries that must live until the launch is queued). Works on
    NumPy arrays too (host addresses), which is how the CPU tests check the table.
    """
    group_row = {}
    rows, temporaries = [], []
    for index, parameter, group in items:
        param, grad = parameter.data, parameter.grad.data
        xp = backend.array_module(param)
        if param.size == 0:
            continue
        if not param.flags.c_contiguous:
            raise ValueError(f"SGD: parameter {index} (shape {parameter.shape}) is not contiguous; "
                             f"the fused GPU update needs contiguous parameters")
        if grad.dtype != param.dtype or not grad.flags.c_contiguous:
            grad = xp.ascontiguousarray(grad, dtype=param.dtype)
            temporaries.append(grad)
        flags, buffer = 0, None
        if group["momentum"] != 0:
            flags |= FLAG_MOMENTUM
            parameter_state = state.setdefault(parameter, {})
            buffer = parameter_state.get("momentum_buffer")
            if buffer is None:
                buffer = parameter_state["momentum_buffer"] = xp.empty_like(param)
                flags |= FLAG_FIRST_STEP
            elif buffer.dtype != param.dtype or not buffer.flags.c_contiguous or buffer.shape != param.shape:
                raise ValueError(f"SGD: the momentum buffer of parameter {index} has shape {buffer.shape} "
                                 f"and dtype {buffer.dtype}; expected a contiguous {param.dtype} array "
                                 f"of shape {param.shape}")
        flags |= FLAG_NESTEROV if group["nesterov"] else 0
        flags |= FLAG_MAXIMIZE if group["maximize"] else 0
        mask = parameter_mask("SGD", parameter, index)
        if mask is not None:
            original = mask
            if mask.dtype.itemsize == 1 and mask.dtype.kind in "bui":
                flags |= FLAG_MASK_BYTE
            elif mask.dtype == param.dtype:
                flags |= FLAG_MASK_SAME
            else:
                mask = mask != 0
                flags |= FLAG_MASK_BYTE
            if not mask.flags.c_contiguous:
                mask = xp.ascontiguousarray(mask)
            if mask is not original:
                temporaries.append(mask)
        vector_arrays = [param, grad, buffer] + ([mask] if flags & FLAG_MASK_SAME else [])
        if all(_address(array) % 16 == 0 for array in vector_arrays):
            flags |= FLAG_VECTORIZED
        row = group_row.setdefault(id(group), (len(group_row), group))[0]
        rows.append((_address(param), _address(grad), _address(buffer), _address(mask), param.size, row, flags))

    groups = sorted(group_row.values(), key=lambda pair: pair[0])
    chunks = np.array([-(-row[4] // CHUNK_SIZE) for row in rows], dtype=np.int64)
    n_entries, n_groups, n_chunks = len(rows), len(groups), int(chunks.sum())
    if n_chunks >= 2 ** 31:
        raise ValueError(f"SGD: {n_chunks} blocks exceed one launch; the parameters are too large")
    entries_end = n_entries * TENSOR_ENTRY.itemsize
    groups_end = entries_end + n_groups * GROUP_HYPERPARAMETERS.itemsize
    table = np.zeros(groups_end + 4 * n_chunks, dtype=np.uint8)
    entries = table[:entries_end].view(TENSOR_ENTRY)
    for position, field in enumerate(("param", "grad", "momentum_buffer", "mask", "numel")):
        entries[field] = [row[position] for row in rows]
    entries["group"] = [row[5] for row in rows]
    entries["flags"] = [row[6] for row in rows]
    entries["first_chunk"] = np.cumsum(chunks) - chunks
    hyperparameters = table[entries_end:groups_end].view(GROUP_HYPERPARAMETERS)
    for field in GROUP_HYPERPARAMETERS.names:
        hyperparameters[field] = [group[field] for _, group in groups]
    table[groups_end:].view(np.int32)[:] = np.repeat(np.arange(n_entries, dtype=np.int32), chunks)
    return table, n_entries, n_groups, n_chunks, temporaries


class _TableUpload:
    """Copies a host table to the device on the current stream without stalling the host.

    The bytes go through a pinned buffer; before that buffer is overwritten, an event
    makes sure the previous copy has read it. The device copy is reused in stream order.
    """

    def __init__(self):
        self.pinned = None
        self.device = None
        self.copied = None
        self.last = None

    def upload(self, table):
        cupy = backend.cupy()
        if self.last is not None and np.array_equal(self.last, table):
            return self.device
        if self.copied is not None:
            self.copied.synchronize()
        if self.pinned is None or self.pinned.size < table.size:
            capacity = max(table.size, 2 * (0 if self.pinned is None else self.pinned.size))
            self.pinned = np.frombuffer(cupy.cuda.alloc_pinned_memory(capacity), np.uint8, capacity)
            self.device = cupy.empty(capacity, dtype=np.uint8)
        self.pinned[:table.size] = table
        stream = cupy.cuda.get_current_stream()
        self.device.data.copy_from_host_async(self.pinned.ctypes.data, table.size, stream)
        self.copied = cupy.cuda.Event(block=False, disable_timing=True)
        self.copied.record(stream)
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
            device = self._uploads.setdefault(dtype, _TableUpload()).upload(table)
            entries_end = n_entries * TENSOR_ENTRY.itemsize
            groups_end = entries_end + n_groups * GROUP_HYPERPARAMETERS.itemsize
            kernel = self._kernels.get(dtype)
            if kernel is None:
                kernel = self._kernels[dtype] = kernels.function("sgd", KERNEL_FOR_DTYPE[dtype])
            kernel((n_chunks,), (BLOCK_THREADS,),
                   (device[:entries_end], device[entries_end:groups_end], device[groups_end:],
                    np.int64(CHUNK_SIZE)))
            del temporaries  # freed into CuPy's stream-ordered pool after the launch is queued
