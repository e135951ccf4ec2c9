"""ResNet and MobileNet training steps on the CPU: minigrad against the same network in PyTorch.

The PyTorch twin is built from the minigrad model itself (``torch_twin``), with
minigrad's module names, so one state_dict fits both; each framework runs forward, cross-entropy, backward and an SGD step
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
    parser.add_argument("--width", type=int, default=24, help="channels of the first stage (default: 24, train.py's)")
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


def _torch_layer(layer):
    """The PyTorch layer with a minigrad layer's options, or None if it is not a single layer."""
    import minigrad as mg
    kind = type(layer)
    if kind is mg.nn.Conv2d:
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, layer.groups, layer.bias is not None, layer.padding_mode)
    if kind is mg.nn.BatchNorm2d:
        return nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    if kind is mg.nn.Linear:
        return nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
    stateless = {mg.nn.ReLU: nn.ReLU, mg.nn.Flatten: nn.Flatten, mg.nn.AdaptiveAvgPool2d: nn.AdaptiveAvgPool2d}
    return stateless[kind](**layer.options) if kind in stateless else None


def torch_twin(module):
    """The same network in PyTorch, module for module and name for name, so one state_dict fits both.

    Layers become their PyTorch counterparts; a composite module (a ResNet
    block) becomes a torch.nn.Module with the twins of its children, run by the
    very forward code minigrad runs: that code only calls its children and
    tensor methods both frameworks share (relu, flatten, +).
    """
    layer = _torch_layer(module)
    if layer is not None:
        return layer
    import minigrad as mg
    if type(module) is mg.nn.Sequential:
        return nn.Sequential(*[torch_twin(child) for child in module])
    twin = type(f"Torch{type(module).__name__}", (nn.Module,), {"forward": type(module).forward})()
    for name, child in module._modules.items():
        setattr(twin, name, None if child is None else torch_twin(child))
    for name, value in vars(module).items():  # children that are absent (a block without downsample)
        if value is None:
            setattr(twin, name, None)
    return twin


def twins(name, depth, width):
    """(minigrad model, PyTorch twin) with the PyTorch weights copied into minigrad's."""
    import minigrad as mg
    ours = mg.models.resnet(depth, width) if name == "resnet" else mg.models.mobilenet(width)
    theirs = torch_twin(ours)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


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
    from benchmarks.machine import cpu_name, median_ms

    mg.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(128, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    ours_step, theirs_step = steps(*twins(args.model, args.depth, args.width), images, labels)
    rounds = 4  # alternate, so that a busy neighbour slows both frameworks alike
    ours_times, theirs_times = [], []
    for _ in range(rounds):
        ours_times.append(median_ms(ours_step, max(1, args.steps // rounds), warmup=3))
        theirs_times.append(median_ms(theirs_step, max(1, args.steps // rounds), warmup=3))
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
