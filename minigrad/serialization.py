"""``save`` and ``load``: checkpoints as .npz files that never run code when loaded.

A state is nested dicts and lists of numbers, strings, arrays and tensors. The
arrays go into the .npz as they are; everything else becomes one JSON document
stored beside them, where each array is a reference ``{"__array__": key}``.
``numpy.load(allow_pickle=False)`` reads it back, so an untrusted file cannot
execute anything. The file is written to a temporary name and renamed, so a
crash mid-save never leaves a half-written checkpoint behind.
"""
import json
import os
import tempfile

import numpy as np

from . import backend
from .tensor import Tensor

_STRUCTURE_KEY = "__structure__"


def _encode(value, arrays):
    if isinstance(value, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = backend.to_numpy(value.data)
        return {"__tensor__": key}
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        key = f"a{len(arrays)}"
        arrays[key] = backend.to_numpy(value)
        return {"__array__": key}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return {"__dict_items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
        return {key: _encode(item, arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, arrays) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"save: cannot store a {type(value).__name__}; use dicts, lists, numbers, "
                    f"strings, arrays and tensors")


def _decode(value, arrays):
    if isinstance(value, dict):
        if "__tensor__" in value and len(value) == 1:
            return Tensor(arrays[value["__tensor__"]])
        if "__array__" in value and len(value) == 1:
            return arrays[value["__array__"]]
        if "__dict_items__" in value and len(value) == 1:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict_items__"]}
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value


def save(state, path):
    """Write ``state`` to ``path`` (.npz) atomically: a temporary file, then a rename."""
    arrays = {}
    structure = _encode(state, arrays)
    arrays[_STRUCTURE_KEY] = np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load(path):
    """Read a state written by ``save``; arrays come back as NumPy, tensors as CPU Tensors."""
    with np.load(path, allow_pickle=False) as file:
        if _STRUCTURE_KEY not in file.files:
            raise ValueError(f"load: {path} is not a minigrad checkpoint (no {_STRUCTURE_KEY} entry)")
        arrays = {key: file[key] for key in file.files}
    structure = json.loads(arrays.pop(_STRUCTURE_KEY).tobytes().decode())
    return _decode(structure, arrays)
