"""Intra-op parallelism on the CPU: one NumPy pass split into chunks that run on a few threads.

NumPy runs an elementwise or copy pass on one core, but it releases the GIL
while the pass runs over a large array. So a pass over a batch can be cut
along its first axis (images, or channels) into one chunk per thread, and the
chunks run at once:

    parallel.for_each_chunk(len(x), lambda start, stop: np.multiply(x[start:stop], 2, out=y[start:stop]))

Chunks also help on one thread: a fused step that makes temporaries chunk by
chunk keeps them in the cache instead of streaming whole-batch arrays through
memory (see minigrad/nn/cpu_fast.py).

The pool is persistent (starting threads for every op would cost more than
the pass) and sized by ``mg.get_num_threads()``, the thread policy of
minigrad/threads.py, so it never adds threads beyond the process's share of
the cores. With one thread the chunks run in the calling thread.
"""
import atexit
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from . import threads as thread_policy

_pool = None
_pool_size = 0
_in_chunk = threading.local()  # a chunk that splits its own work runs it inline: no pool deadlock


def _executor(size):
    """The shared pool, grown to ``size`` workers if it is smaller (it never shrinks; callers use what they ask for)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=size, thread_name_prefix="minigrad"), size
    return _pool


@atexit.register
def _shutdown():
    if _pool is not None:
        _pool.shutdown(wait=False)


def chunk_bounds(total, parts):
    """``parts`` contiguous (start, stop) ranges that cover range(total), sizes differing by at most 1."""
    parts = max(1, min(parts, total))
    size, extra = divmod(total, parts)
    bounds, start = [], 0
    for part in range(parts):
        stop = start + size + (1 if part < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def for_each_chunk(total, function, threads=None, min_chunks=1):
    """Call ``function(start, stop)`` over chunks of range(total), on ``threads`` threads (default: the policy's).

    ``min_chunks`` > threads makes smaller chunks (their temporaries fit the cache).
    The chunks must write disjoint outputs; the call returns when all are done and
    re-raises the first exception a chunk raised. A chunk may call for_each_chunk
    again: the inner call runs in the chunk's thread.
    """
    threads = thread_policy.get_num_threads() if threads is None else threads
    if getattr(_in_chunk, "active", False):
        threads = 1
    bounds = chunk_bounds(total, -(-max(min_chunks, threads) // threads) * threads)
    threads = min(threads, len(bounds))

    def run(group):  # each thread takes every threads-th chunk, in order
        outer, _in_chunk.active = getattr(_in_chunk, "active", False), True
        try:
            for start, stop in bounds[group::threads]:
                function(start, stop)
        finally:
            _in_chunk.active = outer

    if threads <= 1:
        run(0)
        return
    pool = _executor(threads - 1)
    futures = [pool.submit(run, group) for group in range(1, threads)]
    run(0)  # the calling thread takes a share instead of waiting idle
    for future in futures:
        future.result()


_blas = None  # threadpoolctl's controller of the loaded BLAS pools, made on first use


@contextlib.contextmanager
def blas_threads(threads):
    """The BLAS pools limited to ``threads`` for the duration: chunks that each run GEMMs on one of
    minigrad's threads must not each start the BLAS's own threads too."""
    global _blas
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # without it the BLAS keeps its threads; the results are the same
        yield
        return
    if _blas is None:
        _blas = ThreadpoolController()
    with _blas.limit(limits=threads, user_api="blas"):
        yield
