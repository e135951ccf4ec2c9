"""Train a network on Fashion-MNIST with every technique minigrad teaches.

    python train.py                         # CNN with BatchNorm, SGD + momentum, cosine decay
    python train.py --model lenet300 --prune-amount 0.9 --prune-schedule gradual
    mpirun -n 4 python train.py             # data parallel over 4 processes

Each epoch shuffles the training set with a fresh permutation, steps the
learning-rate schedule, optionally prunes, evaluates on the test set, and
writes a checkpoint (rank 0 only, atomically). --resume continues from the
last checkpoint and gives the same weights as a run that was never stopped;
Ctrl-C or SIGTERM saves a checkpoint at the last completed step and exits.

A run never destroys work (see minigrad/run_guard.py): it refuses a folder with
another run's checkpoint (unless --resume or --overwrite) or in use, stops at the
first non-finite loss, and reports a bad file or option in one line (--debug: the
traceback). Under mpirun the ranks compare options first; one rank's error ends all.
"""
import argparse
import contextlib
import functools
import json
import math
import os
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import distributed as dist
from minigrad.models import MODELS
from minigrad.optim import lr_scheduler
from minigrad.report import make_progress, plot_history
from minigrad.run_guard import (RunError, Stopped, StopRequested, checkpoint_must_fit, first_nonfinite,
                                load_on_every_rank, lock_folder, run_guarded, settings_problem)
from minigrad.serialization import remove_unfinished_saves

SCHEDULES = ("step", "multistep", "exponential", "invsqrt", "cosine", "none")
# What may change between a run and its --resume: where files go and what is shown.
CHANGEABLE_ON_RESUME = {"resume", "overwrite", "stop_after", "log", "plot", "no_progress", "checkpoint",
                        "data_dir", "device", "debug"}
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "pruner", "rng", "epoch", "batches_done", "step",
                   "history", "partial", "args")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(kind):
    def parse(text):
        value = kind(text)
        if not 0 < value < math.inf:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value
    return parse


def non_negative(kind):
    def parse(text):
        value = kind(text)
        if not 0 <= value < math.inf:
            raise argparse.ArgumentTypeError(f"must be non-negative and finite, got {text}")
        return value
    return parse


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
    parser.add_argument("--momentum", type=non_negative(float), default=0.9, help="SGD momentum (default: 0.9)")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    parser.add_argument("--weight-decay", type=non_negative(float), default=5e-4, help="L2 weight decay (default: 5e-4)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                        help="learning-rate decay, stepped once per epoch (default: cosine)")
    parser.add_argument("--step-size", type=positive(int), default=10, help="step: epochs between decays")
    parser.add_argument("--milestones", default="4,6", help="multistep: comma-separated epochs at which lr *= gamma")
    parser.add_argument("--gamma", type=positive(float), default=0.5, help="step, multistep, exponential: decay factor")
    parser.add_argument("--decay", type=positive(float), default=1.0, help="invsqrt: lr_t = lr / sqrt(1 + decay * t)")
    parser.add_argument("--warmup", type=non_negative(int), default=0, help="epochs of linear warm-up before the schedule (default: 0)")
    parser.add_argument("--prune-amount", type=fraction, default=0.0,
                        help="fraction of weights to prune by magnitude, w = 0 where |w| is smallest (default: 0)")
    parser.add_argument("--prune-schedule", choices=("oneshot", "gradual"), default="gradual",
                        help="oneshot: prune once after half the epochs, then retrain; gradual: raise the sparsity "
                             "along Zhu and Gupta's cubic curve over the first three quarters (default: gradual)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when a GPU is there")
    parser.add_argument("--seed", type=non_negative(int), default=0, help="seeds the weights, the shuffling and dropout")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: Debian's, then the cache)")
    parser.add_argument("--checkpoint", default="checkpoints", help="folder for checkpoints (default: checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh where --checkpoint holds an earlier run's checkpoint, replacing it")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the training set's order in every epoch")
    parser.add_argument("--no-bn", action="store_true", help="--model cnn without its BatchNorm layers")
    parser.add_argument("--sync-bn", action="store_true", help="under mpirun: BatchNorm statistics over the global batch")
    parser.add_argument("--log", help="write JSON-lines metrics to this file")
    parser.add_argument("--plot", help="write a PNG of loss, accuracy, learning rate and sparsity to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, one line per epoch")
    parser.add_argument("--stop-after", type=positive(int),
                        help="stop after this many epochs of this invocation, with a checkpoint; continue later "
                             "with --resume (splits a long run into jobs that fit a time limit)")
    parser.add_argument("--train-samples", type=positive(int), help="use only the first N training images (quick runs)")
    parser.add_argument("--test-samples", type=positive(int), help="use only the first N test images (quick runs)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or MINIGRAD_DEBUG=1)")
    return parser


def milestones_of(args):
    return [int(m) for m in args.milestones.split(",") if m]


def validate(args, world_size):
    """The first error a user can fix in the options, as a sentence, or None."""
    path = checkpoint_path(args)
    try:
        milestones_of(args)
        milestones = None
    except ValueError:
        milestones = f"--milestones must be comma-separated epochs, got {args.milestones!r}"
    even = args.batch_size - args.batch_size % world_size
    checks = [
        (args.batch_size < world_size,
         f"--batch-size {args.batch_size} is smaller than the {world_size} ranks: each rank needs a sample"),
        (args.batch_size % world_size, f"--batch-size {args.batch_size} does not split evenly over {world_size} "
                                       f"ranks: use {even} or {even + world_size}"),
        (args.data_dir is not None and not os.path.isdir(args.data_dir),
         f"--data-dir {args.data_dir} is not a directory"),
        (args.resume and args.overwrite, "--resume and --overwrite exclude each other"),
        (args.resume and not os.path.exists(path), f"--resume: no checkpoint at {path}"),
        (not (args.resume or args.overwrite) and os.path.exists(path),
         f"{path} holds an earlier run's checkpoint: continue it with --resume, or replace it with --overwrite"),
        (args.nesterov and args.momentum == 0, "--nesterov needs --momentum > 0"),
        (args.warmup >= args.epochs and args.warmup > 0,
         f"--warmup {args.warmup} must be shorter than --epochs {args.epochs}"),
        (not args.checkpoint, "--checkpoint must name a folder"),
        (args.plot and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))),
         f"--plot {args.plot}: its folder does not exist"),
        (args.no_bn and args.model != "cnn", f"--no-bn applies to --model cnn, not {args.model}"),
        (args.no_bn and args.sync_bn, "--no-bn and --sync-bn exclude each other"),
        (milestones is not None, milestones),
    ]
    return next((message for failed, message in checks if failed), None)


def checkpoint_path(args):
    return os.path.join(args.checkpoint, "last.npz")


# ----- before any work: the ranks agree, the folder is ours, the checkpoint fits -------------
def start_up(args, rank, world_size):
    """Check the options on every rank together; lock the folder; return the state to resume or None.

    Raises ``Stopped`` on every rank at once when any rank found a problem, so none waits.
    """
    options = {"--" + key.replace("_", "-"): value for key, value in vars(args).items()}
    problem = dist.first_difference(options)
    if problem is None:
        mine = validate(args, world_size) or (lock_folder(args.checkpoint) if rank == 0 else None)
        problem = dist.first_problem(mine)
    if problem is not None:
        raise Stopped(problem, 2)
    if rank == 0:
        removed = remove_unfinished_saves(args.checkpoint)
        if removed:
            print(f"removed {len(removed)} unfinished checkpoint write(s) from {args.checkpoint}", flush=True)
    if not args.resume:
        return None
    return load_on_every_rank(checkpoint_path(args), lambda state: resume_problem(state, args))


def resume_problem(state, args):
    """Why ``state`` cannot continue this run (not train.py's, other settings), or None."""
    path = checkpoint_path(args)
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        return f"{path}: not a train.py checkpoint (no {missing[0]!r} entry)"
    return settings_problem(path, state["args"], vars(args), CHANGEABLE_ON_RESUME)


# ----- the pieces of a run ---------------------------------------------------------------
def load_data(args, device):
    download = args.data_dir is None  # a --data-dir without the files is an error, not a download
    train = mg.data.FashionMNIST(args.data_dir, train=True, download=download, normalize=True)
    test = mg.data.FashionMNIST(args.data_dir, train=False, download=download, normalize=True)
    if args.train_samples:
        train = mg.data.TensorDataset(train.data[:args.train_samples], train.targets[:args.train_samples])
    if args.test_samples:
        test = mg.data.TensorDataset(test.data[:args.test_samples], test.targets[:args.test_samples])
    return train.to(device), test.to(device)


def make_model(args):
    return MODELS[args.model](batch_norm=False) if args.no_bn else MODELS[args.model]()


def make_scheduler(args, optimizer):
    milestones = milestones_of(args)
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


# ----- checkpoints ------------------------------------------------------------------------
def save_checkpoint(run, epoch, batches_done, running):
    """Write the run's state (rank 0), never with non-finite weights; every rank checks its own."""
    bad = first_nonfinite(run.model)
    problem = dist.first_problem(f"{bad} holds NaN or Inf" if bad else None)
    if problem is not None:
        raise Stopped(f"{problem} after step {run.step}: training diverged; nothing was saved and the last "
                      f"checkpoint is unchanged (try a smaller --lr)", 1)
    if not run.main_process:
        return
    path = checkpoint_path(run.args)
    try:
        mg.save(run.checkpoint_state(epoch, batches_done, running), path)
    except OSError as error:
        raise RunError(f"cannot write {path}: {error.strerror or error}; the previous checkpoint is "
                       f"unchanged") from error


def restore_pruning_structure(model, model_state):
    """A pruned model's state has weight_orig and weight_mask: prune the same tensors first."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for key in list(module._parameters):
            if f"{prefix}{key}_orig" in model_state and not mg.prune.is_pruned(module):
                mg.prune.identity(module, key)


# ----- the run ----------------------------------------------------------------------------
class Run:
    """Everything one training run holds: data, model, optimizer, schedule and progress so far."""

    def __init__(self, args, device, rank, world_size):
        self.args, self.device, self.rank, self.world_size = args, device, rank, world_size
        self.main_process = rank == 0
        self.say = functools.partial(print, flush=True) if self.main_process else (lambda *a, **k: None)
        self.start_epoch, self.batches_done, self.step, self.history, self.partial = 0, 0, 0, [], None

    def checkpoint_state(self, epoch, done, running):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "pruner": self.pruner.state_dict() if self.pruner is not None else None,
                "rng": mg.random.get_rng_state(), "epoch": epoch, "batches_done": done, "step": self.step,
                "history": self.history, "partial": running, "args": vars(self.args)}


def build(args, device, rank, world_size, state=None):
    """The run's data, loader, model, optimizer, schedule and pruner, continuing ``state`` if given."""
    run = Run(args, device, rank, world_size)
    mg.manual_seed(args.seed)
    run.train_set, run.test_set = load_data(args, device)
    run.per_rank_batch = args.batch_size // world_size
    sampler = mg.data.DistributedSampler(run.train_set, num_replicas=world_size, rank=rank,
                                         shuffle=not args.no_shuffle, seed=args.seed, drop_last=True)
    run.loader = mg.data.DataLoader(run.train_set, batch_size=run.per_rank_batch, sampler=sampler, drop_last=True)
    model = make_model(args).to(device)
    if args.sync_bn:
        model = dist.convert_sync_batchnorm(model)
    run.model = model
    # The optimizer is built before any pruning: pruning renames weight to weight_orig and
    # moves it to the end of the module's parameters, and the optimizer's state is by position.
    if args.optimizer == "sgd":
        run.optimizer = mg.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                     nesterov=args.nesterov, weight_decay=args.weight_decay)
    else:
        run.optimizer = mg.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    run.scheduler = make_scheduler(args, run.optimizer)
    run.steps_per_epoch = len(run.loader)
    empty = None if run.steps_per_epoch else "no batch"
    if (dist.first_problem(empty) if world_size > 1 else empty) is not None:
        raise Stopped(f"the training set's {len(run.train_set)} images make no batch of {args.batch_size}: "
                      f"lower --batch-size or raise --train-samples", 2)
    with checkpoint_must_fit(checkpoint_path(args)):
        if state is not None:
            restore_pruning_structure(model, state["model"])
            model.load_state_dict(state["model"])
        run.pruner = make_pruner(args, model, run.steps_per_epoch)
        if state is not None:
            restore(run, state)
    run.trained = dist.DistributedDataParallel(model) if world_size > 1 else model
    return run


def restore(run, state):
    """Continue a run from a checkpoint's optimizer, schedule, pruning, random state and progress."""
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.pruner is not None:
        run.pruner.load_state_dict(state["pruner"])
    mg.random.set_rng_state(state["rng"])
    run.start_epoch, run.batches_done, run.step = int(state["epoch"]), int(state["batches_done"]), int(state["step"])
    run.history, run.partial = list(state["history"]), state["partial"]
    if not (0 <= run.start_epoch <= run.args.epochs and 0 <= run.batches_done <= run.steps_per_epoch
            and run.step >= 0):
        raise ValueError(f"epoch {run.start_epoch}, batch {run.batches_done}, step {run.step} lie outside this run")
    if run.partial is not None:
        run.partial = [float(total) for total in run.partial]
        if len(run.partial) != 3:
            raise ValueError(f"the running totals are {len(run.partial)} numbers, not 3")
    run.say(f"resumed from {checkpoint_path(run.args)} at epoch {run.start_epoch + 1}, step {run.step}")


def train_one_epoch(run, epoch, stop, progress):
    """One pass over this rank's share of the training set; returns the running (loss sum, correct,
    seen), or None when a stop was requested (a checkpoint at the last step is then written)."""
    args, loader = run.args, run.loader
    loader.set_epoch(epoch)
    resumed = epoch == run.start_epoch
    # A resumed epoch's totals so far are the sums over all ranks: rank 0 carries them.
    loss_sum, correct, seen = run.partial if (run.partial and resumed and run.main_process) else (0.0, 0.0, 0)
    skip = run.batches_done if resumed else 0
    epoch_started = time.perf_counter()
    bar = progress(run.steps_per_epoch, f"epoch {epoch + 1}/{args.epochs}", skip)
    with bar if bar is not None else contextlib.nullcontext():
        for batch_index, (images, labels) in enumerate(loader):
            if batch_index < skip:
                continue  # a resumed epoch: the same order, continued where it stopped
            run.optimizer.zero_grad()
            logits = run.trained(images)
            loss = mg.functional.cross_entropy(logits, labels)
            loss.backward()
            run.optimizer.step()
            if run.pruner is not None:
                run.pruner.step()
            run.step += 1
            loss_value = loss.item()
            loss_sum += loss_value * len(labels)
            correct += float((logits.argmax(axis=1) == labels).numpy().sum())
            seen += len(labels)
            if bar is not None:
                rate = seen * run.world_size / max(time.perf_counter() - epoch_started, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                lr=f"{run.optimizer.param_groups[0]['lr']:.4g}", samples_s=f"{rate:.0f}")
            interrupted, diverged = stop.check(not math.isfinite(loss_value))
            if diverged:
                raise Stopped(f"the loss became {loss_value if not math.isfinite(loss_value) else 'non-finite'} "
                              f"at epoch {epoch + 1}, step {run.step} (lr {run.optimizer.param_groups[0]['lr']:.4g}): "
                              f"training diverged; nothing was saved and the last checkpoint is unchanged "
                              f"(try a smaller --lr)", 1)
            if interrupted:
                totals = dist.all_reduce_sum(np.array([loss_sum, correct, seen], dtype=np.float64))
                save_checkpoint(run, epoch, batch_index + 1, [float(total) for total in totals])
                run.say(f"\ninterrupted: saved {checkpoint_path(args)} at epoch {epoch + 1}, step {run.step}; "
                        f"continue with --resume")
                return None
    return loss_sum, correct, seen


def end_epoch(run, epoch, totals, log, epoch_started, started):
    """Reduce the epoch's totals over the ranks, step the schedule, evaluate, log and checkpoint."""
    loss_sum, correct, seen = totals
    args, optimizer = run.args, run.optimizer
    train_loss = dist.all_reduce_sum(loss_sum) / dist.all_reduce_sum(float(seen))
    train_accuracy = dist.all_reduce_sum(correct) / dist.all_reduce_sum(float(seen))
    learning_rate = optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    test_loss, test_accuracy = evaluate(run.model, run.test_set, 1000, run.rank, run.world_size)
    record = {"epoch": epoch + 1, "step": run.step, "loss": train_loss, "accuracy": train_accuracy,
              "test_loss": test_loss, "test_accuracy": test_accuracy, "lr": learning_rate,
              "sparsity": sparsity(run.model), "time": time.perf_counter() - started}
    run.history.append(record)
    run.say(f"epoch {epoch + 1:3d}/{args.epochs}  loss {train_loss:.4f}  acc {train_accuracy:.4f}  "
            f"test loss {test_loss:.4f}  test acc {test_accuracy:.4f}  lr {learning_rate:.4g}  "
            f"sparsity {record['sparsity']:.3f}  {time.perf_counter() - epoch_started:.1f}s")
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()
    save_checkpoint(run, epoch + 1, 0, None)
    run.partial, run.batches_done = None, 0


def train_epochs(run, log, stop):
    """The epochs of this invocation; returns the exit code (0, or 128 + the signal that stopped it)."""
    args = run.args
    progress = make_progress(not args.no_progress and run.main_process)
    started = time.perf_counter()
    for epoch in range(run.start_epoch, args.epochs):
        epoch_started = time.perf_counter()
        with np.errstate(all="ignore"):  # a diverging loss is reported once, by the check after each step
            totals = train_one_epoch(run, epoch, stop, progress)
        if totals is None:
            return stop.exit_code
        end_epoch(run, epoch, totals, log, epoch_started, started)
        if args.stop_after and epoch + 1 - run.start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            run.say(f"stopped after epoch {epoch + 1} of {args.epochs} (--stop-after): test accuracy "
                    f"{run.history[-1]['test_accuracy']:.4f}, {time.perf_counter() - started:.1f}s; "
                    f"continue with --resume")
            return 0
    if run.history:
        run.say(f"done: test accuracy {run.history[-1]['test_accuracy']:.4f} after {args.epochs} epochs, "
                f"{time.perf_counter() - started:.1f}s")
    if args.plot and run.main_process:
        plot_history(run.history, args.plot)
    return 0


def run_training(arguments):
    parser = build_parser()
    args = parser.parse_args(arguments)
    # From here on Ctrl-C and SIGTERM only set a flag: the first step after them saves and stops.
    stop = StopRequested()
    if args.device == "cuda" and not mg.cuda_is_available():
        parser.error("--device cuda: no GPU is usable here (needs CuPy and an NVIDIA GPU)")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and mg.cuda_is_available()) else "cpu"
    dist.init(device=device)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    threads = mg.threads.apply(local_size=dist.get_local_size())  # no oversubscription under mpirun
    state = start_up(args, rank, world_size)
    run = build(args, device, rank, world_size, state)
    run.say(f"minigrad {mg.__version__}: {args.model} on Fashion-MNIST ({len(run.train_set)} train, "
            f"{len(run.test_set)} test), {device}, {world_size} rank(s), batch {args.batch_size} "
            f"({run.per_rank_batch} per rank), {args.optimizer} lr {args.lr}, schedule {args.schedule}, "
            f"{threads.threads} thread(s) per rank" + (", numba kernels" if uses_numba(run.model, device) else ""))
    with (open(args.log, "a") if (args.log and run.main_process) else contextlib.nullcontext()) as log:
        return train_epochs(run, log, stop)


def uses_numba(model, device):
    """Whether the model's batch norm and max-pool blocks run as minigrad's compiled CPU loops
    (minigrad/nn/cpu_kernels.py): on the CPU, with numba, for a model with BatchNorm2d (not SyncBatchNorm)."""
    return (device == "cpu" and mg.nn.cpu_kernels.use_numba
            and any(type(module) is mg.nn.BatchNorm2d for module in model.modules()))


def main(argv=None):
    """Run train.py; a user's error is one line on stderr and a non-zero exit, never a hang under mpirun."""
    return run_guarded(run_training, sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
