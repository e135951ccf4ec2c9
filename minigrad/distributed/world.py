"""Who this process is in the job: its rank, the world size, its GPU, and how a failure ends the job.

``mpirun -n 4 python train.py`` starts four copies of the same script. MPI
numbers them 0..3 (the *rank*) in ``COMM_WORLD``; the *local rank* numbers the
processes that share one machine, and picks each one's GPU:
``gpu = local_rank % visible_gpus``.

mpi4py is imported here, lazily, and nowhere else: ``import minigrad`` never
needs it. Without mpi4py, or without a launcher, ``init()`` makes a world of one
(rank 0, size 1) and every collective in ``mg.distributed`` returns at once, so
the same script runs unchanged on one process.
"""
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from ..backend import cuda_is_available, cupy, normalize_device

# Set by mpiexec/mpirun (MPICH, Open MPI, PMIx, MVAPICH) in every process they start.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")

_BACKENDS = (None, "mpi", "nccl")

# mpiexec forwards each rank's output asynchronously and stops forwarding once an abort
# reaches it; without a pause the traceback that explains the abort is sometimes lost.
_SECONDS_FOR_OUTPUT_TO_REACH_MPIEXEC = 0.3


class World:
    """This process's place in the job.

    ``comm`` is mpi4py's ``COMM_WORLD`` (None in a world of one without mpi4py),
    ``MPI`` the mpi4py module, ``gpu`` the index of the GPU this rank uses (or None),
    ``backend`` the requested transport for GPU arrays (None: choose automatically).
    """

    def __init__(self, comm=None, MPI=None, rank=0, size=1, local_rank=0, local_size=1, backend=None):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = rank, size
        self.local_rank, self.local_size = local_rank, local_size
        self.backend = backend
        self.gpu = None
        self.transports = {}  # filled by collectives.py: how arrays of each kind travel


_world = None


def find_mpiexec():
    """The ``mpiexec`` that belongs to this Python (next to it, as the mpich wheel installs it),
    else the first on PATH; None if there is none."""
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def _launched_by_mpi():
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def _import_mpi():
    """mpi4py's MPI module (importing it starts MPI), or None when there is no MPI here."""
    try:
        from mpi4py import MPI
    except Exception as error:  # ImportError, or an mpi4py whose MPI library will not load
        if _launched_by_mpi():
            raise RuntimeError(
                "distributed.init: this process was started by mpirun/mpiexec, but mpi4py cannot "
                f"be imported ({error}); every rank would train alone. Install it with "
                "pip install 'minigrad[mpi]'") from error
        return None
    return MPI


def _end_job(comm, exit_code):
    """Flush this rank's output, give mpiexec time to forward it, then kill every rank."""
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(_SECONDS_FOR_OUTPUT_TO_REACH_MPIEXEC)
    comm.Abort(exit_code)


def _install_abort_on_exception(comm, rank):
    """Make an uncaught exception on any rank end the whole job.

    Without this, the failing rank exits while the others wait forever in their
    next collective. With it, the rank prints its traceback (each line tagged
    with the rank) and calls ``MPI_Abort``, which makes mpiexec kill every rank
    and exit non-zero. A ``SystemExit`` is no exception here: a script that exits
    on an error must call ``abort`` itself.
    """
    def abort_job(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in text.splitlines()))
        _end_job(comm, 1)

    sys.excepthook = abort_job


def abort(exit_code=1):
    """End the whole job now with ``exit_code``, so that no rank waits forever for this one.

    Under mpirun every rank is killed (``MPI_Abort``); MPI is started first if this
    rank has not joined the job yet (an error found while parsing arguments).
    In a world of one it is ``sys.exit(exit_code)``.
    """
    if _world is not None:
        comm = _world.comm if _world.size > 1 else None
    else:
        MPI = _import_mpi() if _launched_by_mpi() else None
        comm = MPI.COMM_WORLD if MPI is not None and MPI.COMM_WORLD.Get_size() > 1 else None
    if comm is not None:
        _end_job(comm, exit_code)
    sys.exit(exit_code)


def _select_gpu(local_rank, device):
    """Make GPU ``local_rank % count`` current for CuPy; return its index, or None on the CPU.

    With ``device=None`` a GPU is chosen only where CuPy is already in use or the
    machine has an NVIDIA driver, so CPU-only jobs never import CuPy.
    """
    if device is not None and normalize_device(device) == "cpu":
        return None
    if device is None and "cupy" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return None
    if not cuda_is_available():
        if device is None:
            return None
        cupy()  # raises the error that says why CUDA is unavailable
    cuda = cupy().cuda
    index = local_rank % cuda.runtime.getDeviceCount()
    cuda.Device(index).use()
    return index


def init(device=None, backend=None):
    """Join the job (idempotent). Call it first, before building the model.

    ``device``: None (use a GPU if this machine has one CuPy can use), 'cpu' or 'cuda'.
    ``backend``: how CuPy arrays travel: None (NCCL when ``cupy.cuda.nccl`` works,
    else MPI), 'nccl' or 'mpi'. NumPy arrays always travel by MPI.
    """
    global _world
    if backend not in _BACKENDS:
        raise ValueError(f"distributed.init: backend must be one of {_BACKENDS}, got {backend!r}")
    if _world is not None:
        return
    MPI = _import_mpi()
    if MPI is None:
        world = World(backend=backend)
    else:
        comm = MPI.COMM_WORLD
        # Processes that share memory are the ones on this machine.
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        world = World(comm, MPI, comm.Get_rank(), comm.Get_size(), node.Get_rank(), node.Get_size(), backend)
        node.Free()
        if world.size > 1:
            _install_abort_on_exception(comm, world.rank)
    world.gpu = _select_gpu(world.local_rank, device)
    _world = world


def get_world():
    """The ``World`` of this process, joining the job first if ``init()`` was not called."""
    if _world is None:
        init()
    return _world


def is_initialized():
    """True once ``init()`` has run (explicitly, or through any other call here)."""
    return _world is not None


def get_rank():
    """This process's number in the job, 0..world_size-1."""
    return get_world().rank


def get_world_size():
    """How many processes the job has (1 without mpirun)."""
    return get_world().size


def get_local_rank():
    """This process's number among the processes on its machine."""
    return get_world().local_rank


def get_local_size():
    """How many processes of the job run on this machine (they share its cores)."""
    return get_world().local_size


def is_main_process():
    """True on rank 0: the one process that prints, writes logs and saves checkpoints."""
    return get_world().rank == 0


def barrier():
    """Wait until every rank has reached this call."""
    current = get_world()
    if current.size > 1:
        current.comm.Barrier()


# ----- start-up checks: every rank must agree before any work starts --------------------------
def first_problem(problem):
    """The first rank's problem, on every rank: ``problem`` is this rank's (a sentence, or None).

    A rank that found a problem alone must not simply exit, or the others would wait
    for it forever; so every rank passes what it found, and all of them stop together
    when any found something. Names the rank when the ranks did not all find the same.
    """
    current = get_world()
    problems = [problem] if current.size == 1 else current.comm.allgather(problem)
    found = [(rank, text) for rank, text in enumerate(problems) if text is not None]
    if not found:
        return None
    rank, text = found[0]
    return text if len(found) == len(problems) and len(set(problems)) == 1 else f"rank {rank}: {text}"


def first_difference(options):
    """A sentence naming the first option whose value differs from rank 0's, or None.

    ``options`` is a dict of this rank's settings (e.g. ``vars(args)``), compared key
    by key in rank 0's order; every rank gets the same answer.
    """
    current = get_world()
    if current.size == 1:
        return None
    everyone = current.comm.allgather(options)
    reference = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        for key in list(reference) + [key for key in theirs if key not in reference]:
            if reference.get(key) != theirs.get(key):
                return (f"the ranks were started with different options: rank {rank} has {key} = "
                        f"{theirs.get(key)!r}, rank 0 has {reference.get(key)!r}")
    return None
