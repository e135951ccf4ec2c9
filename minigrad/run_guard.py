"""What keeps a training run from hanging or destroying work when something goes wrong.

A long run meets faults its code did not cause: a scheduler's SIGTERM, a full
disk, a damaged file, a learning rate that diverges, a second run started on
the same folder, ranks started with different options. train.py uses these
pieces so that each one ends in a clear line and a non-zero exit, and never in
a hang or a lost checkpoint:

- ``StopRequested``: Ctrl-C and SIGTERM set a flag that the loop reads after each step
  (a second one stops the process at once).
- ``lock_folder``: one run per checkpoint folder (an ``fcntl.flock`` held for the process's life).
- ``load_on_every_rank``, ``settings_problem`` and ``checkpoint_must_fit``: a checkpoint
  continues only the run that wrote it, and a rank that cannot read it stops them all.
- ``first_nonfinite``: no checkpoint is ever written with NaN or Inf weights.
- ``Stopped`` (every rank stopped at the same point) and ``RunError`` (one rank on its
  own, so the whole job must end), and ``run_guarded``, which turns both, damaged
  files and OS errors into one line on stderr, with the traceback only when asked.
"""
import contextlib
import fcntl
import os
import signal
import sys
import traceback

import numpy as np

from . import distributed as dist
from .data import DatasetError
from .serialization import CheckpointError, load


class Stopped(Exception):
    """A reason to stop that every rank met at the same point: rank 0 reports it, all exit with ``exit_code``."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class RunError(Exception):
    """A problem one rank met on its own (a file it cannot write): it ends the whole job."""


class StopRequested:
    """Ctrl-C or SIGTERM sets a flag; the loop stops after the step in progress, at a consistent state."""

    def __init__(self):
        self.signal = None
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)  # what a scheduler sends before it kills a job

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: stop at once, without a checkpoint
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signal = signum

    @property
    def exit_code(self):
        """128 + the signal, as a shell reports a process that a signal ended."""
        return 128 + (self.signal or signal.SIGINT)

    def check(self, diverged):
        """(a stop was requested, the loss is not finite) on any rank: every rank gets the same answer."""
        flags = np.array([self.signal is not None, diverged], dtype=np.float64)
        if dist.get_world_size() > 1:
            flags = dist.all_reduce_sum(flags)  # so that every rank stops at the same step
        return bool(flags[0]), bool(flags[1])


_held_locks = []  # open lock files: each lock lasts as long as this process


def lock_folder(folder, program="train.py"):
    """Hold an exclusive lock on ``folder/.lock`` while this process lives.

    Returns None, or a sentence naming the process that holds the lock already.
    """
    os.makedirs(folder, exist_ok=True)
    handle = open(os.path.join(folder, ".lock"), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        return f"{folder} is in use by another {program} (pid {holder}): wait for it, or use another folder"
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held_locks.append(handle)
    return None


def settings_problem(path, saved, current, changeable):
    """The first setting in ``current`` that differs from the ``saved`` one, as a sentence, or None.

    ``saved`` and ``current`` map option names (``lr``) to values; names in
    ``changeable`` may differ, and names absent from ``saved`` are not compared.
    """
    if not isinstance(saved, dict):
        return f"{path}: holds no settings to compare with"
    for key, value in current.items():
        if key not in changeable and key in saved and saved[key] != value:
            flag = "--" + key.replace("_", "-")
            return (f"{path} was trained with {flag} {saved[key]!r}, this run asks for {value!r}: resume "
                    f"with the checkpoint's options, or start afresh with --overwrite")
    return None


def load_on_every_rank(path, check):
    """The state saved at ``path``, read by every rank; ``check(state)`` says why it cannot be used, or None.

    A damaged file, or a check that fails, on any one rank raises ``Stopped`` on every rank.
    """
    state, problem = None, None
    try:
        state = load(path)
        problem = check(state)
    except (CheckpointError, OSError) as error:
        problem = describe(error)
    problem = dist.first_problem(problem)
    if problem is not None:
        raise Stopped(problem, 1)  # the file, not the options, is what cannot be used
    return state


@contextlib.contextmanager
def checkpoint_must_fit(path):
    """Turn a state that does not fit the model, optimizer or schedule into a CheckpointError."""
    try:
        yield
    except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(path, f"does not fit this run ({type(error).__name__}: {error})") from None


def first_nonfinite(model):
    """The name of the first parameter or buffer holding NaN or Inf, or None."""
    for name, value in model.state_dict().items():
        if not np.isfinite(value.numpy()).all():
            return name
    return None


def describe(error):
    """One line for an error a user can fix: the file, then what is wrong with it."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted before training started; nothing was saved"
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def run_guarded(function, arguments, program="train.py"):
    """``function(arguments)``, with a user's error as one line on stderr and a non-zero exit.

    ``--debug`` in ``arguments`` or ``MINIGRAD_DEBUG=1`` also prints the traceback.
    Under mpirun an error that one rank met alone ends every rank (``dist.abort``).
    """
    debug = "--debug" in arguments or os.environ.get("MINIGRAD_DEBUG") == "1"
    try:
        return function(arguments)
    except SystemExit as exit:  # an argument error, found before the ranks could agree on it
        if exit.code not in (0, None):
            dist.abort(exit.code)
        raise
    except Stopped as stop:  # every rank stops here together
        if debug:
            traceback.print_exc()
        if dist.get_rank() == 0:
            print(f"{program}: error: {stop}", file=sys.stderr, flush=True)
        return stop.exit_code
    except (CheckpointError, DatasetError, OSError, RunError, KeyboardInterrupt) as error:
        if debug:
            traceback.print_exc()
        several = dist.is_initialized() and dist.get_world_size() > 1
        where = f"[rank {dist.get_rank()}] " if several else ""
        print(f"{where}{program}: error: {describe(error)}", file=sys.stderr, flush=True)
        dist.abort(130 if isinstance(error, KeyboardInterrupt) else 1)
