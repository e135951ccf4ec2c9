"""What pruning guarantees, checked against torch.nn.utils.prune on the same weights.

Magnitude pruning sets w = 0 where |w| is small and keeps it there while the
network retrains. Reading top to bottom: the re-parametrization (weight_orig,
weight_mask, weight = orig * mask), the same masks as PyTorch for every method,
re-pruning that only narrows the mask, `remove`, masks that hold through
training, the gradual schedule, the sparsity report, `compact`, and the radix
select (NumPy twin; its CUDA kernels are compared with it in
tests/test_prune_kernels.py) that chooses what to prune.

Weights are drawn from a continuous distribution, so no two magnitudes tie and
"the k smallest" has one answer that both libraries must find.
"""
import argparse

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as torch_prune

import minigrad as mg
from minigrad import kernels
from minigrad.prune import selection

nn, prune = mg.nn, mg.prune


def torch_copy(layer):
    """A torch layer with the same weights as the minigrad ``layer``."""
    if isinstance(layer, nn.Linear):
        twin = torch.nn.Linear(layer.in_features, layer.out_features)
    else:
        twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size)
    twin.load_state_dict({key: torch.from_numpy(value.numpy().copy()) for key, value in layer.state_dict().items()})
    return twin


def mask_of(layer, name="weight"):
    return getattr(layer, name + "_mask").numpy()


def torch_mask(layer, name="weight"):
    return getattr(layer, name + "_mask").detach().numpy()


# ----- the re-parametrization -------------------------------------------------------------
def test_pruning_keeps_orig_as_parameter_and_mask_as_buffer_with_torchs_keys():
    layer, reference = nn.Linear(6, 4), None
    reference = torch_copy(layer)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    torch_prune.l1_unstructured(reference, "weight", amount=0.5)
    assert list(layer.state_dict()) == list(reference.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    assert [name for name, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    assert [name for name, _ in layer.named_buffers()] == ["weight_mask"]
    assert layer.weight_mask.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.numpy(), layer.weight_orig.numpy() * mask_of(layer))
    assert layer.weight_orig.mask is layer.weight_mask  # what optimizers read
    assert prune.is_pruned(layer) and prune.is_pruned(nn.Sequential(nn.ReLU(), layer))
    assert not prune.is_pruned(nn.Linear(2, 2))


def test_weight_is_recomputed_before_every_forward():
    layer = nn.Linear(5, 3)
    prune.l1_unstructured(layer, "weight", amount=7)
    layer.weight_orig.data += 1.0  # what an optimizer step does
    x = mg.tensor(np.random.default_rng(0).normal(size=(2, 5)))
    out = layer(x)
    expected = x.numpy() @ ((layer.weight_orig.numpy()) * mask_of(layer)).T + layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_gradient_reaches_only_unpruned_entries():
    layer = nn.Linear(8, 4)
    prune.l1_unstructured(layer, "weight", amount=0.75)
    layer(mg.tensor(np.ones((3, 8), dtype=np.float32))).sum().backward()
    grad = layer.weight_orig.grad.numpy()
    assert np.all(grad[mask_of(layer) == 0] == 0)
    assert np.all(grad[mask_of(layer) == 1] != 0)


# ----- the same masks as PyTorch ----------------------------------------------------------
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 1.0, 0, 17])
def test_l1_unstructured_matches_torch(amount):
    layer = nn.Conv2d(3, 5, 3)
    reference = torch_copy(layer)
    prune.l1_unstructured(layer, "weight", amount=amount)
    torch_prune.l1_unstructured(reference, "weight", amount=amount)
    np.testing.assert_array_equal(mask_of(layer), torch_mask(reference))
    np.testing.assert_array_equal(layer.weight.numpy(), reference.weight.detach().numpy())


def test_a_fraction_rounds_like_torch():
    layer = nn.Linear(5, 1)  # 5 weights: round(0.5 * 5) = round(2.5) = 2 (round half to even)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    assert (mask_of(layer) == 0).sum() == 2


@pytest.mark.parametrize("n, dim, shape", [(1, 0, (4, 6, 3)), (2, 0, (4, 6, 3)), (2, 1, (4, 6, 3)),
                                           (np.inf, -1, (4, 6, 3)), (-np.inf, 0, (4, 6, 3)), ("fro", 1, (9, 7))])
def test_ln_structured_matches_torch(n, dim, shape):
    layer = nn.Conv2d(*shape) if len(shape) == 3 else nn.Linear(*shape)  # torch's 'fro' takes only 2-D
    reference = torch_copy(layer)
    prune.ln_structured(layer, "weight", amount=0.34, n=n, dim=dim)
    torch_prune.ln_structured(reference, "weight", amount=0.34, n=n, dim=dim)
    np.testing.assert_array_equal(mask_of(layer), torch_mask(reference))


def test_global_unstructured_ranks_all_layers_together_like_torch():
    model = nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 4))
    model[2].weight.data *= 0.1  # a layer of small weights loses more than its share
    reference = torch.nn.Sequential(torch_copy(model[0]), torch.nn.ReLU(), torch_copy(model[2]))
    prune.global_unstructured([(model[0], "weight"), (model[2], "weight"), (model[2], "bias")],
                              prune.L1Unstructured, amount=0.6)
    torch_prune.global_unstructured([(reference[0], "weight"), (reference[2], "weight"), (reference[2], "bias")],
                                    torch_prune.L1Unstructured, amount=0.6)
    for ours, theirs, name in [(model[0], reference[0], "weight"), (model[2], reference[2], "weight"),
                               (model[2], reference[2], "bias")]:
        np.testing.assert_array_equal(mask_of(ours, name), torch_mask(theirs, name))
    assert (mask_of(model[2]) == 0).mean() > 0.9 > (mask_of(model[0]) == 0).mean()
    assert list(model.state_dict()) == list(reference.state_dict())


def test_importance_scores_replace_the_weights_in_the_ranking():
    layer = nn.Linear(6, 5)
    reference = torch_copy(layer)
    scores = np.random.default_rng(3).random((5, 6)).astype(np.float32)
    prune.l1_unstructured(layer, "weight", amount=11, importance_scores=mg.tensor(scores))
    torch_prune.l1_unstructured(reference, "weight", amount=11, importance_scores=torch.from_numpy(scores))
    np.testing.assert_array_equal(mask_of(layer), torch_mask(reference))


def test_random_unstructured_prunes_the_asked_count():
    layer = nn.Linear(10, 10)
    prune.random_unstructured(layer, "weight", amount=0.3)
    assert mask_of(layer).shape == (10, 10) and (mask_of(layer) == 0).sum() == 30
    prune.random_unstructured(layer, "weight", amount=0.5)  # half of the 70 left
    assert (mask_of(layer) == 0).sum() == 30 + 35


def test_threshold_is_the_seeds_rule():
    layer = nn.Linear(30, 20)
    eps = 0.05
    orig = layer.weight.numpy().copy()
    prune.threshold(layer, "weight", eps=eps)
    np.testing.assert_array_equal(mask_of(layer), (np.abs(orig) >= eps).astype(np.float32))
    assert np.all(layer.weight.numpy()[np.abs(orig) < eps] == 0)


def test_identity_sets_up_the_reparametrization_with_a_mask_of_ones():
    layer = nn.Linear(3, 2)
    prune.identity(layer, "bias")
    np.testing.assert_array_equal(mask_of(layer, "bias"), np.ones(2, np.float32))
    assert list(layer.state_dict()) == ["weight", "bias_orig", "bias_mask"]


# ----- pruning again narrows the mask -----------------------------------------------------
def test_repruning_takes_a_fraction_of_the_entries_still_unpruned():
    layer = nn.Linear(16, 10)
    reference = torch_copy(layer)
    for amount in (0.5, 0.5, 7):
        prune.l1_unstructured(layer, "weight", amount=amount)
        torch_prune.l1_unstructured(reference, "weight", amount=amount)
        np.testing.assert_array_equal(mask_of(layer), torch_mask(reference))
    assert (mask_of(layer) == 0).sum() == 80 + 40 + 7


def test_structured_after_unstructured_combines_like_torchs_pruning_container():
    layer = nn.Linear(12, 8)
    reference = torch_copy(layer)
    for ours, theirs in [(lambda: prune.l1_unstructured(layer, "weight", amount=0.4),
                          lambda: torch_prune.l1_unstructured(reference, "weight", amount=0.4)),
                         (lambda: prune.ln_structured(layer, "weight", amount=0.25, n=2, dim=0),
                          lambda: torch_prune.ln_structured(reference, "weight", amount=0.25, n=2, dim=0)),
                         (lambda: prune.ln_structured(layer, "weight", amount=2, n=1, dim=0),
                          lambda: torch_prune.ln_structured(reference, "weight", amount=2, n=1, dim=0))]:
        ours()
        theirs()
        np.testing.assert_array_equal(mask_of(layer), torch_mask(reference))
    assert (~mask_of(layer).any(axis=1)).sum() == 2 + 2  # 2 rows, then 2 of the 6 rows left
    assert len(list(layer._forward_pre_hooks.values())[0]) == 3  # one container remembers all three


def test_a_pruned_entry_is_never_revived():
    layer = nn.Linear(10, 10)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    first = mask_of(layer).copy()
    layer.weight_orig.data[first == 0] = 100.0  # the pruned entries become the largest
    prune.l1_unstructured(layer, "weight", amount=0.2)
    assert np.all(mask_of(layer)[first == 0] == 0)


# ----- remove makes it permanent ----------------------------------------------------------
def test_remove_makes_the_pruning_permanent():
    layer = nn.Linear(7, 5)
    parameter = layer.weight
    prune.l1_unstructured(layer, "weight", amount=0.6)
    expected = layer.weight.numpy().copy()
    prune.remove(layer, "weight")
    assert layer.weight is parameter and isinstance(layer.weight, nn.Parameter)  # an optimizer keeps it
    assert layer.weight.mask is None
    np.testing.assert_array_equal(layer.weight.numpy(), expected)
    assert list(layer.state_dict()) == ["bias", "weight"] and not prune.is_pruned(layer)
    assert not layer._forward_pre_hooks
    with pytest.raises(ValueError, match="has to be pruned before"):
        prune.remove(layer, "weight")


def test_a_pruned_state_dict_round_trips_through_save_and_load(tmp_path):
    source, target = nn.Linear(6, 3), nn.Linear(6, 3)
    prune.l1_unstructured(source, "weight", amount=0.5)
    prune.identity(target, "weight")
    mg.save(source.state_dict(), tmp_path / "pruned.npz")
    target.load_state_dict(mg.load(tmp_path / "pruned.npz"))
    np.testing.assert_array_equal(mask_of(target), mask_of(source))
    target(mg.tensor(np.zeros((1, 6), np.float32)))  # the hook recomputes weight from the loaded pair
    np.testing.assert_array_equal(target.weight.numpy(), source.weight.numpy())


# ----- clear errors -----------------------------------------------------------------------
@pytest.mark.parametrize("amount, error, message", [
    (-1, ValueError, "non-negative count"), (1.5, ValueError, r"fraction in \[0, 1\]"),
    (-0.1, ValueError, "fraction"), ("half", TypeError, "int"), (31, ValueError, "only 30 are still unpruned")])
def test_bad_amounts_are_clear_errors(amount, error, message):
    layer = nn.Linear(5, 6)
    with pytest.raises(error, match=message):
        prune.l1_unstructured(layer, "weight", amount=amount)
    assert not prune.is_pruned(layer) and "weight" in layer._parameters  # left as it was


def test_other_misuse_is_a_clear_error():
    layer = nn.Linear(5, 6)
    with pytest.raises(AttributeError, match="no parameter 'weigth'"):
        prune.l1_unstructured(layer, "weigth", amount=1)
    with pytest.raises(IndexError, match="dim=2 is out of range"):
        prune.ln_structured(layer, "weight", amount=1, n=2, dim=2)
    with pytest.raises(ValueError, match="at least 2 dims"):
        prune.ln_structured(layer, "bias", amount=1, n=2, dim=0)
    with pytest.raises(ValueError, match=r"importance_scores has shape \(2, 2\)"):
        prune.l1_unstructured(layer, "weight", amount=1, importance_scores=np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="only unstructured"):
        prune.global_unstructured([(layer, "weight")], prune.LnStructured, amount=1, n=2, dim=0)
    with pytest.raises(ValueError, match="eps must be a number >= 0"):
        prune.threshold(layer, "weight", eps=-1.0)


# ----- the mask holds through training ----------------------------------------------------
def test_pruned_weights_and_their_momentum_stay_exactly_zero_through_100_sgd_steps():
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    reference = torch.nn.Sequential(torch_copy(model[0]), torch.nn.ReLU(), torch_copy(model[2])).double()
    model.double()
    for ours, theirs in [(model[0], reference[0]), (model[2], reference[2])]:
        prune.l1_unstructured(ours, "weight", amount=0.7)
        torch_prune.l1_unstructured(theirs, "weight", amount=0.7)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    torch_sgd = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    for _ in range(100):
        x, y = rng.normal(size=(8, 12)), rng.integers(0, 3, size=8)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(mg.tensor(x)), mg.tensor(y)).backward()
        optimizer.step()
        torch_sgd.zero_grad()
        torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        torch_sgd.step()
    for layer, theirs in [(model[0], reference[0]), (model[2], reference[2])]:
        pruned = mask_of(layer) == 0
        assert np.all(layer.weight_orig.numpy()[pruned] == 0)
        layer(mg.tensor(np.zeros((1, layer.in_features))))
        assert np.all(layer.weight.numpy()[pruned] == 0)
        # The unpruned weights follow PyTorch's (whose weight_orig keeps stale values under the mask).
        theirs_now = (theirs.weight_orig * theirs.weight_mask).detach().numpy()
        np.testing.assert_allclose(layer.weight.numpy(), theirs_now, rtol=1e-9, atol=1e-12)
        momentum_buffer = optimizer.state[layer.weight_orig]["momentum_buffer"]
        assert np.all(momentum_buffer[pruned] == 0)


# ----- gradual pruning --------------------------------------------------------------------
def test_cubic_schedule_follows_zhu_and_gupta():
    s_f, s_i, t0, dt, n = 0.9, 0.1, 10, 5, 4
    assert prune.cubic_sparsity(9, s_f, s_i, t0, dt, n) == 0.0
    for t in (10, 15, 20, 30, 50):
        expected = s_f + (s_i - s_f) * (1 - min((t - t0) / (n * dt), 1)) ** 3
        assert prune.cubic_sparsity(t, s_f, s_i, t0, dt, n) == pytest.approx(expected)
    assert prune.cubic_sparsity(t0, s_f, s_i, t0, dt, n) == pytest.approx(s_i)
    assert prune.cubic_sparsity(t0 + n * dt, s_f, s_i, t0, dt, n) == pytest.approx(s_f)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_gradual_pruner_prunes_on_schedule_and_ends_at_the_final_sparsity(scope):
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    pruner = prune.GradualPruner(prune.prunable_parameters(model), final_sparsity=0.8, start_step=3,
                                 frequency=2, num_prunings=5, scope=scope)
    pruned_at, sparsity = [], []
    for step in range(1, 20):
        if pruner.step():
            pruned_at.append(step)
            sparsity.append(pruner.sparsity())
    assert pruned_at == [3, 5, 7, 9, 11, 13]
    assert sparsity == sorted(sparsity) and sparsity[-1] == pytest.approx(0.8, abs=1e-3)
    report = prune.sparsity_report(model, weights_only=True)
    assert report.sparsity == pytest.approx(0.8, abs=1e-3)
    if scope == "layer":
        assert all(row.sparsity == pytest.approx(0.8, abs=2e-3) for row in report.rows)


def test_pruning_during_training_zeroes_new_weights_and_momentum_at_the_next_step():
    model = nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 2))
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    pruner = prune.GradualPruner(prune.prunable_parameters(model), final_sparsity=0.6, start_step=2,
                                 frequency=2, num_prunings=3)
    rng = np.random.default_rng(7)
    for _ in range(12):
        x, y = rng.normal(size=(16, 6)).astype(np.float32), rng.integers(0, 2, size=16)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(mg.tensor(x)), mg.tensor(y)).backward()
        optimizer.step()
        pruned_before = {id(layer): mask_of(layer) == 0 for layer in (model[0], model[2])}
        pruner.step()
        for layer in (model[0], model[2]):
            pruned = mask_of(layer) == 0
            assert np.all(pruned[pruned_before[id(layer)]])  # masks only ever gain zeros
            assert np.all(layer.weight_orig.numpy()[pruned_before[id(layer)]] == 0)
            assert np.all(optimizer.state[layer.weight_orig]["momentum_buffer"][pruned_before[id(layer)]] == 0)
    assert pruner.sparsity() == pytest.approx(0.6, abs=1e-2)


def test_gradual_pruner_maps_to_command_line_flags():
    parser = prune.GradualPruner.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args("--final-sparsity 0.9 --prune-start 5 --prune-every 10 --prunings 3".split())
    model = nn.Sequential(nn.Linear(4, 4))
    pruner = prune.GradualPruner.from_args(prune.prunable_parameters(model), args)
    assert (pruner.final_sparsity, pruner.start_step, pruner.frequency, pruner.num_prunings) == (0.9, 5, 10, 3)
    assert pruner.end_step == 35 and prune.GradualPruner.from_args([], parser.parse_args([])) is None


# ----- the sparsity report ----------------------------------------------------------------
def test_sparsity_report_counts_zeros_per_layer_and_in_all():
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))
    prune.l1_unstructured(model[0], "weight", amount=60)
    model[2].bias.data[0] = 0.0  # an exact zero counts too
    report = prune.sparsity_report(model)
    rows = {row.name: row for row in report.rows}
    assert list(rows) == ["0.bias", "0.weight", "2.weight", "2.bias"]
    assert (rows["0.weight"].numel, rows["0.weight"].nonzero) == (80, 20)
    assert rows["2.bias"].nonzero == 1
    assert (report.numel, report.nonzero) == (80 + 8 + 16 + 2, 20 + 8 + 16 + 1)
    assert report.sparsity == pytest.approx(61 / 106)
    assert "| 0.weight | 8x10 | 80 | 20 | 75.0% |" in report.table()
    assert report.as_dict()["layers"][1]["sparsity"] == 0.75


# ----- compact: structured pruning as a smaller dense model -------------------------------
def test_compact_drops_pruned_neurons_and_keeps_outputs():
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 16), nn.Tanh(),
                          nn.Linear(16, 4)).eval()
    prune.ln_structured(model[0], "weight", amount=0.5, n=2, dim=0)   # 16 hidden neurons gone
    prune.ln_structured(model[5], "weight", amount=6, n=1, dim=1)     # 6 inputs of the last layer unused
    x = mg.tensor(np.random.default_rng(0).normal(size=(5, 10)).astype(np.float32))
    small = prune.compact(model)
    assert (small[0].out_features, small[3].in_features, small[3].out_features, small[5].in_features) == (16, 16, 10, 10)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)
    assert prune.count_flops(small, (10,)) < prune.count_flops(model, (10,)) == 2 * (10 * 32 + 32 * 16 + 16 * 4)
    assert prune.is_pruned(model) and not prune.is_pruned(small)  # the original is untouched


def test_compact_folds_the_constant_output_of_a_dead_neuron_into_the_next_bias():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    prune.ln_structured(model[0], "weight", amount=3, n=2, dim=0)
    model[0].bias.data[:] = 0.5  # a dead neuron still outputs ReLU(0.5) = 0.5 for every input
    small = prune.compact(model)
    x = mg.tensor(np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32))
    assert small[0].out_features == 5
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)


def test_compact_removes_conv_channels_through_pooling_and_flatten():
    model = nn.Sequential(nn.Conv2d(2, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 6, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 5)).eval()
    prune.ln_structured(model[0], "weight", amount=3, n=1, dim=0)
    prune.ln_structured(model[3], "weight", amount=2, n=2, dim=0)
    model[0].bias.data[:] = -1.0  # ReLU(-1) = 0: dead channels send zeros, even into a padded conv
    x = mg.tensor(np.random.default_rng(2).normal(size=(3, 2, 8, 8)).astype(np.float32))
    small = prune.compact(model)
    assert (small[0].out_channels, small[3].in_channels, small[3].out_channels, small[6].in_features) == (5, 5, 4, 36)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)
    before, after = prune.count_flops(model, (2, 8, 8)), prune.count_flops(small, (2, 8, 8))
    assert after < 0.7 * before


def test_compact_keeps_a_channel_whose_constant_a_padded_conv_would_see_differently():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    prune.ln_structured(model[0], "weight", amount=1, n=2, dim=0)
    model[0].bias.data[:] = 0.3  # ReLU(0.3) != 0, and the padded border would see 0 instead
    small = prune.compact(model)
    assert small[0].out_channels == 4
    x = mg.tensor(np.random.default_rng(4).normal(size=(2, 1, 7, 7)).astype(np.float32))
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)


def test_compact_slices_batchnorm_channels_and_drops_channels_batchnorm_silenced():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 12), nn.BatchNorm1d(12), nn.ReLU(),
                          nn.Linear(12, 4))
    rng = np.random.default_rng(6)
    for batchnorm in (model[1], model[6]):  # as if trained: running statistics and affine parameters
        channels = batchnorm.num_features
        batchnorm.running_mean.data[:] = rng.normal(size=channels)
        batchnorm.running_var.data[:] = rng.uniform(0.5, 2.0, size=channels)
        batchnorm.weight.data[:] = rng.normal(size=channels)
        batchnorm.bias.data[:] = rng.normal(size=channels)
    prune.ln_structured(model[0], "weight", amount=2, n=1, dim=0)  # constant channels: BatchNorm of 0
    model[1].weight.data[5] = 0.0                                    # gamma = 0: BatchNorm outputs beta
    prune.ln_structured(model[5], "weight", amount=4, n=2, dim=0)
    model.eval()
    small = prune.compact(model)
    assert (small[0].out_channels, small[1].num_features, small[5].in_features) == (5, 5, 5 * 3 * 3)
    assert (small[5].out_features, small[6].num_features, small[8].in_features) == (8, 8, 8)
    assert small[1].running_var.shape == (5,) and small[6].bias.shape == (8,)
    x = mg.tensor(rng.normal(size=(4, 3, 8, 8)).astype(np.float32))
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)


def test_compact_needs_a_sequential():
    with pytest.raises(TypeError, match="compact: expects an nn.Sequential"):
        prune.compact(nn.Linear(2, 2))


# ----- choosing what to prune: the radix select -------------------------------------------
def kth_smallest_reference(scores, masks, k):
    candidates = np.concatenate([np.abs(s).ravel()[m.ravel() != 0] for s, m in zip(scores, masks)])
    return np.partition(candidates, k - 1)[k - 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_radix_select_twin_finds_the_kth_smallest_magnitude_like_np_partition(dtype, rng):
    sizes = [1, 255, 257, 1000, 4099]
    scores = [rng.normal(size=size).astype(dtype) for size in sizes]
    masks = [(rng.random(size) < 0.7).astype(dtype) for size in sizes]
    candidates = int(sum(mask.sum() for mask in masks))
    for k in (1, 2, candidates // 3, candidates - 1, candidates):
        bits, rank, equal_count = selection.kth_smallest_numpy(scores, masks, k)
        threshold = np.asarray(bits, dtype=f"uint{np.dtype(dtype).itemsize * 8}").view(dtype)
        assert threshold == kth_smallest_reference(scores, masks, k)
        assert (rank, equal_count) == (1, 1)


def test_radix_select_splits_ties_to_prune_exactly_k(rng):
    values = rng.choice(np.array([0.5, -0.25, 1.0, 0.0, -2.0], np.float32), size=(37, 11))
    mask = np.ones_like(values)
    for k in (1, 100, 200, values.size):
        new_mask = selection.prune_smallest([values], [mask], k)[0]
        assert (new_mask == 0).sum() == k
        largest_pruned = np.abs(values[new_mask == 0]).max()
        assert largest_pruned == kth_smallest_reference([values], [mask], k)
        assert np.all(np.abs(values[new_mask == 1]) >= largest_pruned)


def test_mask_and_apply_twins_are_the_seeds_rule(rng):
    values = [rng.normal(size=(13, 7)).astype(np.float32), rng.normal(size=300).astype(np.float32)]
    masks = [np.ones((13, 7), np.float32), (rng.random(300) < 0.5).astype(np.float32)]
    new_masks = selection.threshold_masks(values, masks, 0.3)
    for value, mask, new_mask in zip(values, masks, new_masks):
        np.testing.assert_array_equal(new_mask, ((np.abs(value) >= 0.3) & (mask != 0)).astype(np.float32))
    for value, new_mask, pruned in zip(values, new_masks, selection.apply_mask_numpy(values, new_masks)):
        np.testing.assert_array_equal(pruned, np.where(np.abs(value) >= 0.3, value, 0) * new_mask)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_prune_kernels_compile_with_nvrtc(arch):
    assert len(kernels.compile_for("prune", arch)) > 1000
