"""Hostile and damaged files: checkpoints and IDX datasets are trusted for nothing.

Every crafted checkpoint raises ``CheckpointError`` naming the file (and is one line from
train.py --resume); only the entries the structure names are read, each after its declared
shape is checked against its size; IDX sizes are multiplied in Python integers and gzip is
decompressed only up to the size the header declares."""
import contextlib
import gzip
import io
import json
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import minigrad as mg
from faults import assert_one_line_error, run_train, write_tiny_dataset
from minigrad.data import IDXError, read_idx
from minigrad.serialization import CheckpointError


def structure(document):
    return np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)


def npz_bytes(**entries):
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


def zip_bytes(entries):
    """A .npz built entry by entry: {name: bytes of an .npy file}; names may repeat as a list of pairs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header_only(shape, payload=b"\0" * 8):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def good_checkpoint():
    buffer = io.BytesIO()
    model = mg.nn.Sequential(mg.nn.Linear(3, 2))
    arrays = {"a0": model[0].weight.numpy(), "a1": model[0].bias.numpy()}
    document = {"model": {"0.weight": {"__tensor__": "a0"}, "0.bias": {"__tensor__": "a1"}}, "epoch": 1}
    np.savez(buffer, __structure__=structure(document), **arrays)
    return buffer.getvalue()


def flip(content, offset):
    damaged = bytearray(content)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


REFERENCES_A0 = structure({"w": {"__tensor__": "a0"}})
CRAFTED = {
    "empty": (lambda: b"", "is empty"),
    "truncated": (lambda: good_checkpoint()[:len(good_checkpoint()) // 2], "damaged or truncated"),
    "garbage": (lambda: bytes(range(256)) * 4, "not a .npz checkpoint (no zip header)"),
    "npy": (lambda: npy_bytes(np.zeros(3)), "is a single .npy array"),
    "broken zip header": (lambda: flip(good_checkpoint(), 31), "damaged or truncated"),
    "bad crc": (lambda: flip(good_checkpoint(), good_checkpoint().index(b"a0.npy") + 6 + 128 + 2),
                "damaged or truncated"),
    "no structure": (lambda: npz_bytes(x=np.zeros(2)), "not a minigrad checkpoint"),
    "missing entry": (lambda: npz_bytes(__structure__=REFERENCES_A0), "names entry 'a0', which is missing"),
    "unreferenced entry": (lambda: npz_bytes(__structure__=structure({}), a0=np.zeros(2)),
                           "entries its structure does not name (1 in all, e.g. 'a0')"),
    "nested too deeply": (lambda: npz_bytes(__structure__=np.frombuffer(b"[" * 50000 + b"]" * 50000, np.uint8)),
                          "nested too deeply"),
    "not utf-8": (lambda: npz_bytes(__structure__=np.frombuffer(b"\xff\xfe{}", np.uint8)), "UnicodeDecodeError"),
    "not json": (lambda: npz_bytes(__structure__=np.frombuffer(b"{epoch: 1", np.uint8)), "JSONDecodeError"),
    "bad reference": (lambda: npz_bytes(__structure__=structure({"w": {"__tensor__": 7}})),
                      "must be an entry name"),
    "complex weights": (lambda: npz_bytes(__structure__=REFERENCES_A0, a0=np.ones(2, np.complex64)),
                        "dtype complex64"),
    "string weights": (lambda: npz_bytes(__structure__=REFERENCES_A0, a0=np.array(["ab", "cd"])), "dtype <U2"),
    "pickled objects": (lambda: zip_bytes([("__structure__.npy", npy_bytes(REFERENCES_A0)),
                                           ("a0.npy", npy_bytes(np.array([{}], dtype=object)))]), "dtype object"),
    "shape larger than entry": (lambda: zip_bytes([("__structure__.npy", npy_bytes(REFERENCES_A0)),
                                                   ("a0.npy", npy_header_only((2 ** 40, 2 ** 30)))]),
                                "declares shape (1099511627776, 1073741824)"),
    "two entries of one name": (lambda: zip_bytes([("__structure__.npy", npy_bytes(REFERENCES_A0)),
                                                   ("a0.npy", npy_bytes(np.zeros(2))),
                                                   ("a0.npy", npy_bytes(np.zeros(3)))]), "two entries of the same name"),
}


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_crafted_checkpoints_raise_checkpoint_error_naming_the_file(tmp_path, kind):
    make, message = CRAFTED[kind]
    path = tmp_path / "last.npz"
    with pytest.warns(UserWarning) if kind == "two entries of one name" else contextlib.nullcontext():
        path.write_bytes(make())
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        mg.load(path)
    assert error.value.path == str(path) and str(error.value).startswith(f"{path}: ")


def test_unreferenced_entries_are_rejected_without_being_read(tmp_path, monkeypatch):
    path = tmp_path / "padded.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__structure__.npy", npy_bytes(structure({"epoch": 1})))
        archive.writestr("padding.npy", npy_bytes(np.zeros(8 << 20, dtype=np.uint8)))  # 8 MB, 8 kB packed
    opened = []
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(
        getattr(name, "filename", name)) or original(self, name, *a, **k))
    with pytest.raises(CheckpointError, match="entries its structure does not name .1 in all, e.g. 'padding'"):
        mg.load(path)
    assert opened == ["__structure__.npy"]


# ----- through train.py --resume: one line naming the file -------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_train_resume_from_a_crafted_checkpoint_is_one_line(tmp_path, data, kind):
    (tmp_path / "ck").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when it writes a name twice
        (tmp_path / "ck" / "last.npz").write_bytes(CRAFTED[kind][0]())
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--resume")
    assert_one_line_error(result, "train.py: error: ck/last.npz: ", CRAFTED[kind][1], code=1)


def test_a_checkpoint_of_another_program_or_model_is_one_line(tmp_path, data):
    (tmp_path / "ck").mkdir()
    mg.save({"epoch": 1}, tmp_path / "ck" / "last.npz")
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--resume")
    assert_one_line_error(result, "ck/last.npz: not a train.py checkpoint (no 'model' entry)", code=1)
    finished = run_train(tmp_path, data, "--checkpoint", "ck", "--overwrite")
    assert finished.returncode == 0, finished.stderr
    state = mg.load(tmp_path / "ck" / "last.npz")
    state["model"] = mg.models.cnn().state_dict()  # the options still say mlp
    mg.save(state, tmp_path / "ck" / "last.npz")
    result = run_train(tmp_path, data, "--checkpoint", "ck", "--resume")
    assert_one_line_error(result, "ck/last.npz: does not fit this run", "missing keys", code=1)


# ----- IDX files ----------------------------------------------------------------------------
def idx_header(shape, code=0x08):
    return bytes([0, 0, code, len(shape)]) + np.array(shape, dtype=">u4").tobytes()


def test_gzip_with_trailing_data_stops_at_the_declared_size(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_header((2, 3, 3)) + bytes(18) + bytes(32 << 20), mtime=0))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match=f"{path}: trailing data"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert os.path.getsize(path) < 64 << 10 and peak < 4 << 20  # 32 MB behind a 33 kB file, never read


@pytest.mark.parametrize("gzipped", [False, True])
def test_sizes_that_overflow_64_bits_are_caught(tmp_path, gzipped):
    content = idx_header((2 ** 22, 2 ** 21, 2 ** 21)) + bytes(64)  # 2^64 bytes: 0 in int64 arithmetic
    path = tmp_path / ("huge.gz" if gzipped else "huge")
    path.write_bytes(gzip.compress(content, mtime=0) if gzipped else content)
    message = "more than this gzip file can hold" if gzipped else "truncated"
    with pytest.raises(IDXError, match=f"{path}: .*{message}"):
        read_idx(path)
    with pytest.raises(IDXError, match="18446744073709551616 bytes"):
        read_idx(path)
