"""The fast CPU steps of minigrad/nn/cpu_fast.py (and the threaded ReLU of ops.py) against their NumPy
twins, on the default CNN's shapes; and, when numba is installed, the compiled loops of
minigrad/nn/cpu_kernels.py against cpu_fast.py's passes for batch norm and a 2x2 max-pool (the rows
"BatchNorm+max-pool ...": there the "twin" is cpu_fast.py's pass and "fast" the compiled loop).

Batch 128, float32: BatchNorm and max-pool on (128, 32, 28, 28) and (128, 64, 14, 14). Each pair is timed in
alternation (median of --rounds rounds, so both see the same machine load) at
1 and 2 threads (minigrad's pool and the BLAS, through mg.set_num_threads).

    python benchmarks/bench_cpu_fast.py
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--rounds", type=int, default=21)
parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu_fast.json"))
args = parser.parse_args()
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
from benchmarks.machine import cpu_name, numba_version  # noqa: E402
from minigrad.nn import batchnorm, cpu_fast, cpu_kernels, pooling  # noqa: E402


def interleaved_ms(reference, fast, rounds):
    """Wall and CPU ms of each, timed in alternation: median and minimum of each.

    On a shared machine the minimum wall time is the one with the least
    interference, and the CPU time (time.process_time, all threads) is the work
    done, which a descheduled process does not inflate; the median wall time
    is what a loaded machine gives.
    """
    for _ in range(2):
        reference()
        fast()
    times = ([], [])
    for _ in range(rounds):
        for function, kept in zip((reference, fast), times):
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            kept.append((1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)))
    return {name: {"median": float(np.median([w for w, _ in kept])), "min": float(min(w for w, _ in kept)),
                   "cpu_median": float(np.median([c for _, c in kept]))}
            for name, kept in zip(("numpy_twin", "fast"), times)}


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
    options = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))  # kernel, stride, padding, dilation
    best, winner = pooling.max_of_windows(x, *options)
    grad = rng.standard_normal(best.shape, dtype=np.float32)
    relu = mg.ops.ReLU()
    relu.forward(x)

    def relu_in_one_pass():  # the twin: ops.ReLU's two lines on the whole array (what it runs at 1 thread)
        out = np.maximum(x, 0)
        return out, out != 0
    # the engine's ReLU and its derivative split the pass over the threads at 2 threads
    return {f"ReLU forward {shape}": (relu_in_one_pass, lambda: relu.forward(x)),
            f"ReLU backward {shape}": (lambda: x * relu.positive, lambda: mg.ops.ReLUMask().forward(x, relu.positive)),
            f"max_pool2d forward {shape}": (lambda: pooling.max_of_windows(x, *options),
                                            lambda: cpu_fast.max_pool2d_forward(x, (2, 2), (2, 2))),
            f"max_pool2d backward {shape}": (lambda: pooling.scatter_to_winners(grad, winner, shape, *options),
                                             lambda: cpu_fast.max_pool2d_backward(grad, winner, shape, (2, 2), (2, 2)))}


def fused_cases(rng, shape):
    """BatchNormMaxPool's three passes: cpu_fast.py's NumPy passes against cpu_kernels.py's loops."""
    x = rng.standard_normal(shape, dtype=np.float32)
    count, mean, invstd = batchnorm.training_statistics(x, None, None, 0.1, 1e-5)
    weight, bias, window = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32), ((2, 2), (2, 2))
    _, winner = cpu_fast.normalize_max_pool(x, mean, invstd, weight, bias, *window)
    grad = rng.standard_normal(winner.shape, dtype=np.float32)
    sums = cpu_fast.max_pool_gradient_sums(grad, winner, x, mean, invstd, *window)
    forward, backward = (x, mean, invstd, weight, bias, *window), (grad, winner, x, mean, invstd)
    gradient = (grad, winner, x, mean, invstd, weight, *sums, count, True, *window)
    return {f"BatchNorm+max-pool forward {shape}": (lambda: cpu_fast.normalize_max_pool(*forward),
                                                    lambda: cpu_kernels.normalize_max_pool(*forward)),
            f"BatchNorm+max-pool sums {shape}": (lambda: cpu_fast.max_pool_gradient_sums(*backward, *window),
                                                 lambda: cpu_kernels.max_pool_gradient_sums(*backward, *window)),
            f"BatchNorm+max-pool input gradient {shape}": (lambda: cpu_fast.max_pool_input_gradient(*gradient),
                                                           lambda: cpu_kernels.max_pool_input_gradient(*gradient))}


def main():
    rng = np.random.default_rng(0)
    cases = {}
    for shape in ((128, 32, 28, 28), (128, 64, 14, 14)):
        cases.update(batch_norm_cases(rng, shape))
        cases.update(max_pool_cases(rng, shape))
        if cpu_kernels.use_numba:
            cases.update(fused_cases(rng, shape))
    rows = {}
    for threads in (1, 2):
        mg.set_num_threads(threads)
        for name, (reference, fast) in cases.items():
            rows.setdefault(name, {})[threads] = interleaved_ms(reference, fast, args.rounds)
    print(f"\nCPU: {cpu_name()}; {args.rounds} interleaved rounds; wall ms per call, median (minimum); "
          f"at 1 thread also the speed-up in CPU time (medians)")
    print("| step | twin, 1 thread | fast, 1 thread | speed-up | in CPU time "
          "| twin, 2 threads | fast, 2 threads | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, by_threads in rows.items():
        cells = []
        for row in (by_threads[1], by_threads[2]):
            twin, fast = row["numpy_twin"], row["fast"]
            cells.append(f"{twin['median']:.2f} ({twin['min']:.2f}) | {fast['median']:.2f} ({fast['min']:.2f}) | "
                         f"{twin['median'] / fast['median']:.2f}x ({twin['min'] / fast['min']:.2f}x)")
            if row is by_threads[1]:
                cells.append(f"{twin['cpu_median'] / fast['cpu_median']:.2f}x")
        print(f"| {name} | {' | '.join(cells)} |")
    result = {"benchmark": "fast CPU steps against their NumPy twins", "date": time.strftime("%Y-%m-%d"),
              "cpu": cpu_name(), "rounds": args.rounds, "numpy": np.__version__, "numba": numba_version(),
              "load_average": os.getloadavg(),  # other processes' load: a shared machine inflates wall times
              "ms_per_call": {name: {f"{threads}_threads": row for threads, row in by_threads.items()}
                              for name, by_threads in rows.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
