"""Check for exercises/lr_inverse_sqrt.py: against mg.optim.lr_scheduler.InverseSqrtLR and PyTorch's LambdaLR."""
import math
import types

import torch

import minigrad as mg
from exercises import lr_inverse_sqrt as exercise
from exercises.checking import run


def check(solution):
    for base_lr, decay in ((0.1, 1.0), (0.5, 0.01), (0.2, 0.0)):
        weight = mg.nn.Parameter(mg.tensor([1.0]))
        optimizer = mg.optim.SGD([weight], lr=base_lr)
        scheduler = mg.optim.lr_scheduler.InverseSqrtLR(optimizer, decay=decay)
        torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
        torch_scheduler = torch.optim.lr_scheduler.LambdaLR(torch_optimizer, lambda t: (1 + decay * t) ** -0.5)
        previous = None
        for t in range(12):
            rate = solution.inverse_sqrt_lr(base_lr, decay, t)
            assert math.isclose(rate, optimizer.param_groups[0]["lr"], rel_tol=1e-12), \
                f"lr at t={t} (d={decay}) differs from InverseSqrtLR"
            assert math.isclose(rate, torch_optimizer.param_groups[0]["lr"], rel_tol=1e-12), \
                f"lr at t={t} (d={decay}) differs from PyTorch's LambdaLR"
            if previous is not None:
                assert math.isclose(previous * solution.step_ratio(decay, t), rate, rel_tol=1e-12), \
                    f"step_ratio at t={t} (d={decay}) does not take lr_(t-1) to lr_t"
            previous = rate
            scheduler.step()
            torch_optimizer.step()
            torch_scheduler.step()


def _minigrad_rate(base_lr, decay, t):
    weight = mg.nn.Parameter(mg.tensor([1.0]))
    optimizer = mg.optim.SGD([weight], lr=base_lr)
    scheduler = mg.optim.lr_scheduler.InverseSqrtLR(optimizer, decay=decay)
    scheduler.step(t)  # the closed form
    return optimizer.param_groups[0]["lr"]


reference = types.SimpleNamespace(inverse_sqrt_lr=_minigrad_rate,
                                  step_ratio=lambda decay, t: _minigrad_rate(1.0, decay, t) / _minigrad_rate(1.0, decay, t - 1))
# An exponential decay by 1 / √(1 + d) per step, not the inverse square root of 1 + d t.
wrong = types.SimpleNamespace(inverse_sqrt_lr=lambda base_lr, decay, t: base_lr / math.sqrt(1 + decay) ** t,
                              step_ratio=lambda decay, t: 1 / math.sqrt(1 + decay))


def test_exercise():
    run(check, exercise)
