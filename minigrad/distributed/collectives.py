"""Moving arrays between ranks: sum, broadcast and gather of one array, on NumPy or CuPy.

Every call hands MPI the array's own memory (mpi4py's capitalised, buffer-based
methods: ``Allreduce``, ``Bcast``, ``Allgather``), never a pickled copy; the lowercase
``allreduce``/``bcast`` appear only in ``broadcast_object`` and
``allgather_object``, for small Python objects such as options and names.

A NumPy array always travels by MPI. A CuPy array travels one of three ways,
chosen once per job (``init(backend=...)``):

1. NCCL (``cupy.cuda.nccl``): GPU-to-GPU collectives, the fastest. Its
   communicator is bootstrapped over MPI: rank 0 draws a unique id, ``Bcast``
   sends it to every rank. Chosen automatically when NCCL loads and every rank
   on a machine has its own GPU (NCCL refuses two ranks on one GPU).
2. CUDA-aware MPI: mpi4py passes the device pointer
   (``__cuda_array_interface__``) straight to MPI. Detected with
   ``MPIX_Query_cuda_support`` (Open MPI, MPICH); ``MINIGRAD_CUDA_AWARE_MPI=0/1``
   overrides the detection.
3. Staged: copy to a pinned host buffer, reduce with MPI on the host, copy back.
"""
import ctypes
import os
import warnings

import numpy as np

from ..backend import array_module, cupy, is_cupy_array
from ..tensor import Tensor
from .world import get_world

NCCL_UNIQUE_ID_BYTES = 128


class MPITransport:
    """Arrays that MPI can read where they are: NumPy arrays, or CuPy arrays with CUDA-aware MPI."""

    name = "mpi"

    def __init__(self, world, on_gpu=False):
        self.comm, self.MPI, self.on_gpu = world.comm, world.MPI, on_gpu

    def _wait_for_gpu(self):
        # MPI reads device memory directly, outside CuPy's stream order: finish pending kernels first.
        if self.on_gpu:
            cupy().cuda.get_current_stream().synchronize()

    def allreduce_sum_(self, array):
        self._wait_for_gpu()
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def broadcast_(self, array, root):
        self._wait_for_gpu()
        self.comm.Bcast(array, root=root)

    def allgather(self, array, gathered):
        self._wait_for_gpu()
        self.comm.Allgather(array, gathered)


class StagedTransport:
    """CuPy arrays through host memory: device -> pinned host buffer -> MPI -> device."""

    name = "mpi-staged"

    def __init__(self, world):
        self.host = MPITransport(world)
        self.pinned_buffers = {}  # (dtype, size) -> pinned host array, reused every step

    def _pinned(self, array):
        key = (array.dtype.str, array.size)
        if key not in self.pinned_buffers:
            import cupyx
            self.pinned_buffers[key] = cupyx.empty_pinned(array.size, dtype=array.dtype)
        return self.pinned_buffers[key].reshape(array.shape)

    def allreduce_sum_(self, array):
        staging = array.get(out=self._pinned(array))  # synchronous copy: waits for the stream
        self.host.allreduce_sum_(staging)
        array.set(staging)

    def broadcast_(self, array, root):
        staging = array.get()
        self.host.broadcast_(staging, root)
        array.set(staging)

    def allgather(self, array, gathered):
        staging = np.empty(gathered.shape, dtype=gathered.dtype)
        self.host.allgather(array.get(), staging)
        gathered.set(staging)


def _nccl_datatypes(nccl):
    return {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int32): nccl.NCCL_INT32,
            np.dtype(np.int64): nccl.NCCL_INT64, np.dtype(np.uint8): nccl.NCCL_UINT8,
            np.dtype(np.int8): nccl.NCCL_INT8}


class NCCLTransport:
    """CuPy arrays by NCCL, enqueued on CuPy's current stream (so no synchronisation is needed)."""

    name = "nccl"

    def __init__(self, world, fallback):
        from cupy.cuda import nccl
        self.nccl, self.fallback = nccl, fallback
        self.datatypes = _nccl_datatypes(nccl)
        unique_id = np.zeros(NCCL_UNIQUE_ID_BYTES, dtype=np.uint8)
        if world.rank == 0:
            drawn = nccl.get_unique_id()  # bytes (CuPy >= 14) or a tuple of signed chars (older)
            as_bytes = drawn if isinstance(drawn, bytes) else np.array(drawn, dtype=np.int8).tobytes()
            unique_id[:] = np.frombuffer(as_bytes, dtype=np.uint8)
        world.comm.Bcast(unique_id, root=0)
        try:
            self.comm = nccl.NcclCommunicator(world.size, unique_id.tobytes(), world.rank)
        except TypeError:  # CuPy < 14 takes the id as a tuple of ints
            self.comm = nccl.NcclCommunicator(world.size, tuple(unique_id.view(np.int8).tolist()), world.rank)

    def _datatype(self, array):
        if array.dtype == np.bool_:
            return self.datatypes[np.dtype(np.uint8)]
        return self.datatypes.get(array.dtype)

    def allreduce_sum_(self, array):
        datatype = self._datatype(array)
        if datatype is None or array.dtype == np.bool_:
            return self.fallback.allreduce_sum_(array)
        stream = cupy().cuda.get_current_stream().ptr
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, datatype, self.nccl.NCCL_SUM, stream)

    def broadcast_(self, array, root):
        datatype = self._datatype(array)
        if datatype is None:
            return self.fallback.broadcast_(array, root)
        stream = cupy().cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, datatype, root, stream)

    def allgather(self, array, gathered):
        datatype = self._datatype(array)
        if datatype is None:
            return self.fallback.allgather(array, gathered)
        stream = cupy().cuda.get_current_stream().ptr
        self.comm.allGather(array.data.ptr, gathered.data.ptr, array.size, datatype, stream)


def mpi_is_cuda_aware(MPI):
    """Whether this MPI library accepts GPU pointers (``MPIX_Query_cuda_support``)."""
    setting = os.environ.get("MINIGRAD_CUDA_AWARE_MPI")
    if setting is not None:
        return setting == "1"
    for library in (MPI.__file__, None):  # the symbol sits in libmpi, a dependency of mpi4py's module
        try:
            query = getattr(ctypes.CDLL(library), "MPIX_Query_cuda_support")
        except (OSError, AttributeError):
            continue
        return bool(query())
    return False


def _gpu_transport(world):
    staged_or_direct = MPITransport(world, on_gpu=True) if mpi_is_cuda_aware(world.MPI) else StagedTransport(world)
    if world.backend == "mpi":
        return staged_or_direct
    with warnings.catch_warnings():  # CuPy warns when libnccl is missing; we fall back to MPI
        warnings.simplefilter("ignore")
        from cupy.cuda import nccl
    if world.backend == "nccl":
        if not nccl.available:
            raise RuntimeError("distributed: backend='nccl' but cupy.cuda.nccl cannot load NCCL "
                               "(pip install nvidia-nccl-cu13, or init(backend='mpi'))")
        return NCCLTransport(world, staged_or_direct)
    ranks_share_a_gpu = world.local_size > cupy().cuda.runtime.getDeviceCount()
    if nccl.available and not ranks_share_a_gpu:
        return NCCLTransport(world, staged_or_direct)
    return staged_or_direct


def transport_for(array):
    """The transport that moves ``array`` (created on first use; every rank must call together)."""
    world = get_world()
    kind = "cuda" if is_cupy_array(array) else "cpu"
    if kind not in world.transports:
        world.transports[kind] = _gpu_transport(world) if kind == "cuda" else MPITransport(world)
    return world.transports[kind]


def _in_place(operation, array, *arguments):
    """Run a transport operation on ``array``, through a contiguous copy if it is strided."""
    if array.flags.c_contiguous:
        operation(array, *arguments)
        return array
    contiguous = array_module(array).ascontiguousarray(array)
    operation(contiguous, *arguments)
    array[...] = contiguous
    return array


def allreduce_sum_(array):
    """``array`` <- the sum of ``array`` over all ranks, in place; returns ``array``.

    ``array``: a NumPy or CuPy array of the same shape and dtype on every rank.
    """
    if get_world().size == 1 or array.size == 0:
        return array
    return _in_place(transport_for(array).allreduce_sum_, array)


def broadcast_(array, root=0):
    """``array`` <- rank ``root``'s ``array``, in place on every rank; returns ``array``."""
    if get_world().size == 1 or array.size == 0:
        return array
    return _in_place(transport_for(array).broadcast_, array, root)


def allgather(array):
    """Every rank's ``array``, stacked in rank order: shape (world_size,) + array.shape.

    ``array``: a NumPy or CuPy array of the same shape and dtype on every rank.
    """
    xp = array_module(array)
    array = xp.ascontiguousarray(array)
    world = get_world()
    gathered = xp.empty((world.size,) + array.shape, dtype=array.dtype)
    if world.size == 1 or array.size == 0:
        gathered[0] = array
        return gathered
    transport_for(array).allgather(array, gathered)
    return gathered


def broadcast_object(value, root=0):
    """Rank ``root``'s ``value`` on every rank (pickled: for small Python objects, never arrays)."""
    world = get_world()
    return value if world.size == 1 else world.comm.bcast(value, root=root)


def allgather_object(value):
    """A list with every rank's ``value``, in rank order (pickled: small Python objects only)."""
    world = get_world()
    return [value] if world.size == 1 else world.comm.allgather(value)


def _reduce_value(value, average):
    source = value.data if isinstance(value, Tensor) else value
    xp = array_module(source)
    result = xp.array(source, copy=True)  # the caller's value is never changed
    if average and result.dtype.kind not in "fc":
        result = result.astype(np.float64)
    allreduce_sum_(result.reshape(-1))  # a view of the contiguous copy
    if average:
        result /= get_world().size
    if isinstance(value, Tensor):
        return Tensor(result)
    if isinstance(value, (int, float, np.generic)):
        return result.item()
    return result


def all_reduce_sum(value):
    """The sum over ranks of ``value`` (a number, an array or a Tensor), e.g. correct predictions.

    Returns the same kind of thing: a Python number for a number, a Tensor for a Tensor.
    """
    return _reduce_value(value, average=False)


def all_reduce_mean(value):
    """The mean over ranks of ``value`` (a number, an array or a Tensor), e.g. the loss.

    With equal shards the mean of per-rank means is the mean over the whole batch.
    """
    return _reduce_value(value, average=True)
