"""What the benchmarks record about the CPU they ran on."""
import platform


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
