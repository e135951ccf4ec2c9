"""The networks train.py and the benchmarks train, for 1x28x28 images and 10 classes."""
from . import nn


def mlp(hidden=(256, 128)):
    """A multilayer perceptron 784-256-128-10 with ReLU."""
    layers, width = [nn.Flatten()], 28 * 28
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 10))


def lenet300():
    """LeNet-300-100 (784-300-100-10), the network Han et al. pruned 12x without loss."""
    return mlp(hidden=(300, 100))


def cnn(channels=(32, 64), hidden=128, dropout=0.25, batch_norm=True):
    """Two conv-BatchNorm-ReLU-pool blocks, then a hidden layer: about 0.92 on Fashion-MNIST.

    ``batch_norm=False`` drops the BatchNorm layers, and the convolutions get their biases back.
    """
    def block(inputs, outputs):
        if not batch_norm:
            return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
                nn.MaxPool2d(2)]

    first, second = channels
    return nn.Sequential(
        *block(1, first), *block(first, second),
        nn.Flatten(), nn.Linear(second * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, 10))


MODELS = {"mlp": mlp, "lenet300": lenet300, "cnn": cnn}
