"""How fast does one shuffled epoch of Fashion-MNIST come out of the data loader?

Samples per second of iterating one epoch of the 60000 training images at
batch 128 with shuffling, every loader in this process over the same arrays:

CPU
- minigrad ``DataLoader(TensorDataset)``: one permutation, one fancy index per batch;
- ``torch.utils.data.DataLoader(TensorDataset, shuffle=True, num_workers=0)``:
  PyTorch's default path, which fetches samples one by one and stacks them;
- the same torch loader given a ``BatchSampler`` as its sampler, so that it too
  fetches each batch with one index (the fastest way to use it here).

GPU (when CuPy sees one)
- minigrad with the dataset on the GPU: permutation and gather on the GPU;
- minigrad with the dataset on the host, each batch copied to the GPU.

Each loader runs one warm-up epoch, then ``--repeats`` timed epochs, the loaders
taking turns; the table shows the median. Results go to benchmarks/results/data_cpu.json (and
data_gpu.json) with the machine, the date and the versions.

    python benchmarks/bench_data.py [--repeats 5] [--device cpu|cuda|all]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minigrad as mg  # noqa: E402
from minigrad.data import DataLoader, FashionMNIST  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_epochs(loaders, repeats, synchronize=lambda: None):
    """Seconds of ``repeats`` epochs of each loader, after one warm-up epoch each.

    The loaders take turns (one epoch each per round), so that a burst of load
    from elsewhere on the machine slows all of them, not just one.
    """
    def one_epoch(make_epoch):
        start = time.perf_counter()
        for _ in make_epoch():
            pass
        synchronize()
        return time.perf_counter() - start

    for _, make_epoch in loaders:
        one_epoch(make_epoch)
    seconds = {name: [] for name, _ in loaders}
    for _ in range(repeats):
        for name, make_epoch in loaders:
            seconds[name].append(one_epoch(make_epoch))
    return seconds


def cpu_loaders(train, batch_size):
    import torch
    import torch.utils.data as torch_data

    torch_set = torch_data.TensorDataset(torch.from_numpy(train.data),
                                         torch.from_numpy(train.targets))
    generator = torch.Generator().manual_seed(0)
    torch_default = torch_data.DataLoader(torch_set, batch_size=batch_size, shuffle=True,
                                          num_workers=0, generator=generator)
    shuffled = torch_data.RandomSampler(torch_set, generator=generator)
    batch_sampler = torch_data.BatchSampler(shuffled, batch_size, drop_last=False)
    torch_batched = torch_data.DataLoader(torch_set, sampler=batch_sampler, batch_size=None,
                                          num_workers=0)
    ours = DataLoader(train, batch_size=batch_size, shuffle=True, seed=0)
    return [("minigrad DataLoader (one index per batch)", lambda: ours),
            ("torch DataLoader (default, per-sample fetch)", lambda: torch_default),
            ("torch DataLoader + BatchSampler (one index per batch)", lambda: torch_batched)]


def gpu_loaders(train, batch_size):
    resident = DataLoader(train.to("cuda"), batch_size=batch_size, shuffle=True, seed=0)
    host = DataLoader(train, batch_size=batch_size, shuffle=True, seed=0)

    def copied_batches():
        for images, labels in host:
            yield images.to("cuda"), labels.to("cuda")

    return [("minigrad, dataset on the GPU (permute + gather on device)", lambda: resident),
            ("minigrad, dataset on the host, each batch copied", copied_batches)]


def versions():
    found = {"python": platform.python_version(), "numpy": np.__version__,
             "minigrad": mg.__version__}
    try:
        import torch
        found["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import cupy
        found["cupy"] = cupy.__version__
    except ImportError:
        pass
    return found


def run(device, loaders, train, args, machine):
    rows = []
    synchronize = lambda: None  # noqa: E731
    if device == "cuda":
        synchronize = mg.backend.cupy().cuda.Device().synchronize
    for name, seconds in time_epochs(loaders, args.repeats, synchronize).items():
        median = statistics.median(seconds)
        rows.append({"loader": name, "seconds_per_epoch": seconds, "median_seconds": median,
                     "samples_per_second": len(train) / median})
    width = max(len(row["loader"]) for row in rows)
    print(f"\n{device.upper()}: one shuffled epoch of Fashion-MNIST train ({len(train)} samples), "
          f"batch {args.batch_size}, median of {args.repeats}")
    print(f"{'loader':<{width}}  {'s/epoch':>8}  {'samples/s':>11}  {'vs first':>8}")
    for row in rows:
        print(f"{row['loader']:<{width}}  {row['median_seconds']:8.4f}  "
              f"{row['samples_per_second']:11,.0f}  "
              f"{row['samples_per_second'] / rows[0]['samples_per_second']:7.2f}x")
    report = {"benchmark": "bench_data.py", "device": device, "machine": machine,
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "versions": versions(), "batch_size": args.batch_size, "samples": len(train),
              "repeats": args.repeats, "results": rows}
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, f"data_{device}.json")
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per loader")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="'all' runs the GPU part only when CuPy sees a GPU")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST files")
    parser.add_argument("--output-dir", default=RESULTS)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (1: single-threaded like NumPy's gather, and "
                             "no spin-waiting when other processes share the cores)")
    args = parser.parse_args()

    train = FashionMNIST(root=args.data_dir, train=True)
    machine = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch
        torch.set_num_threads(args.torch_threads)
        machine["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    if args.device in ("cpu", "all"):
        run("cpu", cpu_loaders(train, args.batch_size), train, args, machine)
    if args.device == "cuda" or (args.device == "all" and mg.cuda_is_available()):
        cupy = mg.backend.cupy()
        gpu = dict(machine, gpu=cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
        run("cuda", gpu_loaders(train, args.batch_size), train, args, gpu)


if __name__ == "__main__":
    main()
