"""What distributed data-parallel training guarantees (``mg.distributed``).

The tests marked ``mpi`` launch real jobs: ``mpiexec -n 2`` and ``-n 4`` running
the scripts in tests/mpi_workers/, one thread per rank. The others check, in
this process, the pieces that need no second process.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn
from minigrad.distributed.data_parallel import GradientBuckets, _first_difference
from minigrad.autograd import queue_callback
from minigrad.function import Function

from faults import mpiexec

WORKERS = Path(__file__).parent / "mpi_workers"
ROOT = Path(__file__).parent.parent
_mpiexec = mpiexec  # skips the test where there is none


def _run(arguments, timeout=90, env=None):
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **(env or {}))
    started = time.monotonic()
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout, env=environment)
    return result, time.monotonic() - started


def _run_job(ranks, worker, *arguments, timeout=90):
    return _run([_mpiexec(), "-n", str(ranks), sys.executable, str(WORKERS / worker), *arguments], timeout)


def _last_json_line(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----- in this process ----------------------------------------------------------------

def test_queue_callback_runs_once_after_every_leaf_has_its_final_gradient():
    seen = []

    class Mark(Function):  # identity whose backward runs before w has all its gradient
        def forward(self, x):
            return x

        def backward(self, grad):
            queue_callback(lambda: seen.append(w.grad.numpy().copy()))
            return grad

    w = mg.tensor([1.0, 2.0], requires_grad=True)
    (Mark.apply(w * 3) * 2 + w).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [7.0, 7.0])  # d/dw (6w + w)


def test_buckets_follow_registration_order_cap_and_dtype():
    model = nn.Sequential(nn.Linear(100, 100), nn.Linear(100, 10), nn.Linear(10, 10, dtype=np.float64))
    parameters = list(model.parameters())
    position = {id(p): index for index, p in enumerate(parameters)}
    # 0.03 MB = 31457 bytes: the 40000-byte first weight is over the cap and gets a bucket of
    # its own; the next three (4440 bytes) share one; float64 parameters start a new bucket.
    buckets = GradientBuckets(parameters, bucket_cap_mb=0.03).buckets
    assert [[position[id(p)] for p in bucket.parameters] for bucket in buckets] == [[0], [1, 2, 3], [4, 5]]
    assert [bucket.flat.dtype for bucket in buckets] == [np.float32, np.float32, np.float64]
    assert [bucket.flat.size for bucket in buckets] == [10000, 100 + 1000 + 10, 100 + 10]


def test_first_difference_names_the_parameter_and_both_ranks():
    root = [("parameter", "0.weight", (16, 8), "float32"), ("parameter", "0.bias", (16,), "float32")]
    assert _first_difference(root, root, rank=1, root=0) is None
    changed = [root[0], ("parameter", "0.bias", (17,), "float32")]
    assert _first_difference(changed, root, 1, 0) == (
        "rank 1 has parameter '0.bias' with shape (17,) and dtype float32, but rank 0 has "
        "parameter '0.bias' with shape (16,) and dtype float32")
    assert "the first one only rank 0 has is parameter '0.bias'" in _first_difference(root[:1], root, 1, 0)


def test_convert_sync_batchnorm_keeps_the_same_tensors_order_and_mode():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=None),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(8, affine=False)))
    model[2].eval()
    before = list(model.named_parameters()) + list(model.named_buffers())
    assert dist.convert_sync_batchnorm(model) is model
    after = list(model.named_parameters()) + list(model.named_buffers())
    assert [name for name, _ in after] == [name for name, _ in before]
    assert all(new is old for (_, new), (_, old) in zip(after, before))
    assert [type(layer).__name__ for layer in (model[1], model[2][1])] == ["SyncBatchNorm"] * 2
    assert model[1].momentum is None and model[1].training and not model[2][1].training
    assert not model[2][1].affine and model[2][1].weight is None
    assert isinstance(dist.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3)), dist.SyncBatchNorm)


# ----- a world of one -----------------------------------------------------------------

def test_without_mpirun_a_script_runs_as_a_world_of_one():
    result, _ = _run([sys.executable, str(WORKERS / "ddp_equivalence.py")])
    report = _last_json_line(result)
    assert report["world_size"] == 1 and report["mean_rank"] == 0.0
    assert report["max_diff_ddp"] == 0.0 and report["max_diff_explicit"] == 0.0
    assert report["unused_grad"] is None  # nothing was averaged, so nothing was filled in


def test_without_mpi4py_import_and_training_still_work():
    blocked = ("import sys, runpy; sys.modules['mpi4py'] = None; "
               f"sys.argv = [{str(WORKERS / 'ddp_equivalence.py')!r}]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    report = _last_json_line(_run([sys.executable, "-c", blocked])[0])
    assert report["world_size"] == 1 and not report["mpi4py_loaded"]
    assert report["max_diff_ddp"] == 0.0


def test_import_minigrad_does_not_import_mpi4py():
    result, _ = _run([sys.executable, "-c", "import sys, minigrad; print('mpi4py' in sys.modules)"])
    assert result.stdout.strip() == "False", result.stderr


def test_started_by_mpirun_without_mpi4py_is_an_error_not_a_silent_world_of_one():
    code = ("import sys; sys.modules['mpi4py'] = None; import minigrad.distributed as d; d.init()")
    result, _ = _run([sys.executable, "-c", code], env={"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert result.returncode != 0
    assert "started by mpirun/mpiexec, but mpi4py cannot be imported" in result.stderr


# ----- real MPI jobs ------------------------------------------------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_n_ranks_with_b_over_n_samples_follow_one_process_with_b(ranks):
    report = _last_json_line(_run_job(ranks, "ddp_equivalence.py")[0])
    assert report["world_size"] == ranks and report["local_rank_of_root"] == 0
    assert report["training_moved_parameters_by"] > 1e-2  # the comparison below is not trivial
    assert report["max_diff_ddp"] <= 1e-6, report        # DistributedDataParallel, float64
    assert report["max_diff_explicit"] <= 1e-6, report   # allreduce_gradients with many buckets
    assert report["max_diff_no_sync_accumulation"] <= 1e-6, report  # two half-batches, one average
    assert report["no_sync_kept_gradients_local"]       # inside no_sync() nothing was averaged
    assert report["ranks_bitwise_identical"]
    assert report["unused_grad"] == 0.0                  # no rank's .grad is None: all agree
    assert report["optimizer_state_broadcast"] and report["resumed_lr"] == [0.05] * ranks
    assert report["mean_rank"] == (ranks - 1) / 2
    assert report["rank_sum"] == [ranks * (ranks - 1) // 2, ranks]
    assert abs(report["mean_loss"] - report["reference_last_loss"]) <= 1e-9


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_sync_batchnorm_ranks_follow_one_process_with_plain_batchnorm(ranks):
    report = _last_json_line(_run_job(ranks, "syncbn_equivalence.py")[0])
    assert report["layers_after_conversion"] == ["Conv2d", "SyncBatchNorm", "ReLU", "Flatten", "Linear",
                                                 "SyncBatchNorm", "ReLU", "Linear"]
    assert report["registration_order_kept"]
    assert report["training_moved_parameters_by"] > 1e-2
    assert report["max_diff_plain_batchnorm"] > 1e-3    # per-shard statistics do drift away
    assert report["max_diff_sync_batchnorm"] <= 1e-6, report  # parameters and running statistics
    assert report["ranks_bitwise_identical"]


@pytest.mark.mpi
def test_an_exception_on_one_rank_ends_the_whole_job_within_seconds():
    result, seconds = _run_job(2, "misbehave.py", "raise", timeout=60)
    assert result.returncode != 0
    assert "[rank 1] ValueError: rank 1 fails on purpose" in result.stderr
    assert "rank 0 finished" not in result.stdout
    assert seconds < 20


@pytest.mark.mpi
def test_ranks_with_different_models_stop_with_the_first_difference():
    result, _ = _run_job(2, "misbehave.py", "mismatch", timeout=60)
    assert result.returncode != 0
    assert ("rank 1 has parameter '0.weight' with shape (17, 8) and dtype float32, "
            "but rank 0 has parameter '0.weight' with shape (16, 8)") in result.stderr
    assert "finished" not in result.stdout


@pytest.mark.gpu
@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["mpi", "nccl"])
def test_two_ranks_on_gpus_follow_one_cpu_process(backend):
    """'mpi': CuPy buffers through CUDA-aware MPI or host staging (two ranks may share one GPU);
    'nccl': NCCL bootstrapped over MPI, which needs a GPU per rank."""
    cupy = mg.backend.cupy()
    if backend == "nccl":
        from cupy.cuda import nccl
        if not nccl.available or cupy.cuda.runtime.getDeviceCount() < 2:
            pytest.skip("NCCL needs cupy.cuda.nccl and two GPUs")
    result, _ = _run_job(2, "ddp_equivalence.py", "--device", "cuda", "--backend", backend, timeout=240)
    report = _last_json_line(result)
    assert report["device"] == "cuda"
    assert max(report["max_diff_ddp"], report["max_diff_explicit"], report["max_diff_no_sync_accumulation"]) <= 1e-6
    assert report["ranks_bitwise_identical"] and report["no_sync_kept_gradients_local"]
