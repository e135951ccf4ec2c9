"""The IDX file format of MNIST and Fashion-MNIST: a tiny header, then raw numbers.

    bytes 0-1   zero
    byte  2     type of the numbers: 0x08 uint8, 0x09 int8, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64 (big-endian)
    byte  3     number of dimensions, d
    then        d sizes, each a big-endian uint32
    then        prod(sizes) numbers, row-major (C order)

Image files are ``(N, 28, 28)`` uint8, label files ``(N,)`` uint8. Files may be
gzipped (the usual ``.gz`` downloads) or raw; ``read_idx`` tells them apart by
the gzip magic bytes, not by the name.
"""
import gzip
import os
import zlib

import numpy as np

_GZIP_MAGIC = b"\x1f\x8b"

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}


class IDXError(ValueError):
    """An IDX file is corrupt, truncated or not an IDX file; the message names the file."""


def _read_bytes(path):
    with open(path, "rb") as handle:
        content = handle.read()
    if content[:2] != _GZIP_MAGIC:
        return content
    try:
        return gzip.decompress(content)
    except (OSError, EOFError, zlib.error) as error:
        raise IDXError(f"{path}: corrupt or truncated gzip data ({error})") from None


def read_idx(path):
    """Read an IDX file (gzipped or raw) into a NumPy array of its shape, native byte order."""
    path = os.fspath(path)
    content = _read_bytes(path)
    if len(content) < 4:
        raise IDXError(f"{path}: too short for an IDX header ({len(content)} bytes, need 4)")
    if content[0] != 0 or content[1] != 0 or content[2] not in _DTYPES:
        raise IDXError(f"{path}: bad magic number 0x{content[:4].hex()}: not an IDX file "
                       f"(expected 0x0000 then a type code in "
                       f"{', '.join(hex(code) for code in _DTYPES)})")
    dtype = _DTYPES[content[2]]
    ndim = content[3]
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header_size} bytes, "
                       f"the file has {len(content)}")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(content) - header_size
    if found < expected:
        raise IDXError(f"{path}: truncated: shape {shape} of {dtype.name} needs {expected} bytes "
                       f"of data, found {found}")
    if found > expected:
        raise IDXError(f"{path}: {found - expected} unexpected bytes after the data of shape "
                       f"{shape}")
    array = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzipped when ``path`` ends in '.gz'."""
    path = os.fspath(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code "
                         f"(use uint8, int8, int16, int32, float32 or float64)")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    content = header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    if path.endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    with open(path, "wb") as handle:
        handle.write(content)
