"""GPU benchmark of pruning: choosing and applying a magnitude threshold, and compacted inference.

    python benchmarks/bench_prune.py            # needs CuPy and a GPU; ~1 minute
    python benchmarks/bench_prune.py --quick    # smaller sizes, fewer repeats

1. Threshold + mask for N = 25M float32 weights, pruning 90%:
   minigrad's radix select (kernels/prune.cu: an 11-bit histogram, a compaction
   of the candidates in the chosen bin and two short-list passes, then one mask
   pass) against torch.kthvalue and torch.topk(largest=False) followed by the
   multiply that applies the mask. Also on clustered weights (three distinct
   magnitudes, and all equal), where every lane of a warp hits the same
   histogram bin (the warp-aggregated counts of prune.cu) and ties are split.
2. Global pruning over many tensors (the same 25M split into 50 layers, and the 54
   weight tensors of ResNet-50): minigrad ranks them through one chunk table;
   torch has to torch.cat them first.
3. Inference of an MLP whose hidden neurons were 75% pruned by ln_structured:
   the masked dense model (what PyTorch's pruning gives) against
   ``mg.prune.compact(model)``.

Prints a table, the issue's targets as ratios (above 1.00: met; faster than
torch.topk/kthvalue on one 25M tensor, faster than torch.cat + topk over ResNet-50's
weights), and writes benchmarks/results/bench_prune.json (card, date, versions).
"""
import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
from minigrad.prune import selection  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def median_milliseconds(function, repeats, synchronize=lambda: None):
    """Median wall time of ``function()`` over ``repeats`` runs after one warm-up run."""
    function()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def synchronize_gpu():
    """Wait for CuPy's and (when it has CUDA) torch's queued GPU work."""
    mg.backend.cupy().cuda.Device().synchronize()
    if _torch_cuda():
        import torch
        torch.cuda.synchronize()


def time_gpu(function, repeats):
    return median_milliseconds(function, repeats, synchronize_gpu)


def _torch_cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def minigrad_prune(values, masks, fraction):
    """The smallest ``fraction`` of candidate magnitudes -> new masks, then pruned values (kernels only)."""
    k = round(fraction * sum(value.size for value in values))
    new_masks = selection.prune_smallest(values, masks, k)
    return selection.apply_mask_cuda(values, new_masks)


def torch_kthvalue_prune(weight, fraction):
    import torch
    k = round(fraction * weight.numel())
    magnitude = weight.abs().flatten()
    threshold = torch.kthvalue(magnitude, k).values
    return weight * (weight.abs() > threshold).to(weight.dtype)


def torch_topk_prune(weight, fraction):
    import torch
    k = round(fraction * weight.numel())
    mask = torch.ones_like(weight).flatten()
    mask[torch.topk(weight.abs().flatten(), k, largest=False).indices] = 0
    return weight * mask.view_as(weight)


def resnet50_weight_sizes():
    """The element counts of ResNet-50's 54 weight tensors (53 convolutions and the classifier)."""
    sizes, channels = [64 * 3 * 7 * 7], 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            sizes += [width * channels, width * width * 9, 4 * width * width]
            if block == 0:
                sizes.append(4 * width * channels)  # the projection shortcut
            channels = 4 * width
    return sizes + [1000 * 2048]


def bench_resnet50_global(fraction, repeats, rows, targets):
    """Global pruning over ResNet-50's weights: minigrad's chunk table against torch.cat + topk."""
    cupy = mg.backend.cupy()
    rng = np.random.default_rng(1)
    host = [rng.standard_normal(size, dtype=np.float32) for size in resnet50_weight_sizes()]
    weights = [cupy.asarray(values) for values in host]
    masks = [cupy.ones_like(weight) for weight in weights]
    total = sum(weight.size for weight in weights)
    ours = time_gpu(lambda: minigrad_prune(weights, masks, fraction), repeats)
    rows.append(("global, ResNet-50's 54 weights", total, "minigrad, chunk table (no concatenation)", ours))
    if not _torch_cuda():
        return
    import torch
    torch_weights = [torch.from_numpy(values).cuda() for values in host]

    def cat_topk():
        flat = torch.cat([weight.flatten() for weight in torch_weights])
        mask = torch.ones_like(flat)
        mask[torch.topk(flat.abs(), round(fraction * flat.numel()), largest=False).indices] = 0
        return [weight * part.view_as(weight) for weight, part in zip(torch_weights, mask.split(
            [weight.numel() for weight in torch_weights]))]
    theirs = time_gpu(cat_topk, repeats)
    rows.append(("global, ResNet-50's 54 weights", total, "torch cat + topk(largest=False) + multiply", theirs))
    targets["resnet50_global_speedup_vs_torch_cat_topk"] = theirs / ours


def bench_threshold(size, layers, fraction, repeats, rows, checks):
    cupy = mg.backend.cupy()
    host_weight = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
    weight = cupy.asarray(host_weight)
    ones = cupy.ones_like(weight)
    k = round(fraction * size)
    threshold_bits, _, _ = selection.kth_smallest_cuda([weight], [ones], k)
    threshold = float(np.asarray(threshold_bits, dtype=np.uint32).view(np.float32))
    checks["kth_smallest_matches_np_partition"] = threshold == float(np.partition(np.abs(host_weight), k - 1)[k - 1])
    checks["pruned_count_is_k"] = int((minigrad_prune([weight], [ones], fraction)[0] == 0).sum()) == k
    rows.append(("select + mask, 1 tensor", size, "minigrad radix select (prune.cu)",
                 time_gpu(lambda: minigrad_prune([weight], [ones], fraction), repeats)))
    split = cupy.array_split(weight, layers)
    split_masks = [cupy.ones_like(part) for part in split]
    rows.append((f"select + mask, {layers} tensors", size, "minigrad, pointer list (no concatenation)",
                 time_gpu(lambda: minigrad_prune(split, split_masks, fraction), repeats)))
    try:
        import torch
    except ImportError:
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_weight = torch.from_numpy(host_weight).to(device)
    where = "torch (GPU)" if device == "cuda" else "torch (CPU: this torch has no CUDA)"
    timer = time_gpu if device == "cuda" else median_milliseconds
    rows.append(("select + mask, 1 tensor", size, f"{where} kthvalue + multiply",
                 timer(lambda: torch_kthvalue_prune(torch_weight, fraction), repeats)))
    rows.append(("select + mask, 1 tensor", size, f"{where} topk(largest=False) + multiply",
                 timer(lambda: torch_topk_prune(torch_weight, fraction), repeats)))
    if device == "cuda":
        one_tensor = [row[3] for row in rows if row[0] == "select + mask, 1 tensor"]
        checks["targets"] = {"one_tensor_speedup_vs_best_of_torch_kthvalue_topk": min(one_tensor[1:]) / one_tensor[0]}
    torch_split = list(torch.tensor_split(torch_weight, layers))
    rows.append((f"select + mask, {layers} tensors", size, f"{where} cat + kthvalue + multiply",
                 timer(lambda: torch_kthvalue_prune(torch.cat(torch_split), fraction), repeats)))


def bench_clustered(size, fraction, repeats, rows, targets):
    """One tensor of clustered weights (three magnitudes; all equal): one histogram bin per warp."""
    cupy = mg.backend.cupy()
    rng = np.random.default_rng(2)
    cases = {"three magnitudes": rng.choice(np.array([0.25, -0.5, 0.5, 1.0], np.float32), size=size),
             "all equal": np.full(size, 0.5, dtype=np.float32)}
    for name, host_weight in cases.items():
        weight = cupy.asarray(host_weight)
        ones = cupy.ones_like(weight)
        case = f"select + mask, 1 tensor, {name}"
        ours = time_gpu(lambda: minigrad_prune([weight], [ones], fraction), repeats)
        rows.append((case, size, "minigrad radix select (prune.cu)", ours))
        if not _torch_cuda():
            continue
        import torch
        torch_weight = torch.from_numpy(host_weight).cuda()
        theirs = time_gpu(lambda: torch_topk_prune(torch_weight, fraction), repeats)
        rows.append((case, size, "torch (GPU) topk(largest=False) + multiply", theirs))
        targets[f"clustered_{name.replace(' ', '_')}_speedup_vs_torch_topk"] = theirs / ours


def bench_compact(width, batch, fraction, repeats, rows):
    nn = mg.nn
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)).eval()
    for index in (0, 2, 4):
        mg.prune.ln_structured(model[index], "weight", amount=fraction, n=2, dim=0)
    small = mg.prune.compact(model)
    model.to("cuda")
    small.to("cuda")
    x = mg.tensor(np.random.default_rng(0).standard_normal((batch, width)).astype(np.float32), device="cuda")
    error = float(np.abs(small(x).numpy() - model(x).numpy()).max())
    flops = (mg.prune.count_flops(model, (width,)), mg.prune.count_flops(small, (width,)))
    with mg.no_grad():
        rows.append((f"MLP {width}x3 inference, batch {batch}", f"{flops[0] / 1e6:.0f} MFLOP/sample",
                     f"masked dense ({fraction:.0%} of neurons pruned)", time_gpu(lambda: model(x), repeats)))
        rows.append((f"MLP {width}x3 inference, batch {batch}", f"{flops[1] / 1e6:.0f} MFLOP/sample",
                     f"compact(model), max |diff| {error:.1e}", time_gpu(lambda: small(x), repeats)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=25_000_000, help="weights to prune (default 25M)")
    parser.add_argument("--layers", type=int, default=50, help="tensors in the global-pruning case")
    parser.add_argument("--fraction", type=float, default=0.9, help="fraction pruned")
    parser.add_argument("--width", type=int, default=4096, help="hidden width of the compact() MLP")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="width 1024, 5 repeats (still 25M weights: the target)")
    parser.add_argument("--out", default=str(RESULTS / "bench_prune.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.repeats = 1024, 5
    if not mg.cuda_is_available():
        sys.exit("bench_prune: needs CuPy and an NVIDIA GPU (run it through benchmarks/gpu_suite.sh)")
    cupy = mg.backend.cupy()

    rows, checks = [], {}
    bench_threshold(args.size, args.layers, args.fraction, args.repeats, rows, checks)
    targets = checks.setdefault("targets", {})
    bench_resnet50_global(args.fraction, args.repeats, rows, targets)
    bench_clustered(args.size, args.fraction, args.repeats, rows, targets)
    bench_compact(args.width, args.batch, 0.75, args.repeats, rows)

    print(f"{'case':<36} {'size':>22}  {'implementation':<58} {'ms':>9}")
    for case, size, implementation, milliseconds in rows:
        size_text = f"{size:,}" if isinstance(size, int) else size
        print(f"{case:<36} {size_text:>22}  {implementation:<58} {milliseconds:9.3f}")
    print(f"checks: {checks}")
    for name, ratio in targets.items():
        print(f"target {name}: {ratio:.2f} ({'met' if ratio > 1 else 'NOT met'}: above 1.00 wanted)")
    versions = {"python": platform.python_version(), "numpy": np.__version__, "cupy": cupy.__version__,
                "minigrad": mg.__version__}
    try:
        import torch
        versions["torch"] = torch.__version__
    except ImportError:
        pass
    properties = cupy.cuda.runtime.getDeviceProperties(0)
    card = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
    result = {"card": card, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "versions": versions, "config": vars(args), "checks": checks,
              "rows": [{"case": case, "size": size, "implementation": implementation, "milliseconds": ms}
                       for case, size, implementation, ms in rows]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({card})")


if __name__ == "__main__":
    main()
