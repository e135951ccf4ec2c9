"""The fused SGD step against torch.optim.SGD (+ re-masking), on a ResNet-50-sized parameter set.

    python benchmarks/bench_sgd.py              # GPU: minigrad's one launch vs torch foreach / fused
    python benchmarks/bench_sgd.py --quick      # GPU, fewer repetitions (the time-limited GPU suite)
    python benchmarks/bench_sgd.py --cpu        # CPU: the NumPy twin vs torch's CPU SGD

The parameter set is ResNet-50's: 161 tensors, 25,557,032 float32 values (conv
weights, batch-norm weights and biases, the classifier), with SGD momentum 0.9
and weight decay 1e-4, the ImageNet recipe. Pruning masks (float, same dtype,
about half zeros) are set on every conv and linear weight, as mg.prune does.

Cases: minigrad's step without and with masks (masks: weights AND momentum
zeroed inside the same launch; "lr changes" re-uploads the table every step as a
per-iteration scheduler would); torch.optim.SGD with foreach=True and fused=True,
each alone and followed by re-applying the masks the PyTorch way, ``p.mul_(mask)``
per masked tensor. Each case reports the median time of one optimizer step over
many repetitions, measured with CUDA events while a large matrix product keeps
the GPU busy (so the events time the GPU's work, not Python's), the host time of
one step (wall clock, synchronized), and the bandwidth against the memory floor:
read w, g, buf (+ mask), write w, buf = 20 bytes per value (24 with a mask). The
device-to-device copy bandwidth of the same run is the practical ceiling. The
targets are printed as ratios with the value each should reach: at least 1.5x
torch's foreach SGD, on par (0.95x) with fused=True, at least 2x foreach SGD +
re-masking when masked. Results go to benchmarks/results/sgd_<device>.json with the card, date and versions.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minigrad as mg  # noqa: E402
from minigrad.nn import Parameter  # noqa: E402
from minigrad.optim import SGD  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4
FLOOR_BYTES = {False: 20, True: 24}   # per float32 value: read w, g, buf (+ mask), write w, buf


def resnet50_shapes():
    """The parameter shapes of ResNet-50 (torchvision's layout), in registration order."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    in_channels = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(planes, in_channels, 1, 1), (planes,), (planes,),
                       (planes, planes, 3, 3), (planes,), (planes,),
                       (planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if block == 0:  # the projection shortcut
                shapes += [(planes * 4, in_channels, 1, 1), (planes * 4,), (planes * 4,)]
            in_channels = planes * 4
    return shapes + [(1000, 2048), (1000,)]


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="time the NumPy twin against torch on the CPU")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (the time-limited GPU suite)")
    parser.add_argument("--reps", type=int, default=None, help="timed steps per case (GPU 200, quick 50, CPU 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return parser.parse_args(argv)


def make_problem(xp, seed=0):
    """Weights, gradients and masks (masks only on conv/linear weights) as float32 arrays of xp."""
    rng = np.random.default_rng(seed)
    shapes = resnet50_shapes()
    weights = [xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for shape in shapes]
    grads = [xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for shape in shapes]
    masks = [xp.asarray((rng.random(shape) > 0.5).astype(np.float32)) if len(shape) > 1 else None
             for shape in shapes]
    return weights, grads, masks


def minigrad_step(weights, grads, masks, use_masks, change_lr=False):
    """A minigrad SGD over copies of the arrays; returns the function that takes one step."""
    parameters = []
    for weight, grad, mask in zip(weights, grads, masks):
        parameter = Parameter(weight.copy())
        parameter.grad = mg.Tensor(grad)
        parameter.mask = mg.Tensor(mask) if (use_masks and mask is not None) else None
        parameters.append(parameter)
    optimizer = SGD(parameters, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    optimizer.step()  # creates the momentum buffers: the timed steps are the steady state
    group = optimizer.param_groups[0]

    def step():
        if change_lr:
            group["lr"] = LR * (0.9 + 0.1 * np.random.random())
        optimizer.step()
    return step


def torch_step(torch, weights, grads, masks, device, use_masks, **sgd_options):
    """torch.optim.SGD over the same values; with use_masks, then ``p.mul_(mask)`` per masked tensor."""
    def to_torch(array):
        return torch.tensor(mg.backend.to_numpy(array), device=device)
    parameters = [torch.nn.Parameter(to_torch(weight)) for weight in weights]
    for parameter, grad in zip(parameters, grads):
        parameter.grad = to_torch(grad)
    pairs = [(p, to_torch(mask)) for p, mask in zip(parameters, masks) if mask is not None]
    optimizer = torch.optim.SGD(parameters, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, **sgd_options)
    optimizer.step()

    def step():
        optimizer.step()
        if use_masks:
            with torch.no_grad():
                for parameter, mask in pairs:
                    parameter.mul_(mask)
    return step


# ----- timing -----------------------------------------------------------------------------
def time_on_gpu(step, reps, library, torch=None):
    """(median GPU ms by CUDA events with the GPU kept busy while queueing,
    median wall-clock ms of one step from the call to a synchronize: host overhead included)."""
    import cupy
    if library == "torch":
        new_event = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        synchronize, busy = torch.cuda.synchronize, torch.ones((8192, 8192), device="cuda")
        elapsed = lambda start, end: start.elapsed_time(end)  # noqa: E731
    else:
        new_event, synchronize = cupy.cuda.Event, cupy.cuda.Device().synchronize
        busy, elapsed = cupy.ones((8192, 8192), dtype=np.float32), cupy.cuda.get_elapsed_time
    for _ in range(5):
        step()
    synchronize()
    device_times, host_times = [], []
    for first in range(0, reps, 10):
        batch = min(10, reps - first)
        busy @ busy  # tens of ms of work queued ahead, so the steps below run back to back
        events = [new_event() for _ in range(batch + 1)]
        events[0].record()
        for index in range(batch):
            step()
            events[index + 1].record()
        synchronize()
        device_times += [elapsed(events[i], events[i + 1]) for i in range(batch)]
    for _ in range(min(reps, 50)):
        started = time.perf_counter()
        step()
        synchronize()
        host_times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(device_times), statistics.median(host_times)


def time_on_cpu(step, reps):
    step()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times), statistics.median(times)


def copy_bandwidth(xp, n_values, reps, timer):
    """GB/s of copying n_values float32 (read + write counted), timed like the steps."""
    source, target = xp.ones(n_values, dtype=np.float32), xp.empty(n_values, dtype=np.float32)
    milliseconds, _ = timer(lambda: xp.copyto(target, source), reps)
    return 2 * 4 * n_values / (milliseconds * 1e-3) / 1e9, milliseconds


# ----- the run -----------------------------------------------------------------------------
def main(argv=None):
    arguments = parse_arguments(argv)
    on_gpu = not arguments.cpu
    reps = arguments.reps or (5 if not on_gpu else 50 if arguments.quick else 200)
    try:
        import torch
    except ImportError:
        torch = None
    if on_gpu:
        if not mg.cuda_is_available():
            sys.exit("bench_sgd: no GPU here (CuPy sees none); use --cpu")
        xp = mg.backend.cupy()
        device_name = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        torch_ok = torch is not None and torch.cuda.is_available()
        timer = lambda step, reps, library="cupy": time_on_gpu(step, reps, library, torch)  # noqa: E731
    else:
        xp = np
        device_name = f"{cpu_name()} ({os.cpu_count()} cores)"
        torch_ok = torch is not None
        if torch_ok:
            torch.set_num_threads(1)  # NumPy's elementwise ops run on one thread
        timer = lambda step, reps, library=None: time_on_cpu(step, reps)  # noqa: E731

    weights, grads, masks = make_problem(xp)
    n_values = sum(int(w.size) for w in weights)
    n_masked = sum(int(m.size) for m in masks if m is not None)
    # (name, masked, a function that builds the step, library): built one at a time to save memory
    cases = [("minigrad SGD", False, lambda: minigrad_step(weights, grads, masks, False), "cupy"),
             ("minigrad SGD, masks", True, lambda: minigrad_step(weights, grads, masks, True), "cupy"),
             ("minigrad SGD, masks, lr changes", True,
              lambda: minigrad_step(weights, grads, masks, True, change_lr=True), "cupy")]
    if torch_ok:
        device = "cuda" if on_gpu else "cpu"
        variants = [("foreach", dict(foreach=True))] + ([("fused", dict(fused=True))] if on_gpu else
                                                       [("for-loop", dict(foreach=False))])
        for label, options in variants:
            for masked, suffix in ((False, ""), (True, " + p.mul_(mask)")):
                cases.append((f"torch {label}{suffix}", masked,
                              lambda masked=masked, options=options:
                              torch_step(torch, weights, grads, masks, device, masked, **options), "torch"))
    rows = []
    for name, masked, build, library in cases:
        device_ms, host_ms = timer(build(), reps, library)
        floor = FLOOR_BYTES[False] * n_values + (4 * n_masked if masked else 0)
        rows.append(dict(case=name, masks=masked, median_ms=device_ms, wall_ms=host_ms,
                         floor_bytes=floor, gb_per_s=floor / (device_ms * 1e-3) / 1e9))
    copy_gb_per_s, copy_ms = copy_bandwidth(xp, 3 * n_values, reps, lambda step, reps: timer(step, reps, "cupy"))
    report(arguments, on_gpu, device_name, torch, n_values, n_masked, rows, copy_gb_per_s, copy_ms, reps)


# (target name, minigrad case, torch case, the ratio torch time / minigrad time should reach)
TARGETS = [("vs foreach", "minigrad SGD", "torch foreach", 1.5),
           ("vs fused", "minigrad SGD", "torch fused", 0.95),
           ("masks vs foreach + re-masking", "minigrad SGD, masks", "torch foreach + p.mul_(mask)", 2.0)]


def targets(by_case):
    """{target: {"ratio": torch ms / minigrad ms, "wanted": ..., "met": ...}} for the cases that ran."""
    found = {}
    for name, ours, theirs, wanted in TARGETS:
        if ours in by_case and theirs in by_case:
            ratio = by_case[theirs]["median_ms"] / by_case[ours]["median_ms"]
            found[name] = {"ratio": ratio, "wanted": wanted, "met": ratio >= wanted}
    return found


def report(arguments, on_gpu, device_name, torch, n_values, n_masked, rows, copy_gb_per_s, copy_ms, reps):
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "torch": getattr(torch, "__version__", None), "minigrad": mg.__version__}
    if on_gpu:
        cupy = mg.backend.cupy()
        versions["cupy"] = cupy.__version__
        versions["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    by_case = {row["case"]: row for row in rows}
    baseline = {True: ["torch foreach + p.mul_(mask)", "torch fused + p.mul_(mask)",
                       "torch for-loop + p.mul_(mask)"],
                False: ["torch foreach", "torch fused", "torch for-loop"]}
    for row in rows:
        if row["case"].startswith("minigrad"):
            fastest = [by_case[name]["median_ms"] for name in baseline[row["masks"]] if name in by_case]
            row["speedup_vs_best_torch"] = min(fastest) / row["median_ms"] if fastest else None
    print(f"SGD step (momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}) on {device_name}: "
          f"{n_values:,} float32 values in {len(resnet50_shapes())} tensors, {n_masked:,} masked; "
          f"median of {reps}")
    print(f"{'case':38s} {'time ms':>9s} {'wall ms':>9s} {'GB/s':>8s} {'vs torch':>9s}")
    for row in rows:
        speedup = row.get("speedup_vs_best_torch")
        print(f"{row['case']:38s} {row['median_ms']:9.3f} {row['wall_ms']:9.3f} {row['gb_per_s']:8.1f} "
              f"{'' if speedup is None else f'{speedup:8.2f}x':>9s}")
    copy_label = "device-to-device copy" if on_gpu else "memory copy (np.copyto)"
    print(f"{copy_label + ' (read + write)':38s} {copy_ms:9.3f} {'':9s} {copy_gb_per_s:8.1f}")
    reached = targets(by_case) if on_gpu else {}
    for name, target in reached.items():
        print(f"target {name}: {target['ratio']:.2f}x, wanted {target['wanted']}x: "
              f"{'met' if target['met'] else 'NOT met'}")
    result = {"benchmark": "sgd", "device": "gpu" if on_gpu else "cpu", "card": device_name,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "versions": versions,
              "n_values": n_values, "n_tensors": len(resnet50_shapes()), "n_masked_values": n_masked,
              "reps": reps, "floor_bytes_per_value": FLOOR_BYTES, "rows": rows,
              "copy_gb_per_s": copy_gb_per_s, "targets": reached, "note": "GB/s = memory floor / median time"}
    arguments.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_") if on_gpu else "cpu"
    path = arguments.out / f"sgd_{slug}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
