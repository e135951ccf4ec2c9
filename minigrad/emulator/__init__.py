"""A CUDA emulator: minigrad's kernels (kernels/*.cu) run on the CPU, on any laptop.

``EmulatedDevice("prune")`` compiles kernels/prune.cu with g++ against
cuda_emulator.h (read its header for what the emulator does and what it cannot
show) and launches its kernels on NumPy memory marked as device memory.
``emulate("batchnorm")`` puts one in place of the GPU for the launcher module
of that kernel file, so minigrad's own launchers run on it; ``python -m
minigrad.emulate`` runs every kernel file against its NumPy twin.
"""
import contextlib
import importlib
from pathlib import Path

from .device import HEADER, EmulatedDevice, build
from .memory import DeviceArray, on_device, to_device

# A cut-down batch-norm statistics kernel for reading (docs/kernels.md and its exercise).
WELFORD_DEMO = Path(__file__).resolve().with_name("welford_demo.cu")

# The launcher module of each kernel file: the module whose ``device`` the emulator replaces.
LAUNCHERS = {"batchnorm": "minigrad.nn.batchnorm_cuda", "prune": "minigrad.prune.selection",
             "sgd": "minigrad.optim.sgd_cuda"}


@contextlib.contextmanager
def emulate(name, **options):
    """Within the block, the launchers of kernels/<name>.cu run on an EmulatedDevice (which it yields).

    A kernel file without a launcher module that has a ``device`` (sgd) just gets the device.
    """
    device = EmulatedDevice(name, **options)
    if name not in LAUNCHERS:
        yield device
        return
    module = importlib.import_module(LAUNCHERS[name])
    saved = module.device
    module.device = device
    try:
        yield device
    finally:
        module.device = saved


__all__ = ["EmulatedDevice", "DeviceArray", "HEADER", "LAUNCHERS", "WELFORD_DEMO", "build", "emulate", "on_device",
           "to_device"]
