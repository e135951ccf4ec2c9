"""The networks of minigrad.models against the same networks in PyTorch, and train.py's --model choices.

benchmarks/bench_resnet.py builds each network's PyTorch twin, module for
module with minigrad's names, so one state_dict loads into both; in float64 and
training mode (batch statistics), the loss, every parameter's gradient and the
running statistics agree. The architecture itself is checked by its layers.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.models import MODELS

ROOT = Path(__file__).resolve().parents[1]


def _bench_resnet():
    spec = importlib.util.spec_from_file_location("bench_resnet", ROOT / "benchmarks" / "bench_resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, depth, width", [("resnet", 8, 4), ("resnet", 14, 3), ("mobilenet", None, 4)])
def test_model_matches_its_pytorch_twin(name, depth, width):
    torch.manual_seed(0)
    ours, theirs = _bench_resnet().twins(name, depth, width)
    ours.to(np.float64)
    theirs.double()
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(4, 1, 28, 28)), rng.integers(0, 10, 4)
    our_loss = mg.functional.cross_entropy(ours(mg.tensor(images)), labels)
    their_loss = torch.nn.functional.cross_entropy(theirs(torch.tensor(images)), torch.tensor(labels))
    our_loss.backward()
    their_loss.backward()
    np.testing.assert_allclose(our_loss.item(), their_loss.item(), rtol=1e-10)
    their_parameters = dict(theirs.named_parameters())
    assert [key for key, _ in ours.named_parameters()] == list(their_parameters)
    for key, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.numpy(), their_parameters[key].grad.numpy(), rtol=1e-8,
                                   atol=1e-10, err_msg=key)
    for key, buffer in theirs.state_dict().items():  # running statistics moved alike
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), buffer.numpy(), rtol=1e-10, err_msg=key)


def test_resnet20_has_resnet20s_layers():
    model = mg.models.resnet(depth=20, width=16)
    convs = [key for key, value in model.state_dict().items() if key.endswith("weight") and value.ndim == 4]
    assert len(convs) == 19 + 2  # 19 3x3 convs, plus two 1x1 projections where the stages change width
    assert model.fc.weight.shape == (10, 64)
    assert model(mg.tensor(np.zeros((2, 1, 28, 28), dtype=np.float32))).shape == (2, 10)


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="resnet: depth must be 6n \\+ 2"):
        mg.models.resnet(depth=10)


def test_train_py_offers_the_new_models():
    for name in ("resnet", "mobilenet"):
        assert name in MODELS
        assert MODELS[name]()(mg.tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))).shape == (1, 10)
