"""Gradual magnitude pruning of LeNet-300-100 on real Fashion-MNIST, with retraining.

    OMP_NUM_THREADS=2 python benchmarks/prune_lenet.py          # about 1-2 minutes on 2 CPU cores
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
from benchmarks.machine import cpu_name  # noqa: E402

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


def compaction(model, dataset):
    """Hidden neurons that lost all input (or all output) weights: ``compact`` cuts them out exactly."""
    small = mg.prune.compact(model)
    images = dataset.gather(np.arange(len(dataset)))[0]
    with mg.no_grad():
        logits = model.eval()(images).numpy()
        difference = float(np.abs(small.eval()(images).numpy() - logits).max())
    return {"hidden": [small[1].out_features, small[3].out_features], "max_abs_logit": float(np.abs(logits).max()),
            "flops_dense": mg.prune.count_flops(model, (1, 28, 28)),
            "flops_compact": mg.prune.count_flops(small, (1, 28, 28)), "max_abs_logit_difference": difference}


def run_seed(data, args, seed):
    """Dense training, the dense control and one pruned run per target sparsity, for one seed."""
    began = time.perf_counter()
    mg.manual_seed(seed)
    dense = lenet300()
    print(f"seed {seed}: dense LeNet-300-100, {args.epochs} epochs", flush=True)
    train(dense, data, args, args.epochs, args.lr, seed)
    run = {"seed": seed, "dense": accuracy(dense, data[1])}
    dense_state = {key: value.numpy().copy() for key, value in dense.state_dict().items()}
    _, run["dense_retrained"] = prune_and_retrain(dense_state, 0.0, data, args, seed + 1000)
    run["best_dense"] = max(run["dense"], run["dense_retrained"])
    run["pruned"] = []
    for sparsity in SPARSITIES:
        model, test_accuracy = prune_and_retrain(dense_state, sparsity, data, args, seed + 1000)
        run["pruned"].append({"target": sparsity, "accuracy": test_accuracy,
                              "weight_sparsity": mg.prune.sparsity_report(model, weights_only=True).sparsity,
                              "report": mg.prune.sparsity_report(model).as_dict(),
                              "compact": compaction(model, data[1])})
        print(f"seed {seed}: sparsity {sparsity:.0%}: test accuracy {test_accuracy:.2f}%", flush=True)
    run["seconds"] = time.perf_counter() - began
    return run


def summarize(runs):
    """Mean and standard deviation over seeds of each accuracy."""
    def stats(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}
    summary = {key: stats([run[key] for run in runs]) for key in ("dense", "dense_retrained", "best_dense")}
    summary["pruned"] = [dict(target=target, accuracy=stats([run["pruned"][index]["accuracy"] for run in runs]),
                              gap=stats([run["pruned"][index]["accuracy"] - run["best_dense"] for run in runs]))
                         for index, target in enumerate(SPARSITIES)]
    return summary


def markdown(result):
    summary, first = result["summary"], result["runs"][0]
    seeds = len(result["runs"])

    def cell(stats):
        return f"{stats['mean']:.2f} ± {stats['std']:.2f}"
    parameters = first["pruned"][0]["report"]["parameters"]
    lines = [f"Test accuracy (%), mean ± std over {seeds} seeds; 'vs dense' is each seed's pruned accuracy minus "
             f"the better of its two dense models. Hidden units after `compact`: seed {first['seed']}.", "",
             "| model | weight sparsity | nonzero parameters | compression | test accuracy | vs dense "
             "| hidden units after compact |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| dense, {result['config']['epochs']} epochs | 0% | {parameters:,} | 1.0x | {cell(summary['dense'])} "
             f"| | 300-100 |",
             f"| dense, {result['config']['epochs'] + result['config']['prune_epochs'] + result['config']['finetune_epochs']}"
             f" epochs (same retraining, no pruning) | 0% | {parameters:,} | 1.0x | "
             f"{cell(summary['dense_retrained'])} | | 300-100 |"]
    for pruned, run in zip(summary["pruned"], first["pruned"]):
        lines.append(f"| pruned | {run['weight_sparsity']:.1%} | {run['report']['nonzero']:,} | "
                     f"{run['report']['compression']:.1f}x | {cell(pruned['accuracy'])} | "
                     f"{pruned['gap']['mean']:+.2f} (worst {min(pruned['gap']['values']):+.2f}) | "
                     f"{run['compact']['hidden'][0]}-{run['compact']['hidden'][1]} |")
    headline = next(run for run in first["pruned"] if run["target"] == 0.9)
    flops = headline["compact"]
    lines += ["", f"At 90%, `mg.prune.compact` cuts the hidden neurons that lost all their input (or output) "
              f"weights (300-100 -> {flops['hidden'][0]}-{flops['hidden'][1]}): {flops['flops_dense']:,} -> "
              f"{flops['flops_compact']:,} FLOPs per image; the logits (up to {flops['max_abs_logit']:.0f} in size) "
              f"agree within {flops['max_abs_logit_difference']:.1e}, float32 rounding.",
              "", f"Per layer at 90% (seed {first['seed']}; weights ranked together across layers):", "",
              mg.prune.report.SparsityReport(
                  [mg.prune.report.SparsityRow(row["name"], tuple(row["shape"]), row["parameters"], row["nonzero"])
                   for row in headline["report"]["layers"]]).table()]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    summary = result["summary"]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.errorbar([100 * run["target"] for run in summary["pruned"]],
                  [run["accuracy"]["mean"] for run in summary["pruned"]],
                  yerr=[run["accuracy"]["std"] for run in summary["pruned"]], fmt="o-", capsize=3,
                  label="gradually pruned + retrained")
    best = summary["best_dense"]["mean"]
    axes.axhline(best, color="gray", linestyle="--", label="dense (better of the two, mean)")
    axes.axhspan(best - 0.5, best, color="gray", alpha=0.15, label="within 0.5 points")
    axes.set_xlabel("weight sparsity (%)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"LeNet-300-100 on Fashion-MNIST (minigrad, {len(result['runs'])} seeds)")
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a slice of the data, 1 epoch each, 1 seed: a smoke test")
    parser.add_argument("--out", default=str(RESULTS / "prune_lenet"), help="path prefix of .json/.md/.png")
    args = parser.parse_args(argv)
    data = load_fashion_mnist(args.data_dir)
    if args.quick:
        data = tuple(mg.data.TensorDataset(split.data[:size], split.targets[:size])
                     for split, size in zip(data, (6000, 2000)))
        args.epochs, args.prune_epochs, args.finetune_epochs, args.seeds = 1, 1, 1, args.seeds[:1]

    began = time.perf_counter()
    result = {"config": {key: value for key, value in vars(args).items() if key != "out"}}
    result["runs"] = [run_seed(data, args, seed) for seed in args.seeds]
    result["summary"] = summarize(result["runs"])
    headline = next(run for run in result["summary"]["pruned"] if run["target"] == 0.9)
    result["target_met"] = headline["gap"]["mean"] >= -0.5
    result["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(), "gpu": None,
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                         "python": platform.python_version(), "numpy": np.__version__, "minigrad": mg.__version__}
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["total_seconds"] = time.perf_counter() - began
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(f"# LeNet-300-100 on Fashion-MNIST, pruned with minigrad\n\n{table}\n")
    plot(result, out.with_suffix(".png"))
    print(table)
    print(f"90% sparsity within 0.5 points of dense (mean over seeds): {result['target_met']}; "
          f"total {result['total_seconds']:.0f} s; wrote {out}.json/.md/.png")


if __name__ == "__main__":
    main()
