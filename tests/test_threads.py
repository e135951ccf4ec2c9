"""The thread policy: each process takes its share of the cores unless the user chose a count.

Nothing here is timed: the tests check the arithmetic of ``mg.threads.choose``
on made-up environments, core counts and rank counts.
"""
import os

import pytest

import minigrad as mg
from minigrad import threads


def test_one_process_takes_every_core_it_is_given():
    assert threads.choose(environ={}, cores=8).threads == 8


def test_ranks_on_one_machine_share_its_cores():
    # MPICH's hydra, Open MPI and MVAPICH each name the ranks-per-machine differently.
    assert threads.choose(environ={"MPI_LOCALNRANKS": "4"}, cores=8).threads == 2
    assert threads.choose(environ={"OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, cores=8).threads == 4
    assert threads.choose(environ={"MV2_COMM_WORLD_LOCAL_SIZE": "3"}, cores=8).threads == 2  # 8 // 3


def test_more_ranks_than_cores_still_gives_one_thread():
    assert threads.choose(environ={"MPI_LOCALNRANKS": "4"}, cores=2).threads == 1


def test_the_communicator_size_overrides_the_launcher_variables():
    choice = threads.choose(environ={"MPI_LOCALNRANKS": "4"}, cores=8, local_size=2)
    assert choice.threads == 4
    assert "2 rank(s)" in choice.reason


def test_a_users_setting_is_respected_whatever_the_cores_and_ranks():
    environ = {"OMP_NUM_THREADS": "3", "MPI_LOCALNRANKS": "4"}
    choice = threads.choose(environ=environ, cores=2, local_size=4)
    assert choice == (3, "OMP_NUM_THREADS=3")
    assert threads.choose(environ={"OPENBLAS_NUM_THREADS": "5"}, cores=2).threads == 5
    # OMP_NUM_THREADS comes first when several are set.
    assert threads.choose(environ={"MKL_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}, cores=8).threads == 1


@pytest.mark.parametrize("value", ["", "0", "-2", "four"])
def test_a_setting_that_is_not_a_positive_count_is_ignored(value):
    assert threads.choose(environ={"OMP_NUM_THREADS": value}, cores=6, local_size=3).threads == 2


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")
def test_the_affinity_mask_is_the_core_count():
    assert threads.cores_available() == len(os.sched_getaffinity(0))
    assert threads.choose(environ={}).threads == len(os.sched_getaffinity(0))


def test_apply_limits_the_blas_and_reports_the_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    try:
        choice = threads.apply(environ={}, local_size=len(os.sched_getaffinity(0)))
        assert choice.threads == 1
        assert mg.get_num_threads() == 1
        for pool in threadpoolctl.threadpool_info():
            if pool["user_api"] == "blas":
                assert pool["num_threads"] == 1
    finally:
        mg.set_num_threads(threads.choose().threads)


def test_apply_leaves_a_users_count_to_the_libraries():
    choice = threads.apply(environ={"OMP_NUM_THREADS": "1"})
    assert choice.threads == mg.get_num_threads() == 1


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="set_num_threads: expected a positive number of threads, got 0"):
        mg.set_num_threads(0)


def test_blas_spin_is_shortened_unless_the_user_chose_one():
    environ = {}
    threads.shorten_blas_spin(environ)  # NumPy is loaded: this also re-reads OpenBLAS's settings
    assert environ["OPENBLAS_THREAD_TIMEOUT"] == str(threads.BLAS_SPIN)
    chosen = {"OPENBLAS_THREAD_TIMEOUT": "28"}
    assert threads.shorten_blas_spin(chosen) is False and chosen == {"OPENBLAS_THREAD_TIMEOUT": "28"}


def test_numpys_openblas_spins_for_the_short_time_after_import():
    """What the loaded OpenBLAS itself reports: minigrad's import set it (this test process has no
    OPENBLAS_THREAD_TIMEOUT of its own, or the check is about the user's value)."""
    import ctypes
    threadpoolctl = pytest.importorskip("threadpoolctl")
    libraries = [info for info in threadpoolctl.threadpool_info() if info["internal_api"] == "openblas"]
    if not libraries:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    expected = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", threads.BLAS_SPIN))
    for info in libraries:
        assert ctypes.CDLL(info["filepath"]).openblas_thread_timeout() == expected
