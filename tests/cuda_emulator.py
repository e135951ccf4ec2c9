"""Run the kernels of kernels/<name>.cu on the CPU (tests/cuda_emulator.h), through g++.

``EmulatedDevice("batchnorm")`` stands in for a GPU in a launcher module: NumPy
arrays take the place of CuPy arrays, and ``kernel(name)(grid, block, args)``
converts each argument the way CuPy does (array -> pointer, None -> null
pointer, Python int -> int64, Python float -> float64, NumPy scalar -> its own
type) and checks it against the kernel's C++ signature, so a float64 passed for
a ``float`` or an int64 for an ``int`` is an error here as it would be a silent
bug on the GPU. Tickets (zeroed counters) are checked to be zero again after
every launch.

``OnEmulator`` and ``OnGpu`` are the two sides of a test that compares kernels
with their NumPy twins: the same checks run with the launcher module's
``device`` swapped for the emulator, and on a real GPU (marker gpu).
"""
import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from minigrad import backend, kernels

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emulator.h"
# -ffp-contract=off: one rounding per operation (no FMA), as the kernels' __fmul_rn and friends promise
COMPILE_FLAGS = ["-std=c++17", "-O1", "-g0", "-ffp-contract=off", "-shared", "-fPIC"]

DRIVER = r'''
#include "cuda_emulator.h"
#include "SOURCE"
#include <cstring>
#include <type_traits>
#include <utility>

namespace emu {
template <class T> constexpr char kind_of() {
    return std::is_pointer_v<T> ? 'p' : std::is_floating_point_v<T> ? 'f' : 'i';
}
template <class... Args, std::size_t... I>
void call(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<Args*>(args[I])...);
}
template <class... Args>
void run(void (*kernel)(Args...), dim3 grid, dim3 block, unsigned int seed, void** args, const char* kinds,
         const int* sizes, int count) {
    if (count != (int)sizeof...(Args))
        throw std::runtime_error("takes " + std::to_string(sizeof...(Args)) + " arguments, got " + std::to_string(count));
    const char expected_kinds[] = {kind_of<Args>()..., 0};
    const int expected_sizes[] = {(int)sizeof(Args)..., 0};
    for (int i = 0; i < count; ++i)
        if (kinds[i] != expected_kinds[i] || sizes[i] != expected_sizes[i])
            throw std::runtime_error("argument " + std::to_string(i) + " must be " + expected_kinds[i] +
                                     std::to_string(expected_sizes[i]) + ", got " + kinds[i] + std::to_string(sizes[i]));
    launch(grid, block, seed, [&] { call(kernel, args, std::index_sequence_for<Args...>{}); });
}
}  // namespace emu

extern "C" int emu_launch(const char* name, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                          unsigned int by, unsigned int bz, unsigned int seed, void** args, const char* kinds,
                          const int* sizes, int count, char* error, int error_size) {
    try {
#define KERNEL(k) if (std::strcmp(name, #k) == 0) { emu::run(k, dim3(gx, gy, gz), dim3(bx, by, bz), seed, args, kinds, sizes, count); return 0; }
KERNELS
        throw std::runtime_error("no such kernel");
    } catch (const std::exception& failure) {
        std::snprintf(error, error_size, "%s: %s", name, failure.what());
        return 1;
    }
}
'''


def build(name):
    """Compile kernels/<name>.cu with the emulator into a shared library (cached by content)."""
    if shutil.which("g++") is None:
        pytest.fail("the kernel emulator needs g++ (apt-get install g++)")  # a failure, not a skip
    source_path = kernels.source_path(name)
    digest = hashlib.sha256(source_path.read_bytes() + HEADER.read_bytes() + DRIVER.encode()
                            + " ".join(COMPILE_FLAGS).encode()).hexdigest()[:16]
    library = Path(tempfile.gettempdir()) / f"minigrad-emulated-{name}-{digest}.so"
    if library.exists():
        return library
    preprocessed = subprocess.run(["g++", "-x", "c++", "-std=c++17", "-E", "-P", "-I", str(HERE), "-include", str(HEADER),
                                   str(source_path)], check=True, capture_output=True, text=True).stdout
    names = re.findall(r'extern "C" void\s+(\w+)\s*\(', preprocessed)
    if not names:
        raise RuntimeError(f"emulator: no extern \"C\" __global__ kernels found in {source_path}")
    driver = DRIVER.replace("SOURCE", str(source_path)).replace(
        "KERNELS", "\n".join(f"KERNEL({kernel})" for kernel in names))
    with tempfile.TemporaryDirectory() as folder:
        driver_path = Path(folder) / "driver.cpp"
        driver_path.write_text(driver)
        partial = Path(folder) / "emulated.so"
        result = subprocess.run(["g++", *COMPILE_FLAGS, "-I", str(HERE), "-o", str(partial), str(driver_path)],
                                capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"emulator: {name}.cu does not compile as C++:\n{result.stderr[-4000:]}")
        shutil.move(str(partial), library)
    return library


def _as_argument(value):
    """(kind, size, ctypes object) for one kernel argument, by CuPy's rules."""
    if value is None:
        return "p", 8, ctypes.c_uint64(0)
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise TypeError("emulator: a kernel got a non-contiguous array")
        return "p", 8, ctypes.c_uint64(value.ctypes.data)
    if isinstance(value, (bool, int)):
        return "i", 8, ctypes.c_int64(value)
    if isinstance(value, float):
        return "f", 8, ctypes.c_double(value)
    if isinstance(value, np.generic):
        raw = value.tobytes()
        kind = "f" if value.dtype.kind == "f" else "i"
        return kind, len(raw), ctypes.create_string_buffer(raw, len(raw))
    raise TypeError(f"emulator: unsupported kernel argument {type(value).__name__}")


class EmulatedDevice:
    """The members a launcher module asks of its device (minigrad.kernels.Device), backed by the CPU emulator."""

    xp = np

    def __init__(self, name, multiprocessors=2, seed=0):
        self.library = ctypes.CDLL(str(build(name)))
        self.library.emu_launch.restype = ctypes.c_int
        self.multiprocessors = multiprocessors
        self.seed = seed
        self.launches = []  # kernel names, in order
        self._tickets = np.zeros(0, dtype=np.uint32)

    def holds(self, array):
        return isinstance(array, np.ndarray)

    def tickets(self, count):
        if self._tickets.size < count:
            self._tickets = np.zeros(count, dtype=np.uint32)
        return self._tickets

    def kernel(self, name):
        def launch(grid, block, args):
            self._launch(name, tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block)), args)
        return launch

    def _launch(self, name, grid, block, args):
        converted = [_as_argument(value) for value in args]
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.cast(ctypes.pointer(item), ctypes.c_void_p)
                                                   for _, _, item in converted])
        kinds = "".join(kind for kind, _, _ in converted).encode()
        sizes = (ctypes.c_int * len(args))(*[size for _, size, _ in converted])
        error = ctypes.create_string_buffer(2000)
        self.seed += 1
        status = self.library.emu_launch(name.encode(), *[ctypes.c_uint(v) for v in grid + block],
                                         ctypes.c_uint(self.seed), pointers, kinds, sizes, len(args), error, 2000)
        if status:
            raise RuntimeError(f"emulator: {error.value.decode()}")
        if self._tickets.any():
            raise AssertionError(f"emulator: {name} left tickets non-zero: {self._tickets.nonzero()[0][:10]}")
        self.launches.append(name)


class OnEmulator:
    """A kernel test on the CPU: ``module.device`` is an EmulatedDevice(name); arrays stay NumPy arrays."""

    def __init__(self, monkeypatch, module, name, **options):
        self.device = EmulatedDevice(name, **options)
        monkeypatch.setattr(module, "device", self.device)

    def to_device(self, array):
        return array

    def to_numpy(self, array):
        return array


class OnGpu:
    """The same test on the GPU: the module's own device; arrays are copied to it and back."""

    def __init__(self):
        self.xp = backend.cupy()

    def to_device(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, array):
        return backend.to_numpy(array)
