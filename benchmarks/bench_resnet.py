"""ResNet and MobileNet training steps on the CPU: minigrad against the same network in PyTorch.

The PyTorch twins below have minigrad's module names, so one state_dict fits
both; each framework runs forward, cross-entropy, backward and an SGD step
(momentum 0.9, weight decay 5e-4, as train.py) on the same batch of 128
Fashion-MNIST-sized images, in the same process, with the same thread count.
Reported: the median step, the epoch it implies (468 steps), and the ratio
minigrad / PyTorch.

    python benchmarks/bench_resnet.py --threads 1 --steps 20
    python benchmarks/bench_resnet.py --model mobilenet
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("resnet", "mobilenet"), default="resnet")
    parser.add_argument("--depth", type=int, default=8, help="resnet depth, 6n + 2 (default: 8, train.py's)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage (default: 16)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per framework, alternating in rounds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "resnet_cpu.json"))
    return parser


if __name__ == "__main__":  # the BLAS reads its thread count when it loads: set it before numpy is imported
    ARGS = build_parser().parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

STEPS_PER_EPOCH = 60000 // 128


class TorchBasicBlock(nn.Module):
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
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(nn.Module):
    """minigrad.models.ResNet in PyTorch, module for module."""

    def __init__(self, depth=8, width=16, num_classes=10, in_channels=1):
        super().__init__()
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            out_channels = width * 2 ** stage
            layers = [TorchBasicBlock(channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1)
                      for i in range(blocks)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
            channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def torch_mobilenet(width=16):
    """minigrad.models.mobilenet in PyTorch, layer for layer."""
    plan = [(width, 2 * width, 1), (2 * width, 4 * width, 2), (4 * width, 4 * width, 1),
            (4 * width, 8 * width, 2), (8 * width, 8 * width, 1)]
    layers = [nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for in_channels, out_channels, stride in plan:
        layers += [nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False),
                   nn.BatchNorm2d(in_channels), nn.ReLU(),
                   nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, 10))


def twins(name, depth, width):
    """(minigrad model, PyTorch model) with the PyTorch weights copied into minigrad's."""
    import minigrad as mg
    if name == "resnet":
        ours, theirs = mg.models.resnet(depth, width), TorchResNet(depth, width)
    else:
        ours, theirs = mg.models.mobilenet(width), torch_mobilenet(width)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


def median_step_ms(step, steps, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1e3 * float(np.median(times))


def steps(ours, theirs, images, labels):
    import minigrad as mg
    our_optimizer = mg.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    their_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    our_images, their_images, their_labels = mg.tensor(images), torch.from_numpy(images), torch.from_numpy(labels)

    def ours_step():
        our_optimizer.zero_grad()
        mg.functional.cross_entropy(ours(our_images), labels).backward()
        our_optimizer.step()

    def theirs_step():
        their_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(theirs(their_images), their_labels).backward()
        their_optimizer.step()
    return ours_step, theirs_step


def main(args):
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import minigrad as mg
    from benchmarks.machine import cpu_name

    mg.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(128, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    ours_step, theirs_step = steps(*twins(args.model, args.depth, args.width), images, labels)
    rounds = 4  # alternate, so that a busy neighbour slows both frameworks alike
    ours_times, theirs_times = [], []
    for _ in range(rounds):
        ours_times.append(median_step_ms(ours_step, max(1, args.steps // rounds)))
        theirs_times.append(median_step_ms(theirs_step, max(1, args.steps // rounds)))
    ours_ms, theirs_ms = float(np.median(ours_times)), float(np.median(theirs_times))
    name = f"resnet depth {args.depth} width {args.width}" if args.model == "resnet" else f"mobilenet width {args.width}"
    print(f"\nCPU: {cpu_name()}, {args.threads} thread(s), batch 128, 1x28x28")
    print("| model | minigrad ms/step | PyTorch ms/step | ratio | minigrad s/epoch | PyTorch s/epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {name} | {ours_ms:.1f} | {theirs_ms:.1f} | {ours_ms / theirs_ms:.2f} | "
          f"{ours_ms * STEPS_PER_EPOCH / 1e3:.0f} | {theirs_ms * STEPS_PER_EPOCH / 1e3:.0f} |")
    result = {"benchmark": "cpu training step", "model": name, "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
              "threads": args.threads, "load_average": os.getloadavg(),
              "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
              "ms_per_step": {"minigrad": ours_ms, "pytorch": theirs_ms},
              "seconds_per_epoch": {"minigrad": ours_ms * STEPS_PER_EPOCH / 1e3,
                                    "pytorch": theirs_ms * STEPS_PER_EPOCH / 1e3}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main(ARGS)
