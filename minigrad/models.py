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


class BasicBlock(nn.Module):
    """Two 3x3 conv-BatchNorm layers plus a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    When the block changes the width or the resolution, the shortcut is a 1x1
    convolution with the block's stride and a BatchNorm (``downsample``, as in
    torchvision); otherwise it is x itself.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + (x if self.downsample is None else self.downsample(x))).relu()


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet: a 3x3 stem, three stages of BasicBlocks, global average pooling, a linear head.

    The stages have ``width``, 2 ``width`` and 4 ``width`` channels at 28x28,
    14x14 and 7x7 (the second and third start with a stride-2 block); each holds
    (depth - 2) / 6 blocks, so depth 20 is ResNet-20.
    """

    def __init__(self, depth=20, width=16, num_classes=10, in_channels=1):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet: depth must be 6n + 2 for n >= 1 (8, 14, 20, 32, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            out_channels = width * 2 ** stage
            layers = [BasicBlock(channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1)
                      for i in range(blocks)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
            channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu()
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet(depth=8, width=24):
    """A CIFAR-style ResNet for 1x28x28 images (depth 20 = ResNet-20); the default is small enough for a CPU."""
    return ResNet(depth, width)


def _separable(in_channels, out_channels, stride):
    """MobileNet's block: a depthwise 3x3 conv (one filter per channel), then a pointwise 1x1 conv."""
    return [nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


def mobilenet(width=16):
    """A small MobileNet: a 3x3 stem, then depthwise-separable blocks to 8 ``width`` channels at 7x7."""
    plan = [(width, 2 * width, 1), (2 * width, 4 * width, 2), (4 * width, 4 * width, 1),
            (4 * width, 8 * width, 2), (8 * width, 8 * width, 1)]
    layers = [nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for in_channels, out_channels, stride in plan:
        layers += _separable(in_channels, out_channels, stride)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, 10))


MODELS = {"mlp": mlp, "lenet300": lenet300, "cnn": cnn, "resnet": resnet, "mobilenet": mobilenet}
