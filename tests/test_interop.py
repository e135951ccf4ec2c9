"""Interop: DLPack shares memory with PyTorch and NumPy (no copy, in both directions); safetensors and
.npz files that PyTorch code wrote load into a minigrad model, and hostile safetensors headers fail cleanly.
"""
import json
import struct

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import minigrad as mg
from minigrad.interop import load_safetensors, load_state_dict_file, save_safetensors


def test_torch_reads_a_minigrad_tensor_without_a_copy():
    ours = mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    theirs = torch.from_dlpack(ours)
    assert theirs.shape == (2, 3) and theirs.dtype == torch.float32
    theirs[1, 2] = 100.0  # the same memory: the write shows on our side
    assert ours.numpy()[1, 2] == 100.0
    assert ours.__dlpack_device__() == (1, 0)


def test_minigrad_reads_torch_and_numpy_without_a_copy():
    theirs = torch.arange(12, dtype=torch.float64).reshape(3, 4)[:, 1:]  # a strided view
    ours = mg.from_dlpack(theirs)
    assert ours.shape == (3, 3) and ours.dtype == np.float64
    theirs[0, 0] = -7.0
    assert ours.numpy()[0, 0] == -7.0
    array = np.ones((2, 2), dtype=np.int64)
    shared = mg.from_dlpack(array)
    array[0, 1] = 5
    assert shared.numpy()[0, 1] == 5
    assert np.from_dlpack(shared) is not None and np.shares_memory(np.from_dlpack(shared), array)


def test_from_dlpack_refuses_what_is_not_dlpack():
    with pytest.raises(TypeError, match="from_dlpack: list does not implement __dlpack__"):
        mg.from_dlpack([1.0, 2.0])


def _torch_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))


def _our_model():
    return mg.nn.Sequential(mg.nn.Conv2d(1, 4, 3), mg.nn.BatchNorm2d(4), mg.nn.ReLU(), mg.nn.Flatten(),
                            mg.nn.Linear(4 * 4 * 4, 3))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_a_state_dict_that_pytorch_saved_loads_into_the_same_minigrad_model(suffix, tmp_path):
    theirs = _torch_model()
    theirs.train()(torch.randn(8, 1, 6, 6))  # move the running statistics away from their defaults
    theirs.eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(theirs.state_dict(), str(path))
    else:
        np.savez(path, **{key: value.numpy() for key, value in theirs.state_dict().items()})
    ours = _our_model()
    ours.load_state_dict(load_state_dict_file(path))
    ours.eval()
    images = np.random.default_rng(0).normal(size=(2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(mg.tensor(images)).numpy(), theirs(torch.tensor(images)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_safetensors_round_trip_with_the_reference_library(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"weight": rng.normal(size=(3, 4)).astype(np.float32), "steps": np.array(7, dtype=np.int64),
              "mask": rng.random(5) > 0.5, "empty": np.zeros((0, 2), dtype=np.float16),
              "half": rng.normal(size=(2, 3)).astype(np.float16), "double": rng.normal(size=(4,))}
    ours_path, theirs_path = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_safetensors({**arrays, "tensor": mg.tensor(arrays["double"])}, ours_path, metadata={"format": "np"})
    safetensors.numpy.save_file(arrays, str(theirs_path))
    read_back = safetensors.numpy.load_file(str(ours_path))  # the reference library reads ours
    for loaded in (read_back, load_safetensors(theirs_path), load_safetensors(ours_path)):
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
            np.testing.assert_array_equal(loaded[name], array, err_msg=name)


def test_bfloat16_weights_load_as_float32(tmp_path):
    values = torch.tensor([[1.5, -2.25], [3.0e10, 0.0]], dtype=torch.bfloat16)
    safetensors.torch.save_file({"weight": values}, str(tmp_path / "bf16.safetensors"))
    loaded = load_safetensors(tmp_path / "bf16.safetensors")["weight"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.float().numpy())


def _crafted(tmp_path, header, data=b""):
    encoded = json.dumps(header).encode() if isinstance(header, dict) else header
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


@pytest.mark.parametrize("header, data, message", [
    (b"{not json", b"", "header that is not JSON"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "cover 8 bytes of data"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "does not fill its 8 bytes"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "starts at byte 4, expected 0"),
    ({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype 'C64'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "malformed shape"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, b"\0" * 4, "exactly dtype"),
], ids=["not_json", "truncated", "wrong_size", "gap", "unknown_dtype", "negative_shape", "extra_field"])
def test_crafted_safetensors_files_fail_with_a_clear_error(tmp_path, header, data, message):
    with pytest.raises(ValueError, match=message):
        load_safetensors(_crafted(tmp_path, header, data))


def test_a_header_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2 ** 60) + b"{}")
    with pytest.raises(ValueError, match="declares a 1152921504606846976-byte header"):
        load_safetensors(path)


def test_a_torch_save_file_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="neither .safetensors nor .npz"):
        load_state_dict_file(tmp_path / "model.pt")
