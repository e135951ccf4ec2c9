"""Run under mpiexec by test_distributed_ring_allreduce.py: one rank's check of a ring all-reduce.

    mpiexec -n R python exercises/_ring_worker.py module:function

Exit status: 0 when the sums are right on this rank, 1 when not (the reason on
stderr), 3 when the function is still the stub.
"""
import importlib
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class PointToPointOnly:
    """A communicator that offers only point-to-point calls, and counts the values sent."""

    def __init__(self, comm):
        self._comm, self.values_sent = comm, 0

    def Get_rank(self):
        return self._comm.Get_rank()

    def Get_size(self):
        return self._comm.Get_size()

    def Sendrecv(self, sendbuf, dest, sendtag=0, recvbuf=None, source=MPI.ANY_SOURCE, recvtag=MPI.ANY_TAG, status=None):
        self.values_sent += np.asarray(sendbuf).size
        return self._comm.Sendrecv(sendbuf, dest=dest, sendtag=sendtag, recvbuf=recvbuf, source=source,
                                   recvtag=recvtag, status=status)

    def Send(self, buf, dest, tag=0):
        self.values_sent += np.asarray(buf).size
        return self._comm.Send(buf, dest=dest, tag=tag)

    def Recv(self, buf, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=None):
        return self._comm.Recv(buf, source=source, tag=tag, status=status)


def verdict(solution, world, n):
    """None if this rank's result for arrays of n values is right, else why not ("stub" for the stub)."""
    rank, size = world.Get_rank(), world.Get_size()
    mine = np.random.default_rng(rank).standard_normal(n)
    expected = world.allreduce(mine, op=MPI.SUM)
    comm = PointToPointOnly(world)
    try:
        found = solution(comm, mine.copy())
    except NotImplementedError:
        return "stub"
    except Exception as error:  # reported, so that every rank stops at the same point
        return f"rank {rank} of {size}, n={n}: {type(error).__name__}: {error}"
    if found is None or np.asarray(found).shape != (n,) or not np.allclose(found, expected, atol=1e-12):
        return f"rank {rank} of {size}, n={n}: the result is not the sum over the ranks"
    bound = 2 * (size - 1) * -(-n // size)
    if comm.values_sent > bound:
        return f"rank {rank} of {size}, n={n}: sent {comm.values_sent} values; a ring sends at most {bound}"
    return None


def main():
    module_name, _, function_name = sys.argv[1].partition(":")
    solution = getattr(importlib.import_module(module_name), function_name)
    world = MPI.COMM_WORLD
    for n in (1, 7, 10, 1000):
        # every rank learns every verdict, so that all stop together and none waits on a rank that left
        problems = [problem for problem in world.allgather(verdict(solution, world, n)) if problem]
        if "stub" in problems:
            sys.exit(3)
        if problems:
            if world.Get_rank() == 0:
                print("\n".join(problems), file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
