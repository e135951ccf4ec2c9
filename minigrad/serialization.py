"""``save`` and ``load``: checkpoints as .npz files that never run code when loaded.

A state is nested dicts and lists of numbers, strings, arrays and tensors. The
arrays go into the .npz as they are; everything else becomes one JSON document
stored beside them, where each array is a reference ``{"__array__": key}``.
``load`` reads the JSON first and then only the arrays it names, without
pickle, so an untrusted file cannot execute anything, and a damaged one raises
``CheckpointError`` naming the file. The file is written to a temporary name
and renamed, so a crash mid-save never leaves a half-written checkpoint behind.
"""
import json
import math
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import backend
from .tensor import Tensor

_STRUCTURE_KEY = "__structure__"
_TEMPORARY_PREFIX = ".tmp-"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_MAX_STRUCTURE_BYTES = 64 << 20


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
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=_TEMPORARY_PREFIX, suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def remove_unfinished_saves(folder):
    """Delete the temporary files that saves killed mid-write left in ``folder``; return their names.

    Only safe while no other process saves into ``folder`` (train.py holds a lock on it).
    """
    left = sorted(name for name in os.listdir(folder)
                  if name.startswith(_TEMPORARY_PREFIX) and name.endswith(".npz"))
    for name in left:
        os.remove(os.path.join(folder, name))
    return left


class CheckpointError(ValueError):
    """A checkpoint file is damaged, truncated or not a minigrad checkpoint.

    ``path`` names the file and ``problem`` says what is wrong with it; the message is both.
    """

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def load(path):
    """Read a state written by ``save``; arrays come back as NumPy, tensors as CPU Tensors.

    Only the entries that the structure names are read, each after checking that its
    declared shape fits its size; any other entry, any dtype but bool, integer or float,
    and any damage raise ``CheckpointError`` naming the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        start = file.read(len(_NPY_MAGIC))
        if start.startswith(_NPY_MAGIC):
            raise CheckpointError(path, "is a single .npy array, not a .npz checkpoint")
        if not start.startswith(_ZIP_MAGIC):
            problem = "is empty" if not start else "is not a .npz checkpoint (no zip header)"
            raise CheckpointError(path, problem)
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                return _read_checkpoint(path, archive)
        except CheckpointError:
            raise
        except RecursionError:
            raise CheckpointError(path, "its structure is nested too deeply") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(path, f"is damaged or truncated ({type(error).__name__}: {error})") from None


def _read_checkpoint(path, archive):
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise CheckpointError(path, "holds two entries of the same name")
    entries = {name[:-len(".npy")] for name in names if name.endswith(".npy")}
    if len(entries) != len(names) or _STRUCTURE_KEY not in entries:
        raise CheckpointError(path, f"is not a minigrad checkpoint (no {_STRUCTURE_KEY} entry)")
    referenced = []

    def note_reference(value):
        for marker in ("__tensor__", "__array__"):
            if marker in value and len(value) == 1:
                if not isinstance(value[marker], str):
                    raise ValueError(f"a {marker} reference must be an entry name, got {value[marker]!r}")
                referenced.append(value[marker])
        return value

    text = _read_entry(path, archive, _STRUCTURE_KEY, _MAX_STRUCTURE_BYTES).tobytes().decode()
    structure = json.loads(text, object_hook=note_reference)
    unreferenced = entries - set(referenced) - {_STRUCTURE_KEY}
    if unreferenced:
        raise CheckpointError(path, f"holds entries its structure does not name ({len(unreferenced)} in all, "
                                    f"e.g. {sorted(unreferenced)[0]!r}); refusing to read them")
    missing = set(referenced) - entries
    if missing:
        raise CheckpointError(path, f"its structure names entry {sorted(missing)[0]!r}, which is missing")
    arrays = {key: _read_entry(path, archive, key) for key in set(referenced)}
    return _decode(structure, arrays)


def _read_entry(path, archive, key, max_bytes=None):
    """One entry's array, read only after its header's shape and dtype match its size."""
    info = archive.getinfo(key + ".npy")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        if dtype.hasobject or dtype.kind not in _ARRAY_KINDS:
            raise CheckpointError(path, f"entry {key!r} has dtype {dtype}; a checkpoint holds only bool, "
                                        f"integer and float arrays")
        data_bytes = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
        if stream.tell() + data_bytes != info.file_size:
            raise CheckpointError(path, f"entry {key!r} declares shape {shape} of {dtype} ({data_bytes} "
                                        f"bytes) but holds {info.file_size - stream.tell()} bytes")
        if max_bytes is not None and data_bytes > max_bytes:
            raise CheckpointError(path, f"entry {key!r} is {data_bytes} bytes, more than {max_bytes}")
        data = stream.read(data_bytes)
    if len(data) != data_bytes:
        raise CheckpointError(path, f"entry {key!r} is truncated")
    order = "F" if fortran_order else "C"
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy(order="K")
