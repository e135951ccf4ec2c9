"""Array backends: NumPy on the CPU, CuPy on NVIDIA GPUs.

Every op works on raw arrays and asks the data which module to use:
``xp = array_module(x)``. This is the only file that imports cupy, and it
does so lazily, so ``import minigrad`` never needs a GPU.
"""
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
