"""MPI worker: BatchNorm models with SyncBatchNorm, N ranks of B/N samples against one process of B.

Run by tests/test_distributed.py as ``mpiexec -n N python syncbn_equivalence.py``.
Rank 0 prints one JSON line with what it measured.
"""
import json

import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn

STEPS, BATCH, LEARNING_RATE = 3, 16, 0.2


def make_net(seed):
    """A CNN with BatchNorm2d and an MLP head with BatchNorm1d, in float64."""
    mg.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


def train(model, step_model, inputs, targets):
    parameters = list(model.parameters())
    for step in range(STEPS):
        for p in parameters:
            p.grad = None
        nn.functional.cross_entropy(step_model(mg.tensor(inputs[step])), mg.tensor(targets[step])).backward()
        for p in parameters:
            p.data -= LEARNING_RATE * p.grad.data


def state(model):
    """Every parameter and buffer, flattened, in registration order."""
    return np.concatenate([np.ravel(t.data).astype(np.float64)
                           for t in list(model.parameters()) + list(model.buffers())])


def main():
    dist.init()
    rank, size = dist.get_rank(), dist.get_world_size()
    data = np.random.default_rng(3)
    inputs = data.standard_normal((STEPS, BATCH, 2, 5, 5)) * 2 + 1
    targets = data.integers(0, 3, (STEPS, BATCH))
    shard = slice(rank * BATCH // size, (rank + 1) * BATCH // size)

    model = make_net(seed=10 + rank)
    order_before = [name for name, _ in model.named_parameters()] + [name for name, _ in model.named_buffers()]
    model = dist.convert_sync_batchnorm(model)
    order_after = [name for name, _ in model.named_parameters()] + [name for name, _ in model.named_buffers()]
    kinds = [type(layer).__name__ for layer in model]
    ddp = dist.DistributedDataParallel(model, broadcast_buffers=False)  # SyncBN keeps buffers equal itself
    train(model, ddp, inputs[:, shard], targets[:, shard])

    # Plain BatchNorm on the shards drifts away from the one-process result: the comparison is not trivial.
    unsynced = make_net(seed=10)
    train(unsynced, dist.DistributedDataParallel(unsynced, broadcast_buffers=False),
          inputs[:, shard], targets[:, shard])

    gathered = dist.collectives.allgather(state(model))
    unsynced_state = state(unsynced)
    if not dist.is_main_process():
        return
    reference = make_net(seed=10)
    initial = np.concatenate([p.data.ravel() for p in reference.parameters()])
    train(reference, reference, inputs, targets)
    expected = state(reference)
    moved = np.concatenate([p.data.ravel() for p in reference.parameters()]) - initial
    print(json.dumps({
        "world_size": size,
        "layers_after_conversion": kinds,
        "registration_order_kept": order_before == order_after,
        "training_moved_parameters_by": float(np.abs(moved).max()),
        "max_diff_sync_batchnorm": float(np.abs(gathered[0] - expected).max()),
        "max_diff_plain_batchnorm": float(np.abs(unsynced_state - expected).max()),
        "ranks_bitwise_identical": bool((gathered == gathered[0]).all()),
    }))


if __name__ == "__main__":
    main()
