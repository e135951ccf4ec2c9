"""Run minigrad's CUDA kernels on the CPU emulator against their NumPy twins: no GPU needed.

    python -m minigrad.emulate              # every kernel file that has a check here
    python -m minigrad.emulate prune --seed 3

Each check runs the real launcher (minigrad/nn/batchnorm_cuda.py,
minigrad/prune/selection.py) with its ``device`` replaced by
minigrad.emulator.EmulatedDevice, on random inputs, and prints how far the
kernels' results are from the NumPy twin's. See docs/kernels.md.
"""
import argparse
import sys

import numpy as np

from . import emulator


def check_batchnorm(rng):
    """Training statistics and normalization of a (6, 5, 7, 9) batch; largest differences."""
    from .nn import batchnorm, batchnorm_cuda
    x = (rng.standard_normal((6, 5, 7, 9)) * 3 + 10).astype(np.float32)
    with emulator.emulate("batchnorm", multiprocessors=4) as device:
        running = device.to_device(np.zeros(5, np.float32)), device.to_device(np.ones(5, np.float32))
        count, mean, invstd = batchnorm_cuda.steps.training_statistics(device.to_device(x), *running, 0.1, 1e-5)
        y = batchnorm_cuda.steps.normalize(device.to_device(x), mean, invstd, None, None)
        launches = len(device.launches)
    twin_count, twin_mean, twin_invstd = batchnorm.training_statistics(
        x, np.zeros(5, np.float32), np.ones(5, np.float32), 0.1, 1e-5)
    twin_y = batchnorm.normalize(x, twin_mean, twin_invstd, None, None)
    return launches, {"mean": _difference(mean, twin_mean), "invstd": _difference(invstd, twin_invstd),
                      "y": _difference(y, twin_y)}


def check_prune(rng):
    """The masks of pruning 40% of three weight tensors; mismatched entries."""
    from .prune import selection
    values = [rng.standard_normal(size).astype(np.float32) for size in (300, 1000, 37)]
    masks = [np.ones_like(value) for value in values]
    k = int(0.4 * sum(value.size for value in values))
    with emulator.emulate("prune") as device:
        got = selection.prune_smallest([device.to_device(v) for v in values], [device.to_device(m) for m in masks], k)
        launches = len(device.launches)
    expected = selection.prune_smallest(values, masks, k)  # host arrays: the NumPy twin
    return launches, {"mask": float(sum(int((np.asarray(g) != e).sum()) for g, e in zip(got, expected)))}


def _difference(got, expected):
    return float(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64)).max())


CHECKS = {"batchnorm": check_batchnorm, "prune": check_prune}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minigrad.emulate", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"kernel files to check: {', '.join(sorted(CHECKS))} (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    unknown = sorted(set(options.names) - set(CHECKS))
    if unknown:
        parser.error(f"no check for {', '.join(unknown)} (there are: {', '.join(sorted(CHECKS))})")
    rng = np.random.default_rng(options.seed)
    worst = 0.0
    for name in options.names or sorted(CHECKS):
        launches, differences = CHECKS[name](rng)
        shown = ", ".join(f"{what} {value:.3g}" for what, value in differences.items())
        print(f"{name}.cu: {launches} launches on the emulator; largest difference from the NumPy twin: {shown}")
        worst = max(worst, *differences.values())
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
