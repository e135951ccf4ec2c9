"""The hand-written CUDA kernels (``kernels/*.cu``), compiled at run time with NVRTC.

``function("sgd", "sgd_update")`` returns a CuPy ``RawKernel`` from
``kernels/sgd.cu``, compiled once per process for the GPU in use.
``compile_for("sgd", "sm_90")`` compiles the same source to a cubin without a
GPU, which is how the CPU test suite checks every kernel builds.
``Device("prune")`` is what a launcher module launches through; the tests put
minigrad.emulator's CPU stand-in in its place. ``address(array, device)`` is
the only way an array's address enters a table or struct that a kernel reads: it
refuses an array the device cannot read (a NumPy array on the GPU).
"""
import functools
from pathlib import Path

import numpy as np

from . import backend

NVRTC_OPTIONS = ("-std=c++17",)
_HERE = Path(__file__).resolve().parent
# An installed wheel ships the sources in minigrad/_cuda; a source checkout keeps them in kernels/.
_SEARCH_PATH = (_HERE / "_cuda", _HERE.parent / "kernels")


def source_path(name):
    for folder in _SEARCH_PATH:
        path = folder / f"{name}.cu"
        if path.exists():
            return path
    raise FileNotFoundError(f"kernels: no {name}.cu in {', '.join(str(p) for p in _SEARCH_PATH)}")


def source(name):
    return source_path(name).read_text()


def names():
    """The kernel files that exist, by name ('batchnorm', 'prune', 'sgd', ...)."""
    found = set()
    for folder in _SEARCH_PATH:
        found.update(path.stem for path in folder.glob("*.cu"))
    return sorted(found)


@functools.lru_cache(maxsize=None)
def module(name):
    """The compiled ``cupy.RawModule`` for kernels/<name>.cu (once per process)."""
    cupy = backend.cupy()
    return cupy.RawModule(code=source(name), options=NVRTC_OPTIONS)


def function(name, kernel):
    """One ``__global__`` function of kernels/<name>.cu, ready to launch."""
    return module(name).get_function(kernel)


def address(array, device):
    """The address of ``array``'s first element, for a kernel running on ``device``.

    Raises TypeError when ``device`` cannot read the array (``device.holds``): on a
    GPU a NumPy array's host address would reach the kernel as a device pointer
    (an illegal-address error, or silent reads through host memory). The CPU
    emulator holds NumPy arrays, so there their host addresses are the right ones.
    """
    if not device.holds(array):
        kind = f"{type(array).__module__.split('.')[0]}.{type(array).__name__}"
        raise TypeError(f"kernels: a {kind} of shape {tuple(array.shape)} ({array.dtype}) cannot reach a "
                        f"kernel on {device!r}; move it to that device first")
    return array.data.ptr if backend.is_cupy_array(array) else array.ctypes.data


class Device:
    """Where the kernels of kernels/<name>.cu run: the current CuPy GPU.

    A launcher module makes its arrays with ``device.xp``, asks ``device.holds``
    whether the kernels can take an array, and launches with
    ``device.kernel(kernel)(grid, block, args)``; the tests swap in
    minigrad.emulator.EmulatedDevice, which has the same members and runs the
    same kernels on the CPU.
    """

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"the GPU (kernels/{self.name}.cu)"

    @property
    def xp(self):
        return backend.cupy()

    def holds(self, array):
        """True for an array the kernels can read: one in GPU memory."""
        return backend.is_cupy_array(array)

    def kernel(self, kernel):
        """A launcher ``(grid, block, args)`` of one kernel. A C struct passed by value is a NumPy
        structured scalar (``numpy.void``) in ``args``; CuPy takes it as a one-element array."""
        compiled = function(self.name, kernel)

        def launch(grid, block, args):
            compiled(grid, block, tuple(np.array(arg) if isinstance(arg, np.void) else arg for arg in args))
        return launch

    @functools.cached_property
    def multiprocessors(self):
        return self.xp.cuda.Device().attributes["MultiProcessorCount"]

    def resident_blocks(self, kernel, threads):
        """How many blocks of ``threads`` threads of ``kernel`` one multiprocessor holds at once
        (CUDA's occupancy query: registers, shared memory and the block limit all count)."""
        cache = self.__dict__.setdefault("_resident", {})
        key = (self.xp.cuda.runtime.getDevice(), kernel, threads)
        if key not in cache:
            from cupy_backends.cuda.api import driver
            cache[key] = max(1, driver.occupancyMaxActiveBlocksPerMultiprocessor(
                function(self.name, kernel).kernel.ptr, threads, 0))
        return cache[key]

    def tickets(self, count):
        """A zeroed uint32 buffer of at least ``count`` tickets; the kernels leave it zeroed.

        One buffer per (GPU, stream): launches on one stream run one after another,
        so each finds the counters zeroed by the one before; launches on two streams
        may run at once and must not take tickets from the same counters.
        """
        xp = self.xp
        cache = self.__dict__.setdefault("_tickets", {})
        key = (xp.cuda.runtime.getDevice(), xp.cuda.get_current_stream().ptr)
        if key not in cache or cache[key].size < count:
            cache[key] = xp.zeros(max(count, 1024), dtype=np.uint32)
        return cache[key]


def compile_for(name, arch, options=()):
    """Compile kernels/<name>.cu for ``arch`` (e.g. 'sm_90') with NVRTC; no GPU needed.

    Returns the cubin bytes; raises RuntimeError with NVRTC's log on a compile error.
    """
    return compile_for_source(source(name), arch, options, f"{name}.cu")[0]


def compile_for_source(code, arch, options=(), filename="kernel.cu"):
    """(cubin bytes, NVRTC's log) for CUDA source ``code``; ``options`` are extra NVRTC options
    (``("--ptxas-options=-v",)`` puts registers and spills per kernel in the log)."""
    from cupy_backends.cuda.libs import nvrtc
    program = nvrtc.createProgram(code, filename, [], [])
    try:
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", *NVRTC_OPTIONS, *options])
        except nvrtc.NVRTCError as error:
            raise RuntimeError(f"kernels: {filename} does not compile for {arch}: {error}\n"
                               f"{nvrtc.getProgramLog(program)}") from None
        return nvrtc.getCUBIN(program), nvrtc.getProgramLog(program)
    finally:
        nvrtc.destroyProgram(program)
