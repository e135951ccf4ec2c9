"""Array backends: NumPy on the CPU, CuPy on NVIDIA GPUs.

Every op works on raw arrays and asks the data which module to use:
``xp = array_module(x)``. This is the only file that imports cupy, and it
does so lazily, so ``import minigrad`` never needs a GPU.
"""
import ctypes
import os
import sys

import numpy as np

_cupy = None
_cupy_error = None


def cupy():
    """Return the cupy module, or raise a clear error if it cannot be used."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy as _module
            _module.cuda.runtime.getDeviceCount()
            _cupy = _module
        except Exception as error:  # ImportError, or CUDA driver errors
            _cupy_error = error
    if _cupy is None:
        raise RuntimeError(
            "device 'cuda' needs CuPy and an NVIDIA GPU "
            f"(pip install 'minigrad[gpu]'); it is unavailable here: {_cupy_error}")
    return _cupy


def cuda_is_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy()
        return True
    except RuntimeError:
        return False


def is_cupy_array(array):
    return type(array).__module__.startswith("cupy")


def array_module(array):
    """numpy or cupy, whichever owns ``array``."""
    return _cupy if is_cupy_array(array) else np


def device_of(array):
    return "cuda" if is_cupy_array(array) else "cpu"


def normalize_device(device):
    """'cpu', 'cuda' or 'cuda:0' -> 'cpu' or 'cuda'; anything else is an error."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        return "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def to_device(array, device):
    """Copy ``array`` to ``device`` ('cpu' or 'cuda') if it is not there yet."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return array.get()
    return cupy().asarray(array)


def to_numpy(array):
    return array.get() if is_cupy_array(array) else np.asarray(array)


def scatter_add(target, index, values):
    """target[index] += values, adding repeated indices (np.add.at on either device)."""
    if is_cupy_array(target):
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def as_strided(array, shape, strides):
    if is_cupy_array(array):
        return _cupy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return np.lib.stride_tricks.as_strided(array, shape=shape, strides=strides,
                                           writeable=False)


def _reuse_freed_memory():
    """Keep the memory of freed arrays for the next step instead of handing it back.

    glibc returns every block over 128 KiB to the kernel when it is freed, so
    each training step faults in all its activation pages again; for a small
    CNN that costs more than the arithmetic. Raising the mmap and trim
    thresholds keeps those pages in the heap for reuse (PyTorch gets the same
    from its own allocator). Set MINIGRAD_SYSTEM_MALLOC=1 to leave malloc alone.
    """
    if not sys.platform.startswith("linux") or os.environ.get("MINIGRAD_SYSTEM_MALLOC") == "1":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 2 ** 20)  # glibc's largest allowed value
    libc.mallopt(m_trim_threshold, 2 ** 30)


_reuse_freed_memory()
