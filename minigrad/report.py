"""How a training run shows itself: a progress bar per epoch and a figure of its curves.

Both need optional packages (tqdm, matplotlib); without them the run goes on,
with one line that says what to install.
"""
import sys


def make_progress(enabled=True):
    """``bar(total, description, done)``: a tqdm progress bar (None when disabled or without tqdm)."""
    if not enabled:
        return lambda total, description, done: None
    try:
        from tqdm import tqdm
    except ImportError:
        print("(no progress bar: pip install tqdm)", file=sys.stderr)
        return lambda total, description, done: None
    return lambda total, description, done: tqdm(total=total, initial=done, desc=description, leave=False,
                                                 dynamic_ncols=True)


def plot_history(history, path):
    """A PNG at ``path`` of loss, accuracy, learning rate and sparsity per epoch (rows as train.py logs)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot {path}: matplotlib is not installed (pip install matplotlib); no plot written",
              file=sys.stderr)
        return
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [("loss", ["loss", "test_loss"]), ("accuracy", ["accuracy", "test_accuracy"]),
              ("learning rate", ["lr"]), ("sparsity", ["sparsity"])]
    for axis, (title, keys) in zip(axes, panels):
        for key in keys:
            axis.plot(epochs, [row[key] for row in history], marker="o", label=key.replace("_", " "))
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if len(keys) > 1:
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")
