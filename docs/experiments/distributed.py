"""Distributed training: the ring all-reduce cost model against the measured all-reduce
timings, and the learning rate scaled with the global batch (docs/distributed.md).

1. A ring all-reduce of n values over R ranks sends, and receives, 2(R-1)/R * n values
   per rank (R-1 steps of reduce-scatter, R-1 of all-gather, n/R values each). For
   the three models of ``benchmarks/results/allreduce.json`` (measured by
   ``benchmarks/bench_allreduce.py``, not rerun here) the table sets these bytes per
   rank next to the measured times, and next to the time the bytes alone would take
   at the bandwidth b that the largest message reached ("raw": one all-reduce of one
   packed buffer of 100 MB): t = bytes / b. What the smaller messages take beyond
   that is per-call and per-step latency.
2. With R ranks of 50 samples each the global batch is 50 R, and one step of R ranks
   is one step of one process on the global batch (the chapter shows the gradients
   agree), so this part runs in one process: 10,000 Fashion-MNIST images, a 784-100-10
   MLP, SGD with momentum 0.9, 4 epochs, 2 seeds, global batch 50, 100, 200, 400, 800
   with lr 0.02 kept, scaled linearly (0.02 R), and scaled linearly after a one-epoch
   linear warm-up.
Prints two tables and writes distributed.png.
"""
import json

import numpy as np

import minigrad as mg
from minigrad.optim import lr_scheduler
from common import FOLDER, Stopwatch, accuracy, fashion_mnist, mlp, plt, print_table, save, train_epoch

RESULTS = FOLDER.parents[1] / "benchmarks" / "results" / "allreduce.json"
BYTES_PER_VALUE = 4  # float32 gradients
RANKS = (1, 2, 4, 8, 16)
EPOCHS, SEEDS, BASE_LR = 4, (0, 1), 0.02


def ring_bytes_per_rank(values, ranks):
    return 2 * (ranks - 1) / ranks * values * BYTES_PER_VALUE


def cost_model_rows(measured):
    rows, fits = [], {}
    for ranks in ("2", "4"):
        models = measured["runs"][ranks]["averaging"]
        sizes = np.array([ring_bytes_per_rank(model["parameters"], int(ranks)) for model in models.values()])
        raw = np.array([model["raw"] for model in models.values()]) / 1000
        bandwidth = sizes.max() / raw[sizes.argmax()]
        fits[ranks] = bandwidth
        for (name, model), size in zip(models.items(), sizes):
            rows.append([ranks, name, f"{model['parameters']:,}", f"{size / 1e6:.2f}",
                         f"{model['bucketed']:.2f}", f"{model['raw']:.2f}",
                         f"{size / (model['bucketed'] / 1000) / 1e9:.2f}",
                         f"{1000 * size / bandwidth:.2f}"])
    return rows, fits


def run(train, test_images, test_labels, ranks, rule, seed):
    batch = 50 * ranks
    lr = BASE_LR if rule == "lr kept" else BASE_LR * ranks
    model = mlp(seed=seed)
    optimizer = mg.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = mg.data.DataLoader(train, batch_size=batch, shuffle=True, seed=seed)
    after_step = None
    if rule == "scaled, warm-up":
        warm = lr_scheduler.LinearLR(optimizer, start_factor=1 / ranks, total_iters=len(loader))
        after_step = warm.step
    for epoch in range(EPOCHS):
        train_epoch(model, loader, optimizer, after_step)
    return accuracy(model, test_images, test_labels)


def main():
    clock = Stopwatch()
    measured = json.loads(RESULTS.read_text())
    rows, fits = cost_model_rows(measured)
    print(f"measured on: {measured['machine']['cpu']}, {measured['machine']['cores']} cores, "
          f"MPICH {measured['versions']['mpi'].split(':')[-1].strip()}")
    print_table(["ranks", "model", "values n", "MB per rank, 2(R-1)/R n", "bucketed ms", "raw ms",
                 "GB/s per rank (bucketed)", "bytes / b, ms"], rows)
    for ranks, bandwidth in fits.items():
        print(f"R = {ranks}: b = {bandwidth / 1e9:.2f} GB/s per rank (the 100 MB all-reduce)")

    train, test_images, test_labels = fashion_mnist(10_000)
    rules = ("lr kept", "scaled", "scaled, warm-up")
    scaling = {rule: [float(np.mean([run(train, test_images, test_labels, ranks, rule, seed) for seed in SEEDS]))
                      for ranks in RANKS] for rule in rules}
    print_table(["global batch (ranks x 50)"] + [f"{50 * ranks} ({ranks})" for ranks in RANKS],
                [[f"{rule} (lr {BASE_LR} x {'1' if rule == 'lr kept' else 'R'})"] + [f"{value:.3f}" for value in values]
                 for rule, values in scaling.items()])

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for ranks, marker in (("2", "o"), ("4", "s")):
        models = measured["runs"][ranks]["averaging"].values()
        sizes = np.array([ring_bytes_per_rank(model["parameters"], int(ranks)) for model in models])
        left.scatter(sizes, [model["raw"] for model in models], marker=marker, label=f"R={ranks}, raw")
        left.scatter(sizes, [model["bucketed"] for model in models], marker=marker, facecolors="none",
                     edgecolors="black", label=f"R={ranks}, bucketed")
        line = np.geomspace(sizes.min(), sizes.max(), 50)
        left.plot(line, 1000 * line / fits[ranks], linewidth=0.8, label=f"R={ranks}, bytes / b")
    left.set(xscale="log", yscale="log", xlabel="bytes sent per rank, 2(R-1)/R n x 4",
             ylabel="all-reduce time (ms)", title="Ring cost model against allreduce.json")
    left.legend(fontsize=8)
    for rule in rules:
        right.plot([50 * ranks for ranks in RANKS], scaling[rule], marker="o", label=rule)
    right.set(xscale="log", xlabel="global batch (50 per rank)", ylabel=f"test accuracy after {EPOCHS} epochs",
              title="Learning rate and the global batch")
    right.set_xticks([50 * ranks for ranks in RANKS], [str(50 * ranks) for ranks in RANKS])
    right.minorticks_off()
    right.legend()
    save(figure, "distributed")
    print(clock)


if __name__ == "__main__":
    main()
