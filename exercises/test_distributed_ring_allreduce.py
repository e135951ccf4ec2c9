"""Check for exercises/distributed_ring_allreduce.py: real MPI jobs of 2 and 3 ranks compare the
result with MPI's own all-reduce and count the values each rank sends."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from minigrad.distributed import find_mpiexec
from exercises import distributed_ring_allreduce as exercise
from exercises.checking import run

WORKER = Path(__file__).resolve().parent / "_ring_worker.py"


def check(ring_allreduce):
    mpiexec = find_mpiexec()
    assert mpiexec is not None, "no mpiexec next to this Python or on PATH (pip install mpi4py mpich)"
    name = f"{ring_allreduce.__module__}:{ring_allreduce.__qualname__}"
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    for ranks in (2, 3):
        try:
            result = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, str(WORKER), name],
                                    capture_output=True, text=True, timeout=60, env=environment)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"mpiexec -n {ranks}: not finished after 60 s (do the sends and receives pair up?)")
        if result.returncode == 3:
            raise NotImplementedError
        assert result.returncode == 0, f"mpiexec -n {ranks}: {result.stderr.strip()[-600:]}"


def reference(comm, array):
    """minigrad's all-reduce runs through MPI's collective; a ring of Sendrecv is written here
    with the chunks of the chapter's formula (minigrad has no ring of its own)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    chunks = np.array_split(array, size)
    right, left = (rank + 1) % size, (rank - 1) % size
    for step in range(size - 1):
        outgoing, incoming = (rank - step) % size, (rank - step - 1) % size
        received = np.empty_like(chunks[incoming])
        comm.Sendrecv(chunks[outgoing], dest=right, recvbuf=received, source=left)
        chunks[incoming] += received
    for step in range(size - 1):
        outgoing, incoming = (rank + 1 - step) % size, (rank - step) % size
        comm.Sendrecv(chunks[outgoing], dest=right, recvbuf=chunks[incoming], source=left)
    return np.concatenate(chunks)


def wrong(comm, array):
    """Stops after the reduce-scatter: each rank has the sum of one chunk only."""
    rank, size = comm.Get_rank(), comm.Get_size()
    chunks = np.array_split(array, size)
    for step in range(size - 1):
        outgoing, incoming = (rank - step) % size, (rank - step - 1) % size
        received = np.empty_like(chunks[incoming])
        comm.Sendrecv(chunks[outgoing], dest=(rank + 1) % size, recvbuf=received, source=(rank - 1) % size)
        chunks[incoming] += received
    return np.concatenate(chunks)


def test_exercise():
    run(check, exercise.ring_allreduce)
