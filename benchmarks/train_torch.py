"""train.py's default recipe written in plain PyTorch, to time a whole run against minigrad's.

The same network (minigrad.models.cnn: conv32-BN-ReLU-pool, conv64-BN-ReLU-pool,
fc128, dropout 0.25, fc10), the same data (Fashion-MNIST standardised with the
training set's mean and std), the same step (global batch 128, last partial
batch dropped, a fresh shuffle each epoch, cross-entropy, SGD lr 0.05 momentum
0.9 weight decay 5e-4, cosine decay stepped once per epoch) and a test-set
evaluation after every epoch. Compare it with train.py on the same machine:

    python benchmarks/train_torch.py --epochs 1 --train-samples 20000
    python train.py --epochs 1 --train-samples 20000 --no-progress

--threads sets torch's thread count (default: what minigrad's thread policy
chooses, which is every core for one process).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402


def default_cnn():
    """minigrad.models.cnn, layer for layer."""
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 32, 3, padding=1, bias=False), t.BatchNorm2d(32), t.ReLU(), t.MaxPool2d(2),
                        t.Conv2d(32, 64, 3, padding=1, bias=False), t.BatchNorm2d(64), t.ReLU(), t.MaxPool2d(2),
                        t.Flatten(), t.Linear(64 * 7 * 7, 128), t.ReLU(), t.Dropout(0.25), t.Linear(128, 10))


def load(train, samples):
    """Images (N, 1, 28, 28) float32 and labels (N,) int64, read by minigrad's IDX reader."""
    dataset = mg.data.FashionMNIST(train=train, normalize=True)
    images, labels = dataset.data, dataset.targets
    if samples:
        images, labels = images[:samples], labels[:samples]
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def train_epoch(model, optimizer, images, labels, batch_size, generator):
    model.train()
    order = torch.randperm(len(images), generator=generator)
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(images) - batch_size + 1, batch_size):
        batch = order[start:start + batch_size]
        inputs, targets = images[batch], labels[batch]
        optimizer.zero_grad()
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(targets)
        correct += int((logits.argmax(dim=1) == targets).sum())
        seen += len(targets)
    return loss_sum / seen, correct / seen


@torch.no_grad()
def evaluate(model, images, labels, batch_size=1000):
    model.eval()
    correct = sum(int((model(images[i:i + batch_size]).argmax(dim=1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training set (default: 8, as train.py)")
    parser.add_argument("--train-samples", type=int, help="use only the first N training images")
    parser.add_argument("--threads", type=int, help="torch threads (default: minigrad's thread policy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_torch_cpu.json"))
    args = parser.parse_args()
    threads = args.threads or mg.threads.choose().threads
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    train_images, train_labels = load(True, args.train_samples)
    test_images, test_labels = load(False, None)
    model = default_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"PyTorch {torch.__version__}: default CNN on Fashion-MNIST ({len(train_images)} train, "
          f"{len(test_images)} test), {threads} thread(s), batch 128, sgd lr 0.05, schedule cosine", flush=True)
    started, history = time.perf_counter(), []
    for epoch in range(args.epochs):
        loss, accuracy = train_epoch(model, optimizer, train_images, train_labels, 128, generator)
        scheduler.step()
        test_accuracy = evaluate(model, test_images, test_labels)
        elapsed = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "loss": loss, "accuracy": accuracy, "test_accuracy": test_accuracy,
                        "time": elapsed})
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {loss:.4f}  acc {accuracy:.4f}  "
              f"test acc {test_accuracy:.4f}  {elapsed:.1f}s", flush=True)
    print(f"done: test accuracy {history[-1]['test_accuracy']:.4f} after {args.epochs} epochs, "
          f"{time.perf_counter() - started:.1f}s")
    result = {"benchmark": "train.py's default recipe in PyTorch", "date": time.strftime("%Y-%m-%d"),
              "cpu": cpu_name(), "threads": threads, "torch": torch.__version__, "epochs": args.epochs,
              "train_samples": len(train_images), "history": history}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
