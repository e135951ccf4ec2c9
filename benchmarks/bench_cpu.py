"""Training-step speed on the CPU: minigrad against PyTorch, side by side in one process.

Each step is forward, cross-entropy, backward and an SGD update (momentum 0.9)
with the same weights, batch and thread count in both frameworks. Reported:
the median step time, and the ratio minigrad / PyTorch
(below 1 means minigrad is faster). Each model is timed in interleaved rounds
(a few steps of minigrad, then of PyTorch, --rounds times), so that both see the
same machine load; the ratio is the median of the rounds' ratios, with the
ratio of CPU times next to it. A hand-written NumPy forward/backward of
the MLP shows what the arithmetic alone costs, so the difference is the
engine's own overhead. The per-op overhead of a tiny elementwise op is timed
too.

    python benchmarks/bench_cpu.py --threads 1

OpenBLAS picks its kernels by CPU; this machine's image pins an older kernel
set with OPENBLAS_CORETYPE, so `make bench` unsets it for NumPy and PyTorch
alike. The JSON records which kernels ran.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS and PyTorch (default 1)")
parser.add_argument("--steps", type=int, default=60, help="timed steps per model and framework")
parser.add_argument("--rounds", type=int, default=9,
                    help="rounds of minigrad then PyTorch per model, each round a few steps (default 9)")
parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu.json"))
args = parser.parse_args()
# The BLAS reads its thread count when it loads, so set it before numpy is imported.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.nn as nn  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402
from benchmarks.machine import cpu_name, median_ms, numba_version  # noqa: E402

torch.set_num_threads(args.threads)
BATCH = 128


def interleaved_ms(ours, theirs, rounds, steps_per_round=3):
    """Two step functions timed in alternation, so that both see the same machine load.

    Returns the median wall ms per step of each, the median of the per-round
    wall ratios ours / theirs, and the ratio of median CPU times (process_time:
    the work done, which other processes on a shared machine do not inflate;
    comparable at 1 thread, where neither framework spins threads)."""
    for _ in range(3):
        ours()
        theirs()
    walls, cpus = ([], []), ([], [])
    for _ in range(rounds):
        for step, wall_times, cpu_times in zip((ours, theirs), walls, cpus):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps_per_round):
                step()
            wall_times.append((time.perf_counter() - wall) / steps_per_round)
            cpu_times.append((time.process_time() - cpu) / steps_per_round)
    ratio = float(np.median(np.array(walls[0]) / np.array(walls[1])))
    return (1e3 * float(np.median(walls[0])), 1e3 * float(np.median(walls[1])), ratio,
            float(np.median(cpus[0]) / np.median(cpus[1])))


def paired(ours, theirs):
    torch_model = theirs()
    our_model = ours()
    our_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    return our_model, torch_model


def minigrad_step(model, x, y):
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    inputs = mg.tensor(x)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), y).backward()
        optimizer.step()
    return step


def torch_step(model, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return step


def numpy_mlp_step(weights, x, y):
    """The MLP written out by hand in NumPy: the arithmetic with no engine around it."""
    velocity = [np.zeros_like(w) for w in weights]
    onehot = np.eye(10, dtype=np.float32)[y]

    def step():
        w1, b1, w2, b2, w3, b3 = weights
        h1 = np.maximum(x @ w1.T + b1, 0)
        h2 = np.maximum(h1 @ w2.T + b2, 0)
        logits = h2 @ w3.T + b3
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d3 = (p - onehot) / len(x)
        d2 = (d3 @ w3) * (h2 > 0)
        d1 = (d2 @ w2) * (h1 > 0)
        grads = [d1.T @ x, d1.sum(0), d2.T @ h1, d2.sum(0), d3.T @ h2, d3.sum(0)]
        for w, v, g in zip(weights, velocity, grads):
            v *= 0.9
            v += g
            w -= 0.01 * v
    return step


def mlp_models():
    return paired(lambda: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)),
                  lambda: torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                              torch.nn.ReLU(), torch.nn.Linear(128, 10)))


def cnn_models():
    return paired(lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                        nn.Flatten(), nn.Linear(16 * 7 * 7, 10)),
                  lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                              torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10)))


def torch_default_cnn():
    """train.py's default CNN (minigrad.models.cnn) in PyTorch, layer for layer."""
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 32, 3, padding=1, bias=False), t.BatchNorm2d(32), t.ReLU(), t.MaxPool2d(2),
                        t.Conv2d(32, 64, 3, padding=1, bias=False), t.BatchNorm2d(64), t.ReLU(), t.MaxPool2d(2),
                        t.Flatten(), t.Linear(64 * 7 * 7, 128), t.ReLU(), t.Dropout(0.25), t.Linear(128, 10))


def op_overhead():
    """Time per tiny op: the fixed cost of building and running one graph node."""
    a = mg.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    ta = torch.ones(4, requires_grad=True)
    count = 2000

    def ours():
        for _ in range(count):
            a + a

    def theirs():
        for _ in range(count):
            ta + ta
    return 1e6 * median_ms(ours, 15) / 1e3 / count, 1e6 * median_ms(theirs, 15) / 1e3 / count


def main():
    mg.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    rows = []

    def side_by_side(models, inputs, steps_per_round):
        ours, theirs = models
        ours_ms, theirs_ms, ratio, cpu_ratio = interleaved_ms(minigrad_step(ours, inputs, y),
                                                              torch_step(theirs, inputs, y), args.rounds, steps_per_round)
        return {"minigrad": ours_ms, "pytorch": theirs_ms, "median_ratio_of_rounds": ratio, "cpu_time_ratio": cpu_ratio}

    our_mlp, torch_mlp = mlp_models()
    weights = [p.numpy().copy() for p in our_mlp.parameters()]
    mlp = side_by_side((our_mlp, torch_mlp), x, steps_per_round=max(1, args.steps // 3))
    mlp["numpy_by_hand"] = median_ms(numpy_mlp_step(weights, x, y), args.steps)
    rows.append(("MLP 784-256-128-10, batch 128", mlp))

    images = x.reshape(BATCH, 1, 28, 28)
    rows.append(("CNN conv8-pool-conv16-pool-fc, batch 128", side_by_side(cnn_models(), images, steps_per_round=5)))
    rows.append(("default CNN of train.py (conv32-BN-pool, conv64-BN-pool, fc128, dropout), batch 128",
                 side_by_side(paired(mg.models.cnn, torch_default_cnn), images, steps_per_round=3)))

    ours_us, theirs_us = op_overhead()
    overhead = {"minigrad": ours_us, "pytorch": theirs_us}

    print(f"\nCPU: {cpu_name()}, {args.threads} thread(s)")
    print("| training step | minigrad (ms) | PyTorch (ms) | ratio | NumPy by hand (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows:
        hand = f"{row['numpy_by_hand']:.3f}" if "numpy_by_hand" in row else ""
        print(f"| {name} | {row['minigrad']:.3f} | {row['pytorch']:.3f} | {row['median_ratio_of_rounds']:.2f} | {hand} |")
    print(f"| tiny elementwise op (us per op, forward) | {ours_us:.2f} | {theirs_us:.2f} | {ours_us / theirs_us:.2f} | |")
    cpu_ratios = ", ".join(f"{row['cpu_time_ratio']:.2f}" for _, row in rows)
    print(f"(times: medians over {args.rounds} interleaved rounds; ratio: the median of the rounds' ratios; "
          f"ratios of CPU times: {cpu_ratios})")

    try:
        from threadpoolctl import threadpool_info
        blas = [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for info in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    result = {
        "benchmark": "cpu training step",
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_name(),
        "threads": args.threads,
        # other processes' load on this machine (1, 5, 15-minute averages): a shared machine inflates the times
        "load_average": os.getloadavg(),
        # numba's version when minigrad's compiled CPU kernels ran (minigrad/nn/cpu_kernels.py), else None
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "numba": numba_version(),
                     "minigrad": mg.__version__},
        "blas": blas,
        "ms_per_step": {name: row for name, row in rows},
        "us_per_tiny_op": overhead,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
