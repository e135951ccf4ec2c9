"""The global random state: parameter initialisation, dropout masks, shuffling.

``manual_seed(seed)`` resets a NumPy ``Generator`` (and CuPy's generator when
CuPy is in use), so that a seed gives the same weights on every machine.
"""
import numpy as np

from . import backend

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Seed every generator minigrad draws from."""
    global _generator
    _generator = np.random.default_rng(seed)
    if backend._cupy is not None:
        backend._cupy.random.seed(seed)


def generator():
    """The global NumPy ``Generator`` (initialisation always draws here, on the CPU)."""
    return _generator


def get_rng_state():
    """The generator's state as plain data (JSON-safe), for checkpoints."""
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state


def uniform(low, high, shape, dtype):
    return _generator.uniform(low, high, size=shape).astype(dtype)


def normal(mean, std, shape, dtype):
    return _generator.normal(mean, std, size=shape).astype(dtype)


def bernoulli_mask(keep_probability, shape, like):
    """A float mask of 0s and 1s drawn on the device of ``like``."""
    xp = backend.array_module(like)
    if xp is np:
        return (_generator.random(shape, dtype=np.float32) < keep_probability).astype(like.dtype)
    return (xp.random.random(shape, dtype=xp.float32) < keep_probability).astype(like.dtype)
