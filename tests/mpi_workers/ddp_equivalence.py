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
from minigrad.backend import to_numpy

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


def sgd(model):
    return mg.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)


def train(model, inputs, targets, average=None, step_model=None, device="cpu"):
    """STEPS steps of SGD on (STEPS, batch, ...) data; ``average()`` runs between backward and step.
    Returns the last loss and the optimizer."""
    optimizer = sgd(model)
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy((step_model or model)(mg.tensor(inputs[step], device=device)),
                                           mg.tensor(targets[step], device=device))
        loss.backward()
        if average is not None:
            average()
        optimizer.step()
    return loss, optimizer


def momentum_buffers(optimizer):
    return np.concatenate([to_numpy(state["momentum_buffer"]).ravel() for state in optimizer.state.values()])


def train_accumulating(model, ddp, inputs, targets, device):
    """Each step in two halves: the first backward under no_sync() only accumulates locally,
    the second averages the sum; loss/2 per half makes the sum the mean over the shard.
    Returns whether, after the first half of step 0, every rank held a different gradient."""
    optimizer = sgd(model)
    half = inputs.shape[1] // 2
    local_gradients_differ = None
    for step in range(STEPS):
        optimizer.zero_grad()
        for part, context in ((slice(None, half), ddp.no_sync()), (slice(half, None), nullcontext())):
            with context:
                loss = nn.functional.cross_entropy(ddp(mg.tensor(inputs[step, part], device=device)),
                                                   mg.tensor(targets[step, part], device=device))
                (loss * 0.5).backward()
            if step == 0 and part.start is None:  # no averaging yet: each rank holds its own half's gradient
                gathered = to_numpy(dist.collectives.allgather(next(model.parameters()).grad.data))
                local_gradients_differ = all(not np.array_equal(gathered[0], other) for other in gathered[1:])
        optimizer.step()
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
    loss, ddp_optimizer = train(ddp_model, inputs, targets, step_model=dist.DistributedDataParallel(ddp_model),
                                device=device)
    # Path 2: allreduce_gradients by hand, with tiny buckets (many of them).
    explicit_model = make_net(seed=100, device=device)
    train(explicit_model, inputs, targets, device=device,
          average=lambda: dist.allreduce_gradients(explicit_model, bucket_cap_mb=0.001))
    # Path 3: gradient accumulation over two half-batches, the first under no_sync().
    accumulating_model = make_net(seed=100, device=device)
    no_sync_kept_gradients_local = train_accumulating(
        accumulating_model, dist.DistributedDataParallel(accumulating_model), inputs, targets, device)

    # broadcast_optimizer_state: rank 0 resumes (its trained momentum, a new lr), the others
    # start with a fresh optimizer; afterwards all hold rank 0's state.
    resumed = sgd(make_net(seed=1, device=device))
    if rank == 0:
        resumed.load_state_dict(ddp_optimizer.state_dict())
        resumed.param_groups[0]["lr"] = 0.05
    dist.broadcast_optimizer_state(resumed)
    momentum_everywhere = dist.collectives.allgather(momentum_buffers(resumed))
    resumed_lr = dist.allgather_object(resumed.param_groups[0]["lr"])

    everyone = dist.collectives.allgather(np.stack([flat(ddp_model), flat(explicit_model), flat(accumulating_model)]))
    mean_rank = dist.all_reduce_mean(rank)
    rank_sum = dist.all_reduce_sum(np.array([rank, 1]))
    mean_loss = dist.all_reduce_mean(loss.item())
    if not dist.is_main_process():
        return
    reference = make_net(seed=100)
    initial = flat(reference)
    data = np.random.default_rng(7)
    reference_loss, reference_optimizer = train(reference, data.standard_normal((STEPS, BATCH, FEATURES)),
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
        "optimizer_state_broadcast": bool((momentum_everywhere == momentum_buffers(ddp_optimizer)).all()),
        "resumed_lr": resumed_lr,
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
