"""mg.optim against torch.optim: the same model, data and options give the same weights.

Every test runs a small network (Linear-Tanh-Linear, float64) side by side with
PyTorch for up to 50 steps and compares every parameter after every step.
"""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import nn
from minigrad.optim import SGD, Adam, AdamW, sgd_update_reference

STEPS = 50


def model_pair(seed=0):
    """Our model and PyTorch's, with PyTorch's initial weights copied into ours."""
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    ours = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(np.float64)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


def batches(steps=STEPS, seed=3):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(16, 6)), rng.normal(size=(16, 3))) for _ in range(steps)]


def train_step(model, optimizer, x, y, framework, sign=1.0):
    """One step on the mean squared error; sign=-1 gives the objective that maximize=True climbs."""
    optimizer.zero_grad()
    if framework is torch:
        loss = ((model(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean()
    else:
        loss = ((model(mg.tensor(x)) - mg.tensor(y)) ** 2).mean()
    (loss * sign).backward()
    optimizer.step()


def two_groups(model, **second_group_options):
    """Layer 0 in the first group (default options), layer 2 in a second with a smaller lr."""
    return [{"params": list(model[0].parameters())},
            {"params": list(model[2].parameters()), "lr": 0.02, **second_group_options}]


def assert_same_weights(ours, theirs, step, atol=1e-6):
    for (name, ours_p), theirs_p in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(ours_p.numpy(), theirs_p.detach().numpy(), rtol=1e-6, atol=atol,
                                   err_msg=f"{name} after step {step}")


def run_side_by_side(make_ours, make_theirs, steps=STEPS, maximize=False):
    """Train both for ``steps`` steps, comparing every parameter after every step.

    With maximize=True the objective is -MSE, so that gradient ascent converges instead
    of blowing up (which would amplify rounding differences exponentially).
    """
    ours, theirs = model_pair()
    ours_optimizer, theirs_optimizer = make_ours(ours), make_theirs(theirs)
    sign = -1.0 if maximize else 1.0
    for step, (x, y) in enumerate(batches(steps)):
        train_step(ours, ours_optimizer, x, y, mg, sign)
        train_step(theirs, theirs_optimizer, x, y, torch, sign)
        assert_same_weights(ours, theirs, step)
    return ours_optimizer, theirs_optimizer


# Every valid combination: Nesterov needs momentum and no dampening.
SGD_OPTIONS = [dict(momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=decay,
                    maximize=maximize)
               for momentum in (0.0, 0.9) for dampening in (0.0, 0.5) for nesterov in (False, True)
               for decay in (0.0, 0.01) for maximize in (False, True)
               if not (nesterov and (momentum == 0 or dampening != 0))]


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_trajectory_matches_pytorch_with_two_param_groups(options):
    assert len(SGD_OPTIONS) == 20
    ours_optimizer, theirs_optimizer = run_side_by_side(
        lambda model: SGD(two_groups(model), lr=0.05, **options),
        lambda model: torch.optim.SGD(two_groups(model), lr=0.05, **options), maximize=options["maximize"])
    if options["momentum"]:
        # one buffer per parameter, equal to PyTorch's
        theirs_buffers = [theirs_optimizer.state[p]["momentum_buffer"].numpy()
                          for group in theirs_optimizer.param_groups for p in group["params"]]
        ours_buffers = [ours_optimizer.state[p]["momentum_buffer"]
                        for group in ours_optimizer.param_groups for p in group["params"]]
        for ours_buffer, theirs_buffer in zip(ours_buffers, theirs_buffers, strict=True):
            np.testing.assert_allclose(ours_buffer, theirs_buffer, rtol=1e-6, atol=1e-6)
    else:
        assert ours_optimizer.state == {}


def test_sgd_groups_with_different_options_match_pytorch():
    first = dict(momentum=0.9, nesterov=True, weight_decay=1e-3)
    second = dict(momentum=0.5, dampening=0.1, nesterov=False, weight_decay=0.0)
    run_side_by_side(lambda model: SGD(two_groups(model, **second), lr=0.05, **first),
                     lambda model: torch.optim.SGD(two_groups(model, **second), lr=0.05, **first))


def test_sgd_state_dict_restores_momentum_and_continues_identically(tmp_path):
    options = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    data = batches()
    ours, theirs = model_pair()
    optimizer = SGD(two_groups(ours, momentum=0.5), **options)
    theirs_optimizer = torch.optim.SGD(two_groups(theirs, momentum=0.5), **options)
    for x, y in data[:25]:
        train_step(ours, optimizer, x, y, mg)
        train_step(theirs, theirs_optimizer, x, y, torch)
    saved = optimizer.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2, 3]
    assert [group["params"] for group in saved["param_groups"]] == [[0, 1], [2, 3]]
    mg.save({"model": ours.state_dict(), "optimizer": saved}, tmp_path / "checkpoint.npz")

    checkpoint = mg.load(tmp_path / "checkpoint.npz")
    resumed, _ = model_pair(seed=1)  # different initial weights, overwritten by the checkpoint
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = SGD(two_groups(resumed), lr=1.0)  # options come from the checkpoint
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert resumed_optimizer.param_groups[1]["momentum"] == 0.5
    for step, (x, y) in enumerate(data[25:], start=25):
        train_step(ours, optimizer, x, y, mg)
        train_step(resumed, resumed_optimizer, x, y, mg)
        train_step(theirs, theirs_optimizer, x, y, torch)
        for original, restored in zip(ours.parameters(), resumed.parameters()):
            np.testing.assert_array_equal(original.numpy(), restored.numpy())
        assert_same_weights(resumed, theirs, step)


def test_sgd_loads_a_pytorch_optimizer_state_dict():
    options = dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)
    data = batches(30)
    ours, theirs = model_pair()
    theirs_optimizer = torch.optim.SGD(theirs.parameters(), **options)
    for x, y in data[:10]:
        train_step(theirs, theirs_optimizer, x, y, torch)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    optimizer = SGD(ours.parameters(), lr=1.0)
    optimizer.load_state_dict(theirs_optimizer.state_dict())
    for step, (x, y) in enumerate(data[10:], start=10):
        train_step(ours, optimizer, x, y, mg)
        train_step(theirs, theirs_optimizer, x, y, torch)
        assert_same_weights(ours, theirs, step)


def test_masked_sgd_keeps_pruned_weights_and_momentum_exactly_zero():
    ours, theirs = model_pair()
    rng = np.random.default_rng(5)
    masks = {"0.weight": (rng.random((8, 6)) > 0.4).astype(np.float64),   # a float mask, as torch's prune
             "2.bias": np.array([True, False, True])}                       # a bool mask works too
    for name, parameter in ours.named_parameters():
        if name in masks:
            parameter.mask = mg.tensor(masks[name])
            parameter.data *= masks[name]
    theirs_parameters = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            theirs_parameters[name].mul_(torch.from_numpy(mask.astype(np.float64)))
    options = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    optimizer = SGD(ours.parameters(), **options)
    theirs_optimizer = torch.optim.SGD(theirs.parameters(), **options)
    ours_parameters = dict(ours.named_parameters())
    for step, (x, y) in enumerate(batches()):
        train_step(ours, optimizer, x, y, mg)
        # PyTorch's way: step, then multiply the weight and its momentum by the mask again
        train_step(theirs, theirs_optimizer, x, y, torch)
        with torch.no_grad():
            for name, mask in masks.items():
                mask = torch.from_numpy(mask.astype(np.float64))
                theirs_parameters[name].mul_(mask)
                theirs_optimizer.state[theirs_parameters[name]]["momentum_buffer"].mul_(mask)
        for name, mask in masks.items():
            parameter = ours_parameters[name]
            pruned = mask == 0
            # the gradient of a pruned weight is not zero, yet the weight stays zero
            assert step > 0 or np.abs(parameter.grad.numpy()[pruned]).max() > 0
            assert np.all(parameter.numpy()[pruned] == 0)
            assert np.all(optimizer.state[parameter]["momentum_buffer"][pruned] == 0)
        assert_same_weights(ours, theirs, step)


ADAM_CASES = [(Adam, torch.optim.Adam, dict(amsgrad=amsgrad, weight_decay=decay, maximize=maximize))
              for amsgrad in (False, True) for decay in (0.0, 0.1) for maximize in (False, True)]
ADAM_CASES += [(AdamW, torch.optim.AdamW, dict()),
               (AdamW, torch.optim.AdamW, dict(amsgrad=True, weight_decay=0.1)),
               (Adam, torch.optim.Adam, dict(betas=(0.8, 0.99), eps=1e-6))]


@pytest.mark.parametrize("ours_class, theirs_class, options", ADAM_CASES,
                         ids=lambda case: case.__name__ if isinstance(case, type) else str(case))
def test_adam_and_adamw_trajectories_match_pytorch(ours_class, theirs_class, options):
    ours_optimizer, theirs_optimizer = run_side_by_side(
        lambda model: ours_class(two_groups(model), lr=0.01, **options),
        lambda model: theirs_class(two_groups(model), lr=0.01, **options),
        maximize=options.get("maximize", False))
    first = ours_optimizer.param_groups[0]["params"][0]
    assert ours_optimizer.state[first]["step"] == STEPS
    np.testing.assert_allclose(ours_optimizer.state[first]["exp_avg_sq"],
                               theirs_optimizer.state[theirs_optimizer.param_groups[0]["params"][0]]
                               ["exp_avg_sq"].numpy(), rtol=1e-6, atol=1e-12)


def test_adam_state_dict_round_trip_continues_identically(tmp_path):
    data = batches(20)
    ours, _ = model_pair()
    optimizer = AdamW(ours.parameters(), lr=0.01, amsgrad=True)
    for x, y in data[:10]:
        train_step(ours, optimizer, x, y, mg)
    mg.save({"model": ours.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "adam.npz")
    checkpoint = mg.load(tmp_path / "adam.npz")
    resumed, _ = model_pair(seed=1)
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = AdamW(resumed.parameters())
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    for x, y in data[10:]:
        train_step(ours, optimizer, x, y, mg)
        train_step(resumed, resumed_optimizer, x, y, mg)
    for original, restored in zip(ours.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())


def test_zero_grad_sets_none_or_zeros():
    ours, _ = model_pair()
    optimizer = SGD(ours.parameters(), lr=0.1)
    x, y = batches(1)[0]
    ((ours(mg.tensor(x)) - mg.tensor(y)) ** 2).mean().backward()
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in ours.parameters())
    optimizer.zero_grad()
    assert all(p.grad is None for p in ours.parameters())


def test_a_parameter_without_gradient_is_left_alone():
    ours, _ = model_pair()
    optimizer = SGD(ours.parameters(), lr=0.1, momentum=0.9)
    before = [p.numpy().copy() for p in ours.parameters()]
    optimizer.step()
    assert all(np.array_equal(b, p.numpy()) for b, p in zip(before, ours.parameters()))
    assert optimizer.state == {}


def test_add_param_group_fills_defaults():
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    optimizer = SGD(first.parameters(), lr=0.1, momentum=0.9)
    optimizer.add_param_group({"params": second.parameters(), "lr": 0.01})
    assert optimizer.param_groups[1]["lr"] == 0.01 and optimizer.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        optimizer.add_param_group({"params": [second.weight]})


def test_the_cpu_update_leaves_the_gradient_untouched():
    rng = np.random.default_rng(0)
    param, grad, buffer = (rng.normal(size=(5, 7)).astype(np.float32) for _ in range(3))
    grad_before = grad.copy()
    for options in SGD_OPTIONS:
        sgd_update_reference(param, grad, buffer, None, lr=0.1, **options)
        np.testing.assert_array_equal(grad, grad_before)


def _parameters():
    return list(nn.Linear(3, 2).parameters())


@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD(_parameters(), lr=-0.1), ValueError, "invalid learning rate: -0.1"),
    (lambda: SGD(_parameters(), lr=0.1, momentum=-0.5), ValueError, "invalid momentum value: -0.5"),
    (lambda: SGD(_parameters(), lr=0.1, weight_decay=-1), ValueError, "invalid weight_decay value: -1"),
    (lambda: SGD(_parameters(), lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires a momentum"),
    (lambda: SGD(_parameters(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "zero dampening"),
    (lambda: SGD([{"params": _parameters(), "momentum": -1}], lr=0.1), ValueError, "invalid momentum"),
    (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda: SGD(_parameters()[0], lr=0.1), TypeError, "iterable of Tensors or dicts"),
    (lambda: SGD([np.zeros(3)], lr=0.1), TypeError, "can only optimize Tensors"),
    (lambda: SGD(_parameters() * 2, lr=0.1), ValueError, "same parameter twice"),
    (lambda: Adam(_parameters(), betas=(1.0, 0.999)), ValueError, "invalid beta parameter at index 0"),
    (lambda: Adam(_parameters(), eps=-1.0), ValueError, "invalid epsilon"),
    (lambda: AdamW(_parameters(), lr=-1.0), ValueError, "AdamW: invalid learning rate"),
])
def test_bad_options_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_load_state_dict_rejects_a_different_layout():
    optimizer = SGD(_parameters(), lr=0.1, momentum=0.9)
    other = SGD([{"params": _parameters()[:1]}, {"params": _parameters()[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="2 parameter groups, the optimizer has 1"):
        optimizer.load_state_dict(other.state_dict())
    smaller = SGD(_parameters()[:1], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters in the loaded state dict, 2"):
        optimizer.load_state_dict(smaller.state_dict())


def test_a_mask_of_the_wrong_shape_is_a_clear_error():
    layer = nn.Linear(3, 2)
    layer.weight.mask = mg.tensor(np.ones((3, 2)))
    layer.weight.grad = mg.tensor(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"SGD: parameter 0 has shape \(2, 3\) but its mask has shape \(3, 2\)"):
        SGD(layer.parameters(), lr=0.1).step()


def test_loaded_state_is_a_fresh_contiguous_copy_in_the_parameters_dtype():
    layer = nn.Linear(3, 2)  # float32
    optimizer = SGD(layer.parameters(), lr=0.1, momentum=0.9)
    saved_buffer = np.asfortranarray(np.arange(6.0).reshape(2, 3))  # float64, column-major
    saved_group = {key: value for key, value in optimizer.param_groups[0].items() if key != "params"}
    optimizer.load_state_dict({"state": {0: {"momentum_buffer": saved_buffer}},
                               "param_groups": [{**saved_group, "params": [0, 1]}]})
    loaded = optimizer.state[layer.weight]["momentum_buffer"]
    assert loaded.dtype == np.float32 and loaded.flags.c_contiguous
    assert not np.shares_memory(loaded, saved_buffer)
    np.testing.assert_array_equal(loaded, saved_buffer)
