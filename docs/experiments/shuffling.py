"""Shuffling: sorted data, one shuffle, and a fresh shuffle every epoch (docs/shuffling.md).

10,000 Fashion-MNIST training images stored sorted by class, a 784-100-10 MLP,
SGD (lr 0.05, momentum 0.9), batches of 50, 8 epochs, 3 seeds per order:
- sorted: the file's order every epoch (``shuffle=False``, as ``train.py --no-shuffle``);
- one shuffle: one random order, drawn once and kept for every epoch;
- reshuffled: a new permutation every epoch (``DataLoader(shuffle=True)``).
Prints the test accuracy (2,000 test images) after each epoch, mean over the seeds,
and writes shuffling.png: test accuracy per epoch, and the training loss of each
step of the last epoch (seed 0).
"""
import numpy as np

import minigrad as mg
from common import Stopwatch, accuracy, fashion_mnist, mlp, plt, print_table, save, train_epoch

EPOCHS, SEEDS = 8, (0, 1, 2)


def loader_for(order, dataset, seed):
    if order == "reshuffled":
        return mg.data.DataLoader(dataset, batch_size=50, shuffle=True, seed=seed)
    images, labels = dataset.tensors[0].numpy(), dataset.tensors[1].numpy()
    if order == "one shuffle":
        once = np.random.default_rng(seed).permutation(len(labels))
        images, labels = images[once], labels[once]
    return mg.data.DataLoader(mg.data.TensorDataset(images, labels), batch_size=50, shuffle=False)


def run(order, dataset, test_images, test_labels, seed):
    model = mlp(seed=seed)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = loader_for(order, dataset, seed)
    accuracies = []
    for epoch in range(EPOCHS):
        last_losses = train_epoch(model, loader, optimizer)
        accuracies.append(accuracy(model, test_images, test_labels))
    return accuracies, last_losses


def main():
    clock = Stopwatch()
    train, test_images, test_labels = fashion_mnist(10_000)
    by_class = np.argsort(train.tensors[1].numpy(), kind="stable")
    dataset = mg.data.TensorDataset(train.tensors[0].numpy()[by_class], train.tensors[1].numpy()[by_class])
    orders = ("sorted", "one shuffle", "reshuffled")
    curves, losses = {}, {}
    for order in orders:
        runs = [run(order, dataset, test_images, test_labels, seed) for seed in SEEDS]
        curves[order] = np.array([accuracies for accuracies, _ in runs])
        losses[order] = runs[0][1]
    print_table(["order"] + [f"epoch {epoch + 1}" for epoch in range(EPOCHS)] + ["final, min-max over seeds"],
                [[order] + [f"{value:.3f}" for value in curves[order].mean(axis=0)]
                 + [f"{curves[order][:, -1].min():.3f}-{curves[order][:, -1].max():.3f}"] for order in orders])

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for order in orders:
        left.plot(range(1, EPOCHS + 1), curves[order].mean(axis=0), marker="o", label=order)
        right.plot(losses[order], label=order, linewidth=0.8)
    left.set(xlabel="epoch", ylabel="test accuracy (mean of 3 seeds)", title="Test accuracy")
    right.set(xlabel="step of the last epoch", ylabel="training loss (seed 0)", yscale="log",
              title="Loss of each batch, last epoch")
    left.legend()
    right.legend()
    save(figure, "shuffling")
    print(clock)


if __name__ == "__main__":
    main()
