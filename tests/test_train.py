"""train.py end to end on a small slice of real Fashion-MNIST: logs, checkpoints, resume, errors."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from faults import write_tiny_dataset
from minigrad import distributed

ROOT = Path(__file__).resolve().parents[1]
DATA = "/usr/share/datasets/fashion-mnist"
needs_data = pytest.mark.skipif(not os.path.isdir(DATA), reason="Debian's dataset-fashion-mnist is not installed")
SMALL = ["--train-samples", "1536", "--test-samples", "500", "--batch-size", "64", "--no-progress"]


def train(tmp_path, *args, check=True, env=None):
    command = [sys.executable, str(ROOT / "train.py"), "--checkpoint", str(tmp_path / "ck"), *SMALL, *args]
    environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def final_weights(tmp_path):
    return mg.load(tmp_path / "ck" / "last.npz")["model"]


@needs_data
def test_a_short_run_writes_log_checkpoint_and_plot(tmp_path):
    result = train(tmp_path, "--epochs", "2", "--log", "metrics.jsonl", "--plot", "curves.png")
    assert "epoch   2/2" in result.stdout and "done: test accuracy" in result.stdout
    # the header says when batch norm and max-pool run as compiled loops (minigrad/nn/cpu_kernels.py)
    assert (", numba kernels" in result.stdout.splitlines()[0]) == mg.nn.cpu_kernels.use_numba
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[0]) == {"epoch", "step", "loss", "accuracy", "test_loss", "test_accuracy", "lr",
                               "sparsity", "time"}
    assert records[1]["step"] == 2 * (1536 // 64)
    assert records[1]["loss"] < records[0]["loss"] and records[1]["test_accuracy"] > 0.5
    assert records[1]["lr"] < records[0]["lr"]  # cosine decay
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    state = mg.load(tmp_path / "ck" / "last.npz")
    assert state["epoch"] == 2 and "0.weight" in state["model"] and state["optimizer"]["state"]


@needs_data
def test_stopped_and_resumed_run_ends_bitwise_equal(tmp_path):
    options = ["--epochs", "3", "--prune-amount", "0.5", "--seed", "3"]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    train(tmp_path / "a", *options)
    train(tmp_path / "b", *options, "--stop-after", "1")
    assert mg.load(tmp_path / "b" / "ck" / "last.npz")["epoch"] == 1
    train(tmp_path / "b", *options, "--resume")
    uninterrupted, resumed = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert list(uninterrupted) == list(resumed)
    for key in uninterrupted:
        np.testing.assert_array_equal(resumed[key].numpy(), uninterrupted[key].numpy(), err_msg=key)


@needs_data
def test_ctrl_c_saves_the_last_step_and_resume_continues_exactly(tmp_path):
    # epochs of a few seconds, so that the signal lands inside epoch 2
    options = ["--epochs", "2", "--seed", "5", "--train-samples", "4096"]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    train(tmp_path / "a", *options)
    command = [sys.executable, str(ROOT / "train.py"), "--checkpoint", str(tmp_path / "b" / "ck"), *SMALL, *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path / "b", env=dict(os.environ, OMP_NUM_THREADS="1"))
    for line in process.stdout:  # interrupt once the first epoch is done
        if line.startswith("epoch   1/2"):
            process.send_signal(signal.SIGINT)
            break
    output = line + process.stdout.read()
    assert process.wait(timeout=120) == 130, output
    assert "interrupted: saved" in output
    stopped = mg.load(tmp_path / "b" / "ck" / "last.npz")
    assert stopped["epoch"] == 1 and stopped["batches_done"] >= 1  # inside epoch 2
    train(tmp_path / "b", *options, "--resume")
    uninterrupted, resumed = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    for key in uninterrupted:
        np.testing.assert_array_equal(resumed[key].numpy(), uninterrupted[key].numpy(), err_msg=key)


@pytest.mark.parametrize("args, message", [
    (["--lr", "-0.1"], "argument --lr: must be positive"),
    (["--schedule", "linear"], "argument --schedule: invalid choice: 'linear'"),
    (["--data-dir", "/nonexistent/folder"], "--data-dir /nonexistent/folder is not a directory"),
    (["--prune-amount", "1.5"], "argument --prune-amount: must be a fraction"),
    (["--resume"], "--resume: no checkpoint at"),
    (["--model", "mlp", "--no-bn"], "--no-bn applies to --model cnn, not mlp"),
    pytest.param(["--device", "cuda"], "--device cuda: no GPU is usable here",
                 marks=pytest.mark.skipif(mg.cuda_is_available(), reason="this machine has a GPU")),
])
def test_bad_arguments_are_one_line_errors_with_exit_code_2(tmp_path, args, message):
    result = train(tmp_path, *args, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


@pytest.mark.mpi
@needs_data
def test_batch_smaller_than_the_ranks_is_an_error_before_any_work(tmp_path):
    command = [distributed.find_mpiexec(), "-n", "2", sys.executable, str(ROOT / "train.py"), "--batch-size", "1",
               "--no-progress", "--checkpoint", str(tmp_path / "ck")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert "--batch-size 1 is smaller than the 2 ranks" in result.stderr


@pytest.mark.mpi
@needs_data
def test_two_ranks_train_and_only_rank_0_writes(tmp_path):
    command = [distributed.find_mpiexec(), "-n", "2", sys.executable, str(ROOT / "train.py"),
               "--checkpoint", str(tmp_path / "ck"), *SMALL, "--epochs", "2", "--log", "metrics.jsonl"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rank(s), batch 64 (32 per rank)" in result.stdout
    assert result.stdout.count("epoch   2/2") == 1  # only rank 0 prints
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[1]["test_accuracy"] > 0.5


# ----- options for experiments, checked on tiny synthetic data -----------------------------
def train_script():
    """train.py as a module, to build a run in this process."""
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_run(tmp_path, *flags):
    data = write_tiny_dataset(tmp_path / "data", train=64, test=16)
    script = train_script()
    args = script.build_parser().parse_args(["--data-dir", data, "--batch-size", "16", *flags])
    return script.build(args, "cpu", 0, 1), data


def epoch_labels(run, epoch):
    run.loader.set_epoch(epoch)
    return np.concatenate([labels.numpy() for _, labels in run.loader])


def test_no_shuffle_keeps_the_dataset_order_in_every_epoch(tmp_path):
    run, data = build_run(tmp_path, "--model", "mlp", "--no-shuffle")
    in_file = mg.data.read_idx(os.path.join(data, "train-labels-idx1-ubyte"))
    for epoch in range(2):
        np.testing.assert_array_equal(epoch_labels(run, epoch), in_file)
    shuffled, _ = build_run(tmp_path, "--model", "mlp")
    assert sorted(epoch_labels(shuffled, 0)) == sorted(in_file)
    assert not np.array_equal(epoch_labels(shuffled, 0), in_file)


def test_no_bn_is_the_cnn_without_batchnorm_and_it_trains(tmp_path):
    run, _ = build_run(tmp_path, "--model", "cnn", "--no-bn")
    kinds = [type(module).__name__ for module in run.model.modules()]
    assert "BatchNorm2d" not in kinds and kinds.count("Conv2d") == 2
    assert all(module.bias is not None for module in run.model.modules() if type(module).__name__ == "Conv2d")
    with_bn, _ = build_run(tmp_path, "--model", "cnn")
    assert [type(m).__name__ for m in with_bn.model.modules()].count("BatchNorm2d") == 2
    images, labels = next(iter(run.loader))
    before = run.model[0].weight.numpy().copy()
    loss = mg.functional.cross_entropy(run.model(images), labels)
    loss.backward()
    run.optimizer.step()
    assert np.isfinite(loss.item()) and not np.array_equal(run.model[0].weight.numpy(), before)
