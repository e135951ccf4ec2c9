"""Pruning: accuracy against sparsity with a dense control trained as long, the |w| < eps
threshold rule next to the k-smallest rule, and what an unstructured mask saves in
dense compute (docs/pruning.md).

LeNet-300-100 (784-300-100-10) on 10,000 Fashion-MNIST training images, SGD (lr 0.05,
momentum 0.9), batches of 50, 2 seeds; test accuracy on 2,000 test images.
1. train dense for 4 epochs; then, for each sparsity, prune globally (the k smallest
   |w| of all three weight matrices) and retrain 2 epochs with the mask held. The
   dense control trains the same 2 epochs more without pruning.
2. the threshold rule w = 0 where |w| < eps (``mg.prune.threshold``) on the dense model, for a few eps: the sparsity it gives is
   whatever the weights make it, per layer; the k-smallest rule asks for a sparsity.
3. time of one forward pass over the test images, dense against 90% pruned (the
   same dense matrix products, with zeros), and the compacted model.
Prints three tables and writes pruning.png.
"""
import time

import numpy as np

import minigrad as mg
from common import Stopwatch, accuracy, fashion_mnist, plt, print_table, save, train_epoch

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
EPSILONS = (0.01, 0.02, 0.03, 0.05)
SEEDS = (0, 1)


def lenet300(seed):
    mg.manual_seed(seed)
    return mg.nn.Sequential(mg.nn.Flatten(), mg.nn.Linear(784, 300), mg.nn.ReLU(),
                            mg.nn.Linear(300, 100), mg.nn.ReLU(), mg.nn.Linear(100, 10))


def train(model, data, epochs, seed):
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = mg.data.DataLoader(data, batch_size=50, shuffle=True, seed=seed)
    for epoch in range(epochs):
        train_epoch(model, loader, optimizer)
    return model


def copy_of(model, seed):
    twin = lenet300(seed)
    twin.load_state_dict(model.state_dict())
    return twin


def weight_sparsity(model):
    weights = [module.weight.numpy() for module, _ in mg.prune.prunable_parameters(model)]
    return [float((weight == 0).mean()) for weight in weights], \
        float(sum((weight == 0).sum() for weight in weights) / sum(weight.size for weight in weights))


def accuracy_against_sparsity(data, test_images, test_labels):
    rows = {"dense, 4 epochs": [], "dense, 6 epochs (control)": []}
    rows.update({f"{sparsity:.0%}: pruned": [] for sparsity in SPARSITIES})
    rows.update({f"{sparsity:.0%}: retrained": [] for sparsity in SPARSITIES})
    dense_models = []
    for seed in SEEDS:
        dense = train(lenet300(seed), data, 4, seed)
        dense_models.append(dense)
        rows["dense, 4 epochs"].append(accuracy(dense, test_images, test_labels))
        control = train(copy_of(dense, seed), data, 2, seed + 100)
        rows["dense, 6 epochs (control)"].append(accuracy(control, test_images, test_labels))
        for sparsity in SPARSITIES:
            model = copy_of(dense, seed)
            mg.prune.global_unstructured(mg.prune.prunable_parameters(model), mg.prune.L1Unstructured,
                                         amount=sparsity)
            rows[f"{sparsity:.0%}: pruned"].append(accuracy(model, test_images, test_labels))
            train(model, data, 2, seed + 100)
            rows[f"{sparsity:.0%}: retrained"].append(accuracy(model, test_images, test_labels))
    return {name: float(np.mean(values)) for name, values in rows.items()}, dense_models[0]


def threshold_against_k_smallest(dense, test_images, test_labels):
    rows = []
    for eps in EPSILONS:
        model = copy_of(dense, 0)
        for module, name in mg.prune.prunable_parameters(model):
            mg.prune.threshold(module, name, eps)
        per_layer, overall = weight_sparsity(model)
        by_rank = copy_of(dense, 0)
        mg.prune.global_unstructured(mg.prune.prunable_parameters(by_rank), mg.prune.L1Unstructured,
                                     amount=overall)
        rows.append([f"eps = {eps}", " / ".join(f"{value:.0%}" for value in per_layer), f"{overall:.1%}",
                     f"{accuracy(model, test_images, test_labels):.3f}",
                     f"{accuracy(by_rank, test_images, test_labels):.3f}"])
    return rows


def forward_milliseconds(model, images, repeats=20):
    model.eval()
    times = []
    with mg.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    clock = Stopwatch()
    data, test_images, test_labels = fashion_mnist(10_000)
    results, dense = accuracy_against_sparsity(data, test_images, test_labels)
    print_table(["model", "test accuracy (mean of 2 seeds)"], [[name, f"{value:.3f}"] for name, value in results.items()])
    print_table(["w = 0 where abs(w) < eps", "sparsity per layer", "overall", "accuracy (threshold)", "accuracy (k smallest, same overall)"],
                threshold_against_k_smallest(dense, test_images, test_labels))
    pruned = copy_of(dense, 0)
    mg.prune.global_unstructured(mg.prune.prunable_parameters(pruned), mg.prune.L1Unstructured, amount=0.9)
    compacted = mg.prune.compact(pruned)
    shapes = "-".join(str(layer.out_features) for layer in compacted if isinstance(layer, mg.nn.Linear))
    print_table(["model", "forward, 2,000 images (ms, median of 20)"],
                [["dense", f"{forward_milliseconds(dense, test_images):.2f}"],
                 ["90% pruned (masked dense matrices)", f"{forward_milliseconds(pruned, test_images):.2f}"],
                 [f"90% pruned, compacted ({shapes})", f"{forward_milliseconds(compacted, test_images):.2f}"]])

    figure, axes = plt.subplots(figsize=(6.5, 4))
    percent = [100 * sparsity for sparsity in SPARSITIES]
    axes.plot(percent, [results[f"{sparsity:.0%}: pruned"] for sparsity in SPARSITIES], marker="o",
              label="pruned, before retraining")
    axes.plot(percent, [results[f"{sparsity:.0%}: retrained"] for sparsity in SPARSITIES], marker="o",
              label="pruned, then retrained 2 epochs")
    axes.axhline(results["dense, 6 epochs (control)"], color="gray", linestyle="--", label="dense, 6 epochs")
    axes.axhline(results["dense, 4 epochs"], color="gray", linestyle=":", label="dense, 4 epochs")
    axes.set(xlabel="weight sparsity (%)", ylabel="test accuracy (mean of 2 seeds)",
             title="LeNet-300-100 on 10,000 Fashion-MNIST images")
    axes.legend()
    save(figure, "pruning")
    print(clock)


if __name__ == "__main__":
    main()
