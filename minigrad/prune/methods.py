"""Pruning with PyTorch's API and semantics (``torch.nn.utils.prune``).

Pruning ``module.weight`` re-parametrizes it as a trained tensor times a fixed mask:

    module.weight_orig   Parameter, the trained values (what optimizers update)
    module.weight_mask   buffer of 0s and 1s, same shape and dtype (0 = pruned)
    module.weight        weight_orig * weight_mask, recomputed by a forward
                         pre-hook before every forward, so gradients reach
                         weight_orig only where the mask is 1

``weight_orig`` and ``weight_mask`` are in ``state_dict`` under exactly these
keys. ``weight_orig.mask`` points at the mask buffer, which tells the optimizer
to hold the pruned entries and their momentum at exactly zero.

Pruning the same tensor again narrows the mask: only entries (or channels)
still unpruned are candidates, and a fractional ``amount`` is a fraction of
them (PyTorch's ``PruningContainer``). ``remove`` makes the pruning permanent:
``weight`` is a plain Parameter again, holding the pruned values.

The methods rank entries by magnitude with the radix select of
``selection.py`` (NumPy on the CPU, kernels/prune.cu on the GPU). Unlike
PyTorch, re-pruning ranks the current ``weight_orig * weight_mask``, not the
``weight`` left over from the last forward (which is one optimizer step old).
"""
import numbers

import numpy as np

from .. import backend, random
from ..nn.module import Parameter
from ..tensor import Tensor
from . import selection


def _array(value):
    return value.data if isinstance(value, Tensor) else value


def _validate_amount(op, amount):
    """``amount`` is a count (int >= 0) or a fraction (float in [0, 1])."""
    if not isinstance(amount, numbers.Real):
        raise TypeError(f"{op}: amount must be an int (a count) or a float (a fraction), "
                        f"got {type(amount).__name__} {amount!r}")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"{op}: amount={amount} must be a non-negative count or a fraction in [0, 1]")
    elif not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"{op}: amount={amount} must be a fraction in [0, 1] or a non-negative count")


def _count_to_prune(op, amount, available, what):
    """How many of the ``available`` candidates to prune (PyTorch rounds a fraction with round())."""
    count = int(amount) if isinstance(amount, numbers.Integral) else round(float(amount) * available)
    if count > available:
        raise ValueError(f"{op}: amount={amount} asks to prune {count} {what}, "
                         f"but only {available} are still unpruned")
    return count


class BasePruningMethod:
    """A rule that turns importance scores and the current mask into a new mask.

    ``PRUNING_TYPE`` says what competes: "unstructured" (single entries; such a
    method also works across many tensors in ``global_unstructured``),
    "structured" (whole channels along ``dim``) or "global" (a given mask).
    Every method only ever adds zeros to the mask it is given.
    """

    PRUNING_TYPE = "unstructured"
    op_name = "prune"

    def compute_masks(self, scores, masks):
        """Unstructured methods: new masks for a list of tensors ranked together."""
        raise NotImplementedError(f"{type(self).__name__} has no compute_masks()")

    def compute_mask(self, scores, mask):
        """The new mask (same shape) for one tensor with importance ``scores``."""
        return self.compute_masks([scores], [mask])[0]

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        """Prune ``module.<name>`` with ``cls(*args, **kwargs)``; returns the method."""
        method = cls(*args, **kwargs)
        _prune(module, name, method, importance_scores)
        return method


class Identity(BasePruningMethod):
    """Prunes nothing, but sets up ``<name>_orig``, ``<name>_mask`` (all ones) and the hook."""

    op_name = "identity"

    def compute_masks(self, scores, masks):
        return [mask.copy() for mask in masks]


class _RankedUnstructured(BasePruningMethod):
    """Prunes ``amount`` of the unpruned entries: those whose ranking scores are smallest."""

    def __init__(self, amount):
        _validate_amount(self.op_name, amount)
        self.amount = amount

    def ranking(self, scores, masks):
        raise NotImplementedError

    def compute_masks(self, scores, masks):
        available = sum(int((mask != 0).sum()) for mask in masks)
        count = _count_to_prune(self.op_name, self.amount, available, "entries")
        return selection.prune_smallest(self.ranking(scores, masks), masks, count)


class L1Unstructured(_RankedUnstructured):
    """Prunes the ``amount`` unpruned entries of smallest absolute value."""

    op_name = "l1_unstructured"

    def ranking(self, scores, masks):
        return scores  # prune_smallest ranks by |score|


class RandomUnstructured(_RankedUnstructured):
    """Prunes ``amount`` unpruned entries chosen uniformly at random (minigrad's seeded generator)."""

    op_name = "random_unstructured"

    def ranking(self, scores, masks):
        return [backend.to_device(random.generator().random(mask.shape, dtype=np.float32), backend.device_of(mask))
                for mask in masks]


class Threshold(BasePruningMethod):
    """The seed's rule: prune every entry with |w| < eps (however many that is)."""

    op_name = "threshold"

    def __init__(self, eps):
        if not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"threshold: eps must be a number >= 0, got {eps!r}")
        self.eps = float(eps)

    def compute_masks(self, scores, masks):
        return selection.threshold_masks(scores, masks, self.eps)


def _channel_norms(scores, n, dim):
    """L_n norm of each slice along ``dim``: (C,) for a tensor with C channels on ``dim``."""
    xp = backend.array_module(scores)
    rows = xp.moveaxis(scores, dim, 0).reshape(scores.shape[dim], -1).astype(np.float64)
    if n == "fro":
        n = 2
    if not isinstance(n, numbers.Real):
        raise ValueError(f"ln_structured: n must be a number, inf, -inf or 'fro', got {n!r}")
    magnitude = xp.abs(rows)
    if n == np.inf:
        return magnitude.max(axis=1)
    if n == -np.inf:
        return magnitude.min(axis=1)
    if n == 0:
        return (magnitude != 0).sum(axis=1).astype(np.float64)
    return (magnitude ** n).sum(axis=1) ** (1.0 / n)


class _Structured(BasePruningMethod):
    """Prunes whole channels (slices along ``dim``) that still have an unpruned entry."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim=-1):
        _validate_amount(self.op_name, amount)
        self.amount, self.dim = amount, dim

    def channel_scores(self, scores, dim):
        raise NotImplementedError

    def compute_mask(self, scores, mask):
        if scores.ndim < 2:
            raise ValueError(f"{self.op_name}: structured pruning needs a tensor of at least 2 dims "
                             f"(channels along dim), got shape {tuple(scores.shape)}")
        if not -scores.ndim <= self.dim < scores.ndim:
            raise IndexError(f"{self.op_name}: dim={self.dim} is out of range for a tensor "
                             f"of shape {tuple(scores.shape)}")
        dim = self.dim % scores.ndim
        xp = backend.array_module(mask)
        other_axes = tuple(axis for axis in range(mask.ndim) if axis != dim)
        channel_alive = (mask != 0).any(axis=other_axes).astype(np.float64)
        count = _count_to_prune(self.op_name, self.amount, int(channel_alive.sum()), "channels")
        channel_scores = self.channel_scores(scores, dim)
        channel_mask = selection.prune_smallest([channel_scores], [channel_alive], count)[0]
        shape = [1] * mask.ndim
        shape[dim] = -1
        return mask * xp.asarray(channel_mask, dtype=mask.dtype).reshape(shape)


class LnStructured(_Structured):
    """Prunes the ``amount`` unpruned channels along ``dim`` of smallest L_n norm."""

    op_name = "ln_structured"

    def __init__(self, amount, n, dim=-1):
        super().__init__(amount, dim)
        self.n = n

    def channel_scores(self, scores, dim):
        return _channel_norms(scores, self.n, dim)


class RandomStructured(_Structured):
    """Prunes ``amount`` unpruned channels along ``dim`` chosen at random."""

    op_name = "random_structured"

    def channel_scores(self, scores, dim):
        draws = random.generator().random(scores.shape[dim])
        return backend.to_device(draws, backend.device_of(scores))


class CustomFromMask(BasePruningMethod):
    """Multiplies a given mask into the current one."""

    PRUNING_TYPE = "global"
    op_name = "custom_from_mask"

    def __init__(self, mask):
        self.mask = mask

    def compute_mask(self, scores, mask):
        given = _array(self.mask)
        if tuple(given.shape) != tuple(mask.shape):
            raise ValueError(f"custom_from_mask: the mask has shape {tuple(given.shape)}, "
                             f"the tensor has shape {tuple(mask.shape)}")
        xp = backend.array_module(mask)
        return mask * xp.asarray(backend.to_device(given, backend.device_of(mask)), dtype=mask.dtype)


class PruningContainer:
    """The forward pre-hook of one pruned tensor: sets ``module.<name> = <name>_orig * <name>_mask``.

    It also remembers the methods applied to the tensor, in order (``list(container)``).
    """

    def __init__(self, name):
        self._tensor_name = name
        self._pruning_methods = []

    def add_pruning_method(self, method):
        self._pruning_methods.append(method)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __len__(self):
        return len(self._pruning_methods)

    def apply_mask(self, module):
        return getattr(module, self._tensor_name + "_orig") * getattr(module, self._tensor_name + "_mask")

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))


def _find_container(module, name):
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, PruningContainer) and hook._tensor_name == name:
            return key, hook
    return None, None


def _orig_and_mask(op, module, name):
    """The trained tensor and the current mask array (all ones if not pruned yet)."""
    _, container = _find_container(module, name)
    if container is not None:
        return module._parameters[name + "_orig"], module._buffers[name + "_mask"].data
    parameter = module._parameters.get(name)
    if not isinstance(parameter, Parameter):
        names = [key for key, value in module._parameters.items() if value is not None]
        raise AttributeError(f"{op}: {type(module).__name__} has no parameter {name!r} to prune "
                             f"(its parameters: {names})")
    return parameter, backend.array_module(parameter.data).ones_like(parameter.data)


def _scores(op, module, name, orig, mask, importance_scores):
    if importance_scores is None:
        return orig.data * mask
    scores = _array(importance_scores)
    if tuple(scores.shape) != tuple(orig.shape):
        raise ValueError(f"{op}: importance_scores has shape {tuple(scores.shape)}, "
                         f"but {type(module).__name__}.{name} has shape {tuple(orig.shape)}")
    return backend.to_device(scores, orig.device)


def _prune(module, name, method, importance_scores=None):
    """Compute the new mask first (so a bad amount leaves the module as it was), then re-parametrize."""
    orig, mask = _orig_and_mask(method.op_name, module, name)
    scores = _scores(method.op_name, module, name, orig, mask, importance_scores)
    new_mask = method.compute_mask(scores, mask)
    _, container = _find_container(module, name)
    if container is None:
        module.register_parameter(name + "_orig", orig)
        del module._parameters[name]
        module.register_buffer(name + "_mask", Tensor(new_mask))
        container = PruningContainer(name)
        module.register_forward_pre_hook(container)
    else:
        module._buffers[name + "_mask"].data[...] = new_mask  # in place: orig.mask stays this tensor
    orig.mask = module._buffers[name + "_mask"]
    container.add_pruning_method(method)
    container(module, None)
    return method


# ----- the functions (torch.nn.utils.prune's names) -------------------------------------
def identity(module, name):
    """Re-parametrize ``module.<name>`` with a mask of ones (prunes nothing). Returns module."""
    Identity.apply(module, name)
    return module


def l1_unstructured(module, name, amount, importance_scores=None):
    """Prune the ``amount`` unpruned entries of ``module.<name>`` with the smallest |w|.

    amount: int (how many) or float in [0, 1] (fraction of the unpruned entries).
    importance_scores: optional tensor of the parameter's shape ranked instead of w.
    """
    L1Unstructured.apply(module, name, amount, importance_scores=importance_scores)
    return module


def random_unstructured(module, name, amount):
    """Prune ``amount`` unpruned entries of ``module.<name>`` chosen at random."""
    RandomUnstructured.apply(module, name, amount)
    return module


def threshold(module, name, eps):
    """The seed's rule: prune every entry of ``module.<name>`` with |w| < eps."""
    Threshold.apply(module, name, eps)
    return module


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    """Prune the ``amount`` unpruned channels along ``dim`` with the smallest L_n norm.

    A weight (out, in) with dim=0 loses whole rows (output neurons); a conv
    weight (out, in, kh, kw) with dim=0 loses whole output channels.
    n: a number, inf, -inf or 'fro' (= 2).
    """
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def random_structured(module, name, amount, dim):
    """Prune ``amount`` unpruned channels along ``dim`` chosen at random."""
    RandomStructured.apply(module, name, amount, dim)
    return module


def custom_from_mask(module, name, mask):
    """Prune ``module.<name>`` where ``mask`` (same shape, 0 = prune) is zero."""
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs):
    """Rank the entries of many tensors together and prune across all of them.

    parameters: iterable of (module, name); pruning_method: an unstructured
    method class (e.g. ``L1Unstructured``); kwargs: its arguments (``amount``).
    importance_scores: optional dict {(module, name): tensor}.
    With amount=0.2 the 20% smallest-magnitude unpruned weights of the whole
    model go, so a layer of small weights may lose far more than 20%.
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("global_unstructured: parameters is empty; pass (module, name) pairs")
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured: importance_scores must be a dict {(module, name): tensor}")
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"global_unstructured: only unstructured methods rank entries across tensors; "
                        f"{pruning_method.__name__} is {method.PRUNING_TYPE}")
    scores, masks = [], []
    for module, name in parameters:
        orig, mask = _orig_and_mask("global_unstructured", module, name)
        scores.append(_scores("global_unstructured", module, name, orig, mask,
                              importance_scores.get((module, name))))
        masks.append(mask)
    for (module, name), new_mask in zip(parameters, method.compute_masks(scores, masks)):
        custom_from_mask(module, name, new_mask)


def remove(module, name):
    """Make the pruning of ``module.<name>`` permanent: a plain Parameter holding orig * mask.

    The Parameter object is ``<name>_orig`` itself (so an optimizer that holds it
    keeps working); the mask buffer, ``<name>_orig`` and the hook are gone.
    """
    key, container = _find_container(module, name)
    if container is None:
        raise ValueError(f"remove: parameter {name!r} of {type(module).__name__} has to be pruned "
                         f"before pruning can be removed")
    orig = module._parameters[name + "_orig"]
    mask = module._buffers[name + "_mask"]
    orig.data = selection.apply_mask([orig.data], [mask.data])[0]
    orig.mask = None
    module.__dict__.pop(name, None)
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    del module._forward_pre_hooks[key]
    setattr(module, name, orig)
    return module


def is_pruned(module):
    """True if ``module`` or any sub-module has a pruned tensor."""
    return any(isinstance(hook, PruningContainer)
               for submodule in module.modules() for hook in submodule._forward_pre_hooks.values())


def prunable_parameters(model):
    """(module, "weight") for every weight matrix or kernel (ndim >= 2) in ``model``: Linear, Conv2d."""
    found = []
    for module in model.modules():
        _, container = _find_container(module, "weight")
        weight = module._parameters.get("weight_orig" if container else "weight")
        if isinstance(weight, Parameter) and weight.ndim >= 2:
            found.append((module, "weight"))
    return found
