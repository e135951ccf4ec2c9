"""The engine on CuPy: the same ops give the same numbers as on NumPy (runs on a GPU machine only)."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F

pytestmark = pytest.mark.gpu


def test_tensor_round_trip_and_device_errors():
    x = mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    on_gpu = x.to("cuda")
    assert on_gpu.device == "cuda" and on_gpu.to("cpu").device == "cpu"
    (on_gpu * 2).sum().backward()  # the gradient flows back across the copy
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    with pytest.raises(RuntimeError, match="add: inputs are on different devices"):
        on_gpu + x


@pytest.mark.parametrize("batch", [1, 7, 131])
def test_cnn_forward_and_gradients_match_the_cpu(batch):
    def model():
        mg.manual_seed(3)
        return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(5, 6, 3, stride=2), nn.Tanh(), nn.AvgPool2d(2, stride=1),
                             nn.Flatten(), nn.Linear(6, 4)).double()
    cpu, gpu = model(), model().to("cuda")
    rng = np.random.default_rng(batch)
    x = rng.normal(size=(batch, 3, 13, 13))
    labels = rng.integers(0, 4, size=batch)
    losses = []
    for net, device in ((cpu, "cpu"), (gpu, "cuda")):
        loss = F.cross_entropy(net(mg.tensor(x, device=device)), mg.tensor(labels, device=device))
        loss.backward()
        losses.append(loss.item())
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-10)
    for (name, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_indexing_scatter_and_dropout_on_the_gpu():
    x = mg.tensor(np.arange(5.0), requires_grad=True, device="cuda")
    x[mg.tensor(np.array([0, 0, 3]), device="cuda")].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 0, 0, 1, 0])
    mg.manual_seed(0)
    y = F.dropout(mg.tensor(np.ones((200, 50), dtype=np.float32), device="cuda"), 0.5)
    kept = float((y.numpy() != 0).mean())
    assert 0.45 < kept < 0.55


def test_checkpoint_of_a_gpu_model_loads_on_the_cpu(tmp_path):
    gpu = nn.Linear(3, 2).to("cuda")
    mg.save(gpu.state_dict(), tmp_path / "gpu.npz")
    cpu = nn.Linear(3, 2)
    cpu.load_state_dict(mg.load(tmp_path / "gpu.npz"))
    np.testing.assert_array_equal(cpu.weight.numpy(), gpu.weight.numpy())
