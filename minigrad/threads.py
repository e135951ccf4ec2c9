"""How many threads each process uses on the CPU, so that processes never oversubscribe the cores.

NumPy's BLAS (OpenBLAS, MKL) starts one thread per core when it loads. That is
right for one process, and wrong for ``mpirun -n 4 python train.py``: four
ranks with a thread per core each run 4x more threads than there are cores,
and the threads spin while they wait for each other (a job several times
slower). The policy:

    threads = the user's setting                          when OMP_NUM_THREADS (or a BLAS variable) is set
            = max(1, cores given to this process // ranks on this machine)     otherwise

The cores are the process's CPU affinity mask (``os.sched_getaffinity``), which
a batch scheduler or ``taskset`` narrows; the ranks on this machine come from
MPI's shared-memory communicator when the caller knows it, else from the
variables that ``mpiexec`` sets in every rank (MPICH and Intel MPI's hydra,
Open MPI, MVAPICH). ``apply()`` limits the BLAS pools that are already loaded
with threadpoolctl, so it works whenever it is called.

    import minigrad as mg
    mg.threads.apply()            # at the start of a script; returns the chosen count
    mg.get_num_threads()          # what minigrad's own CPU passes use
"""
import ctypes
import os
import sys
from collections import namedtuple

# Variables a user sets to choose the thread count; the first one set wins, OMP_NUM_THREADS first.
USER_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                  "VECLIB_MAXIMUM_THREADS")

# How many ranks share this machine, as mpiexec tells each rank: MPICH/Intel MPI (hydra), Open MPI, MVAPICH.
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")

ThreadChoice = namedtuple("ThreadChoice", ["threads", "reason"])

_num_threads = None  # set by apply() or set_num_threads(); None: choose on first use


def _positive_int(text):
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def cores_available():
    """The cores this process may run on: its affinity mask where the OS has one, else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def user_setting(environ=None):
    """``(variable, threads)`` for the first thread variable the user set to a positive integer, else None."""
    environ = os.environ if environ is None else environ
    for name in USER_VARIABLES:
        threads = _positive_int(environ.get(name))
        if threads is not None:
            return name, threads
    return None


def ranks_on_this_node(environ=None, local_size=None):
    """How many processes of the job share this machine: ``local_size`` when the caller knows it
    (MPI's shared-memory communicator), else mpiexec's variables, else 1."""
    if local_size is not None:
        return max(1, int(local_size))
    environ = os.environ if environ is None else environ
    for name in LOCAL_SIZE_VARIABLES:
        ranks = _positive_int(environ.get(name))
        if ranks is not None:
            return ranks
    return 1


def choose(environ=None, cores=None, local_size=None):
    """The thread count for this process and why, as a ``ThreadChoice(threads, reason)``.

    ``environ`` (default ``os.environ``), ``cores`` (default: the affinity mask) and
    ``local_size`` (ranks on this machine, default: from mpiexec's variables) can be
    passed in, so the arithmetic can be checked without a job.
    """
    setting = user_setting(environ)
    if setting is not None:
        name, threads = setting
        return ThreadChoice(threads, f"{name}={threads}")
    cores = cores_available() if cores is None else cores
    ranks = ranks_on_this_node(environ, local_size)
    threads = max(1, cores // ranks)
    return ThreadChoice(threads, f"{cores} core(s) / {ranks} rank(s) on this machine")


def set_num_threads(threads):
    """Use ``threads`` threads in the BLAS and in minigrad's own CPU passes (like ``torch.set_num_threads``)."""
    global _num_threads
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {threads}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it only threads started later follow the choice
        pass
    else:
        threadpool_limits(limits=threads)
    _num_threads = threads


def get_num_threads():
    """The threads minigrad's CPU passes use: the last ``set_num_threads``/``apply``, else the policy's choice."""
    return choose().threads if _num_threads is None else _num_threads


def apply(environ=None, local_size=None):
    """Choose the thread count by the policy above and set it; return the ``ThreadChoice``.

    A count the user set is left to the libraries that read it (only minigrad's
    own passes are told); otherwise every loaded BLAS pool is limited to it.
    """
    global _num_threads
    choice = choose(environ, local_size=local_size)
    if user_setting(environ) is not None:
        _num_threads = choice.threads
    else:
        set_num_threads(choice.threads)
    return choice


# OpenBLAS's idle threads spin for 2**28 clock ticks (about 0.1 s) after every call before they
# sleep, so between two GEMMs a spinning BLAS thread holds the core that minigrad's own threads
# (or another rank) need for the NumPy passes: with 2 threads on 2 cores, train.py's default CNN
# step took 128 ms with the long spin and 85 ms with 2**20 ticks (about 0.4 ms, still long
# enough to bridge the gaps between the GEMMs of one layer).
BLAS_SPIN = 20  # log2 of the clock ticks OpenBLAS's idle threads spin (its OPENBLAS_THREAD_TIMEOUT)


def shorten_blas_spin(environ=None):
    """Make OpenBLAS's idle threads sleep after 2**BLAS_SPIN ticks, unless OPENBLAS_THREAD_TIMEOUT is
    set. OpenBLAS reads the variable when it loads; if NumPy has loaded it already, its settings are
    read again and its threads stopped (they restart with the next call). False where nothing changed."""
    environ = os.environ if environ is None else environ
    if "OPENBLAS_THREAD_TIMEOUT" in environ:
        return False  # the user's choice
    environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_SPIN)
    if "numpy" not in sys.modules:
        return True
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info["internal_api"] == "openblas":
                library = ctypes.CDLL(info["filepath"])
                library.openblas_read_env()       # what OpenBLAS runs when it loads
                library.blas_thread_shutdown_()   # what it runs before a fork; threads restart on demand
        return True
    except (ImportError, OSError, AttributeError):  # another BLAS, or an OpenBLAS without these
        return False
