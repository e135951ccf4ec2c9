"""Batch normalization: what it guarantees, checked against PyTorch and central differences.

- functional.batch_norm's gradients equal central differences (float64), in
  training (batch statistics) and eval (running statistics) mode;
- BatchNorm1d/2d match torch.nn.BatchNorm1d/2d step by step: outputs, the
  gradients of input, weight and bias, running statistics and
  num_batches_tracked, for momentum=None, affine=False and
  track_running_stats=False too; state_dict keys are torch's;
- the SyncBatchNorm hooks: two halves of a batch, each combining the other
  half's statistics and gradient sums, give the full batch's result;
- bad input is a clear error; kernels/batchnorm.cu compiles for sm_80 and sm_90.
"""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import kernels
from minigrad.nn import batchnorm
from minigrad.nn import functional as F


def _tensor64(rng, shape, requires_grad=True, scale=1.0, shift=0.0):
    return mg.tensor(rng.standard_normal(shape) * scale + shift, dtype=np.float64, requires_grad=requires_grad)


# ----- gradients -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (2, 3, 2, 3)])
def test_gradcheck_training_uses_the_closed_form(rng, shape):
    x = _tensor64(rng, shape, scale=2, shift=1)
    weight, bias = _tensor64(rng, shape[1]), _tensor64(rng, shape[1])
    assert mg.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, weight, bias])


def test_gradcheck_training_without_affine_and_with_running_stats(rng):
    x = _tensor64(rng, (5, 2, 3))
    running_mean, running_var = np.zeros(2), np.ones(2)
    assert mg.gradcheck(lambda x: F.batch_norm(x, running_mean, running_var, training=True, momentum=0.3), [x])


def test_gradcheck_eval_mode_treats_running_stats_as_constants(rng):
    x, weight, bias = _tensor64(rng, (3, 4, 2, 2)), _tensor64(rng, 4), _tensor64(rng, 4)
    running_mean, running_var = rng.standard_normal(4), rng.random(4) + 0.5
    assert mg.gradcheck(lambda x, w, b: F.batch_norm(x, running_mean, running_var, w, b, training=False),
                        [x, weight, bias])


# ----- parity with PyTorch -------------------------------------------------------------
def _pair(layer_name, channels, rng, **options):
    ours, theirs = getattr(mg.nn, layer_name)(channels, **options), getattr(torch.nn, layer_name)(channels, **options)
    if theirs.affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(rng.standard_normal(channels)))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(channels)))
    ours.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


def _assert_close(ours, theirs, what, rtol=1e-5):
    theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * max(1.0, np.abs(theirs).max()), err_msg=what)


def _step_and_compare(ours, theirs, x, grad):
    ours_input, their_input = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours_output, their_output = ours(ours_input), theirs(their_input)
    _assert_close(ours_output.numpy(), their_output, "output")
    ours_output.backward(grad)
    their_output.backward(torch.tensor(grad))
    _assert_close(ours_input.grad.numpy(), their_input.grad, "input gradient")
    if theirs.affine:
        _assert_close(ours.weight.grad.numpy(), theirs.weight.grad, "weight gradient")
        _assert_close(ours.bias.grad.numpy(), theirs.bias.grad, "bias gradient")
        ours.zero_grad(), theirs.zero_grad()
    for name, value in theirs.state_dict().items():
        _assert_close(ours.state_dict()[name].numpy(), value, name)


CONFIGURATIONS = [
    ("BatchNorm2d", (6, 3, 5, 4), {}),
    ("BatchNorm1d", (16, 5), {}),
    ("BatchNorm1d", (4, 3, 7), {"momentum": 0.3}),
    ("BatchNorm2d", (3, 4, 3, 3), {"momentum": None}),
    ("BatchNorm2d", (5, 2, 3, 3), {"affine": False}),
    ("BatchNorm1d", (8, 6), {"track_running_stats": False}),
    ("BatchNorm2d", (4, 3, 2, 5), {"affine": False, "track_running_stats": False, "eps": 1e-3}),
]


@pytest.mark.parametrize("layer_name, shape, options", CONFIGURATIONS)
def test_matches_torch_over_training_steps_then_eval(rng, layer_name, shape, options):
    ours, theirs = _pair(layer_name, shape[1], rng, **options)
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        _step_and_compare(ours, theirs, x, rng.standard_normal(shape).astype(np.float32))
    ours.eval(), theirs.eval()
    for _ in range(2):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        _step_and_compare(ours, theirs, x, rng.standard_normal(shape).astype(np.float32))


def test_state_dict_keys_and_buffers_are_torchs(rng):
    ours, theirs = _pair("BatchNorm2d", 7, rng)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
    assert [name for name, _ in ours.named_parameters()] == ["weight", "bias"]
    for options in ({"affine": False}, {"track_running_stats": False}):
        assert list(mg.nn.BatchNorm1d(3, **options).state_dict()) == list(torch.nn.BatchNorm1d(3, **options).state_dict())


def test_functional_updates_running_stats_in_place(rng):
    x = rng.standard_normal((10, 3)).astype(np.float32)
    running_mean, running_var = mg.tensor(np.zeros(3)), mg.tensor(np.ones(3))
    F.batch_norm(mg.tensor(x), running_mean, running_var, training=True, momentum=0.25)
    np.testing.assert_allclose(running_mean.numpy(), 0.25 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(running_var.numpy(), 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-6)
    assert F.batch_norm is batchnorm.batch_norm


# ----- the hooks SyncBatchNorm builds on ---------------------------------------------------
def test_hooks_make_half_a_batch_behave_like_the_whole_batch(rng):
    """Process A sees x[:3]; its hooks add process B's share (x[3:]), as an all-gather would."""
    x = (rng.standard_normal((6, 2, 3, 3)) * 2 + 1).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    whole_input = mg.tensor(x, requires_grad=True)
    whole = mg.nn.BatchNorm2d(2)
    whole_output = whole(whole_input)
    whole_output.backward(grad)
    mean, invstd = x.mean(axis=(0, 2, 3)), 1 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-5)

    class TwoProcessFunction(batchnorm.BatchNormFunction):
        def combine_statistics(self, count, mean_, m2):
            other = batchnorm.batch_statistics(x[3:])
            return batchnorm.merge_statistics(*(np.stack([mine, theirs]) for mine, theirs in zip((count, mean_, m2), other)))

        def combine_gradient_sums(self, sum_dy, sum_dy_xhat):
            other_dy, other_dy_xhat = batchnorm.gradient_sums(grad[3:], x[3:], mean, invstd)
            return sum_dy + other_dy, sum_dy_xhat + other_dy_xhat

    class TwoProcessBatchNorm2d(mg.nn.BatchNorm2d):
        function_class = TwoProcessFunction

    half_input = mg.tensor(x[:3], requires_grad=True)
    half = TwoProcessBatchNorm2d(2)
    half_output = half(half_input)
    half_output.backward(grad[:3])
    np.testing.assert_allclose(half_output.numpy(), whole_output.numpy()[:3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(half_input.grad.numpy(), whole_input.grad.numpy()[:3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(half.running_var.numpy(), whole.running_var.numpy(), rtol=1e-6)
    # parameter gradients stay local: data parallelism all-reduces them
    np.testing.assert_allclose(half.bias.grad.numpy(), grad[:3].sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_merge_statistics_is_chans_formula(rng):
    parts = [rng.standard_normal((n, 3)) * 5 + 100 for n in (1, 7, 30)]
    count = np.array([[len(p)] * 3 for p in parts], dtype=np.float64)
    mean = np.stack([p.mean(axis=0) for p in parts])
    m2 = np.stack([((p - p.mean(axis=0)) ** 2).sum(axis=0) for p in parts])
    total, merged_mean, merged_m2 = batchnorm.merge_statistics(count, mean, m2)
    everything = np.concatenate(parts)
    np.testing.assert_allclose(total, [38] * 3)
    np.testing.assert_allclose(merged_mean, everything.mean(axis=0))
    np.testing.assert_allclose(merged_m2, ((everything - everything.mean(axis=0)) ** 2).sum(axis=0))


# ----- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer, shape", [(mg.nn.BatchNorm1d(3), (1, 3)), (mg.nn.BatchNorm2d(3), (1, 3, 1, 1)),
                                          (mg.nn.BatchNorm1d(3), (1, 3, 1))])
def test_one_value_per_channel_in_training_is_an_error(layer, shape):
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \(" + ", ".join(map(str, shape)) + r"\)"):
        layer(mg.tensor(np.zeros(shape, dtype=np.float32)))
    assert layer.num_batches_tracked.item() == 0
    layer.eval()
    assert layer(mg.tensor(np.ones(shape, dtype=np.float32))).shape == shape  # eval mode is fine


def test_wrong_channel_count_names_both_counts():
    with pytest.raises(ValueError, match=r"BatchNorm2d: input has 4 channels .*num_features=3"):
        mg.nn.BatchNorm2d(3)(mg.tensor(np.zeros((2, 4, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"batch_norm: input has 3 channels .*running_mean has shape \(4,\)"):
        F.batch_norm(mg.tensor(np.zeros((2, 3))), np.zeros(4), np.ones(4), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: input has 2 channels .*weight has shape \(5,\)"):
        F.batch_norm(mg.tensor(np.zeros((2, 2))), None, None, mg.tensor(np.ones(5)), training=True)


def test_wrong_rank_is_an_error():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(N, C, H, W\), got 3D input"):
        mg.nn.BatchNorm2d(3)(mg.tensor(np.zeros((2, 3, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input .* got 4D input"):
        mg.nn.BatchNorm1d(3)(mg.tensor(np.zeros((2, 3, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"running_mean and running_var must be given in evaluation mode"):
        F.batch_norm(mg.tensor(np.zeros((2, 3))), None, None, training=False)


# ----- the CUDA source ------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvrtc(arch):
    cubin = kernels.compile_for("batchnorm", arch)
    assert len(cubin) > 1000 and b"batch_norm_statistics_planar_v4" in cubin
