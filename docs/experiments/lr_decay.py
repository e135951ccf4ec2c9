"""Learning-rate decay: constant, step, inverse-sqrt and cosine, with and without warm-up
(docs/lr_decay.md).

10,000 Fashion-MNIST training images, a 784-100-10 MLP, SGD with momentum 0.9,
batches of 50 (200 steps an epoch), 8 epochs, 2 seeds. Every schedule starts from
lr 0.1 and steps once per batch (an iteration schedule, as ``train.py`` does it):
- constant: 0.1 throughout;
- step: x0.1 after 50% and again after 75% of the steps (MultiStepLR);
- inverse sqrt: 0.1 / sqrt(1 + d t) with d = 0.01 (down to 0.024 at the end);
- cosine: from 0.1 to 0 over all steps (CosineAnnealingLR);
- warm-up + cosine: 200 steps rising linearly from 0.001, then cosine.
Then the warm-up test at a peak rate 3 times higher: cosine from lr 0.3
with and without the warm-up.
Prints the mean training loss of the last epoch and the test accuracy (2,000 test
images), mean of the seeds; writes lr_decay.png (the rates, and test accuracy per epoch).
"""
import numpy as np

import minigrad as mg
from minigrad.optim import lr_scheduler
from common import Stopwatch, accuracy, fashion_mnist, mlp, plt, print_table, save, train_epoch

EPOCHS, STEPS_PER_EPOCH, SEEDS = 8, 200, (0, 1)
TOTAL = EPOCHS * STEPS_PER_EPOCH


def warm_then_cosine(optimizer):
    warm = lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=STEPS_PER_EPOCH)
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=TOTAL - STEPS_PER_EPOCH)
    return lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[STEPS_PER_EPOCH])


SCHEDULES = {
    "constant": (0.1, lambda optimizer: lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)),
    "step": (0.1, lambda optimizer: lr_scheduler.MultiStepLR(optimizer, [TOTAL // 2, TOTAL * 3 // 4], 0.1)),
    "inverse sqrt": (0.1, lambda optimizer: lr_scheduler.InverseSqrtLR(optimizer, decay=0.01)),
    "cosine": (0.1, lambda optimizer: lr_scheduler.CosineAnnealingLR(optimizer, T_max=TOTAL)),
    "warm-up + cosine": (0.1, warm_then_cosine),
    "cosine, lr 0.3": (0.3, lambda optimizer: lr_scheduler.CosineAnnealingLR(optimizer, T_max=TOTAL)),
    "warm-up + cosine, lr 0.3": (0.3, warm_then_cosine),
}


def run(name, train, test_images, test_labels, seed):
    base_lr, make_schedule = SCHEDULES[name]
    model = mlp(seed=seed)
    optimizer = mg.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9)
    schedule = make_schedule(optimizer)
    loader = mg.data.DataLoader(train, batch_size=50, shuffle=True, seed=seed)
    rates, accuracies = [], []

    def after_step():
        rates.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    for epoch in range(EPOCHS):
        loss = float(np.mean(train_epoch(model, loader, optimizer, after_step)))
        accuracies.append(accuracy(model, test_images, test_labels))
    return rates, accuracies, loss


def main():
    clock = Stopwatch()
    train, test_images, test_labels = fashion_mnist(10_000)
    rows, figure_data = [], {}
    for name in SCHEDULES:
        runs = [run(name, train, test_images, test_labels, seed) for seed in SEEDS]
        accuracies = np.array([run_accuracies for _, run_accuracies, _ in runs])
        losses = [loss for _, _, loss in runs]
        figure_data[name] = runs[0][0], accuracies.mean(axis=0)
        rows.append([name, f"{np.mean(losses):.3f}", f"{accuracies[:, -1].mean():.3f}",
                     f"{accuracies.max(axis=1).mean():.3f}"])
    print_table(["schedule", "training loss, last epoch", "final test accuracy", "best epoch's accuracy"], rows)

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (rates, accuracies) in figure_data.items():
        style = "--" if "0.3" in name else "-"
        left.plot(np.arange(len(rates)) / STEPS_PER_EPOCH, rates, style, label=name)
        right.plot(range(1, EPOCHS + 1), accuracies, style, marker="o", label=name)
    left.set(xlabel="epoch", ylabel="learning rate", title="The schedules (one step per batch)")
    right.set(xlabel="epoch", ylabel="test accuracy (mean of 2 seeds)", title="Test accuracy", ylim=(0.2, 0.9))
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    save(figure, "lr_decay")
    print(clock)


if __name__ == "__main__":
    main()
