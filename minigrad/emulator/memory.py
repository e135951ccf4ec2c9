"""Device memory for the emulator: NumPy arrays that say they live on the (emulated) GPU.

A kernel may only take memory from the device allocator, as on a GPU, where a
host pointer is an illegal address. Here device memory is host memory too, so
it is marked instead: ``DeviceArray`` is an ndarray subclass, and an array is
on the device when it, or an array it views, is a DeviceArray. ``DeviceNumPy``
is the ``xp`` of an emulated device: NumPy whose results are DeviceArrays and
whose functions, like CuPy's, refuse host arrays (``asarray`` copies one to
the device).
"""
import numpy as np

# The functions that copy host data to the device, as cupy.asarray and cupy.array do.
_COPYING = {"asarray", "array", "ascontiguousarray"}


class DeviceArray(np.ndarray):
    """An array in the emulated GPU's memory (a marked NumPy array)."""

    def __repr__(self):
        return "device " + repr(np.asarray(self))


def on_device(array):
    """True if ``array`` is, or views, memory from the emulated device's allocator."""
    while isinstance(array, np.ndarray):
        if isinstance(array, DeviceArray):
            return True
        array = array.base
    return False


def to_device(array, dtype=None, keep_alignment=False):
    """A device copy of a host array; ``keep_alignment`` keeps its address mod 16 (a misaligned view stays so)."""
    source = np.asarray(array, dtype=dtype)
    # The DeviceArray owns its memory, so that every view of it (NumPy points a view's
    # base at the owner of the memory) is still seen as device memory.
    if not keep_alignment or source.nbytes == 0:
        copy = DeviceArray(source.shape, dtype=source.dtype)
        copy[...] = source
        return copy
    raw = DeviceArray((source.nbytes + 16,), dtype=np.uint8)
    skip = (source.ctypes.data - raw.ctypes.data) % 16
    copy = raw[skip:skip + source.nbytes].view(source.dtype).reshape(source.shape)
    copy[...] = source
    return copy.view(DeviceArray)


def _host_arrays(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _host_arrays(value)
        elif isinstance(value, np.ndarray) and not on_device(value):
            yield value


class DeviceNumPy:
    """``device.xp`` of an emulated device: NumPy's functions, returning device arrays."""

    def __getattr__(self, name):
        attribute = getattr(np, name)
        if isinstance(attribute, type) or not callable(attribute):
            return attribute

        def on_the_device(*args, **kwargs):
            host = next(_host_arrays(list(args) + list(kwargs.values())), None)
            if name in _COPYING and host is not None:
                return to_device(attribute(*args, **kwargs))
            if host is not None:
                raise TypeError(f"emulator: xp.{name} got a host (NumPy) array of shape {host.shape}; "
                                f"copy it to the device with xp.asarray first, as CuPy requires")
            result = attribute(*args, **kwargs)
            if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
                # a view of device memory stays a view; new memory is moved into a DeviceArray that owns it
                result = result.view(DeviceArray) if on_device(result) else to_device(result)
            return result

        on_the_device.__name__ = name
        return on_the_device
