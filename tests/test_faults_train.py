"""train.py on one process under faults: it never clobbers a checkpoint, never saves non-finite
weights, survives SIGTERM like Ctrl-C, refuses a second run on its folder and a resume with other
settings, and reports every error as one line that names the file. Each run has a hard time limit."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from faults import (assert_one_line_error, environment, run_patched, run_train, train_command,
                    write_tiny_dataset)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def longer_data(tmp_path_factory):
    """Epochs of 128 steps, so that a signal sent at the start lands inside the first."""
    return write_tiny_dataset(tmp_path_factory.mktemp("longer"), train=2048)


@pytest.fixture
def finished(tmp_path, data):
    """A folder whose ck/ holds the checkpoint of a finished run; returns (folder, its bytes)."""
    result = run_train(tmp_path, data, "--checkpoint", "ck")
    assert result.returncode == 0, result.stderr
    return tmp_path, (tmp_path / "ck" / "last.npz").read_bytes()


def test_divergence_stops_at_the_first_nonfinite_loss_and_saves_nothing(tmp_path, data):
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--lr", "1e6")
    line = assert_one_line_error(result, "the loss became nan at epoch 1", "diverged", "--lr", code=1)
    assert "epoch   1/2" not in result.stdout and not (tmp_path / "ck" / "last.npz").exists(), line


def test_divergence_leaves_the_earlier_checkpoint_as_it_was(finished, data):
    folder, saved = finished
    result = run_train(folder, data, "--checkpoint", "ck", "--lr", "1e6", "--overwrite")
    assert_one_line_error(result, "diverged", "last checkpoint is unchanged", code=1)
    assert (folder / "ck" / "last.npz").read_bytes() == saved


def test_a_fresh_run_refuses_a_folder_with_a_checkpoint_unless_told(finished, data):
    folder, saved = finished
    refused = run_train(folder, data, "--checkpoint", "ck", "--seed", "1")
    assert_one_line_error(refused, "ck/last.npz holds an earlier run's checkpoint", "--resume", "--overwrite",
                          code=2)
    assert (folder / "ck" / "last.npz").read_bytes() == saved
    replaced = run_train(folder, data, "--checkpoint", "ck", "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert mg.load(folder / "ck" / "last.npz")["args"]["seed"] == 1


def test_resume_with_other_settings_is_refused_naming_the_flag(finished, data):
    folder, saved = finished
    result = run_train(folder, data, "--checkpoint", "ck", "--resume", "--epochs", "2", "--lr", "1e6")
    assert_one_line_error(result, "ck/last.npz was trained with --lr 0.05, this run asks for 1000000.0", code=1)
    assert (folder / "ck" / "last.npz").read_bytes() == saved


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, data):
    first = subprocess.Popen(train_command(data, "--checkpoint", "ck", "--epochs", "10000"), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    try:
        assert first.stdout.readline().startswith("minigrad")  # it holds the lock by now
        second = run_train(tmp_path, data, "--checkpoint", "ck", "--overwrite")
        assert_one_line_error(second, "ck is in use by another train.py", f"pid {first.pid}", code=2)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 128 + signal.SIGTERM, first.stderr.read()
    assert mg.load(tmp_path / "ck" / "last.npz")["args"]["epochs"] == 10000  # the first run's, intact


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_last_step_and_resume_ends_bitwise_equal(tmp_path, longer_data, signum):
    data = longer_data
    uninterrupted = run_train(tmp_path, data, "--checkpoint", "whole", "--seed", "4")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    process = subprocess.Popen(train_command(data, "--checkpoint", "ck", "--seed", "4"), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    assert process.stdout.readline().startswith("minigrad")  # the signal handler is in place by now
    process.send_signal(signum)
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, errors
    assert "interrupted: saved ck/last.npz at epoch 1, step" in output
    stopped = mg.load(tmp_path / "ck" / "last.npz")
    assert stopped["epoch"] == 0 and 1 <= stopped["batches_done"] < 2048 // 16
    resumed = run_train(tmp_path, data, "--checkpoint", "ck", "--seed", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected, found = mg.load(tmp_path / "whole" / "last.npz"), mg.load(tmp_path / "ck" / "last.npz")
    for key, value in expected["model"].items():
        np.testing.assert_array_equal(found["model"][key].numpy(), value.numpy(), err_msg=key)
    assert [row["loss"] for row in found["history"]] == [row["loss"] for row in expected["history"]]


SIGNALED_TWICE = """
import os, signal, sys, time
from minigrad.run_guard import StopRequested
stop = StopRequested()
os.kill(os.getpid(), signal.SIGTERM)
print("first: flag", stop.signal, flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("still alive", flush=True)
"""


def test_a_second_signal_stops_at_once():
    result = subprocess.run([sys.executable, "-c", SIGNALED_TWICE], capture_output=True, text=True, timeout=30,
                            env=environment())
    assert result.returncode == -signal.SIGTERM
    assert result.stdout == f"first: flag {signal.SIGTERM.value}\n"


# Writes past 100 kB fail with EFBIG, as on a full disk (MPI, which maps larger shared-memory
# files at start, is kept out: this run is a world of one).
FILE_SIZE_LIMIT = """
import resource
sys.modules["mpi4py"] = None
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
"""


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temporary(finished, data):
    folder, saved = finished
    result = run_patched(FILE_SIZE_LIMIT, folder, data, "--checkpoint", "ck", "--overwrite", "--seed", "2")
    assert_one_line_error(result, "cannot write ck/last.npz: File too large", "previous checkpoint is unchanged",
                          code=1)
    assert (folder / "ck" / "last.npz").read_bytes() == saved
    assert sorted(os.listdir(folder / "ck")) == [".lock", "last.npz"]


FULL_DISK_AT_RENAME = """
import errno, os
def replace(source, destination):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), source)
os.replace = replace
"""


def test_a_full_disk_at_the_rename_is_one_line_and_loses_nothing(finished, data):
    folder, saved = finished
    result = run_patched(FULL_DISK_AT_RENAME, folder, data, "--checkpoint", "ck", "--overwrite")
    assert_one_line_error(result, "cannot write ck/last.npz: No space left on device", code=1)
    assert (folder / "ck" / "last.npz").read_bytes() == saved
    assert sorted(os.listdir(folder / "ck")) == [".lock", "last.npz"]


def test_unfinished_writes_of_killed_runs_are_removed(finished, data):
    folder, _ = finished
    (folder / "ck" / ".tmp-killed.npz").write_bytes(b"PK\x03\x04 half a checkpoint")
    result = run_train(folder, data, "--checkpoint", "ck", "--resume")
    assert result.returncode == 0, result.stderr
    assert "removed 1 unfinished checkpoint write(s)" in result.stdout
    assert sorted(os.listdir(folder / "ck")) == [".lock", "last.npz"]


def test_stop_after_says_how_many_epochs_ran(tmp_path, data):
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--epochs", "5", "--stop-after", "1")
    assert result.returncode == 0, result.stderr
    assert "stopped after epoch 1 of 5 (--stop-after)" in result.stdout and "done" not in result.stdout


def test_an_empty_data_dir_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_train(tmp_path, tmp_path / "empty", "--checkpoint", "ck")
    assert_one_line_error(result, f"not found in folder {tmp_path / 'empty'}", code=1)


def test_a_damaged_dataset_file_is_one_line_naming_it(tmp_path, data):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in os.listdir(data):
        content = (tmp_path / data / name).read_bytes()
        (damaged / name).write_bytes(content[:-7] if name.startswith("t10k-images") else content)
    result = run_train(tmp_path, damaged, "--checkpoint", "ck")
    assert_one_line_error(result, f"{damaged / 't10k-images-idx3-ubyte'}: truncated", code=1)


@pytest.mark.parametrize("switch", [["--debug"], []])
def test_debug_shows_the_traceback(tmp_path, data, switch):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "last.npz").write_bytes(b"")
    env = None if switch else {"MINIGRAD_DEBUG": "1"}
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--resume", *switch, env=env)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert "train.py: error: ck/last.npz: is empty" in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--seed", "-1"], "argument --seed: must be non-negative"),
    (["--lr", "nan"], "argument --lr: must be positive and finite, got nan"),
    (["--warmup", "-2"], "argument --warmup: must be non-negative"),
    (["--train-samples", "5"], "the training set's 5 images make no batch of 16"),
    (["--plot", "/nonexistent/curves.png"], "--plot /nonexistent/curves.png: its folder does not exist"),
])
def test_options_that_cannot_work_are_one_line(tmp_path, data, options, message):
    result = run_train(tmp_path, data, "--checkpoint", "ck", *options)
    assert_one_line_error(result, message, code=2)


def test_a_checkpoint_with_impossible_progress_is_one_line(finished, data):
    folder, _ = finished
    state = mg.load(folder / "ck" / "last.npz")
    state["epoch"], state["partial"] = 1, [1.0, "two"]
    mg.save(state, folder / "ck" / "last.npz")
    result = run_train(folder, data, "--checkpoint", "ck", "--resume")
    assert_one_line_error(result, "ck/last.npz: does not fit this run (ValueError", code=1)
