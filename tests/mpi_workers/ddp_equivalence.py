"""MPI worker: N ranks with B/N samples each must follow one process with all B samples.

Run by tests/test_distributed.py as ``mpiexec -n N python ddp_equivalence.py``
(or plainly, as a world of one). Rank 0 prints one JSON line with what it measured.
"""
import json
import sys

import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn

STEPS, BATCH, FEATURES, CLASSES = 3, 16, 12, 5
LEARNING_RATE, MOMENTUM = 0.1, 0.9


class Net(nn.Module):
    """An MLP plus a layer that forward never uses (its gradient is None on every rank)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                                  nn.Linear(16, CLASSES))
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        return self.body(x)


def make_net(seed):
    mg.manual_seed(seed)
    return Net().double()


def sgd_step(parameters, velocities):
    """Heavy-ball SGD, the update every rank applies to the same averaged gradient."""
    for parameter, velocity in zip(parameters, velocities):
        if parameter.grad is None:
            continue
        velocity *= MOMENTUM
        velocity += parameter.grad.data
        parameter.data -= LEARNING_RATE * velocity


def train(model, inputs, targets, average, sync_model=None):
    parameters = list(model.parameters())
    velocities = [np.zeros_like(p.data) for p in parameters]
    for step in range(STEPS):
        for p in parameters:
            p.grad = None
        loss = nn.functional.cross_entropy((sync_model or model)(mg.tensor(inputs[step])),
                                           mg.tensor(targets[step]))
        loss.backward()
        if average is not None:
            average()
        sgd_step(parameters, velocities)
    return loss


def train_accumulating(model, ddp, inputs, targets):
    """Each step in two halves: the first backward under no_sync() only accumulates locally,
    the second averages the sum; loss/2 per half makes the sum the mean over the shard."""
    parameters = list(model.parameters())
    velocities = [np.zeros_like(p.data) for p in parameters]
    half = inputs.shape[1] // 2
    local_gradients_differ = None
    for step in range(STEPS):
        for p in parameters:
            p.grad = None
        with ddp.no_sync():
            loss = nn.functional.cross_entropy(ddp(mg.tensor(inputs[step, :half])), mg.tensor(targets[step, :half]))
            (loss * 0.5).backward()
        if step == 0:  # no averaging yet: every rank still holds the gradient of its own half
            gathered = dist.collectives.allgather(parameters[0].grad.data)
            local_gradients_differ = all(not np.array_equal(gathered[0], other) for other in gathered[1:])
        loss = nn.functional.cross_entropy(ddp(mg.tensor(inputs[step, half:])), mg.tensor(targets[step, half:]))
        (loss * 0.5).backward()
        sgd_step(parameters, velocities)
    return local_gradients_differ


def flat(model):
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def main():
    dist.init()
    rank, size = dist.get_rank(), dist.get_world_size()
    data = np.random.default_rng(7)
    inputs = data.standard_normal((STEPS, BATCH, FEATURES))
    targets = data.integers(0, CLASSES, (STEPS, BATCH))
    shard = slice(rank * BATCH // size, (rank + 1) * BATCH // size)

    # Path 1: DistributedDataParallel (each rank starts from different weights: the wrapper
    # must copy rank 0's). Path 2: allreduce_gradients with tiny buckets (many of them).
    ddp_model = make_net(seed=100 + rank)
    ddp = dist.DistributedDataParallel(ddp_model)
    loss = train(ddp_model, inputs[:, shard], targets[:, shard], None, sync_model=ddp)
    explicit_model = make_net(seed=100)
    train(explicit_model, inputs[:, shard], targets[:, shard],
          lambda: dist.allreduce_gradients(explicit_model, bucket_cap_mb=0.001))

    # Path 3: gradient accumulation over two half-batches with no_sync().
    accumulating_model = make_net(seed=100)
    no_sync_kept_gradients_local = train_accumulating(accumulating_model, dist.DistributedDataParallel(accumulating_model),
                       inputs[:, shard], targets[:, shard])

    mine = np.stack([flat(ddp_model), flat(explicit_model), flat(accumulating_model)])
    everyone = np.empty((size,) + mine.shape) if rank == 0 else None
    if size > 1:
        from mpi4py import MPI
        MPI.COMM_WORLD.Gather(mine, everyone, root=0)
    else:
        everyone = mine[None]
    mean_rank = dist.all_reduce_mean(rank)
    rank_sum = dist.all_reduce_sum(np.array([rank, 1]))
    mean_loss = dist.all_reduce_mean(loss.item())
    if not dist.is_main_process():
        return
    reference = make_net(seed=100)
    initial = flat(reference)
    reference_loss = train(reference, inputs, targets, None)
    expected = flat(reference)
    print(json.dumps({
        "world_size": size,
        "training_moved_parameters_by": float(np.abs(expected - initial).max()),
        "local_rank_of_root": dist.get_local_rank(),
        "max_diff_ddp": float(np.abs(everyone[:, 0] - expected).max()),
        "max_diff_explicit": float(np.abs(everyone[:, 1] - expected).max()),
        "max_diff_no_sync_accumulation": float(np.abs(everyone[:, 2] - expected).max()),
        "no_sync_kept_gradients_local": no_sync_kept_gradients_local,
        "ranks_bitwise_identical": bool((everyone == everyone[0]).all()),
        "unused_grad_is_zero": ddp_model.unused.weight.grad is None if size == 1
        else bool((ddp_model.unused.weight.grad.data == 0).all()),
        "mean_rank": mean_rank, "rank_sum": rank_sum.tolist(),
        "mean_loss": mean_loss, "reference_last_loss": reference_loss.item(),
        "mpi4py_loaded": sys.modules.get("mpi4py") is not None,
    }))


if __name__ == "__main__":
    main()
