"""MPI worker: N ranks with B/N samples each must follow one process with all B samples.

Run by tests/test_distributed.py as ``mpiexec -n N python ddp_equivalence.py
[--device cuda] [--backend mpi|nccl]`` (or plainly, as a world of one). Rank 0
prints one JSON line with what it measured; its reference run is on the CPU.
"""
import argparse
import json
import sys
from contextlib import nullcontext

import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn
from minigrad.backend import array_module, to_numpy

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


def make_net(seed, device="cpu"):
    mg.manual_seed(seed)
    return Net().double().to(device)


def sgd_step(parameters, velocities):
    """Heavy-ball SGD, the update every rank applies to the same averaged gradient."""
    for parameter, velocity in zip(parameters, velocities):
        if parameter.grad is None:
            continue
        velocity *= MOMENTUM
        velocity += parameter.grad.data
        parameter.data -= LEARNING_RATE * velocity


def train(model, inputs, targets, average=None, step_model=None, device="cpu"):
    """STEPS steps of SGD on (STEPS, batch, ...) data; ``average()`` runs between backward and step."""
    parameters = list(model.parameters())
    velocities = [array_module(p.data).zeros_like(p.data) for p in parameters]
    for step in range(STEPS):
        for p in parameters:
            p.grad = None
        loss = nn.functional.cross_entropy((step_model or model)(mg.tensor(inputs[step], device=device)),
                                           mg.tensor(targets[step], device=device))
        loss.backward()
        if average is not None:
            average()
        sgd_step(parameters, velocities)
    return loss


def train_accumulating(model, ddp, inputs, targets, device):
    """Each step in two halves: the first backward under no_sync() only accumulates locally,
    the second averages the sum; loss/2 per half makes the sum the mean over the shard.
    Returns whether, after the first half of step 0, every rank held a different gradient."""
    parameters = list(model.parameters())
    velocities = [array_module(p.data).zeros_like(p.data) for p in parameters]
    half = inputs.shape[1] // 2
    local_gradients_differ = None
    for step in range(STEPS):
        for p in parameters:
            p.grad = None
        for part, context in ((slice(None, half), ddp.no_sync()), (slice(half, None), nullcontext())):
            with context:
                loss = nn.functional.cross_entropy(ddp(mg.tensor(inputs[step, part], device=device)),
                                                   mg.tensor(targets[step, part], device=device))
                (loss * 0.5).backward()
            if step == 0 and part.start is None:  # no averaging yet: each rank holds its own half's gradient
                gathered = to_numpy(dist.collectives.allgather(parameters[0].grad.data))
                local_gradients_differ = all(not np.array_equal(gathered[0], other) for other in gathered[1:])
        sgd_step(parameters, velocities)
    return local_gradients_differ


def flat(model):
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def main(device, backend):
    dist.init(device=device, backend=backend)
    rank, size = dist.get_rank(), dist.get_world_size()
    data = np.random.default_rng(7)
    inputs = data.standard_normal((STEPS, BATCH, FEATURES))
    targets = data.integers(0, CLASSES, (STEPS, BATCH))
    shard = slice(rank * BATCH // size, (rank + 1) * BATCH // size)
    inputs, targets = inputs[:, shard], targets[:, shard]

    # Path 1: DistributedDataParallel. Each rank starts from different weights: the
    # wrapper must copy rank 0's.
    ddp_model = make_net(seed=100 + rank, device=device)
    loss = train(ddp_model, inputs, targets, step_model=dist.DistributedDataParallel(ddp_model), device=device)
    # Path 2: allreduce_gradients by hand, with tiny buckets (many of them).
    explicit_model = make_net(seed=100, device=device)
    train(explicit_model, inputs, targets, device=device,
          average=lambda: dist.allreduce_gradients(explicit_model, bucket_cap_mb=0.001))
    # Path 3: gradient accumulation over two half-batches, the first under no_sync().
    accumulating_model = make_net(seed=100, device=device)
    no_sync_kept_gradients_local = train_accumulating(
        accumulating_model, dist.DistributedDataParallel(accumulating_model), inputs, targets, device)

    everyone = dist.collectives.allgather(np.stack([flat(ddp_model), flat(explicit_model), flat(accumulating_model)]))
    mean_rank = dist.all_reduce_mean(rank)
    rank_sum = dist.all_reduce_sum(np.array([rank, 1]))
    mean_loss = dist.all_reduce_mean(loss.item())
    if not dist.is_main_process():
        return
    reference = make_net(seed=100)
    initial = flat(reference)
    data = np.random.default_rng(7)
    reference_loss = train(reference, data.standard_normal((STEPS, BATCH, FEATURES)),
                           data.integers(0, CLASSES, (STEPS, BATCH)))
    expected = flat(reference)
    unused_grad = ddp_model.unused.weight.grad
    print(json.dumps({
        "world_size": size,
        "device": ddp_model.unused.weight.device,
        "training_moved_parameters_by": float(np.abs(expected - initial).max()),
        "local_rank_of_root": dist.get_local_rank(),
        "max_diff_ddp": float(np.abs(everyone[:, 0] - expected).max()),
        "max_diff_explicit": float(np.abs(everyone[:, 1] - expected).max()),
        "max_diff_no_sync_accumulation": float(np.abs(everyone[:, 2] - expected).max()),
        "no_sync_kept_gradients_local": no_sync_kept_gradients_local,
        "ranks_bitwise_identical": bool((everyone == everyone[0]).all()),
        "unused_grad": None if unused_grad is None else float(np.abs(unused_grad.numpy()).max()),
        "mean_rank": mean_rank, "rank_sum": rank_sum.tolist(),
        "mean_loss": mean_loss, "reference_last_loss": reference_loss.item(),
        "mpi4py_loaded": sys.modules.get("mpi4py") is not None,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default=None)
    options = parser.parse_args()
    main(options.device, options.backend)
