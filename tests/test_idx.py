"""IDX files, verified downloads, and the MNIST / Fashion-MNIST datasets built on them.

The IDX reader round-trips what ``write_idx`` writes and rejects broken files
with errors that name the file; a download is either verified and complete or
absent; the real Fashion-MNIST has 60000 + 10000 images whose pixel mean and
standard deviation are the ones minigrad normalises with.
"""
import gzip
import hashlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.data import (MNIST, ChecksumError, DataLoader, DatasetNotFound, FashionMNIST, IDXError,
                           download, read_idx, write_idx)
from minigrad.data import mnist as mnist_module

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


# ----- the IDX format ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), gzipped=st.booleans(),
       seed=st.integers(0, 1000))
def test_idx_round_trip(tmp_path_factory, dtype, shape, gzipped, seed):
    array = (np.random.default_rng(seed).random(shape) * 100 - 20).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("array.idx" + (".gz" if gzipped else ""))
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 2, 9], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 070209")


def test_gzip_is_detected_by_content_not_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(6, dtype=np.int32).reshape(2, 3))
    os.rename(tmp_path / "a.gz", tmp_path / "no-suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), [[0, 1, 2], [3, 4, 5]])


def write_bytes(tmp_path, content, name="broken-idx"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def valid_images():
    header = bytes.fromhex("00000803") + np.array([2, 3, 3], dtype=">u4").tobytes()
    return header + bytes(range(18))


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "too short for an IDX header"),
    (bytes.fromhex("01000803") + bytes(8), "bad magic number 0x01000803"),
    (bytes.fromhex("00000f01") + bytes(8), "bad magic number 0x00000f01"),
    (bytes.fromhex("00000803") + bytes(6), "truncated header: 3 dimensions need 16 bytes"),
    (valid_images()[:-5], r"truncated: shape \(2, 3, 3\) of uint8 needs 18 bytes of data, "
                          r"found 13"),
    (valid_images() + b"\x00", "1 unexpected bytes after the data"),
])
def test_broken_files_are_rejected_by_name(tmp_path, content, message):
    path = write_bytes(tmp_path, content)
    with pytest.raises(IDXError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_and_corrupt_gzip_are_rejected_by_name(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, 900, dtype=np.uint8).tobytes()
    packed = gzip.compress(bytes.fromhex("00000803") + np.array([100, 3, 3], ">u4").tobytes() + pixels,
                           mtime=0)
    truncated = write_bytes(tmp_path, packed[:len(packed) // 2], "truncated.gz")
    with pytest.raises(IDXError, match=f"{truncated}: corrupt or truncated gzip"):
        read_idx(truncated)
    flipped = bytearray(packed)
    flipped[-6] ^= 0xFF  # a byte of the CRC trailer
    corrupt = write_bytes(tmp_path, bytes(flipped), "corrupt.gz")
    with pytest.raises(IDXError, match=f"{corrupt}: corrupt or truncated gzip"):
        read_idx(corrupt)


def test_write_idx_rejects_types_without_a_code(tmp_path):
    with pytest.raises(ValueError, match="dtype int64 has no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# ----- verified downloads --------------------------------------------------------------------
def sha256_hex(content):
    return hashlib.sha256(content).hexdigest()


def test_download_verifies_and_renames(tmp_path):
    source = write_bytes(tmp_path, b"fashion" * 1000, "source.bin")
    target = tmp_path / "cache" / "file.bin"
    path = download(source.as_uri(), target, sha256_hex(b"fashion" * 1000))
    assert path == str(target) and target.read_bytes() == b"fashion" * 1000
    assert os.listdir(target.parent) == ["file.bin"]


def test_checksum_mismatch_leaves_no_file(tmp_path):
    source = write_bytes(tmp_path, b"tampered", "source.bin")
    target = tmp_path / "cache" / "file.bin"
    with pytest.raises(ChecksumError, match=f"{sha256_hex(b'tampered')}, expected 0+") as error:
        download(source.as_uri(), target, "0" * 64)
    assert source.as_uri() in str(error.value)
    assert os.listdir(target.parent) == []


def test_interrupted_download_leaves_no_file(tmp_path):
    class Response:
        def __init__(self):
            self.chunks = [b"first part of the file", ConnectionResetError("peer went away")]

        def read(self, size):
            chunk = self.chunks.pop(0)
            if isinstance(chunk, Exception):
                raise chunk
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

    target = tmp_path / "file.bin"
    with pytest.raises(ConnectionResetError):
        download("https://example.invalid/file.bin", target, "0" * 64,
                 opener=lambda url, timeout: Response())
    assert os.listdir(tmp_path) == []


# ----- MNIST-format datasets from files ---------------------------------------------------
def write_split(folder, images, labels, split="train", gzipped=True):
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{suffix}"), images)
    write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{suffix}"), labels)


def tiny_split(count=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count, dtype=np.uint8))


@pytest.mark.parametrize("gzipped", [True, False])
def test_images_become_float_pixels_in_unit_range(tmp_path, gzipped):
    images, labels = tiny_split()
    write_split(tmp_path, images, labels, "t10k", gzipped)
    dataset = MNIST(root=tmp_path, train=False, download=False)
    assert dataset.data.shape == (7, 1, 28, 28) and dataset.data.dtype == np.float32
    np.testing.assert_allclose(dataset.data[:, 0], images / 255.0, rtol=1e-6)
    assert dataset.targets.dtype == np.int64
    np.testing.assert_array_equal(dataset.targets, labels)
    image, label = dataset[3]
    assert image.shape == (1, 28, 28) and int(label.numpy()) == labels[3]
    normalized = MNIST(root=tmp_path, train=False, download=False, normalize=True)
    np.testing.assert_allclose(normalized.data, (dataset.data - MNIST.mean) / MNIST.std,
                               rtol=1e-5, atol=1e-6)


def test_count_mismatch_names_both_files(tmp_path):
    images, labels = tiny_split()
    write_split(tmp_path, images, labels[:5])
    with pytest.raises(IDXError, match=r"holds 7 images but .*train-labels-idx1-ubyte.gz holds 5"):
        MNIST(root=tmp_path, download=False)


def test_wrong_shapes_and_labels_are_rejected(tmp_path):
    images, labels = tiny_split()
    write_split(tmp_path / "flat", images.reshape(7, -1), labels)
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz: expected images of shape"):
        MNIST(root=tmp_path / "flat", download=False)
    write_split(tmp_path / "labels", images, np.full(7, 12, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"labels must be in 0..9, found 12..12"):
        MNIST(root=tmp_path / "labels", download=False)


class TinyMNIST(MNIST):
    """An MNIST-format dataset that exists nowhere but in this test's folders."""
    name = "minigrad-test-tiny"


def test_search_order_system_then_cache_and_root_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "SYSTEM_DATASETS", str(tmp_path / "system"))
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    for place, count in (("cache", 3), ("system", 4)):
        write_split(tmp_path / place / TinyMNIST.name, *tiny_split(count))
        assert len(TinyMNIST(download=False)) == count  # the newest place written is the higher
        with pytest.raises(DatasetNotFound, match=f"not found in folder {tmp_path / 'root'}$"):
            TinyMNIST(root=tmp_path / "root", download=False)  # an empty root never falls back
    write_split(tmp_path / "root", *tiny_split(5))
    assert len(TinyMNIST(root=tmp_path / "root", download=False)) == 5


def test_missing_files_without_download_list_the_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"TinyMNIST: .*not found.*cache"):
        TinyMNIST(download=False)


def test_download_into_the_cache_from_the_first_mirror_that_works(tmp_path, monkeypatch):
    images, labels = tiny_split(9)
    write_split(tmp_path / "server", images, labels)
    server = tmp_path / "server"
    files = {name: (server / name).read_bytes() for name in os.listdir(server)}
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(TinyMNIST, "sha256", {name: sha256_hex(content)
                                              for name, content in files.items()})
    monkeypatch.setattr(TinyMNIST, "mirrors", ((tmp_path / "down").as_uri() + "/",
                                               (tmp_path / "server").as_uri() + "/"))
    dataset = TinyMNIST()
    assert len(dataset) == 9 and dataset.images_path.startswith(str(tmp_path / "cache"))
    assert sorted(os.listdir(tmp_path / "cache" / TinyMNIST.name)) == sorted(files)
    monkeypatch.setattr(TinyMNIST, "mirrors", ())  # found in the cache: no download needed
    np.testing.assert_array_equal(TinyMNIST().targets, labels)


def test_failed_downloads_leave_the_cache_empty(tmp_path, monkeypatch):
    write_split(tmp_path / "server", *tiny_split())
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "cache"))
    wrong_digests = {name: "0" * 64 for name in os.listdir(tmp_path / "server")}
    monkeypatch.setattr(TinyMNIST, "sha256", wrong_digests)
    monkeypatch.setattr(TinyMNIST, "mirrors", ((tmp_path / "server").as_uri() + "/",))
    with pytest.raises(OSError, match=r"could not download train-images-idx3-ubyte.gz:\n.*SHA-256"):
        TinyMNIST()
    assert os.listdir(tmp_path / "cache" / TinyMNIST.name) == []


# ----- the real Fashion-MNIST ---------------------------------------------------------------
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(DEBIAN_FASHION_MNIST),
    reason=f"{DEBIAN_FASHION_MNIST} is absent (apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def fashion_train():
    return FashionMNIST(train=True, download=False)


@needs_fashion_mnist
def test_real_fashion_mnist_training_set(fashion_train):
    assert fashion_train.data.shape == (60000, 1, 28, 28) and fashion_train.data.dtype == np.float32
    assert fashion_train.data.min() == 0.0 and fashion_train.data.max() == 1.0
    np.testing.assert_array_equal(np.bincount(fashion_train.targets), [6000] * 10)
    pixels = fashion_train.data.astype(np.float64)
    # The normalisation constants are the training pixels' mean and std, to 4 decimals.
    assert abs(pixels.mean() - FashionMNIST.mean) < 5e-5
    assert abs(pixels.std() - FashionMNIST.std) < 5e-5
    images, labels = next(iter(DataLoader(fashion_train, batch_size=128, shuffle=True, seed=0)))
    assert images.shape == (128, 1, 28, 28) and labels.shape == (128,)


@needs_fashion_mnist
def test_real_fashion_mnist_test_set_normalized():
    test_set = FashionMNIST(train=False, download=False, normalize=True)
    assert len(test_set) == 10000 and test_set.targets.dtype == np.int64
    assert test_set.images_path.startswith(DEBIAN_FASHION_MNIST)
    assert abs(test_set.data.mean(dtype=np.float64)) < 0.01
    assert abs(test_set.data.std(dtype=np.float64) - 1) < 0.01
