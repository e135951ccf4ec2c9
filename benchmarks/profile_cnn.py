"""Where the time of one training step of train.py's default CNN goes, op by op.

Runs the step (batch 128, float32) a few times to warm up, then:
  1. per-op times from mg.debug.trace(), summed by (op, phase) over --steps steps;
  2. the top functions of a cProfile of the same steps, by own time.

    python benchmarks/profile_cnn.py --threads 1 --steps 10
"""
import argparse
import cProfile
import collections
import io
import os
import pstats
import re
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--top", type=int, default=25)
args = parser.parse_args()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(args.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402

TRACE_LINE = re.compile(r"(?P<phase>forward|backward)\s+(?P<op>\w+)\s+in (?P<shape>\([^)]*\)).*?(?P<ms>[0-9.]+) ms")


def step_function():
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    images = mg.tensor(rng.standard_normal((128, 1, 28, 28), dtype=np.float32))
    labels = rng.integers(0, 10, 128)
    model = mg.models.cnn()
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


def per_op_times(step):
    stream = io.StringIO()
    with mg.debug.trace(stream=stream):
        for _ in range(args.steps):
            step()
    totals = collections.defaultdict(float)
    for line in stream.getvalue().splitlines():
        match = TRACE_LINE.search(line)
        if match:
            totals[(match["op"], match["phase"], match["shape"])] += float(match["ms"])
    return {key: total / args.steps for key, total in totals.items()}


def main():
    step = step_function()
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_ms = 1e3 * (time.perf_counter() - start) / args.steps
    print(f"one step: {step_ms:.1f} ms ({args.threads} thread(s), mean of {args.steps}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")

    ops = per_op_times(step)
    print("| op | phase | first input | ms per step |\n|---|---|---|---:|")
    for (op, phase, shape), ms in sorted(ops.items(), key=lambda item: -item[1]):
        if ms >= 0.1:
            print(f"| {op} | {phase} | {shape} | {ms:.2f} |")
    print(f"| all ops traced | | | {sum(ops.values()):.1f} |\n")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.steps):
        step()
    profile.disable()
    report = io.StringIO()
    pstats.Stats(profile, stream=report).sort_stats("tottime").print_stats(args.top)
    print(report.getvalue())


if __name__ == "__main__":
    main()
