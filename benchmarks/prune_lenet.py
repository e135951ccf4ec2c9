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
import gzip
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

RESULTS = Path(__file__).resolve().parent / "results"
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def read_idx(path):
    """An IDX file (gzipped) as a NumPy array: magic (2 zero bytes, type, ndim), big-endian sizes, data."""
    with gzip.open(path, "rb") as file:
        raw = file.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * axis:8 + 4 * axis], "big") for axis in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(folder):
    """(train_x, train_y, test_x, test_y): images flattened to 784, standardised with the training mean/std."""
    def split(prefix):
        images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")).reshape(-1, 784)
        labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
        return images.astype(np.float32) / 255.0, labels
    train_x, train_y = split("train")
    test_x, test_y = split("t10k")
    mean, std = train_x.mean(), train_x.std()
    return (train_x - mean) / std, train_y, (test_x - mean) / std, test_y


def lenet_300_100():
    nn = mg.nn
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


class MaskedSGD:
    """PyTorch's SGD update (momentum, weight decay) that honours ``Parameter.mask``.

    buf = momentum * buf + grad + weight_decay * w;  w -= lr * buf;  then, for a
    pruned parameter, w *= mask and buf *= mask, so pruned weights stay exactly 0.
    """

    def __init__(self, parameters, lr, momentum, weight_decay):
        self.parameters = list(parameters)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers = [np.zeros_like(parameter.data) for parameter in self.parameters]

    def step(self):
        for parameter, buffer in zip(self.parameters, self.buffers):
            buffer *= self.momentum
            buffer += parameter.grad.data + self.weight_decay * parameter.data
            parameter.data -= self.lr * buffer
            if parameter.mask is not None:
                parameter.data *= parameter.mask.data
                buffer *= parameter.mask.data

    def zero_grad(self):
        for parameter in self.parameters:
            parameter.grad = None


def train_epoch(model, optimizer, images, labels, batch_size, rng, pruner=None):
    model.train()
    order = rng.permutation(len(images))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = order[start:start + batch_size]
        loss = mg.nn.functional.cross_entropy(model(mg.tensor(images[batch])), mg.tensor(labels[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if pruner is not None:
            pruner.step()


def accuracy(model, images, labels):
    model.eval()
    correct = 0
    with mg.no_grad():
        for start in range(0, len(images), 2000):
            logits = model(mg.tensor(images[start:start + 2000])).numpy()
            correct += int((logits.argmax(axis=1) == labels[start:start + 2000]).sum())
    return 100.0 * correct / len(images)


def learning_rate(epoch, epochs, peak):
    """Cosine decay from ``peak`` to peak/20 over ``epochs``."""
    return peak * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def prune_and_retrain(dense_state, sparsity, data, args, seed):
    """Prune a copy of the dense model gradually to ``sparsity`` while training, then fine-tune.

    With sparsity 0 this is the control: the dense model trained as many more epochs, unpruned.
    """
    train_x, train_y, test_x, test_y = data
    mg.manual_seed(seed)
    model = lenet_300_100()
    model.load_state_dict(dense_state)
    rng = np.random.default_rng(seed)
    optimizer = MaskedSGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_x) // args.batch_size
    pruning_steps = args.prune_epochs * steps_per_epoch
    frequency = max(pruning_steps // args.prunings, 1)
    pruner = None
    if sparsity > 0:
        pruner = mg.prune.GradualPruner(mg.prune.prunable_parameters(model), final_sparsity=sparsity,
                                        start_step=0, frequency=frequency, num_prunings=args.prunings,
                                        scope=args.scope)
    epochs = args.prune_epochs + args.finetune_epochs
    for epoch in range(epochs):
        optimizer.lr = learning_rate(epoch, epochs, args.lr * 0.5)
        train_epoch(model, optimizer, train_x, train_y, args.batch_size, rng, pruner)
    if pruner is not None:
        assert abs(pruner.sparsity() - sparsity) < 1e-3, (pruner.sparsity(), sparsity)
    return model, accuracy(model, test_x, test_y)


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
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
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
        data = (data[0][:6000], data[1][:6000], data[2][:2000], data[3][:2000])
        args.epochs, args.prune_epochs, args.finetune_epochs = 1, 1, 1

    began = time.perf_counter()
    result = {"config": {key: value for key, value in vars(args).items() if key != "out"}}
    mg.manual_seed(args.seed)
    dense = lenet_300_100()
    optimizer = MaskedSGD(dense.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        optimizer.lr = learning_rate(epoch, args.epochs, args.lr)
        train_epoch(dense, optimizer, data[0], data[1], args.batch_size, rng)
        print(f"dense epoch {epoch + 1}/{args.epochs}: test accuracy {accuracy(dense, data[2], data[3]):.2f}%",
              flush=True)
    dense_report = mg.prune.sparsity_report(dense)
    result["dense"] = {"accuracy": accuracy(dense, data[2], data[3]), "parameters": dense_report.numel,
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
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
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
