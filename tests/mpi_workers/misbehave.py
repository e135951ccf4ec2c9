"""MPI worker for failures that must end the whole job quickly, with a clear message.

    python misbehave.py raise     rank 1 raises while rank 0 waits in a barrier
    python misbehave.py mismatch  rank 1 builds a different model than rank 0
"""
import sys

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn


def main(mode):
    dist.init()
    rank = dist.get_rank()
    if mode == "raise":
        if rank == 1:
            raise ValueError("rank 1 fails on purpose")
        dist.barrier()  # without the abort hook, rank 0 would wait here forever
    elif mode == "mismatch":
        hidden = 17 if rank == 1 else 16
        model = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        dist.DistributedDataParallel(model)
    print(f"rank {rank} finished", flush=True)


if __name__ == "__main__":
    mg.manual_seed(0)
    main(sys.argv[1])
