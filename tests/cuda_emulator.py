"""The two sides of a kernel test: on the CPU emulator (minigrad.emulator) and on a real GPU.

``OnEmulator`` and ``OnGpu`` run the same checks that compare kernels with
their NumPy twins: with the launcher module's ``device`` swapped for an
EmulatedDevice, and on a real GPU (marker gpu). The emulator itself lives in
the package (minigrad/emulator/); its names are re-exported here.
"""
import shutil

import numpy as np
import pytest

from minigrad import backend
from minigrad.emulator import HEADER, EmulatedDevice, build  # noqa: F401 (re-exported for the tests)


def require_compiler():
    if shutil.which("g++") is None:
        pytest.fail("the kernel emulator needs g++ (make data installs it)")  # a failure, not a skip


class OnEmulator:
    """A kernel test on the CPU: ``module.device`` is an EmulatedDevice(name); arrays are device copies."""

    def __init__(self, monkeypatch, module, name, **options):
        require_compiler()
        self.device = EmulatedDevice(name, **options)
        monkeypatch.setattr(module, "device", self.device)

    def to_device(self, array):
        """A device copy, at the same address mod 16 (a misaligned view stays misaligned)."""
        return self.device.to_device(array, keep_alignment=True)

    def to_numpy(self, array):
        return np.asarray(array).view(np.ndarray)


class OnGpu:
    """The same test on the GPU: the module's own device; arrays are copied to it and back."""

    def __init__(self):
        self.xp = backend.cupy()

    def to_device(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, array):
        return backend.to_numpy(array)
