"""Download a file, verify its SHA-256, and only then give it its name.

The bytes go to a temporary file in the destination's folder while their
SHA-256 is computed; a file whose digest matches is renamed into place
(``os.replace`` is atomic on one file system). A digest mismatch, a network
error or an interrupted transfer deletes the temporary file, so the
destination either holds the verified file or does not exist.
"""
import hashlib
import os
import tempfile
import urllib.request

_CHUNK_BYTES = 1 << 20


class ChecksumError(OSError):
    """A downloaded file's SHA-256 is not the expected one."""


def sha256_of(path):
    """The hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, destination, sha256, opener=urllib.request.urlopen, timeout=60):
    """Fetch ``url`` into ``destination`` if its SHA-256 is ``sha256``; return the path.

    ``opener(url, timeout=...)`` returns a readable response (a context
    manager); tests pass their own. Raises ``ChecksumError`` on a mismatch and
    re-raises any transfer error, leaving no file behind in either case.
    """
    destination = os.fspath(destination)
    folder = os.path.dirname(os.path.abspath(destination))
    os.makedirs(folder, exist_ok=True)
    handle, partial_path = tempfile.mkstemp(dir=folder, prefix=".partial-",
                                            suffix="-" + os.path.basename(destination))
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as partial, opener(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
                partial.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise ChecksumError(f"download: {url} has SHA-256 {digest.hexdigest()}, "
                                f"expected {sha256}; the file was discarded")
        os.replace(partial_path, destination)
    except BaseException:
        if os.path.exists(partial_path):
            os.remove(partial_path)
        raise
    return destination
