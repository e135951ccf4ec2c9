"""Check for exercises/lr_warmup_cosine.py: against minigrad's and PyTorch's SequentialLR."""
import math

import torch

import minigrad as mg
from exercises import lr_warmup_cosine as exercise
from exercises.checking import run


def _rates(framework, base_lr, warmup_steps, total_steps, start_factor):
    optimizer = framework.optim.SGD([_parameter(framework)], lr=base_lr)
    schedulers = framework.optim.lr_scheduler
    schedule = schedulers.SequentialLR(optimizer, [
        schedulers.LinearLR(optimizer, start_factor=start_factor, total_iters=warmup_steps),
        schedulers.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps)], milestones=[warmup_steps])
    rates = []
    for t in range(total_steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def _parameter(framework):
    return torch.zeros(1, requires_grad=True) if framework is torch else mg.nn.Parameter(mg.tensor([1.0]))


def check(warmup_cosine_lr):
    for base_lr, warmup_steps, total_steps, start_factor in ((0.1, 3, 10, 0.25), (0.5, 5, 40, 0.01)):
        for framework in (mg, torch):
            expected = _rates(framework, base_lr, warmup_steps, total_steps, start_factor)
            for t, rate in enumerate(expected):
                found = warmup_cosine_lr(t, base_lr, warmup_steps, total_steps, start_factor)
                assert math.isclose(found, rate, rel_tol=1e-9, abs_tol=1e-12), \
                    f"t={t} (W={warmup_steps}, T={total_steps}): {found}, {framework.__name__} gives {rate}"


def reference(t, base_lr, warmup_steps, total_steps, start_factor):
    """minigrad's schedulers, stepped t times."""
    return _rates(mg, base_lr, warmup_steps, total_steps, start_factor)[t]


def wrong(t, base_lr, warmup_steps, total_steps, start_factor):
    """Runs the cosine over all T steps instead of the T − W after the warm-up."""
    if t <= warmup_steps:
        return base_lr * (start_factor + (1 - start_factor) * t / warmup_steps)
    return base_lr * (1 + math.cos(math.pi * t / total_steps)) / 2


def test_exercise():
    run(check, exercise.warmup_cosine_lr)
