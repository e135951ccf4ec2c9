"""Checkpoints: .npz without pickle, written atomically."""
import os

import numpy as np
import pytest

import minigrad as mg
from minigrad.serialization import CheckpointError


def test_round_trip_of_nested_state(tmp_path):
    model = mg.nn.Sequential(mg.nn.Linear(3, 2))
    state = {"model": model.state_dict(), "epoch": 3, "lr": [0.1, 0.01], "name": "run",
             "rng": {"state": {"key": 2 ** 100}}, "nothing": None, "array": np.arange(4), 7: "int key"}
    path = tmp_path / "checkpoint.npz"
    mg.save(state, path)
    loaded = mg.load(path)
    assert loaded["epoch"] == 3 and loaded["lr"] == [0.1, 0.01] and loaded["nothing"] is None
    assert loaded["rng"]["state"]["key"] == 2 ** 100 and loaded[7] == "int key"
    np.testing.assert_array_equal(loaded["array"], np.arange(4))
    assert isinstance(loaded["model"]["0.weight"], mg.Tensor)
    np.testing.assert_array_equal(loaded["model"]["0.weight"].numpy(), model[0].weight.numpy())
    model.load_state_dict(loaded["model"])


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __structure__=np.frombuffer(b'{"x": {"__array__": "a0"}}', dtype=np.uint8),
             a0=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError, match="dtype object"):
        mg.load(path)


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temporary(tmp_path):
    path = tmp_path / "checkpoint.npz"
    mg.save({"epoch": 1}, path)
    with pytest.raises(TypeError, match="cannot store a object"):
        mg.save({"epoch": 2, "bad": object()}, path)
    assert mg.load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_not_a_checkpoint(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="is not a minigrad checkpoint"):
        mg.load(tmp_path / "plain.npz")
