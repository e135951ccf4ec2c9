"""Train a network on Fashion-MNIST with every technique minigrad teaches.

    python train.py                         # CNN with BatchNorm, SGD + momentum, cosine decay
    python train.py --model lenet300 --prune-amount 0.9 --prune-schedule gradual
    mpirun -n 4 python train.py             # data parallel over 4 processes

Each epoch shuffles the training set with a fresh permutation, steps the
learning-rate schedule, optionally prunes, evaluates on the test set, and
writes a checkpoint (rank 0 only, atomically). --resume continues from the
last checkpoint and gives the same weights as a run that was never stopped;
Ctrl-C saves a checkpoint at the last completed step and exits.
"""
import argparse
import functools
import json
import math
import os
import signal
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import distributed as dist
from minigrad.models import MODELS
from minigrad.optim import lr_scheduler

SCHEDULES = ("step", "multistep", "exponential", "invsqrt", "cosine", "none")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def non_negative(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text}")
    return value


def build_parser():
    parser = OneLineParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn", help="network to train (default: cnn)")
    parser.add_argument("--epochs", type=positive(int), default=8, help="passes over the training set (default: 8)")
    parser.add_argument("--batch-size", type=positive(int), default=128,
                        help="GLOBAL batch size: under mpirun each of N ranks takes batch-size / N samples "
                             "per step, so the step is the same whatever N is (default: 128)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=positive(float), default=0.05, help="initial learning rate (default: 0.05; use ~1e-3 with adam)")
    parser.add_argument("--momentum", type=non_negative, default=0.9, help="SGD momentum (default: 0.9)")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    parser.add_argument("--weight-decay", type=non_negative, default=5e-4, help="L2 weight decay (default: 5e-4)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                        help="learning-rate decay, stepped once per epoch (default: cosine)")
    parser.add_argument("--step-size", type=positive(int), default=10, help="step: epochs between decays")
    parser.add_argument("--milestones", default="4,6", help="multistep: comma-separated epochs at which lr *= gamma")
    parser.add_argument("--gamma", type=positive(float), default=0.5, help="step, multistep, exponential: decay factor")
    parser.add_argument("--decay", type=positive(float), default=1.0, help="invsqrt: lr_t = lr / sqrt(1 + decay * t)")
    parser.add_argument("--warmup", type=int, default=0, help="epochs of linear warm-up before the schedule (default: 0)")
    parser.add_argument("--prune-amount", type=fraction, default=0.0,
                        help="fraction of weights to prune by magnitude, w = 0 where |w| is smallest (default: 0)")
    parser.add_argument("--prune-schedule", choices=("oneshot", "gradual"), default="gradual",
                        help="oneshot: prune once after half the epochs, then retrain; gradual: raise the sparsity "
                             "along Zhu and Gupta's cubic curve over the first three quarters (default: gradual)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when a GPU is there")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the shuffling and dropout")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: Debian's, then the cache)")
    parser.add_argument("--checkpoint", default="checkpoints", help="folder for checkpoints (default: checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint")
    parser.add_argument("--sync-bn", action="store_true", help="under mpirun: BatchNorm statistics over the global batch")
    parser.add_argument("--log", help="write JSON-lines metrics to this file")
    parser.add_argument("--plot", help="write a PNG of loss, accuracy, learning rate and sparsity to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, one line per epoch")
    parser.add_argument("--stop-after", type=positive(int),
                        help="stop after this many epochs of this invocation, with a checkpoint; continue later "
                             "with --resume (splits a long run into jobs that fit a time limit)")
    parser.add_argument("--train-samples", type=positive(int), help="use only the first N training images (quick runs)")
    parser.add_argument("--test-samples", type=positive(int), help="use only the first N test images (quick runs)")
    return parser


def validate(args, parser, world_size):
    """Errors a user can fix, reported before any work starts (exit code 2)."""
    if args.batch_size < world_size:
        parser.error(f"--batch-size {args.batch_size} is smaller than the {world_size} ranks: each rank needs a sample")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir} is not a directory")
    if args.resume and not os.path.exists(checkpoint_path(args)):
        parser.error(f"--resume: no checkpoint at {checkpoint_path(args)}")
    if args.nesterov and args.momentum == 0:
        parser.error("--nesterov needs --momentum > 0")
    if args.warmup >= args.epochs and args.warmup > 0:
        parser.error(f"--warmup {args.warmup} must be shorter than --epochs {args.epochs}")
    try:
        [int(m) for m in args.milestones.split(",") if m]
    except ValueError:
        parser.error(f"--milestones must be comma-separated epochs, got {args.milestones!r}")


def checkpoint_path(args):
    return os.path.join(args.checkpoint, "last.npz")


# ----- the pieces of a run ---------------------------------------------------------------
def load_data(args, device):
    train = mg.data.FashionMNIST(args.data_dir, train=True, normalize=True)
    test = mg.data.FashionMNIST(args.data_dir, train=False, normalize=True)
    if args.train_samples:
        train = mg.data.TensorDataset(train.data[:args.train_samples], train.targets[:args.train_samples])
    if args.test_samples:
        test = mg.data.TensorDataset(test.data[:args.test_samples], test.targets[:args.test_samples])
    return train.to(device), test.to(device)


def make_scheduler(args, optimizer):
    milestones = [int(m) for m in args.milestones.split(",") if m]
    decay_epochs = args.epochs - args.warmup
    schedules = {
        "step": lambda: lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma),
        "multistep": lambda: lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.gamma),
        "exponential": lambda: lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma),
        "invsqrt": lambda: lr_scheduler.InverseSqrtLR(optimizer, decay=args.decay),
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=decay_epochs),
        "none": lambda: lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
    }
    if args.warmup == 0:
        return schedules[args.schedule]()
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (args.warmup + 1), total_iters=args.warmup)
    main = schedules[args.schedule]()
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[args.warmup])


def make_pruner(args, model, steps_per_epoch):
    """The pruning plan: None, or an object whose step() runs after every optimizer step."""
    if args.prune_amount == 0:
        return None
    parameters = mg.prune.prunable_parameters(model)
    if args.prune_schedule == "oneshot":
        start, frequency, prunings = (args.epochs // 2) * steps_per_epoch, 1, 1
        initial = args.prune_amount  # s_t = s_f from the first (only) pruning on
    else:
        prune_steps = max(1, (3 * args.epochs * steps_per_epoch) // 4)
        prunings = min(20, prune_steps)
        start, frequency, initial = 0, max(1, prune_steps // prunings), 0.0
    return mg.prune.GradualPruner(parameters, final_sparsity=args.prune_amount, initial_sparsity=initial,
                                  start_step=start, frequency=frequency, num_prunings=prunings)


def sparsity(model):
    weights = [module for module, name in mg.prune.prunable_parameters(model)]
    total = sum(m.weight.numel() for m in weights)
    zeros = sum(int((m.weight.data == 0).sum()) for m in weights)
    return zeros / max(total, 1)


def evaluate(model, dataset, batch_size, rank, world_size):
    """Loss and accuracy over the whole test set; each rank takes a contiguous share."""
    model.eval()
    indices = np.array_split(np.arange(len(dataset)), world_size)[rank]
    loss_sum = correct = 0.0
    with mg.no_grad():
        for start in range(0, len(indices), batch_size):
            images, labels = dataset.gather(indices[start:start + batch_size])
            logits = model(images)
            loss_sum += float(mg.functional.cross_entropy(logits, labels, reduction="sum").item())
            correct += float((logits.argmax(axis=1) == labels).numpy().sum())
    model.train()
    loss_sum, correct = dist.all_reduce_sum(loss_sum), dist.all_reduce_sum(correct)
    return loss_sum / len(dataset), correct / len(dataset)


class StopRequested:
    """Ctrl-C sets a flag; the loop stops after the step in progress, at a consistent state."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def now(self, world_size):
        if world_size == 1:
            return self.requested
        return dist.all_reduce_sum(float(self.requested)) > 0  # every rank stops at the same step


# ----- checkpoints ------------------------------------------------------------------------
def save_checkpoint(args, state):
    os.makedirs(args.checkpoint, exist_ok=True)
    mg.save(state, checkpoint_path(args))


def restore_pruning_structure(model, model_state):
    """A pruned model's state has weight_orig and weight_mask: prune the same tensors first."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for key in list(module._parameters):
            if f"{prefix}{key}_orig" in model_state and not mg.prune.is_pruned(module):
                mg.prune.identity(module, key)


# ----- the run ----------------------------------------------------------------------------
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not mg.cuda_is_available():
        parser.error("--device cuda: no GPU is usable here (needs CuPy and an NVIDIA GPU)")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and mg.cuda_is_available()) else "cpu"
    dist.init(device=device)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    validate(args, parser, world_size)
    threads = mg.threads.apply(local_size=dist.get_local_size())  # no oversubscription under mpirun
    main_process = rank == 0
    say = functools.partial(print, flush=True) if main_process else (lambda *a, **k: None)

    mg.manual_seed(args.seed)
    train_set, test_set = load_data(args, device)
    per_rank_batch = args.batch_size // world_size
    sampler = mg.data.DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True,
                                         seed=args.seed, drop_last=True)
    loader = mg.data.DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler, drop_last=True)

    model = MODELS[args.model]().to(device)
    if args.sync_bn:
        model = dist.convert_sync_batchnorm(model)
    # The optimizer is built before any pruning: pruning renames weight to weight_orig and
    # moves it to the end of the module's parameters, and the optimizer's state is by position.
    if args.optimizer == "sgd":
        optimizer = mg.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                 nesterov=args.nesterov, weight_decay=args.weight_decay)
    else:
        optimizer = mg.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = make_scheduler(args, optimizer)
    steps_per_epoch = len(loader)
    state = mg.load(checkpoint_path(args)) if args.resume else None
    if state is not None:
        restore_pruning_structure(model, state["model"])
        model.load_state_dict(state["model"])
    pruner = make_pruner(args, model, steps_per_epoch)
    start_epoch, batches_done, step, history, partial = 0, 0, 0, [], None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if pruner is not None:
            pruner.load_state_dict(state["pruner"])
        mg.random.set_rng_state(state["rng"])
        start_epoch, batches_done, step = state["epoch"], state["batches_done"], state["step"]
        history, partial = state["history"], state["partial"]
        say(f"resumed from {checkpoint_path(args)} at epoch {start_epoch + 1}, step {step}")
    trained = dist.DistributedDataParallel(model) if world_size > 1 else model

    def checkpoint_state(epoch, done, running):
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "pruner": pruner.state_dict() if pruner is not None else None, "rng": mg.random.get_rng_state(),
                "epoch": epoch, "batches_done": done, "step": step, "history": history, "partial": running,
                "args": vars(args)}

    say(f"minigrad {mg.__version__}: {args.model} on Fashion-MNIST ({len(train_set)} train, {len(test_set)} test), "
        f"{device}, {world_size} rank(s), batch {args.batch_size} ({per_rank_batch} per rank), "
        f"{args.optimizer} lr {args.lr}, schedule {args.schedule}, {threads.threads} thread(s) per rank")
    log = open(args.log, "a") if (args.log and main_process) else None
    stop = StopRequested()
    progress = make_progress(args, main_process)
    started = time.perf_counter()

    for epoch in range(start_epoch, args.epochs):
        loader.set_epoch(epoch)
        loss_sum, correct, seen = partial if (partial and epoch == start_epoch) else (0.0, 0.0, 0)
        skip = batches_done if epoch == start_epoch else 0
        epoch_started = time.perf_counter()
        bar = progress(steps_per_epoch, f"epoch {epoch + 1}/{args.epochs}", skip)
        for batch_index, (images, labels) in enumerate(loader):
            if batch_index < skip:
                continue  # a resumed epoch: the same order, continued where it stopped
            optimizer.zero_grad()
            logits = trained(images)
            loss = mg.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            if pruner is not None:
                pruner.step()
            step += 1
            loss_sum += loss.item() * len(labels)
            correct += float((logits.argmax(axis=1) == labels).numpy().sum())
            seen += len(labels)
            if bar is not None:
                rate = seen * world_size / max(time.perf_counter() - epoch_started, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                lr=f"{optimizer.param_groups[0]['lr']:.4g}", samples_s=f"{rate:.0f}")
            if stop.now(world_size):
                if bar is not None:
                    bar.close()
                if main_process:
                    save_checkpoint(args, checkpoint_state(epoch, batch_index + 1, [loss_sum, correct, seen]))
                say(f"\ninterrupted: saved {checkpoint_path(args)} at epoch {epoch + 1}, step {step}; "
                    f"continue with --resume")
                return 130
        if bar is not None:
            bar.close()
        train_loss = dist.all_reduce_sum(loss_sum) / dist.all_reduce_sum(float(seen))
        train_accuracy = dist.all_reduce_sum(correct) / dist.all_reduce_sum(float(seen))
        learning_rate = optimizer.param_groups[0]["lr"]
        scheduler.step()
        test_loss, test_accuracy = evaluate(model, test_set, 1000, rank, world_size)
        record = {"epoch": epoch + 1, "step": step, "loss": train_loss, "accuracy": train_accuracy,
                  "test_loss": test_loss, "test_accuracy": test_accuracy, "lr": learning_rate,
                  "sparsity": sparsity(model), "time": time.perf_counter() - started}
        history.append(record)
        say(f"epoch {epoch + 1:3d}/{args.epochs}  loss {train_loss:.4f}  acc {train_accuracy:.4f}  "
            f"test loss {test_loss:.4f}  test acc {test_accuracy:.4f}  lr {learning_rate:.4g}  "
            f"sparsity {record['sparsity']:.3f}  {time.perf_counter() - epoch_started:.1f}s")
        if log is not None:
            log.write(json.dumps(record) + "\n")
            log.flush()
        if main_process:
            save_checkpoint(args, checkpoint_state(epoch + 1, 0, None))
        partial, batches_done = None, 0
        if args.stop_after and epoch + 1 - start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            say(f"stopped after epoch {epoch + 1} (--stop-after); continue with --resume")
            break

    if history:
        say(f"done: test accuracy {history[-1]['test_accuracy']:.4f} after {args.epochs} epochs, "
            f"{time.perf_counter() - started:.1f}s")
    if args.plot and main_process:
        plot(history, args.plot)
    if log is not None:
        log.close()
    return 0


def make_progress(args, main_process):
    """A tqdm progress bar per epoch on rank 0, or nothing."""
    if args.no_progress or not main_process:
        return lambda total, description, done: None
    try:
        from tqdm import tqdm
    except ImportError:
        print("(no progress bar: pip install tqdm)", file=sys.stderr)
        return lambda total, description, done: None
    return lambda total, description, done: tqdm(total=total, initial=done, desc=description, leave=False,
                                                 dynamic_ncols=True)


def plot(history, path):
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


if __name__ == "__main__":
    sys.exit(main())
