"""Modules: registration order, state_dict, devices and dtypes, hooks."""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.register_buffer("steps", mg.tensor(np.zeros((), dtype=np.int64)))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    def forward(self, x):
        return self.head(self.conv(x))


def test_parameters_and_buffers_in_registration_order():
    block = Block()
    assert [name for name, _ in block.named_parameters()] == ["conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(block.state_dict()) == ["steps", "conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]
    assert [name for name, _ in block.named_buffers()] == ["steps"]


def test_state_dict_keys_and_layouts_equal_pytorchs():
    ours = nn.Sequential(nn.Conv2d(1, 3, 5), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 5), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 10))
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(their_state)
    assert all(ours_state[k].shape == tuple(their_state[k].shape) for k in ours_state)


def test_load_state_dict_errors_name_the_keys():
    model = nn.Sequential(nn.Linear(3, 2))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"missing keys \['0.bias'\]"):
        model.load_state_dict({"0.weight": state["0.weight"]})
    with pytest.raises(RuntimeError, match=r"unexpected keys \['extra'\]"):
        model.load_state_dict(dict(state, extra=np.zeros(1)))
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: the checkpoint has shape \(3, 3\), the model has \(2, 3\)"):
        model.load_state_dict(dict(state, **{"0.weight": np.zeros((3, 3))}))
    result = model.load_state_dict({"0.weight": np.ones((2, 3))}, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == []
    np.testing.assert_array_equal(model[0].weight.numpy(), np.ones((2, 3)))


def test_load_state_dict_copies_in_place_keeping_identity():
    model = nn.Linear(3, 2)
    weight = model.weight
    model.load_state_dict({"weight": np.full((2, 3), 0.5), "bias": np.zeros(2)})
    assert model.weight is weight and weight.dtype == np.float32
    np.testing.assert_array_equal(weight.numpy(), 0.5)


def test_train_eval_and_dropout():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = mg.tensor(np.ones((64, 4), dtype=np.float32))
    assert model.training and model[1].training
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())
    model.train()
    assert (model(x).numpy() == 0).any()


def test_to_dtype_keeps_parameter_objects_and_integer_buffers():
    block = Block()
    weight = block.conv.weight
    block.double()
    assert block.conv.weight is weight and weight.dtype == np.float64
    assert block.steps.dtype == np.int64
    block.float()
    assert weight.dtype == np.float32


def test_zero_grad_and_parameter_assignment_rules():
    layer = nn.Linear(2, 2)
    (layer(mg.tensor(np.ones((1, 2), dtype=np.float32))).sum()).backward()
    assert layer.weight.grad is not None
    layer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(layer.weight.grad.numpy(), 0)
    layer.zero_grad()
    assert layer.weight.grad is None
    with pytest.raises(TypeError, match="cannot assign a ndarray to parameter 'weight'"):
        layer.weight = np.zeros((2, 2))


def test_forward_pre_hook_runs_and_can_be_removed():
    layer = nn.Linear(2, 2)
    seen = []
    handle = layer.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape))
    layer(mg.tensor(np.ones((3, 2), dtype=np.float32)))
    handle.remove()
    layer(mg.tensor(np.ones((3, 2), dtype=np.float32)))
    assert seen == [(3, 2)]


def test_repr_reads_like_pytorchs():
    text = repr(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    assert text == "Sequential(\n  (0): Linear(in_features=3, out_features=2, bias=True)\n  (1): ReLU()\n)"


def test_shared_parameters_are_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2
