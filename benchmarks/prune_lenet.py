"""Gradual magnitude pruning of LeNet-300-100 on real Fashion-MNIST, with retraining.

    OMP_NUM_THREADS=2 python benchmarks/prune_lenet.py          # about 5 minutes on 2 CPU cores
    python benchmarks/prune_lenet.py --quick                    # a smoke test on a slice of the data

1. Train the dense 784-300-100-10 ReLU network with SGD (momentum, weight decay).
2. For each target sparsity s in 50/70/80/90/95%: start from the dense
   weights, prune the weight matrices gradually to s along Zhu and Gupta's cubic
   schedule (``mg.prune.GradualPruner``, every weight ranked by magnitude across
   all three layers) while training goes on, then fine-tune with the masks held
   (the optimizer keeps pruned weights and their momentum at exactly zero).
3. Report test accuracy, per-layer sparsity and parameter counts as a markdown
   table and JSON in benchmarks/results/, and plot accuracy against sparsity.

Han et al. (2015) pruned LeNet-300-100 on MNIST 12x without losing accuracy;
the target here is 90% sparsity within 0.5 points of the dense model.
"""
import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
from minigrad.models import lenet300  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def load_fashion_mnist(folder):
    """(train, test) datasets: images (N, 1, 28, 28) standardised with the training mean and std."""
    return (mg.data.FashionMNIST(folder, train=True, normalize=True),
            mg.data.FashionMNIST(folder, train=False, normalize=True))


def train(model, data, args, epochs, peak_lr, seed, pruner_options=None):
    """SGD (momentum 0.9, weight decay) with cosine decay to peak_lr / 20, one scheduler step per epoch.

    With ``pruner_options`` a GradualPruner runs after every optimizer step; mg.optim.SGD reads
    each parameter's mask and keeps pruned weights and their momentum at exactly zero.
    """
    loader = mg.data.DataLoader(data[0], batch_size=args.batch_size, shuffle=True, drop_last=True, seed=seed)
    optimizer = mg.optim.SGD(model.parameters(), lr=peak_lr, momentum=0.9, weight_decay=args.weight_decay)
    scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=peak_lr / 20)
    pruner = None
    if pruner_options is not None:
        pruner = mg.prune.GradualPruner(mg.prune.prunable_parameters(model), **pruner_options)
    for epoch in range(epochs):
        model.train()
        for images, labels in loader:
            loss = mg.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if pruner is not None:
                pruner.step()
        scheduler.step()
        if pruner is None:
            print(f"  epoch {epoch + 1}/{epochs}: test accuracy {accuracy(model, data[1]):.2f}%", flush=True)
    return pruner


def accuracy(model, dataset):
    model.eval()
    correct = 0
    with mg.no_grad():
        for images, labels in mg.data.DataLoader(dataset, batch_size=2000):
            correct += int((model(images).numpy().argmax(axis=1) == labels.numpy()).sum())
    return 100.0 * correct / len(dataset)


def prune_and_retrain(dense_state, sparsity, data, args, seed):
    """Prune a copy of the dense model gradually to ``sparsity`` while training, then fine-tune.

    With sparsity 0 this is the control: the dense model trained as many more epochs, unpruned.
    """
    mg.manual_seed(seed)
    model = lenet300()
    model.load_state_dict(dense_state)
    steps_per_epoch = len(data[0]) // args.batch_size
    options = None
    if sparsity > 0:
        frequency = max(args.prune_epochs * steps_per_epoch // args.prunings, 1)
        options = dict(final_sparsity=sparsity, start_step=0, frequency=frequency, num_prunings=args.prunings,
                       scope=args.scope)
    pruner = train(model, data, args, args.prune_epochs + args.finetune_epochs, args.lr * 0.5, seed, options)
    if pruner is not None:
        assert abs(pruner.sparsity() - sparsity) < 1e-3, (pruner.sparsity(), sparsity)
    return model, accuracy(model, data[1])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as file:
            return next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def markdown(result):
    dense, runs = result["dense"], result["pruned"]
    control = result["dense_retrained"]
    lines = ["| model | weight sparsity | nonzero parameters | compression | test accuracy | vs best dense |",
             "|---|---:|---:|---:|---:|---:|",
             f"| dense, {result['config']['epochs']} epochs | 0.0% | {dense['parameters']:,} | 1.0x | "
             f"{dense['accuracy']:.2f}% | {dense['accuracy'] - result['best_dense']:+.2f} |",
             f"| dense, {control['epochs']} epochs (same retraining, no pruning) | 0.0% | {dense['parameters']:,} | "
             f"1.0x | {control['accuracy']:.2f}% | {control['accuracy'] - result['best_dense']:+.2f} |"]
    for run in runs:
        lines.append(f"| pruned | {run['weight_sparsity']:.1%} | {run['report']['nonzero']:,} | "
                     f"{run['report']['compression']:.1f}x | {run['accuracy']:.2f}% | "
                     f"{run['accuracy'] - result['best_dense']:+.2f} |")
    headline = next(run for run in runs if run["target"] == 0.9)
    lines += ["", "Per layer at 90% (weights ranked together across layers):", "",
              mg.prune.report.SparsityReport(
                  [mg.prune.report.SparsityRow(row["name"], tuple(row["shape"]), row["parameters"], row["nonzero"])
                   for row in headline["report"]["layers"]]).table()]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = result["pruned"]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot([100 * run["target"] for run in runs], [run["accuracy"] for run in runs], "o-",
              label="gradually pruned + retrained")
    axes.axhline(result["best_dense"], color="gray", linestyle="--", label="dense (best of the two)")
    axes.axhspan(result["best_dense"] - 0.5, result["best_dense"], color="gray", alpha=0.15,
                 label="within 0.5 points")
    axes.set_xlabel("weight sparsity (%)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("LeNet-300-100 on Fashion-MNIST (minigrad)")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the IDX files (default: Debian's, then the cache)")
    parser.add_argument("--epochs", type=int, default=10, help="dense training epochs")
    parser.add_argument("--prune-epochs", type=int, default=3, help="epochs over which sparsity rises")
    parser.add_argument("--finetune-epochs", type=int, default=2, help="epochs of retraining at the final sparsity")
    parser.add_argument("--prunings", type=int, default=20, help="n, number of pruning steps")
    parser.add_argument("--scope", choices=("layer", "global"), default="global")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a slice of the data, 1 epoch each: a smoke test")
    parser.add_argument("--out", default=str(RESULTS / "prune_lenet"), help="path prefix of .json/.md/.png")
    args = parser.parse_args(argv)
    data = load_fashion_mnist(args.data_dir)
    if args.quick:
        data = tuple(mg.data.TensorDataset(split.data[:size], split.targets[:size])
                     for split, size in zip(data, (6000, 2000)))
        args.epochs, args.prune_epochs, args.finetune_epochs = 1, 1, 1

    began = time.perf_counter()
    result = {"config": {key: value for key, value in vars(args).items() if key != "out"}}
    mg.manual_seed(args.seed)
    dense = lenet300()
    print(f"dense LeNet-300-100, {args.epochs} epochs:", flush=True)
    train(dense, data, args, args.epochs, args.lr, args.seed)
    dense_report = mg.prune.sparsity_report(dense)
    result["dense"] = {"accuracy": accuracy(dense, data[1]), "parameters": dense_report.numel,
                       "seconds": time.perf_counter() - began}
    result["pruned"] = []
    dense_state = {key: value.numpy().copy() for key, value in dense.state_dict().items()}
    started = time.perf_counter()
    _, control_accuracy = prune_and_retrain(dense_state, 0.0, data, args, args.seed + 1)
    result["dense_retrained"] = {"accuracy": control_accuracy, "seconds": time.perf_counter() - started,
                                 "epochs": args.epochs + args.prune_epochs + args.finetune_epochs}
    result["best_dense"] = max(result["dense"]["accuracy"], control_accuracy)
    print(f"dense control, {result['dense_retrained']['epochs']} epochs: test accuracy {control_accuracy:.2f}%",
          flush=True)
    for sparsity in SPARSITIES:
        started = time.perf_counter()
        model, test_accuracy = prune_and_retrain(dense_state, sparsity, data, args, args.seed + 1)
        report = mg.prune.sparsity_report(model)
        weights = mg.prune.sparsity_report(model, weights_only=True)
        result["pruned"].append({"target": sparsity, "weight_sparsity": weights.sparsity, "accuracy": test_accuracy,
                                 "report": report.as_dict(), "seconds": time.perf_counter() - started})
        print(f"sparsity {sparsity:.0%}: test accuracy {test_accuracy:.2f}% "
              f"({report.nonzero:,} of {report.numel:,} parameters left)", flush=True)

    headline = next(run for run in result["pruned"] if run["target"] == 0.9)
    result["target_met"] = result["best_dense"] - headline["accuracy"] <= 0.5
    result["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(),
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "gpu": None,
                         "python": platform.python_version(), "numpy": np.__version__,
                         "minigrad": mg.__version__}
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["total_seconds"] = time.perf_counter() - began
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(f"# LeNet-300-100 on Fashion-MNIST, pruned with minigrad\n\n{table}\n")
    plot(result, out.with_suffix(".png"))
    print(table)
    print(f"90% sparsity within 0.5 points of dense: {result['target_met']}; "
          f"total {result['total_seconds']:.0f} s; wrote {out}.json/.md/.png")


if __name__ == "__main__":
    main()
