"""Plot every learning-rate schedule of mg.optim.lr_scheduler over 100 epochs.

    python benchmarks/plot_schedules.py      # writes benchmarks/results/schedules.png

Each curve is what ``scheduler.get_last_lr()`` reports at the start of each
epoch (lr_0 = 0.1, one ``scheduler.step()`` per epoch). ReduceLROnPlateau is fed
a validation loss that improves, then stalls, then improves again.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minigrad as mg  # noqa: E402
from minigrad.optim import lr_scheduler  # noqa: E402

EPOCHS, LR = 100, 0.1
OUTPUT = Path(__file__).resolve().parent / "results" / "schedules.png"

SCHEDULES = {
    "StepLR(step_size=10, gamma=0.5)  lr0 * 0.5^(t // 10)": lambda opt: lr_scheduler.StepLR(opt, 10, gamma=0.5),
    "MultiStepLR(milestones=[30, 60, 80], gamma=0.2)": lambda opt: lr_scheduler.MultiStepLR(opt, [30, 60, 80], 0.2),
    "ExponentialLR(gamma=0.96)  lr0 * 0.96^t": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.96),
    "InverseSqrtLR(decay=0.2)  lr0 / sqrt(1 + 0.2 t)": lambda opt: lr_scheduler.InverseSqrtLR(opt, decay=0.2),
    "CosineAnnealingLR(T_max=100)": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS),
    "LinearLR(start_factor=1, end_factor=0.05, total_iters=100)": lambda opt: lr_scheduler.LinearLR(
        opt, start_factor=1.0, end_factor=0.05, total_iters=EPOCHS),
    "LambdaLR(lambda t: 1 / (1 + 0.05 t))": lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + 0.05 * t)),
    "SequentialLR: LinearLR warm-up (5) then cosine (95)": lambda opt: lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5),
              lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS - 5)], milestones=[5]),
}


def plateau_loss(epoch):
    """A made-up validation loss: improves, stalls from epoch 25 to 70, then improves slowly."""
    if epoch < 25:
        return 1.0 / (1 + epoch)
    if epoch < 70:
        return 1.0 / 26 + 0.002 * np.sin(epoch)
    return 1.0 / 26 - 0.001 * (epoch - 69)


def rates(make, epochs=EPOCHS):
    optimizer = mg.optim.SGD([mg.nn.Parameter(np.zeros(1, dtype=np.float32))], lr=LR)
    scheduler = make(optimizer)
    values = []
    for epoch in range(epochs):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # (a real loop trains an epoch here)
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
            scheduler.step(plateau_loss(epoch))
        else:
            scheduler.step()
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write the PNG")
    arguments = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedules = dict(SCHEDULES)
    schedules["ReduceLROnPlateau(factor=0.5, patience=5) on a stalling loss"] = (
        lambda opt: lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5))
    figure, axes = plt.subplots(3, 3, figsize=(15, 11), sharex=True)
    for axis, (name, make) in zip(axes.flat, schedules.items()):
        values = rates(make)
        axis.plot(range(EPOCHS), values, color="tab:blue", linewidth=2)
        axis.set_title(name, fontsize=9)
        axis.set_ylim(0, LR * 1.08)
        axis.grid(alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel("epoch")
    for axis in axes[:, 0]:
        axis.set_ylabel("learning rate")
    figure.suptitle(f"mg.optim.lr_scheduler: learning rate per epoch (lr0 = {LR}, one step() per epoch)")
    figure.tight_layout()
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(arguments.out, dpi=90)
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
