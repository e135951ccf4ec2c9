"""Batch normalization: minigrad's kernels against PyTorch (cuDNN and native CUDA).

    python benchmarks/bench_batchnorm.py            # GPU: every shape, 200 timed launches each
    python benchmarks/bench_batchnorm.py --quick    # GPU: 30 timed launches each (the GPU suite)
    python benchmarks/bench_batchnorm.py --cpu      # CPU: the NumPy path against torch on the CPU

For each shape and pass (train forward, eval forward, backward) it reports the
median time of one launch, measured with CUDA events while a large matrix
product keeps the GPU busy during queueing (so host overhead is not timed), and
the achieved bandwidth counted against the bytes the pass must move
(B = 4 * numel: train forward 3B = statistics read + normalise read/write,
eval forward 2B, backward 5B = sums read x, dy + dx read x, dy, write dx),
beside the device-to-device copy bandwidth measured in the same run, and the
targets as ratios (1.00 or more: met): the share of copy bandwidth against 85%
for float4 shapes and 70% for odd ones (S % 4 != 0, e.g. 7x7; for maps of at most
16 values, which the kernels read a sample at a time, C*S % 4 != 0), and the speed-up
against the faster of cuDNN and PyTorch's native kernels (target: above 1). Results
go to benchmarks/results/batchnorm_<card>.{json,md} with the card's name, the
date and the versions.
"""
import argparse
import datetime
import json
import math
import platform
import re
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minigrad as mg  # noqa: E402
from benchmarks.machine import cpu_name, median_ms  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# Tiny maps (S <= 16) take the rows kernels: 2x2 (float4), 3x3 with an odd C*S (scalar) and with C*S % 4 == 0
# (float4 units that straddle channels), and 2x1.
GPU_SHAPES = [(32, 64, 112, 112), (256, 256, 14, 14), (128, 2048, 7, 7), (8192, 1024), (20, 1, 1000, 1000),
              (256, 512, 2, 2), (255, 511, 3, 3), (256, 512, 3, 3), (1024, 255, 2, 1), (65536, 10)]
CPU_SHAPE = (32, 64, 28, 28)
PASSES = {"train forward": 3, "eval forward": 2, "backward": 5}  # bytes moved, in units of B
COPY_TARGET_FLOAT4, COPY_TARGET_ODD = 0.85, 0.70  # share of copy bandwidth each shape should reach
BUSY_SIZE = 6144             # a BUSY_SIZE^2 matrix product (~8 ms) keeps the GPU busy while launches queue
COPY_BYTES = 512 * 2 ** 20   # the device-to-device copy measured for the bandwidth reference
MOMENTUM, EPS = 0.1, 1e-5


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed launches (for the time-limited GPU suite)")
    parser.add_argument("--cpu", action="store_true", help="time the NumPy path against torch on the CPU instead")
    parser.add_argument("--reps", type=int, default=None, help="timed launches per case (default 200, quick 30)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and markdown results")
    return parser.parse_args(argv)


# ----- timing -----------------------------------------------------------------------------
class _GpuTimer:
    """Median milliseconds of one call, by CUDA events of `library` ('cupy' or 'torch')."""

    def __init__(self, library, reps):
        self.library, self.reps = library, reps
        if library == "cupy":
            cupy = mg.backend.cupy()
            self.event, self.synchronize = cupy.cuda.Event, cupy.cuda.Stream.null.synchronize
            self.busy_matrix = cupy.ones((BUSY_SIZE, BUSY_SIZE), dtype=np.float32)
            self.elapsed = cupy.cuda.get_elapsed_time
        else:
            import torch
            self.event = lambda: torch.cuda.Event(enable_timing=True)
            self.synchronize = torch.cuda.synchronize
            self.busy_matrix = torch.ones((BUSY_SIZE, BUSY_SIZE), device="cuda")
            self.elapsed = lambda start, end: start.elapsed_time(end)

    def __call__(self, function):
        for _ in range(3):
            function()
        self.synchronize()
        times = []
        for first in range(0, self.reps, 25):  # a busy GPU while 25 launches are queued
            batch = min(25, self.reps - first)
            self.busy_matrix @ self.busy_matrix
            events = [self.event() for _ in range(batch + 1)]
            events[0].record()
            for index in range(batch):
                function()
                events[index + 1].record()
            self.synchronize()
            times += [self.elapsed(events[i], events[i + 1]) for i in range(batch)]
        return statistics.median(times)


def _copy_bandwidth(timer, cupy):
    """Device-to-device cudaMemcpy of COPY_BYTES: bytes read plus bytes written per second."""
    from minigrad.kernels import address
    from minigrad.nn.batchnorm_cuda import device
    source = cupy.ones(COPY_BYTES // 4, dtype=np.float32)
    target = cupy.empty_like(source)
    device_to_device = 3  # cudaMemcpyDeviceToDevice
    milliseconds = timer(lambda: cupy.cuda.runtime.memcpyAsync(address(target, device), address(source, device),
                                                               source.nbytes, device_to_device, 0))
    return 2 * source.nbytes / milliseconds / 1e6


# ----- the cases --------------------------------------------------------------------------
def _minigrad_passes(cupy, shape, rng):
    """The three passes as calls into the CUDA steps, plus the outputs to check."""
    from minigrad.nn.batchnorm_cuda import steps
    channels = shape[1]
    x = cupy.asarray(rng.standard_normal(shape, dtype=np.float32) * 2 + 1)
    grad = cupy.asarray(rng.standard_normal(shape, dtype=np.float32))
    weight = cupy.asarray(rng.standard_normal(channels, dtype=np.float32))
    bias = cupy.asarray(rng.standard_normal(channels, dtype=np.float32))
    running_mean, running_var = cupy.zeros(channels, dtype=np.float32), cupy.ones(channels, dtype=np.float32)
    count, mean, invstd = steps.training_statistics(x, running_mean, running_var, MOMENTUM, EPS)

    def train_forward():
        count_, mean_, invstd_ = steps.training_statistics(x, running_mean, running_var, MOMENTUM, EPS)
        return steps.normalize(x, mean_, invstd_, weight, bias)

    def eval_forward():
        return steps.normalize_with_running_stats(x, running_mean, running_var, weight, bias, EPS)

    def backward():
        sum_dy, sum_dy_xhat = steps.gradient_sums(grad, x, mean, invstd)
        return steps.input_gradient(grad, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, True), sum_dy_xhat

    arrays = dict(x=x, grad=grad, weight=weight, bias=bias)
    return {"train forward": train_forward, "eval forward": eval_forward, "backward": backward}, arrays


def _torch_passes(torch, arrays, cudnn):
    """The same passes in PyTorch (F.batch_norm and its autograd backward) on the same data."""
    functional = torch.nn.functional
    x, grad, weight, bias = (torch.as_tensor(arrays[name], device="cuda") for name in ("x", "grad", "weight", "bias"))
    channels = x.shape[1]
    running_mean, running_var = torch.zeros(channels, device="cuda"), torch.ones(channels, device="cuda")
    x_leaf, weight_leaf, bias_leaf = (t.clone().requires_grad_() for t in (x, weight, bias))
    torch.backends.cudnn.enabled = cudnn
    output = functional.batch_norm(x_leaf, running_mean, running_var, weight_leaf, bias_leaf, True, MOMENTUM, EPS)

    def with_cudnn(function):
        def call():
            torch.backends.cudnn.enabled = cudnn
            return function()
        return call

    def train_forward():
        return functional.batch_norm(x, running_mean, running_var, weight, bias, True, MOMENTUM, EPS)

    def eval_forward():
        return functional.batch_norm(x, running_mean, running_var, weight, bias, False, MOMENTUM, EPS)

    def backward():
        grads = torch.autograd.grad(output, (x_leaf, weight_leaf, bias_leaf), grad, retain_graph=True)
        return grads[0], grads[1]

    return {name: with_cudnn(function) for name, function in
            (("train forward", train_forward), ("eval forward", eval_forward), ("backward", backward))}


def _copy_target(shape):
    """85% of copy bandwidth where the kernels load float4 (inner size a multiple of 4), else 70%."""
    from minigrad.nn.batchnorm_cuda import inner_size
    return COPY_TARGET_FLOAT4 if inner_size(shape)[1] % 4 == 0 else COPY_TARGET_ODD


def _max_difference(cupy, ours, theirs):
    if isinstance(ours, tuple):
        return max(_max_difference(cupy, a, b) for a, b in zip(ours, theirs))
    return float(abs(cupy.asnumpy(ours) - theirs.detach().cpu().numpy()).max())


def run_gpu(arguments):
    cupy = mg.backend.cupy()
    try:
        import torch
        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch, torch_cuda = None, False
    reps = arguments.reps or (30 if arguments.quick else 200)
    timer = _GpuTimer("cupy", reps)
    torch_timer = _GpuTimer("torch", reps) if torch_cuda else None
    copy_gb_s = _copy_bandwidth(timer, cupy)
    rng = np.random.default_rng(0)
    rows = []
    for shape in GPU_SHAPES:
        passes, arrays = _minigrad_passes(cupy, shape, rng)
        torch_variants = {}
        if torch_cuda:
            torch_variants = {"cudnn": _torch_passes(torch, arrays, True), "native": _torch_passes(torch, arrays, False)}
        megabytes = 4 * math.prod(shape) / 1e6
        for name, units in PASSES.items():
            row = {"shape": list(shape), "pass": name, "floor_bytes": int(units * megabytes * 1e6)}
            row["minigrad_us"] = 1000 * timer(passes[name])
            row["minigrad_gb_s"] = row["floor_bytes"] / row["minigrad_us"] / 1e3
            row["minigrad_of_copy"] = row["minigrad_gb_s"] / copy_gb_s
            row["copy_target"] = _copy_target(shape)
            row["of_copy_target"] = row["minigrad_of_copy"] / row["copy_target"]
            for variant, functions in torch_variants.items():
                row[f"torch_{variant}_us"] = 1000 * torch_timer(functions[name])
                row[f"max_abs_diff_vs_torch_{variant}"] = _max_difference(cupy, passes[name](), functions[name]())
            if torch_variants:
                best = min(row["torch_cudnn_us"], row["torch_native_us"])
                row["speedup_vs_best_torch"] = best / row["minigrad_us"]
            rows.append(row)
            print(_markdown_row(row), flush=True)
    properties = cupy.cuda.runtime.getDeviceProperties(0)
    meta = _meta(card=properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"])
    meta.update(cupy=cupy.__version__, cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                cuda_driver=cupy.cuda.runtime.driverGetVersion(), reps=reps,
                copy_gb_s=copy_gb_s, torch_cuda=torch_cuda,
                cudnn=torch.backends.cudnn.version() if torch_cuda else None)
    _write(arguments.out, meta, rows, "gpu")


# ----- CPU: the NumPy path against torch -------------------------------------------------
def run_cpu(arguments):
    import torch
    reps = arguments.reps or (5 if arguments.quick else 20)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(CPU_SHAPE) * 2 + 1).astype(np.float32)
    grad = rng.standard_normal(CPU_SHAPE).astype(np.float32)
    ours, theirs = mg.nn.BatchNorm2d(CPU_SHAPE[1]), torch.nn.BatchNorm2d(CPU_SHAPE[1])
    ours_input, their_input = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    their_grad = torch.tensor(grad)

    def ours_backward():
        output = ours(ours_input)
        output.backward(grad)

    def theirs_backward():
        theirs(their_input).backward(their_grad)

    cases = {"train forward": (lambda: ours(mg.tensor(x)), lambda: theirs(torch.tensor(x))),
             "train forward + backward": (ours_backward, theirs_backward)}
    rows = []
    megabytes = 4 * math.prod(CPU_SHAPE) / 1e6
    for name, (ours_call, theirs_call) in cases.items():
        rows.append({"shape": list(CPU_SHAPE), "pass": name, "numpy_ms": median_ms(ours_call, reps, warmup=1),
                     "torch_cpu_ms": median_ms(theirs_call, reps, warmup=1)})
    ours.eval(), theirs.eval()
    with torch.no_grad(), mg.no_grad():
        rows.append({"shape": list(CPU_SHAPE), "pass": "eval forward",
                     "numpy_ms": median_ms(lambda: ours(mg.tensor(x)), reps, warmup=1),
                     "torch_cpu_ms": median_ms(lambda: theirs(torch.tensor(x)), reps, warmup=1)})
    for row in rows:
        row["numpy_over_torch"] = row["numpy_ms"] / row["torch_cpu_ms"]
        print(f"| {tuple(row['shape'])} | {row['pass']} | {row['numpy_ms']:.2f} ms | {row['torch_cpu_ms']:.2f} ms | "
              f"{row['numpy_over_torch']:.2f}x |", flush=True)
    meta = _meta(card=f"CPU: {cpu_name()}, {_cpu_count()} cores", reps=reps,
                 torch_threads=torch.get_num_threads(), megabytes_per_tensor=megabytes)
    _write(arguments.out, meta, rows, "cpu")


def _cpu_count():
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ----- output -------------------------------------------------------------------------------
def _meta(**extra):
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    meta = {"benchmark": "batchnorm", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "numpy": np.__version__, "minigrad": mg.__version__,
            "torch": torch_version}
    meta.update(extra)
    return meta


GPU_COLUMNS = ["shape", "pass", "floor MB", "minigrad us", "GB/s", "of copy", "of copy target", "torch cuDNN us",
               "torch native us", "speedup vs best torch"]


def _markdown_row(row):
    def number(key, digits=1):
        return f"{row[key]:.{digits}f}" if key in row else "n/a"
    return (f"| {tuple(row['shape'])} | {row['pass']} | {row['floor_bytes'] / 1e6:.1f} | {number('minigrad_us')} | "
            f"{number('minigrad_gb_s', 0)} | {100 * row['minigrad_of_copy']:.0f}% | {number('of_copy_target', 2)} | "
            f"{number('torch_cudnn_us')} | "
            f"{number('torch_native_us')} | {number('speedup_vs_best_torch', 2)} |")


def _write(folder, meta, rows, kind):
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", meta["card"].lower()).strip("-") if kind == "gpu" else "cpu"
    stem = folder / f"batchnorm_{slug}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Batch normalization benchmark ({meta['card']})", "",
             ", ".join(f"{key}: {value}" for key, value in meta.items() if key != "card"), ""]
    if kind == "gpu":
        lines += [f"Device-to-device copy: {meta['copy_gb_s']:.0f} GB/s (read + write).", "",
                  "| " + " | ".join(GPU_COLUMNS) + " |", "|" + "---|" * len(GPU_COLUMNS)]
        lines += [_markdown_row(row) for row in rows]
    else:
        lines += ["| shape | pass | NumPy path | torch CPU | NumPy / torch |", "|---|---|---|---|---|"]
        lines += [f"| {tuple(r['shape'])} | {r['pass']} | {r['numpy_ms']:.2f} ms | {r['torch_cpu_ms']:.2f} ms | "
                  f"{r['numpy_over_torch']:.2f}x |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and {stem}.md")


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.cpu:
        run_cpu(arguments)
    else:
        run_gpu(arguments)


if __name__ == "__main__":
    main()
