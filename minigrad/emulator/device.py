"""Run CUDA kernels on the CPU (cuda_emulator.h next to this file), through g++.

``EmulatedDevice("batchnorm")`` stands in for a GPU in a launcher module (one
with a ``device``, see minigrad.kernels.Device): its ``xp`` makes device arrays
(memory.DeviceArray), and ``kernel(name)(grid, block, args)`` converts each
argument the way CuPy does (array -> pointer, None -> null pointer, Python int
-> int64, Python float -> float64, NumPy scalar -> its own type) and checks it
against the kernel's C++ signature, so a float64 passed for a ``float`` or an
int64 for an ``int`` is an error here as it would be a silent bug on the GPU.
A pointer argument must be device memory: a host NumPy array is an error.
Tickets (``tickets(count)``, zeroed counters) are checked to be zero again
after every launch, and two launches in flight may not share them.
``EmulatedDevice(source=text)`` compiles a kernel given as text instead of
kernels/<name>.cu.
"""
import contextlib
import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .. import kernels
from .memory import DeviceArray, DeviceNumPy, on_device, to_device

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emulator.h"
# -ffp-contract=off: one rounding per operation (no FMA), as the kernels' __fmul_rn and friends promise
COMPILE_FLAGS = ["-std=c++17", "-O1", "-g0", "-ffp-contract=off", "-shared", "-fPIC", "-pthread"]

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
void run(void (*kernel)(Args...), const unsigned int* shape, const unsigned long long* options, double switch_chance,
         void** args, const char* kinds, const int* sizes, int count) {
    if (count != (int)sizeof...(Args))
        throw std::runtime_error("takes " + std::to_string(sizeof...(Args)) + " arguments, got " + std::to_string(count));
    const char expected_kinds[] = {kind_of<Args>()..., 0};
    const int expected_sizes[] = {(int)sizeof(Args)..., 0};
    for (int i = 0; i < count; ++i)
        if (kinds[i] != expected_kinds[i] || sizes[i] != expected_sizes[i])
            throw std::runtime_error("argument " + std::to_string(i) + " must be " + expected_kinds[i] +
                                     std::to_string(expected_sizes[i]) + ", got " + kinds[i] + std::to_string(sizes[i]));
    launch(dim3(shape[0], shape[1], shape[2]), dim3(shape[3], shape[4], shape[5]), (unsigned int)options[0],
           (int)options[1], options[2], options[3], switch_chance,
           [&] { call(kernel, args, std::index_sequence_for<Args...>{}); });
}
}  // namespace emu

extern "C" int emu_launch(const char* name, const unsigned int* shape, const unsigned long long* options,
                          double switch_chance, void** args, const char* kinds, const int* sizes, int count,
                          char* error, int error_size) {
    try {
#define KERNEL(k) if (std::strcmp(name, #k) == 0) { emu::run(k, shape, options, switch_chance, args, kinds, sizes, count); return 0; }
KERNELS
        throw std::runtime_error("no such kernel");
    } catch (const std::exception& failure) {
        std::snprintf(error, error_size, "%s: %s", name, failure.what());
        return 1;
    }
}
'''


def _cache_folder():
    folder = Path(tempfile.gettempdir()) / "minigrad-emulator"
    folder.mkdir(exist_ok=True)
    return folder


def _own_lines(preprocessed, path):
    """The lines of g++ -E output that come from ``path`` itself (not from the headers it includes)."""
    own, inside = [], False
    for line in preprocessed.splitlines():
        marker = re.match(r'# \d+ "([^"]*)"', line)
        if marker:
            inside = marker.group(1) == str(path)
        elif inside:
            own.append(line)
    return "\n".join(own)


def build(name=None, source=None):
    """Compile kernels/<name>.cu (or CUDA ``source`` text) with the emulator into a shared library, cached by content."""
    if shutil.which("g++") is None:
        raise RuntimeError("emulator: the CUDA emulator needs g++ (`make data` installs it as root; "
                           "or apt-get install g++)")
    text = kernels.source(name) if source is None else source
    headers = b"".join(path.read_bytes() for path in sorted(HERE.glob("*.h")))
    digest = hashlib.sha256(text.encode() + headers + DRIVER.encode()
                            + " ".join(COMPILE_FLAGS).encode()).hexdigest()[:16]
    library = _cache_folder() / f"{name or 'source'}-{digest}.so"
    if library.exists():
        return library
    with tempfile.TemporaryDirectory() as folder:
        source_path = Path(folder) / f"{name or 'kernel'}.cu"
        source_path.write_text(text)
        preprocessed = subprocess.run(["g++", "-x", "c++", "-std=c++17", "-E", "-I", str(HERE), "-include",
                                       str(HEADER), str(source_path)], check=True, capture_output=True, text=True).stdout
        names = re.findall(r'extern "C" void\s+(\w+)\s*\(', _own_lines(preprocessed, source_path))
        if not names:
            raise RuntimeError(f"emulator: no extern \"C\" __global__ kernels in {name or 'the source'}")
        driver = DRIVER.replace("SOURCE", str(source_path)).replace(
            "KERNELS", "\n".join(f"KERNEL({kernel})" for kernel in names))
        driver_path = Path(folder) / "driver.cpp"
        driver_path.write_text(driver)
        partial = Path(folder) / "emulated.so"
        result = subprocess.run(["g++", *COMPILE_FLAGS, "-I", str(HERE), "-o", str(partial), str(driver_path)],
                                capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"emulator: {name or 'the source'} does not compile as C++:\n{result.stderr[-4000:]}")
        shutil.move(str(partial), library)
    return library


def _as_argument(position, value, host_memory=False):
    """(kind, size, ctypes object) for one kernel argument, by CuPy's rules."""
    if value is None:
        return "p", 8, ctypes.c_uint64(0)
    if isinstance(value, np.ndarray):
        if not (host_memory or on_device(value)):
            raise TypeError(f"argument {position} is a host (NumPy) array of shape {value.shape}: a kernel takes "
                            f"device memory (copy it with device.xp.asarray)")
        if not value.flags.c_contiguous:
            raise TypeError(f"argument {position} is a non-contiguous array")
        return "p", 8, ctypes.c_uint64(value.ctypes.data)
    if isinstance(value, (bool, int)):
        return "i", 8, ctypes.c_int64(value)
    if isinstance(value, float):
        return "f", 8, ctypes.c_double(value)
    if isinstance(value, np.generic):
        raw = value.tobytes()
        kind = "f" if value.dtype.kind == "f" else "i"
        return kind, len(raw), ctypes.create_string_buffer(raw, len(raw))
    raise TypeError(f"argument {position}: unsupported type {type(value).__name__}")


def _span(array):
    return array.ctypes.data, array.ctypes.data + array.nbytes


_in_flight = {}  # id of a ticket buffer -> the launch that holds it
_in_flight_lock = threading.Lock()


class EmulatedDevice:
    """The members a launcher module asks of its device (minigrad.kernels.Device), backed by the CPU emulator.

    ``workers``: OS threads that run blocks at once; ``switch_chance``: how often a
    thread hands over to another at an emulated intrinsic between barriers;
    ``host_memory=True`` takes any NumPy array as device memory (for whole models,
    whose tensors minigrad keeps in NumPy when no GPU is there).
    """

    _device_numpy = DeviceNumPy()

    def __init__(self, name=None, multiprocessors=2, seed=0, source=None, workers=2, switch_chance=0.125,
                 host_memory=False):
        self.name = name or "source"
        self.library = ctypes.CDLL(str(build(name, source)))
        self.library.emu_launch.restype = ctypes.c_int
        self.multiprocessors = multiprocessors
        self.seed = seed
        self.workers = workers
        self.switch_chance = switch_chance
        self.host_memory = host_memory
        self.launches = []  # kernel names, in order
        self.after_launch = None  # a hook: called as after_launch(name, grid, block, args) after each launch
        self._tickets = self._device_numpy.zeros(0, dtype=np.uint32)
        self._seed_lock = threading.Lock()

    @property
    def xp(self):
        """What a launcher makes arrays with: NumPy making device arrays (plain NumPy with host_memory)."""
        return np if self.host_memory else self._device_numpy

    def holds(self, array):
        """True for an array the kernels can read: device memory."""
        return isinstance(array, np.ndarray) and (self.host_memory or on_device(array))

    def tickets(self, count):
        if self._tickets.size < count:
            self._tickets = self._device_numpy.zeros(count, dtype=np.uint32)
        return self._tickets

    def kernel(self, name):
        def launch(grid, block, args):
            self._launch(name, tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block)), args)
        return launch

    def _launch(self, name, grid, block, args):
        try:
            converted = [_as_argument(position, value, self.host_memory) for position, value in enumerate(args)]
        except TypeError as error:
            raise TypeError(f"emulator: {name}: {error}") from None
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.cast(ctypes.pointer(item), ctypes.c_void_p)
                                                   for _, _, item in converted])
        kinds = "".join(kind for kind, _, _ in converted).encode()
        sizes = (ctypes.c_int * len(args))(*[size for _, size, _ in converted])
        error = ctypes.create_string_buffer(2000)
        with self._seed_lock:
            self.seed += 1
            seed = self.seed
        tickets = self._tickets
        begin, end = _span(tickets)
        holds_tickets = any(isinstance(value, np.ndarray) and begin <= value.ctypes.data < end for value in args)
        shape = (ctypes.c_uint * 6)(*grid, *block)
        options = (ctypes.c_ulonglong * 4)(seed, self.workers, begin, end)
        with self._holding(name, tickets if holds_tickets else None):
            status = self.library.emu_launch(name.encode(), shape, options, ctypes.c_double(self.switch_chance),
                                             pointers, kinds, sizes, len(args), error, 2000)
        if status:
            raise RuntimeError(f"emulator: {error.value.decode()}")
        if holds_tickets and tickets.any():
            raise AssertionError(f"emulator: {name} left tickets non-zero: {tickets.nonzero()[0][:10]}")
        self.launches.append(name)
        if self.after_launch is not None:
            self.after_launch(name, grid, block, args)

    @contextlib.contextmanager
    def _holding(self, name, tickets):
        """This launch holds ``tickets`` (None: none) until it ends; a second holder at once is an error."""
        if tickets is None:
            yield
            return
        with _in_flight_lock:
            other = _in_flight.get(id(tickets))
            if other is not None:
                raise RuntimeError(f"emulator: {name} takes tickets that {other} still holds: two launches "
                                   f"in flight share one ticket buffer, so their blocks count together")
            _in_flight[id(tickets)] = f"{self.name}.{name}"
        try:
            yield
        finally:
            with _in_flight_lock:
                _in_flight.pop(id(tickets), None)

    @staticmethod
    def to_device(array, keep_alignment=False):
        """A device copy of a host array (``keep_alignment``: with the same address mod 16)."""
        return to_device(array, keep_alignment=keep_alignment)

    @staticmethod
    def to_host(array):
        """A host copy of a device array."""
        return np.array(array).view(np.ndarray)


__all__ = ["EmulatedDevice", "DeviceArray", "build"]
