"""What the chapters' experiments share: a slice of Fashion-MNIST, a small MLP, one epoch
of training, test accuracy, a table and a figure.

Each experiment is a script in this folder (``python docs/experiments/shuffling.py``)
that prints a small table and writes ``docs/experiments/<name>.png``. They train on
subsets, for a few epochs, on one CPU thread, to finish in about a minute each.
"""
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (the scripts draw with it)

import minigrad as mg  # noqa: E402

FOLDER = Path(__file__).resolve().parent
sys.path.insert(0, str(FOLDER.parents[1]))
from benchmarks.machine import cpu_name  # noqa: E402


def fashion_mnist(train_size, test_size=2000):
    """(train dataset of ``train_size`` images, test images (Tensor), test labels (int64 array))."""
    train = mg.data.FashionMNIST(train=True)
    test = mg.data.FashionMNIST(train=False)
    subset = mg.data.TensorDataset(train.data[:train_size], train.targets[:train_size])
    return subset, mg.tensor(test.data[:test_size]), test.targets[:test_size]


def mlp(hidden=100, batch_norm=False, seed=0):
    """Flatten, Linear(784, hidden), [BatchNorm1d], ReLU, Linear(hidden, 10), seeded."""
    mg.manual_seed(seed)
    middle = [mg.nn.BatchNorm1d(hidden)] if batch_norm else []
    return mg.nn.Sequential(mg.nn.Flatten(), mg.nn.Linear(784, hidden), *middle,
                            mg.nn.ReLU(), mg.nn.Linear(hidden, 10))


def train_epoch(model, loader, optimizer, after_step=None):
    """One pass over ``loader``, calling ``after_step()`` after each step; the loss of each batch."""
    model.train()
    losses = []
    for images, labels in loader:
        loss = mg.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(float(loss.item()))
    return losses


def accuracy(model, images, labels, train_mode=False, batch_size=None):
    """Test accuracy; in eval mode unless ``train_mode`` (batches of ``batch_size``)."""
    model.train(train_mode)
    batch_size = batch_size or len(labels)
    correct = 0
    with mg.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(images[start:start + batch_size]).numpy()
            correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    model.eval()
    return correct / len(labels)


def print_table(headers, rows):
    """A Markdown table, as the chapters show it."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(value) for value in row) + " |")


def save(figure, name):
    """Write docs/experiments/<name>.png."""
    figure.tight_layout()
    figure.savefig(FOLDER / f"{name}.png", dpi=100)
    print(f"wrote docs/experiments/{name}.png")


class Stopwatch:
    """Seconds since it was made, for the scripts' last line."""

    def __init__(self):
        self.start = time.perf_counter()

    def __str__(self):
        return f"{time.perf_counter() - self.start:.0f} s on {cpu_name()}, one thread"
