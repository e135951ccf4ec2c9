"""train.py under mpiexec when something is wrong: no job hangs, no rank trains on alone.

Real ``mpiexec`` jobs of 2 and 3 ranks (one thread each), each with a hard time limit: ranks
started with different options refuse at start naming the first difference; a problem that only
one rank meets (an argument error, a missing checkpoint, a damaged file) ends every rank at
once; SIGTERM saves the last step, and the resumed run matches an uninterrupted one."""
import signal
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from faults import QUICK, TRAIN, assert_one_line_error, environment, mpiexec, run_job, run_train, write_tiny_dataset

pytestmark = pytest.mark.mpi


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def arguments(data, *extra):
    return ["--data-dir", str(data), *QUICK, "--checkpoint", "ck", *extra]


def test_an_argument_error_on_one_rank_ends_the_whole_job(tmp_path, data):
    result = run_job([(tmp_path, arguments(data)), (tmp_path, arguments(data, "--lr", "-1"))])
    assert result.returncode != 0
    assert "train.py: error: argument --lr: must be positive and finite, got -1" in result.stderr


@pytest.mark.parametrize("flag, first, second", [
    ("--lr", "0.05", "0.06"), ("--seed", "0", "1"), ("--batch-size", "16", "32"), ("--epochs", "2", "3")])
def test_ranks_started_with_different_options_refuse_naming_the_first(tmp_path, data, flag, first, second):
    result = run_job([(tmp_path, arguments(data, flag, first)), (tmp_path, arguments(data, flag, second))])
    assert_one_line_error(result, "the ranks were started with different options",
                          f"rank 1 has {flag} = {float(second) if flag == '--lr' else int(second)!r}")
    assert not (tmp_path / "ck" / "last.npz").exists()


def test_a_checkpoint_missing_on_one_rank_stops_every_rank(tmp_path, data):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert run_train(tmp_path / "a", data, "--checkpoint", "ck").returncode == 0
    result = run_job([(tmp_path / "a", arguments(data, "--resume")), (tmp_path / "b", arguments(data, "--resume"))])
    assert_one_line_error(result, "rank 1: --resume: no checkpoint at ck/last.npz")


def test_a_damaged_file_on_one_rank_ends_the_whole_job(tmp_path, data):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    write_tiny_dataset(tmp_path / "a" / "data")
    write_tiny_dataset(tmp_path / "b" / "data")
    labels = tmp_path / "b" / "data" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    options = ["--data-dir", "data", *QUICK, "--checkpoint", "ck"]
    result = run_job([(tmp_path / "a", options), (tmp_path / "b", options)])
    assert result.returncode != 0
    assert "[rank 1] train.py: error: data/train-labels-idx1-ubyte: truncated" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path, data):
    result = run_job([(tmp_path, arguments(data))] * 3)
    assert_one_line_error(result, "--batch-size 16 does not split evenly over 3 ranks: use 15 or 18")


def launch(folder, data, *extra):
    command = [mpiexec(), "-n", "2", sys.executable, TRAIN, *arguments(data, "--seed", "2", *extra)]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment())


def test_sigterm_under_mpiexec_saves_and_the_resumed_run_matches(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", train=2048)  # epochs of 128 steps
    (tmp_path / "whole").mkdir(), (tmp_path / "cut").mkdir()
    whole = launch(tmp_path / "whole", data)
    assert whole.wait(timeout=120) == 0, whole.stderr.read()
    job = launch(tmp_path / "cut", data)
    assert job.stdout.readline().startswith("minigrad")  # every rank's handler is in place by now
    job.send_signal(signal.SIGTERM)
    output, errors = job.communicate(timeout=60)
    assert "interrupted: saved ck/last.npz at epoch 1" in output, output + errors
    stopped = mg.load(tmp_path / "cut" / "ck" / "last.npz")
    assert stopped["epoch"] == 0 and stopped["batches_done"] >= 1
    resumed = launch(tmp_path / "cut", data, "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    expected = mg.load(tmp_path / "whole" / "ck" / "last.npz")
    found = mg.load(tmp_path / "cut" / "ck" / "last.npz")
    for key, value in expected["model"].items():
        np.testing.assert_allclose(found["model"][key].numpy(), value.numpy(), rtol=1e-12, atol=0, err_msg=key)
    # the interrupted epoch's loss counts every rank's steps before the signal exactly once
    np.testing.assert_allclose([row["loss"] for row in found["history"]],
                               [row["loss"] for row in expected["history"]], rtol=1e-9)
