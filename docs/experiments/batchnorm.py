"""Batch normalization: a learning-rate sweep with and without it, the batch size, and the
eval-mode pitfall (docs/batchnorm.md).

5,000 Fashion-MNIST training images, a 784-100-10 MLP with or without BatchNorm1d
after the hidden layer (``train.py --no-bn`` is the one-flag version for the CNN),
SGD with momentum 0.9, 3 epochs, 2 seeds; test accuracy on 2,000 test images.
1. the learning rate from 0.003 to 3, batches of 50;
2. the batch size from 4 to 500 at lr 0.05 (so the same epochs take fewer steps);
3. one BatchNorm model (lr 0.1, batch 50), evaluated four ways: in eval mode (the
   running statistics), and, having forgotten ``model.eval()``, in training mode on
   the whole test set at once, on shuffled batches of 10, and on batches of 100 sorted
   by class (each batch normalised by its own statistics).
Prints three tables and writes batchnorm.png.
"""
import numpy as np

import minigrad as mg
from common import Stopwatch, accuracy, fashion_mnist, mlp, plt, print_table, save, train_epoch

EPOCHS, SEEDS = 3, (0, 1)
RATES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
BATCH_SIZES = (4, 16, 50, 125, 500)


def trained(train, batch_norm, lr, batch_size, seed):
    model = mlp(batch_norm=batch_norm, seed=seed)
    optimizer = mg.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = mg.data.DataLoader(train, batch_size=batch_size, shuffle=True, seed=seed)
    for epoch in range(EPOCHS):
        train_epoch(model, loader, optimizer)
    return model


def mean_accuracy(train, test_images, test_labels, batch_norm, lr, batch_size):
    return float(np.mean([accuracy(trained(train, batch_norm, lr, batch_size, seed), test_images, test_labels)
                          for seed in SEEDS]))


def sweep(train, test_images, test_labels, values, setting):
    results = {}
    for batch_norm in (False, True):
        results[batch_norm] = [mean_accuracy(train, test_images, test_labels, batch_norm, **setting(value))
                               for value in values]
    return results


def eval_mode_pitfall(train, test_images, test_labels):
    model = trained(train, True, 0.1, 50, seed=0)
    by_class = np.argsort(test_labels, kind="stable")
    shuffled = np.random.default_rng(0).permutation(len(test_labels))
    return {
        "eval mode (running statistics)": accuracy(model, test_images, test_labels),
        "training mode, one batch of 2,000": accuracy(model, test_images, test_labels, train_mode=True),
        "training mode, shuffled batches of 10": accuracy(model, test_images[shuffled], test_labels[shuffled],
                                                          train_mode=True, batch_size=10),
        "training mode, batches of 100 sorted by class": accuracy(model, test_images[by_class],
                                                                  test_labels[by_class], train_mode=True,
                                                                  batch_size=100),
    }


def main():
    clock = Stopwatch()
    train, test_images, test_labels = fashion_mnist(5_000)
    by_rate = sweep(train, test_images, test_labels, RATES, lambda lr: {"lr": lr, "batch_size": 50})
    print_table(["learning rate"] + [str(lr) for lr in RATES],
                [[name] + [f"{value:.3f}" for value in by_rate[batch_norm]]
                 for name, batch_norm in (("without BN", False), ("with BN", True))])
    by_batch = sweep(train, test_images, test_labels, BATCH_SIZES, lambda size: {"lr": 0.05, "batch_size": size})
    print_table(["batch size"] + [str(size) for size in BATCH_SIZES],
                [[name] + [f"{value:.3f}" for value in by_batch[batch_norm]]
                 for name, batch_norm in (("without BN", False), ("with BN", True))])
    pitfall = eval_mode_pitfall(train, test_images, test_labels)
    print_table(["the BatchNorm model, evaluated in", "test accuracy"],
                [[name, f"{value:.3f}"] for name, value in pitfall.items()])

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    for batch_norm, label in ((False, "without BN"), (True, "with BN")):
        left.plot(RATES, by_rate[batch_norm], marker="o", label=label)
        middle.plot(BATCH_SIZES, by_batch[batch_norm], marker="o", label=label)
    left.set(xscale="log", xlabel="learning rate (batch 50)", ylabel="test accuracy after 3 epochs",
             title="Learning-rate sweep")
    middle.set(xscale="log", xlabel="batch size (lr 0.05)", ylabel="test accuracy after 3 epochs",
               title="Batch size")
    left.legend()
    middle.legend()
    right.barh(range(len(pitfall)), list(pitfall.values()), color="tab:orange")
    right.set_yticks(range(len(pitfall)), [name.replace(", ", ",\n") for name in pitfall], fontsize=8)
    right.invert_yaxis()
    right.set(xlabel="test accuracy", xlim=(0, 1), title="One BN model, four ways to evaluate it")
    save(figure, "batchnorm")
    print(clock)


if __name__ == "__main__":
    main()
