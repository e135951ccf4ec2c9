"""Distributed data-parallel training over MPI (``mg.distributed``).

    mpirun -n 4 python train.py

starts four processes (ranks) running the same script. Each rank keeps a
whole copy of the model, takes its own quarter of every batch, computes
gradients on it, and the ranks average their gradients (all-reduce) so that
every rank takes the same optimizer step:

    g = (1/N) sum_r g_r,   w <- w - lr * g   (the same w on every rank)

The pieces, one file each:

- ``world.py``: ``init``, ranks, the GPU of each rank, ending the whole job on an error (``abort``).
- ``collectives.py``: all-reduce and broadcast of one array (MPI, CUDA-aware MPI or NCCL).
- ``data_parallel.py``: starting identical, gradient buckets, ``DistributedDataParallel``.
- ``sync_batchnorm.py``: BatchNorm whose batch statistics cover the whole global batch.

Without mpirun (or without mpi4py) the script runs as a world of one, unchanged.
"""
from .collectives import all_reduce_mean, all_reduce_sum, allgather_object, broadcast_object
from .data_parallel import (DistributedDataParallel, allreduce_gradients, broadcast_optimizer_state,
                            broadcast_parameters, check_model_consistency)
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm
from .world import (abort, barrier, find_mpiexec, first_difference, first_problem, get_local_rank, get_local_size,
                    get_rank, get_world_size, init, is_initialized, is_main_process)

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank", "get_local_size",
           "is_main_process", "abort", "first_problem", "first_difference", "barrier", "broadcast_parameters",
           "broadcast_optimizer_state", "check_model_consistency",
           "allreduce_gradients", "DistributedDataParallel", "all_reduce_mean", "all_reduce_sum",
           "broadcast_object", "allgather_object", "find_mpiexec", "SyncBatchNorm",
           "convert_sync_batchnorm"]
