"""See what the engine does: an op-by-op trace, and the first op that made a NaN.

    with mg.debug.trace():             # or run with MINIGRAD_DEBUG=1
        loss = model(x).sum(); loss.backward()

prints one line per op, forward and backward: its name, input and output
shapes, device and time. ``detect_anomaly()`` (PyTorch's
``torch.autograd.detect_anomaly``) checks every op's output, forward and
backward, and raises at the first one that produced a NaN or an infinity,
naming the op and the shapes. Both work by installing an observer that the
engine calls around each ``Function`` (minigrad/mode.py); with none
installed the engine pays one ``is None`` test per op. A derivative is
written with ops of its own; they run as part of it and are reported as
"X.backward", not one by one.
"""
import contextlib
import os
import sys
import time

import numpy as np

from . import backend, mode


def _shapes(arrays):
    return ", ".join(str(tuple(a.shape)) for a in arrays if hasattr(a, "shape")) or "-"


def _synchronize(array):
    if backend.is_cupy_array(array):
        backend.cupy().cuda.Device().synchronize()


class Observer:
    """Runs each op; prints it (``trace``) and/or checks it for NaN and Inf (``anomaly``)."""

    def __init__(self, trace=False, anomaly=False, stream=None):
        self.trace, self.anomaly = trace, anomaly
        self.stream = stream or sys.stderr

    def forward(self, function, arrays, options):
        if mode.in_backward_pass():  # a piece of a derivative (or the walk's sums), reported with it
            return function.forward(*arrays, **options)
        start = time.perf_counter()
        with self._quiet_numpy():
            output = function.forward(*arrays, **options)
        self._report("forward", function, arrays, [output], start)
        return output

    def backward(self, function, grad):
        start = time.perf_counter()
        with self._quiet_numpy():
            grads = function.backward(grad)
        as_tuple = grads if isinstance(grads, tuple) else (grads,)
        arrays = [getattr(g, "data", g) for g in as_tuple if g is not None]
        self._report("backward", function, [grad.data], arrays, start)
        return grads

    def _quiet_numpy(self):
        """In anomaly mode the observer reports NaN and Inf itself, naming the op."""
        return np.errstate(all="ignore") if self.anomaly else contextlib.nullcontext()

    def _report(self, phase, function, inputs, outputs, start):
        name = type(function).__name__
        if self.trace:
            _synchronize(outputs[0] if outputs else None)
            milliseconds = 1e3 * (time.perf_counter() - start)
            device = backend.device_of(outputs[0]) if outputs else "-"
            print(f"[minigrad] {phase:8s} {name:14s} in {_shapes(inputs):30s} out {_shapes(outputs):20s} "
                  f"{device:4s} {milliseconds:8.3f} ms", file=self.stream)
        if self.anomaly:
            for output in outputs:
                xp = backend.array_module(output)
                if output.dtype.kind == "f" and not bool(xp.isfinite(output).all()):
                    kind = "NaN" if bool(xp.isnan(output).any()) else "Inf"
                    raise FloatingPointError(
                        f"detect_anomaly: {name}.{phase} produced {kind} (inputs {_shapes(inputs)}, "
                        f"outputs {_shapes(outputs)})")


class _Installed:
    def __init__(self, observer):
        self.observer = observer

    def __enter__(self):
        self.previous = mode.set_observer(self.observer)
        return self.observer

    def __exit__(self, *exc_info):
        mode.set_observer(self.previous)


def trace(stream=None):
    """Context manager: print every op, forward and backward, with shapes, device and time."""
    return _Installed(Observer(trace=True, stream=stream))


def detect_anomaly(trace=False):
    """Context manager: raise FloatingPointError at the first op whose output holds NaN or Inf."""
    return _Installed(Observer(trace=trace, anomaly=True))


if os.environ.get("MINIGRAD_DEBUG") == "1":
    mode.set_observer(Observer(trace=True))
