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
import math
import os
import zlib

import numpy as np

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20
# Deflate turns one compressed byte into at most about 1032 bytes: a gzip file of n bytes
# cannot hold more, which bounds a header's claim before anything is decompressed.
_MAX_DEFLATE_RATIO = 1032

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}


class DatasetError(Exception):
    """A dataset's files are missing, damaged or inconsistent; the message names the file or folder."""


class IDXError(DatasetError, ValueError):
    """An IDX file is corrupt, truncated or not an IDX file; the message names the file."""


def _read_up_to(stream, count):
    """At most ``count`` bytes from ``stream``, fewer only where the stream ends."""
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(min(_CHUNK_BYTES, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def read_idx(path):
    """Read an IDX file (gzipped or raw) into a NumPy array of its shape, native byte order.

    The header's sizes are multiplied in Python integers and checked against what the
    file can hold before anything is read; gzip is decompressed as a stream only up to
    the declared size, and one byte more is the error "trailing data".
    """
    path = os.fspath(path)
    file_bytes = os.path.getsize(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not gzipped:
            return _read_stream(path, raw, file_bytes, exact=True)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_stream(path, stream, file_bytes * _MAX_DEFLATE_RATIO, exact=False)
        except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            raise IDXError(f"{path}: corrupt or truncated gzip data ({error})") from None


def _read_stream(path, stream, most_bytes, exact):
    """Parse an IDX stream; ``most_bytes`` bounds its length (exactly its length when ``exact``)."""
    header = _read_up_to(stream, 4)
    if len(header) < 4:
        raise IDXError(f"{path}: too short for an IDX header ({len(header)} bytes, need 4)")
    if header[0] != 0 or header[1] != 0 or header[2] not in _DTYPES:
        raise IDXError(f"{path}: bad magic number 0x{bytes(header).hex()}: not an IDX file "
                       f"(expected 0x0000 then a type code in "
                       f"{', '.join(hex(code) for code in _DTYPES)})")
    dtype, ndim = _DTYPES[header[2]], header[3]
    header_size = 4 + 4 * ndim
    sizes = _read_up_to(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header_size} bytes, "
                       f"the file has {4 + len(sizes)}")
    shape = tuple(int.from_bytes(sizes[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    expected = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    room = most_bytes - header_size
    if exact and room != expected:
        if room < expected:
            raise IDXError(f"{path}: truncated: shape {shape} of {dtype.name} needs {expected} bytes "
                           f"of data, found {room}")
        raise IDXError(f"{path}: trailing data: {room - expected} unexpected bytes after the data of "
                       f"shape {shape}")
    if expected > room:
        raise IDXError(f"{path}: shape {shape} of {dtype.name} needs {expected} bytes of data, more "
                       f"than this gzip file can hold")
    data = _read_up_to(stream, expected)
    if len(data) < expected:
        raise IDXError(f"{path}: truncated: shape {shape} of {dtype.name} needs {expected} bytes "
                       f"of data, found {len(data)}")
    if stream.read(1):
        raise IDXError(f"{path}: trailing data: unexpected bytes after the data of shape {shape}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
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
