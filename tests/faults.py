"""Shared by the fault-injection tests: tiny IDX datasets, train.py and mpiexec runs with a hard
time limit (a hang fails the test), and the check that an error is one line naming its cause."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigrad import distributed
from minigrad.data import write_idx

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "train.py")
# An MLP on a few dozen synthetic images: a whole run takes about a second.
QUICK = ["--model", "mlp", "--batch-size", "16", "--no-progress", "--epochs", "2"]


def write_tiny_dataset(folder, train=96, test=32, seed=0):
    """A Fashion-MNIST-shaped dataset of random images (raw IDX files) in ``folder``."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for split, count in (("train", train), ("t10k", test)):
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"),
                  rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"),
                  rng.integers(0, 10, count, dtype=np.uint8))
    return str(folder)


def environment(extra=None):
    return dict(os.environ, OMP_NUM_THREADS="1", **(extra or {}))


def train_command(data, *args):
    return [sys.executable, TRAIN, "--data-dir", str(data), *QUICK, *args]


def run_train(cwd, data, *args, timeout=60, env=None, **popen):
    """train.py in ``cwd`` (relative --checkpoint folders land there); a hang past ``timeout`` fails."""
    return subprocess.run(train_command(data, *args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment(env), **popen)


_WRAPPER = """
import runpy, sys
{prelude}
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_patched(prelude, cwd, data, *args, timeout=60):
    """train.py run after ``prelude`` (Python source: patch a function, set a limit) in its process."""
    command = [sys.executable, "-c", _WRAPPER.format(prelude=prelude), *train_command(data, *args)[1:]]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment())


def mpiexec():
    found = distributed.find_mpiexec()
    if found is None:
        pytest.skip("no mpiexec next to this Python or on PATH (pip install 'minigrad[mpi]')")
    return found


def run_job(per_rank, timeout=60, cwd=None):
    """One mpiexec job, one process per entry of ``per_rank``: (working folder, train.py arguments)."""
    command = [mpiexec()]
    for folder, arguments in per_rank:
        command += ["-n", "1", "-wdir", str(folder), sys.executable, TRAIN, *arguments, ":"]
    return subprocess.run(command[:-1], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=environment())


def assert_one_line_error(result, *fragments, code=None):
    """Non-zero exit, no traceback, and one 'error:' line that holds every fragment."""
    assert result.returncode != 0 if code is None else result.returncode == code, \
        (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, result.stderr)
    return lines[0]
