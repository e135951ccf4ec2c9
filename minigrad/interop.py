"""Passing tensors to and from other libraries, and reading weights that PyTorch code wrote.

- DLPack: ``Tensor.__dlpack__`` / ``__dlpack_device__`` and ``from_dlpack``
  share memory with PyTorch, CuPy, NumPy or JAX, no copy: ``torch.from_dlpack(t)``
  and ``mg.from_dlpack(torch_tensor)`` see the same bytes, on the CPU or the GPU.
- safetensors: the format the ecosystem uses for weights from untrusted
  sources. A file is 8 bytes (little-endian u64, the header's length N), N
  bytes of JSON ``{name: {"dtype": "F32", "shape": [...], "data_offsets":
  [begin, end]}, "__metadata__": {...}}``, then the raw little-endian data,
  offsets counted from its start. Nothing in it is code, so reading one runs
  nothing; ``load_safetensors`` still checks every offset and size before it
  reads. ``save_safetensors`` writes files that ``safetensors.torch.load_file``
  reads.
- ``load_state_dict_file``: a state_dict saved from PyTorch as ``.safetensors``
  (``safetensors.torch.save_file(model.state_dict(), path)``) or ``.npz``
  (``numpy.savez(path, **{k: v.numpy() for k, v in sd.items()})``), as a dict
  of NumPy arrays for ``model.load_state_dict``. (A ``torch.save`` file is a
  pickle, which can run code when loaded: out of scope.)
"""
import json
import os
import struct

import numpy as np

from . import backend
from .tensor import Tensor

KDL_CPU, KDL_CUDA = 1, 2  # DLPack's device types

# safetensors dtype names and NumPy's; BF16 has no NumPy dtype and is widened to float32 on load.
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?", "BF16": "<u2"}
NAMES = {np.dtype(code): name for name, code in DTYPES.items() if name != "BF16"}
MAX_HEADER_BYTES = 100 * 2 ** 20  # the reference implementation's limit


def from_dlpack(external):
    """A Tensor sharing memory with any object that speaks DLPack (a torch or CuPy tensor, a NumPy array)."""
    if not hasattr(external, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: {type(external).__name__} does not implement __dlpack__/__dlpack_device__")
    device_type, _ = external.__dlpack_device__()
    if device_type == KDL_CPU:
        return Tensor(np.from_dlpack(external))
    if device_type == KDL_CUDA:
        return Tensor(backend.cupy().from_dlpack(external))
    raise ValueError(f"from_dlpack: device type {device_type} is neither the CPU (1) nor CUDA (2)")


def _bfloat16_to_float32(bits):
    """bfloat16 is the top half of a float32: shift its 16 bits up and read them as one."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _header(data, path):
    if len(data) < 8:
        raise ValueError(f"load_safetensors: {path} is {len(data)} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(f"load_safetensors: {path} declares a {length}-byte header, "
                         f"but the file holds {len(data) - 8} bytes after the length")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load_safetensors: {path} has a header that is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise ValueError(f"load_safetensors: {path} has a header that is not a JSON object")
    return header, 8 + length


def _entry(name, entry, path):
    """(dtype name, shape, begin, end) of one header entry, each checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"load_safetensors: {path}: entry {name!r} must hold exactly dtype, shape, data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise ValueError(f"load_safetensors: {path}: tensor {name!r} has dtype {dtype!r}, which minigrad does not "
                         f"read (it reads {', '.join(DTYPES)})")
    lists = isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2
    if not (lists and all(isinstance(value, int) and not isinstance(value, bool) and value >= 0
                          for value in shape + offsets)):
        raise ValueError(f"load_safetensors: {path}: tensor {name!r} has a malformed shape or data_offsets")
    begin, end = offsets
    if end - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize:
        raise ValueError(f"load_safetensors: {path}: tensor {name!r} of shape {tuple(shape)} and dtype {dtype} "
                         f"does not fill its {end - begin} bytes")
    return dtype, tuple(shape), begin, end


def load_safetensors(path):
    """{name: NumPy array} from a .safetensors file (BF16 widened to float32), every entry checked first."""
    with open(path, "rb") as file:
        data = file.read()
    header, start = _header(data, path)
    header.pop("__metadata__", None)
    entries = {name: _entry(name, entry, path) for name, entry in header.items()}
    position = 0  # the entries must tile the data buffer exactly, in offset order
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            raise ValueError(f"load_safetensors: {path}: tensor {name!r} starts at byte {begin}, expected {position}")
        position = end
    if start + position != len(data):
        raise ValueError(f"load_safetensors: {path}: the tensors cover {position} bytes of data, "
                         f"the file holds {len(data) - start}")
    arrays = {}
    for name, (dtype, shape, begin, end) in entries.items():
        array = np.frombuffer(data, dtype=DTYPES[dtype], count=(end - begin) // np.dtype(DTYPES[dtype]).itemsize,
                              offset=start + begin).reshape(shape)
        arrays[name] = _bfloat16_to_float32(array) if dtype == "BF16" else array.astype(array.dtype.newbyteorder("="))
    return arrays


def save_safetensors(tensors, path, metadata=None):
    """Write {name: Tensor or array} to ``path`` in the safetensors format (``metadata``: str -> str)."""
    arrays = {name: backend.to_numpy(value.data if isinstance(value, Tensor) else value)  # tobytes() is C order
              for name, value in tensors.items()}
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(key): str(value) for key, value in metadata.items()}
    for name, array in arrays.items():
        if array.dtype not in NAMES:
            raise TypeError(f"save_safetensors: tensor {name!r} has dtype {array.dtype}, which safetensors cannot hold")
        header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)) + encoded)
        for array in arrays.values():
            file.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def load_state_dict_file(path):
    """{name: NumPy array} from a state_dict that PyTorch code saved as .safetensors or .npz."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix == ".safetensors":
        return load_safetensors(path)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:  # no pickles: loading runs no code
            return {name: archive[name] for name in archive.files}
    raise ValueError(f"load_state_dict_file: {path} is neither .safetensors nor .npz "
                     f"(a torch.save file is a pickle, which minigrad does not load)")
