"""The fast CPU steps of minigrad/nn/cpu_fast.py against their NumPy twins, on the default CNN's shapes.

Batch 128, float32: BatchNorm and max-pool on (128, 32, 28, 28) and (128, 64, 14, 14), the
second convolution (32 -> 64 channels, 3x3, padding 1). Each pair is timed in
alternation (median of --rounds rounds, so both see the same machine load) at
1 and 2 threads of minigrad's pool; the BLAS keeps one thread (no GEMM is timed).

    python benchmarks/bench_cpu_fast.py
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--rounds", type=int, default=15)
parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu_fast.json"))
args = parser.parse_args()
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402
from minigrad.nn import batchnorm, cpu_fast  # noqa: E402


def interleaved_ms(reference, fast, rounds):
    for _ in range(2):
        reference()
        fast()
    times = {reference: [], fast: []}
    for _ in range(rounds):
        for function in (reference, fast):
            start = time.perf_counter()
            function()
            times[function].append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[reference])), 1e3 * float(np.median(times[fast]))


def batch_norm_cases(rng, shape):
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    count, mean, invstd = batchnorm.training_statistics(x, None, None, 0.1, 1e-5)
    weight, bias = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
    sums = batchnorm.gradient_sums(dy, x, mean, invstd)
    normalize = (x, mean, invstd, weight, bias)
    gradient = (dy, x, mean, invstd, weight, *sums, count[0], True)
    return {f"BatchNorm batch_statistics {shape}": (lambda: batchnorm.batch_statistics(x),
                                                    lambda: cpu_fast.batch_statistics(x)),
            f"BatchNorm normalize {shape}": (lambda: batchnorm.normalize(*normalize),
                                             lambda: cpu_fast.normalize(*normalize)),
            f"BatchNorm gradient_sums {shape}": (lambda: batchnorm.gradient_sums(dy, x, mean, invstd),
                                                 lambda: cpu_fast.gradient_sums(dy, x, mean, invstd)),
            f"BatchNorm input_gradient {shape}": (lambda: batchnorm.input_gradient(*gradient),
                                                  lambda: cpu_fast.input_gradient(*gradient))}


def max_pool_cases(rng, shape):
    x = np.maximum(rng.standard_normal(shape, dtype=np.float32), 0)
    pool = F.MaxPool2d()
    options = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    best = pool.forward(x, **options)
    grad = rng.standard_normal(best.shape, dtype=np.float32)
    winner = pool.winner
    return {f"max_pool2d forward {shape}": (lambda: pool.forward(x, **options),
                                            lambda: cpu_fast.max_pool2d_forward(x, (2, 2), (2, 2))),
            f"max_pool2d backward {shape}": (lambda: pool.backward(grad),
                                             lambda: cpu_fast.max_pool2d_backward(grad, winner, shape, (2, 2), (2, 2)))}


def conv_cases(rng, shape=(128, 32, 14, 14), out_channels=64):
    x = rng.standard_normal(shape, dtype=np.float32)
    channels = shape[1]
    kernel, stride, padding = (3, 3), (1, 1), (1, 1)

    def reference_im2col():  # the lines of functional.Conv2d.forward that build cols
        windows = F._windows(F._pad(x, padding), kernel, stride)
        return windows.transpose(1, 2, 3, 0, 4, 5).reshape(channels * 9, -1)

    out = rng.standard_normal((out_channels, shape[0], 14, 14), dtype=np.float32)
    grad_cols = rng.standard_normal((channels * 9, shape[0] * 14 * 14), dtype=np.float32)

    def reference_col2im():  # the lines of functional.Conv2d.backward after the GEMM
        cols = grad_cols.reshape(channels, 3, 3, shape[0], 14, 14).transpose(0, 3, 1, 2, 4, 5)
        folded = F._fold(cols, (channels, shape[0], 16, 16), stride)
        return np.ascontiguousarray(F._unpad(folded, padding).transpose(1, 0, 2, 3))

    return {f"conv2d im2col {shape}, 3x3, padding 1": (reference_im2col,
                                                        lambda: cpu_fast.im2col(x, kernel, stride, padding)),
            f"conv2d output to NCHW {out.shape}": (lambda: np.ascontiguousarray(out.transpose(1, 0, 2, 3)),
                                                  lambda: cpu_fast.nchw_from_channel_major(out)),
            f"conv2d col2im (input gradient) to {shape}": (
                reference_col2im, lambda: cpu_fast.col2im(grad_cols, shape, kernel, stride, padding))}


def main():
    rng = np.random.default_rng(0)
    cases = {}
    for shape in ((128, 32, 28, 28), (128, 64, 14, 14)):
        cases.update(batch_norm_cases(rng, shape))
        cases.update(max_pool_cases(rng, shape))
    cases.update(conv_cases(rng))
    rows = {}
    for threads in (1, 2):
        mg.set_num_threads(threads)
        for name, (reference, fast) in cases.items():
            rows.setdefault(name, {})[threads] = interleaved_ms(reference, fast, args.rounds)
    print(f"\nCPU: {cpu_name()}; median of {args.rounds} interleaved rounds; ms per call")
    print("| step | NumPy twin, 1 thread | fast, 1 thread | speed-up | NumPy twin, 2 threads | fast, 2 threads | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, by_threads in rows.items():
        cells = [f"{ref:.2f} | {fast:.2f} | {ref / fast:.2f}x" for ref, fast in (by_threads[1], by_threads[2])]
        print(f"| {name} | {' | '.join(cells)} |")
    result = {"benchmark": "fast CPU steps against their NumPy twins", "date": time.strftime("%Y-%m-%d"),
              "cpu": cpu_name(), "rounds": args.rounds, "numpy": np.__version__,
              "ms_per_call": {name: {f"{threads}_threads": {"numpy_twin": ref, "fast": fast}
                                     for threads, (ref, fast) in by_threads.items()}
                              for name, by_threads in rows.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
