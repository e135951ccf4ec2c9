"""Gradient averaging across MPI ranks, and what it does to training throughput.

Part 1, under ``mpiexec -n N``: the time to average the gradients of a model,
three ways, for LeNet-300-100 (266,610 parameters in 6 arrays), a
25M-parameter MLP (24 layers of 1024x1024, 48 arrays), and 100 layers of 32x32
(105,600 parameters in 200 small arrays, where one call per array costs most):

- bucketed: ``GradientBuckets.average_gradients``, what ``DistributedDataParallel``
  runs after backward (flat buckets of 25 MB; ``allreduce_gradients(model)``
  adds a walk over the model's modules to find the parameters),
- per parameter: one ``Allreduce`` per gradient array, then the division by N,
- raw: one ``Allreduce`` of a flat buffer of the same bytes, already packed
  (the floor that bucketing tries to reach; target: bucketed within 1.1x).

Each time is the slowest rank's, median over repeats.

Part 2: training throughput of LeNet-300-100 with ``DistributedDataParallel``
on Fashion-MNIST (``DistributedSampler`` + ``DataLoader``; random images of the
same shape where the data set is not installed), each rank taking its own
batch of --batch samples (weak scaling: with N ranks a step trains N * batch
samples), in samples per second.

    mpiexec -n 2 python benchmarks/bench_allreduce.py   # one world size: prints JSON
    python benchmarks/bench_allreduce.py --all          # 1, 2 and 4 ranks, one table

With --all it starts ``mpiexec`` (found next to this Python, or on PATH) for
1, 2 and 4 ranks with one thread each, collects their results, prints the
tables and writes benchmarks/results/allreduce.json. Runs on the CPU (NumPy arrays).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--repeats", type=int, default=20, help="timed repeats of each averaging method")
parser.add_argument("--steps", type=int, default=300, help="timed training steps for the throughput")
parser.add_argument("--batches", default="128,512", help="samples per rank per training step (a list)")
parser.add_argument("--all", action="store_true", help="launch mpiexec for each of --ranks and write the JSON")
parser.add_argument("--ranks", default="1,2,4", help="world sizes --all launches")
parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "allreduce.json"))
parser.add_argument("--worker-out", help=argparse.SUPPRESS)  # set by the driver for each mpiexec job
args = parser.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.distributed as dist  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.data import DataLoader, DistributedSampler, FashionMNIST, TensorDataset  # noqa: E402
from minigrad.distributed.data_parallel import GradientBuckets  # noqa: E402
from minigrad.distributed.world import get_world  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402


def lenet_300_100():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def mlp_25m():
    layers = []
    for _ in range(24):
        layers += [nn.Linear(1024, 1024), nn.ReLU()]
    return nn.Sequential(*layers)


def many_small_layers():
    return nn.Sequential(*[nn.Linear(32, 32) for _ in range(100)])


def slowest_rank_median_ms(function, repeats):
    """Median over repeats of the slowest rank's time for ``function()``, in ms."""
    world = get_world()
    for _ in range(2):
        function()
    times = np.empty(repeats)
    for repeat in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        function()
        times[repeat] = time.perf_counter() - start
    if world.size > 1:
        world.comm.Allreduce(world.MPI.IN_PLACE, times, op=world.MPI.MAX)
    return 1e3 * float(np.median(times))


def averaging_times(model):
    """ms to average the gradients of ``model``: bucketed, per parameter, raw single Allreduce."""
    world = get_world()
    parameters = list(model.parameters())
    rng = np.random.default_rng(dist.get_rank())
    fresh = [mg.Tensor(rng.standard_normal(p.shape).astype(p.dtype)) for p in parameters]

    buckets = GradientBuckets(parameters)

    def bucketed():
        for parameter, grad in zip(parameters, fresh):  # what backward leaves: new arrays
            parameter.grad = grad
        buckets.average_gradients()

    def per_parameter():
        for grad in fresh:
            world.comm.Allreduce(world.MPI.IN_PLACE, grad.data, op=world.MPI.SUM)
            grad.data *= 1.0 / world.size

    packed = np.concatenate([grad.data.ravel() for grad in fresh])

    def raw():
        world.comm.Allreduce(world.MPI.IN_PLACE, packed, op=world.MPI.SUM)

    result = {name: slowest_rank_median_ms(function, args.repeats)
              for name, function in (("bucketed", bucketed), ("per_parameter", per_parameter), ("raw", raw))}
    result["parameters"] = int(sum(p.data.size for p in parameters))
    result["arrays"] = len(parameters)
    result["megabytes"] = packed.nbytes / 1e6
    result["bucketed_over_raw"] = result["bucketed"] / result["raw"]
    return result


def fashion_mnist_batches(batch_size):
    """This rank's batches of Fashion-MNIST, epoch after epoch, and the data set's name."""
    try:
        dataset, name = FashionMNIST(download=False), "Fashion-MNIST"
    except Exception:  # not installed here: random images of the same shape
        rng = np.random.default_rng(0)
        dataset = TensorDataset(rng.random((60000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 60000))
        name = "random images (Fashion-MNIST not installed)"
    loader = DataLoader(dataset, batch_size=batch_size, sampler=DistributedSampler(dataset, seed=0),
                        drop_last=True)

    def forever():
        while True:
            yield from loader
    return forever(), name


def slowest_rank_seconds(function, repeats):
    """Wall time of ``repeats`` calls in a row (after 5 warm-up calls), the slowest rank's."""
    world = get_world()
    for _ in range(5):
        function()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    elapsed = np.array([time.perf_counter() - start])
    if world.size > 1:
        world.comm.Allreduce(world.MPI.IN_PLACE, elapsed, op=world.MPI.MAX)
    return float(elapsed[0])


def training_throughput(batch_size):
    """Samples per second of DDP training of LeNet-300-100, all ranks together; and the same
    steps under ``no_sync()`` (no averaging), which shows what sharing the machine alone costs."""
    mg.manual_seed(0)
    model = dist.DistributedDataParallel(lenet_300_100())
    parameters = list(model.parameters())
    batches, data_name = fashion_mnist_batches(batch_size)

    def step():
        images, labels = next(batches)
        for parameter in parameters:
            parameter.grad = None
        nn.functional.cross_entropy(model(images), labels).backward()
        with mg.no_grad():
            for parameter in parameters:
                parameter.data -= 0.01 * parameter.grad.data

    seconds = slowest_rank_seconds(step, args.steps)
    with model.no_sync():
        local_seconds = slowest_rank_seconds(step, args.steps)
    samples = dist.get_world_size() * batch_size * args.steps
    return {"ms_per_step": 1e3 * seconds / args.steps, "samples_per_second": samples / seconds,
            "ms_per_step_without_averaging": 1e3 * local_seconds / args.steps, "data": data_name}


def worker():
    dist.init()
    world = get_world()
    result = {"world_size": world.size,
              "throughput": {batch: training_throughput(int(batch)) for batch in args.batches.split(",")},
              "mpi": world.MPI.Get_library_version().splitlines()[0] if world.MPI else None}
    if dist.get_world_size() > 1:
        mg.manual_seed(0)
        result["averaging"] = {"LeNet-300-100": averaging_times(lenet_300_100()),
                               "MLP 25M": averaging_times(mlp_25m()),
                               "100 x Linear(32, 32)": averaging_times(many_small_layers())}
    if dist.is_main_process():
        text = json.dumps(result, indent=2)
        if args.worker_out:
            Path(args.worker_out).write_text(text)
        else:
            print(text)


def _mpiexec():
    found = dist.find_mpiexec()
    if found is None:
        sys.exit("bench_allreduce: no mpiexec next to this Python or on PATH (pip install 'minigrad[mpi]')")
    return found


def _machine():
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg())}


def driver():
    runs = {}
    machine = _machine()
    for ranks in [int(text) for text in args.ranks.split(",")]:
        out = Path(args.out).with_name(f".allreduce_n{ranks}.json")
        command = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker-out", str(out),
                   "--repeats", str(args.repeats), "--steps", str(args.steps), "--batches", args.batches]
        subprocess.run(command, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        runs[ranks] = json.loads(out.read_text())
        out.unlink()
    print(f"\nmachine: {machine['cpu']}, {machine['cores']} cores, load average {machine['load_average_at_start']}")
    print("\n| model | ranks | MB | bucketed (ms) | per parameter (ms) | raw Allreduce (ms) | bucketed / raw |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ranks, run in runs.items():
        for name, row in run.get("averaging", {}).items():
            print(f"| {name} | {ranks} | {row['megabytes']:.1f} | {row['bucketed']:.3f} | "
                  f"{row['per_parameter']:.3f} | {row['raw']:.3f} | {row['bucketed_over_raw']:.2f} |")
    print("\n| LeNet-300-100 training | batch per rank | ranks | ms per step | samples/s | vs 1 rank "
          "| ms per step without averaging |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for batch in args.batches.split(","):
        one_rank = runs[1]["throughput"][batch]["samples_per_second"] if 1 in runs else None
        for ranks, run in runs.items():
            row = run["throughput"][batch]
            speedup = f"{row['samples_per_second'] / one_rank:.2f}x" if one_rank else ""
            print(f"| | {batch} | {ranks} | {row['ms_per_step']:.2f} | {row['samples_per_second']:.0f} | {speedup} "
                  f"| {row['ms_per_step_without_averaging']:.2f} |")
    result = {"benchmark": "gradient all-reduce and data-parallel throughput", "date": time.strftime("%Y-%m-%d"),
              "machine": dict(machine, load_average_at_end=list(os.getloadavg())), "threads_per_rank": 1,
              "versions": {"python": platform.python_version(), "numpy": np.__version__, "minigrad": mg.__version__,
                           "mpi": runs[max(runs)]["mpi"]},
              "runs": {str(ranks): run for ranks, run in runs.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    driver() if args.all else worker()
