"""The losses and their options against PyTorch, and their first and second derivatives (float64)."""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn.functional as F


def leaf(rng, *shape):
    return mg.tensor(rng.normal(size=shape), requires_grad=True, dtype=np.float64)


def _torch(value):
    if isinstance(value, mg.Tensor):
        return torch.tensor(value.numpy(), requires_grad=value.requires_grad)
    return value


def _same_as_torch(ours_fn, theirs_fn, *inputs, rtol=1e-10):
    """Value and gradient (of every input requiring one) of ours_fn and theirs_fn on the same inputs."""
    theirs_inputs = [_torch(value) for value in inputs]
    ours, theirs = ours_fn(*inputs), theirs_fn(*theirs_inputs)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-12)
    weights = np.random.default_rng(5).normal(size=ours.shape)
    wanted = [i for i, value in enumerate(inputs) if isinstance(value, mg.Tensor) and value.requires_grad]
    our_grads = mg.grad(ours, [inputs[i] for i in wanted], grad_outputs=mg.tensor(weights))
    their_grads = torch.autograd.grad(theirs, [theirs_inputs[i] for i in wanted], torch.tensor(weights))
    for our_grad, their_grad in zip(our_grads, their_grads):
        np.testing.assert_allclose(our_grad.numpy(), their_grad.numpy(), rtol=rtol, atol=1e-12)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [dict(weight=True), dict(ignore_index=1), dict(label_smoothing=0.2),
                                     dict(weight=True, ignore_index=2, label_smoothing=0.3)])
def test_cross_entropy_options_on_nc_d1_d2_logits(rng, reduction, options):
    logits = leaf(rng, 3, 4, 2, 5)
    target = mg.tensor(rng.integers(0, 4, size=(3, 2, 5)))
    weight = rng.uniform(0.2, 2.0, size=4) if options.get("weight") else None
    kwargs = dict(options, weight=None if weight is None else mg.tensor(weight), reduction=reduction)
    their_kwargs = dict(options, weight=None if weight is None else torch.tensor(weight), reduction=reduction)
    _same_as_torch(lambda x: F.cross_entropy(x, target, **kwargs),
                   lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target.numpy()), **their_kwargs), logits)
    assert mg.gradcheck(lambda x: F.cross_entropy(x, target, **kwargs), [logits])
    assert mg.gradgradcheck(lambda x: F.cross_entropy(x, target, **kwargs), [logits])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_probabilities(rng, reduction):
    logits, weight = leaf(rng, 4, 3, 2), rng.uniform(0.5, 1.5, size=3)
    probabilities = mg.tensor(rng.dirichlet(np.ones(3), size=(4, 2)).transpose(0, 2, 1), requires_grad=True)
    _same_as_torch(lambda x, p: F.cross_entropy(x, p, weight=mg.tensor(weight), reduction=reduction,
                                                label_smoothing=0.1),
                   lambda x, p: torch.nn.functional.cross_entropy(x, p, weight=torch.tensor(weight),
                                                                  reduction=reduction, label_smoothing=0.1),
                   logits, probabilities)
    assert mg.gradgradcheck(lambda x, p: F.cross_entropy(x, p, reduction=reduction), [logits, probabilities])


def test_cross_entropy_of_an_unbatched_row_and_the_fused_path(rng):
    row, label = leaf(rng, 5), mg.tensor(np.array(3))
    _same_as_torch(lambda x: F.cross_entropy(x, label), lambda x: torch.nn.functional.cross_entropy(
        x, torch.tensor(3)), row)
    logits, labels = leaf(rng, 6, 4), mg.tensor(rng.integers(0, 4, size=6))
    assert type(F.cross_entropy(logits, labels).grad_fn).__name__ == "CrossEntropy"  # the fast path stays
    _same_as_torch(lambda x: F.cross_entropy(x, labels, ignore_index=2),
                   lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(labels.numpy()), ignore_index=2), logits)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_weighted_mean_and_ignore_index(rng, reduction):
    log_probabilities = leaf(rng, 5, 3, 2)
    target, weight = rng.integers(0, 3, size=(5, 2)), rng.uniform(0.2, 2.0, size=3)
    _same_as_torch(lambda x: F.nll_loss(x, mg.tensor(target), mg.tensor(weight), ignore_index=0, reduction=reduction),
                   lambda x: torch.nn.functional.nll_loss(x, torch.tensor(target), torch.tensor(weight),
                                                          ignore_index=0, reduction=reduction), log_probabilities)
    assert mg.gradgradcheck(lambda x: F.nll_loss(x, mg.tensor(target), reduction=reduction), [log_probabilities])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_weight_and_pos_weight(rng, reduction):
    logits, target = leaf(rng, 4, 3) * 30, mg.tensor(rng.uniform(size=(4, 3)), requires_grad=True)
    weight, pos_weight = rng.uniform(0.5, 2, size=(1, 3)), rng.uniform(0.5, 3, size=3)
    _same_as_torch(lambda x, t: F.binary_cross_entropy_with_logits(x, t, mg.tensor(weight), reduction,
                                                                   mg.tensor(pos_weight)),
                   lambda x, t: torch.nn.functional.binary_cross_entropy_with_logits(
                       x, t, torch.tensor(weight), reduction=reduction, pos_weight=torch.tensor(pos_weight)),
                   logits, target)
    zero = mg.tensor(np.zeros(3), requires_grad=True, dtype=np.float64)  # the gradient at 0 is 1/2 - y
    F.binary_cross_entropy_with_logits(zero, mg.tensor(np.ones(3)), reduction="sum").backward()
    np.testing.assert_allclose(zero.grad.numpy(), -0.5)
    assert mg.gradgradcheck(lambda x, t: F.binary_cross_entropy_with_logits(
        x, t, reduction=reduction, pos_weight=mg.tensor(pos_weight)), [leaf(rng, 4, 3), target])


@pytest.mark.parametrize("name, options", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                           ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {"delta": 0.7}),
                                           ("mse_loss", {})])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses(rng, name, options, reduction):
    prediction, target = leaf(rng, 3, 4), leaf(rng, 3, 4)
    _same_as_torch(lambda x, t: getattr(F, name)(x, t, reduction=reduction, **options),
                   lambda x, t: getattr(torch.nn.functional, name)(x, t, reduction=reduction, **options),
                   prediction, target)
    assert mg.gradcheck(lambda x, t: getattr(F, name)(x, t, reduction=reduction, **options), [prediction, target])
    if name != "l1_loss" and options.get("beta", 1) > 0:
        assert mg.gradgradcheck(lambda x, t: getattr(F, name)(x, t, reduction=reduction, **options),
                                [prediction, target])


def test_loss_layers_keep_pytorchs_options_and_buffers(rng):
    weight = rng.uniform(size=3)
    pairs = [(mg.nn.CrossEntropyLoss(mg.tensor(weight), ignore_index=1, label_smoothing=0.1),
              torch.nn.CrossEntropyLoss(torch.tensor(weight), ignore_index=1, label_smoothing=0.1)),
             (mg.nn.NLLLoss(mg.tensor(weight), reduction="sum"),
              torch.nn.NLLLoss(torch.tensor(weight), reduction="sum")),
             (mg.nn.BCEWithLogitsLoss(pos_weight=mg.tensor(weight)),
              torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight))),
             (mg.nn.L1Loss(), torch.nn.L1Loss()), (mg.nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3)),
             (mg.nn.HuberLoss(delta=2.0), torch.nn.HuberLoss(delta=2.0)), (mg.nn.MSELoss(), torch.nn.MSELoss())]
    logits, labels = leaf(rng, 5, 3), rng.integers(0, 3, size=5)
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        target = labels if isinstance(ours, (mg.nn.CrossEntropyLoss, mg.nn.NLLLoss)) else rng.uniform(size=(5, 3))
        np.testing.assert_allclose(ours(logits, mg.tensor(target)).item(),
                                   theirs(torch.tensor(logits.numpy()), torch.tensor(target)).item(), rtol=1e-10)


def test_bad_targets_and_options_are_clear_errors(rng):
    logits = leaf(rng, 4, 3)
    with pytest.raises(IndexError, match="cross_entropy: target holds label 3"):
        F.cross_entropy(logits, mg.tensor(np.array([0, 1, 2, 3])))
    with pytest.raises(ValueError, match="reduction"):
        F.nll_loss(logits, mg.tensor(np.array([0, 1, 2, 1])), reduction="avg")
    with pytest.raises(ValueError, match="weight has shape"):
        F.cross_entropy(logits, mg.tensor(np.array([0, 1, 2, 1])), weight=mg.tensor(np.ones(4)))
    with pytest.raises(ValueError, match="target of shape"):
        F.cross_entropy(logits, mg.tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(logits, mg.tensor(np.array([0, 1, 2, 1])), label_smoothing=1.5)
