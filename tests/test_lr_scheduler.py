"""Learning-rate schedules give PyTorch's sequences, number for number, and resume exactly.

Each case builds the same schedule twice, once from ``mg.optim.lr_scheduler`` and
once from ``torch.optim.lr_scheduler``, over an optimizer with two param groups
(lr 0.1 and 0.05), and compares the rate of each group after each of 200 steps.
"""
import math

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.optim import SGD
from minigrad.optim import lr_scheduler as ours_lib

theirs_lib = torch.optim.lr_scheduler
STEPS = 200


def optimizer_for(lib):
    """A fresh SGD with two groups, from minigrad or from PyTorch."""
    if lib is ours_lib:
        first, second = mg.nn.Linear(2, 2), mg.nn.Linear(2, 1)
        return SGD([{"params": first.parameters()}, {"params": second.parameters(), "lr": 0.05}],
                   lr=0.1, momentum=0.9)
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    return torch.optim.SGD([{"params": first.parameters()}, {"params": second.parameters(), "lr": 0.05}],
                           lr=0.1, momentum=0.9)


def inverse_sqrt(t):
    return 1 / math.sqrt(1 + 0.1 * t)


CASES = {
    "StepLR (the seed's step decay)": lambda lib, opt: lib.StepLR(opt, step_size=10, gamma=0.5),
    "StepLR default gamma": lambda lib, opt: lib.StepLR(opt, step_size=30),
    "MultiStepLR": lambda lib, opt: lib.MultiStepLR(opt, milestones=[30, 80, 80, 150], gamma=0.5),
    "ExponentialLR": lambda lib, opt: lib.ExponentialLR(opt, gamma=0.98),
    "CosineAnnealingLR past T_max": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3),
    "CosineAnnealingLR": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=STEPS),
    "LinearLR warm-up": lambda lib, opt: lib.LinearLR(opt, start_factor=0.1, total_iters=20),
    "LinearLR decay": lambda lib, opt: lib.LinearLR(opt, start_factor=1.0, end_factor=0.05, total_iters=150),
    "LambdaLR": lambda lib, opt: lib.LambdaLR(opt, lr_lambda=inverse_sqrt),
    "LambdaLR per group": lambda lib, opt: lib.LambdaLR(opt, lr_lambda=[inverse_sqrt, lambda t: 0.99 ** t]),
    "SequentialLR warm-up then cosine": lambda lib, opt: lib.SequentialLR(
        opt, [lib.LinearLR(opt, start_factor=0.1, total_iters=10), lib.CosineAnnealingLR(opt, T_max=190)],
        milestones=[10]),
    "SequentialLR of three": lambda lib, opt: lib.SequentialLR(
        opt, [lib.LinearLR(opt, start_factor=0.5, total_iters=5), lib.StepLR(opt, step_size=20, gamma=0.7),
              lib.ExponentialLR(opt, gamma=0.97)], milestones=[5, 100]),
}


def lr_sequence(lib, make, steps=STEPS, resume_at=None, tmp_path=None):
    """The rates [group 0, group 1] after construction and after each step.

    With resume_at, the optimizer and scheduler are saved to a file at that step and
    training goes on with fresh objects loaded from it.
    """
    optimizer = optimizer_for(lib)
    scheduler = make(lib, optimizer)
    sequence = [scheduler.get_last_lr()]
    for step in range(1, steps + 1):
        optimizer.step()
        scheduler.step()
        sequence.append(list(scheduler.get_last_lr()))
        assert [group["lr"] for group in optimizer.param_groups] == sequence[-1]
        if step == resume_at:
            path = tmp_path / "schedule.npz"
            mg.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path)
            checkpoint = mg.load(path)
            optimizer = optimizer_for(lib)
            scheduler = make(lib, optimizer)
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            assert scheduler.get_last_lr() == sequence[-1]
    return sequence


@pytest.mark.parametrize("name", CASES)
def test_schedule_equals_pytorch_over_200_steps(name):
    ours = lr_sequence(ours_lib, CASES[name])
    theirs = lr_sequence(theirs_lib, CASES[name])
    assert ours == theirs
    assert len(set(lr for step in ours for lr in step)) > 2  # the rate really changes


@pytest.mark.parametrize("name", CASES)
def test_schedule_resumes_from_a_checkpoint_mid_run(name, tmp_path):
    resumed = lr_sequence(ours_lib, CASES[name], resume_at=STEPS // 2, tmp_path=tmp_path)
    assert resumed == lr_sequence(theirs_lib, CASES[name])


def test_step_decay_is_the_seed_formula():
    optimizer = optimizer_for(ours_lib)
    scheduler = ours_lib.StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(100):
        assert scheduler.get_last_lr() == [0.1 * 0.5 ** (epoch // 10), 0.05 * 0.5 ** (epoch // 10)]
        optimizer.step()
        scheduler.step()


def test_inverse_sqrt_decay_is_the_seed_formula_and_resumes(tmp_path):
    make = lambda lib, opt: ours_lib.InverseSqrtLR(opt, decay=0.1)  # noqa: E731
    sequence = lr_sequence(ours_lib, make)
    expected = [[0.1 / math.sqrt(1 + 0.1 * t), 0.05 / math.sqrt(1 + 0.1 * t)] for t in range(STEPS + 1)]
    np.testing.assert_allclose(sequence, expected, rtol=1e-12)
    # the same numbers as PyTorch's LambdaLR with the formula as its factor
    np.testing.assert_allclose(sequence, lr_sequence(theirs_lib, CASES["LambdaLR"]), rtol=1e-12)
    assert lr_sequence(ours_lib, make, resume_at=70, tmp_path=tmp_path) == sequence
    # step(epoch) jumps to the closed form
    optimizer = optimizer_for(ours_lib)
    scheduler = ours_lib.InverseSqrtLR(optimizer, decay=0.1)
    scheduler.step(epoch=99)
    assert scheduler.get_last_lr() == [0.1 / math.sqrt(1 + 9.9), 0.05 / math.sqrt(1 + 9.9)]


def test_warm_up_per_iteration_chained_with_decay_per_epoch():
    """Two schedulers on one optimizer: a warm-up stepped every iteration, a decay every epoch."""
    def run(lib):
        optimizer = optimizer_for(lib)
        warm_up = lib.LinearLR(optimizer, start_factor=0.01, total_iters=25)
        decay = lib.StepLR(optimizer, step_size=3, gamma=0.5)
        rates = []
        for epoch in range(12):
            for iteration in range(10):
                optimizer.step()
                warm_up.step()
                rates.append([group["lr"] for group in optimizer.param_groups])
            decay.step()
        return rates
    assert run(ours_lib) == run(theirs_lib)


PLATEAU_CASES = [dict(), dict(mode="max", factor=0.5, patience=2, threshold_mode="abs", threshold=0.01),
                 dict(patience=3, cooldown=4, min_lr=[0.02, 0.001], threshold=0.05, eps=1e-3)]


@pytest.mark.parametrize("options", PLATEAU_CASES, ids=str)
def test_reduce_lr_on_plateau_equals_pytorch_and_resumes(options, tmp_path):
    rng = np.random.default_rng(0)
    # improves, then plateaus with noise, then improves a little again
    metrics = np.concatenate([1 / (1 + np.arange(40)), 0.025 + 0.01 * rng.random(120), np.linspace(0.02, 0.0, 40)])
    if options.get("mode") == "max":
        metrics = -metrics

    def run(lib, resume_at=None):
        optimizer = optimizer_for(lib)
        scheduler = lib.ReduceLROnPlateau(optimizer, **options)
        rates = []
        for step, metric in enumerate(metrics, start=1):
            optimizer.step()
            scheduler.step(float(metric))
            rates.append(list(scheduler.get_last_lr()))
            if step == resume_at:
                mg.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                        tmp_path / "plateau.npz")
                checkpoint = mg.load(tmp_path / "plateau.npz")
                optimizer = optimizer_for(lib)
                scheduler = lib.ReduceLROnPlateau(optimizer, **options)
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
        return rates

    theirs = run(theirs_lib)
    assert run(ours_lib) == theirs
    assert run(ours_lib, resume_at=100) == theirs
    assert len(set(rate[0] for rate in theirs)) > 1  # it did reduce


@pytest.mark.parametrize("make, error, message", [
    (lambda opt: ours_lib.LinearLR(opt, start_factor=0), ValueError, "start_factor must be in"),
    (lambda opt: ours_lib.LinearLR(opt, end_factor=1.5), ValueError, "end_factor must be in"),
    (lambda opt: ours_lib.StepLR(opt, step_size=0), ValueError, "step_size must be a positive"),
    (lambda opt: ours_lib.CosineAnnealingLR(opt, T_max=0), ValueError, "T_max must be positive"),
    (lambda opt: ours_lib.InverseSqrtLR(opt, decay=-1), ValueError, "decay must be >= 0"),
    (lambda opt: ours_lib.LambdaLR(opt, [inverse_sqrt]), ValueError, "expected 2 lr_lambdas, but got 1"),
    (lambda opt: ours_lib.ReduceLROnPlateau(opt, factor=1.0), ValueError, "factor should be < 1.0"),
    (lambda opt: ours_lib.ReduceLROnPlateau(opt, mode="lowest"), ValueError, "mode 'lowest' is unknown"),
    (lambda opt: ours_lib.ReduceLROnPlateau(opt, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda opt: ours_lib.StepLR("sgd", step_size=3), TypeError, "str is not an Optimizer"),
    (lambda opt: ours_lib.ExponentialLR(opt, gamma=0.9, last_epoch=5), KeyError, "initial_lr"),
    (lambda opt: ours_lib.SequentialLR(opt, [ours_lib.StepLR(opt, 3)], milestones=[3]), ValueError,
     "one milestone fewer than schedulers"),
    (lambda opt: ours_lib.SequentialLR(opt, [ours_lib.ReduceLROnPlateau(opt)], milestones=[]), ValueError,
     "does not support ReduceLROnPlateau"),
])
def test_bad_arguments_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(optimizer_for(ours_lib))
