"""What the benchmarks record about the CPU they ran on, and how they time a step."""
import platform
import statistics
import time


def cpu_name():
    """The CPU's model name from /proc/cpuinfo ('AMD EPYC'), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(step, repeats, warmup=5):
    """The median wall time of ``step()`` in milliseconds, over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def numba_version():
    """numba's version when minigrad's compiled CPU kernels run (minigrad/nn/cpu_kernels.py), else None."""
    from minigrad.nn import cpu_kernels
    if not cpu_kernels.use_numba:
        return None
    import numba
    return numba.__version__
