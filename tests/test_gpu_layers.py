"""The layer options on CuPy give the CPU's numbers; DLPack shares GPU memory (runs on a GPU machine only)."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F

pytestmark = pytest.mark.gpu

WEIGHTS = {shape: np.random.default_rng(1).normal(size=shape) for shape in [(6, 2, 3, 3), (3, 4, 4, 3), (4, 2, 3, 2)]}


def weight(shape, x):
    return mg.tensor(WEIGHTS[shape], device=x.device)


OPS = {
    "grouped_dilated_conv": lambda x: F.conv2d(x, weight((6, 2, 3, 3), x), stride=2, padding=1, dilation=2, groups=2),
    "same_conv": lambda x: F.conv2d(x, weight((3, 4, 4, 3), x), padding="same"),
    "conv_transpose": lambda x: F.conv_transpose2d(x, weight((4, 2, 3, 2), x), stride=2, output_padding=1, groups=2),
    "max_pool": lambda x: F.max_pool2d(x, 3, 2, 1, dilation=1, ceil_mode=True),
    "max_pool_unpool": lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2),
    "avg_pool": lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    "adaptive_avg_pool": lambda x: F.adaptive_avg_pool2d(x, (3, 5)),
    "reflect_pad": lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_layer_options_match_the_cpu(name):
    rng = np.random.default_rng(0)
    data = rng.permutation(2 * 4 * 9 * 8).reshape(2, 4, 9, 8) / 100.0  # no ties for the max pools
    results = []
    for device in ("cpu", "cuda"):
        x = mg.tensor(data, requires_grad=True, device=device)
        out = OPS[name](x)
        (out * out).sum().backward()
        results.append((out.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-10, atol=1e-12)


def test_dlpack_shares_gpu_memory_with_cupy():
    import cupy
    ours = mg.tensor(np.zeros(4, dtype=np.float32), device="cuda")
    theirs = cupy.from_dlpack(ours)
    theirs[2] = 5.0
    assert ours.numpy()[2] == 5.0
    back = mg.from_dlpack(theirs)
    assert back.device == "cuda" and back.data.data.ptr == ours.data.data.ptr
