"""``Optimizer``: the base of SGD, Adam and AdamW (PyTorch's layout and behaviour).

An optimizer holds ``param_groups``, a list of dicts. Each group has a list of
parameters under ``"params"`` and its own options (``lr``, ``momentum``, ...);
options a group leaves out come from the constructor's defaults. Per-parameter
state (momentum buffers, Adam's moments) lives in ``state[parameter]``.

``state_dict()`` has PyTorch's layout, so a checkpoint reads the same in both::

    {"state": {0: {"momentum_buffer": array}, 3: {...}},       # by parameter index
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1, 2]},  # indices, not tensors
                      {"lr": 0.01, ..., "params": [3]}]}

Parameters are numbered in group order, so the checkpoint does not depend on
object identities and ``load_state_dict`` matches state to parameters by position.
"""
import copy
from itertools import chain

import numpy as np

from .. import backend
from ..tensor import Tensor


class _Required:
    """The default of an option that every group must give (e.g. Adam without lr)."""

    def __repr__(self):
        return "<required>"


required = _Required()


class Optimizer:
    """Base class: param groups, state, ``zero_grad``, ``state_dict``/``load_state_dict``.

    Subclasses pass their defaults (a dict of options) and define ``step()``;
    they may override ``_check_group(group)`` to validate a group's options.
    """

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                            f"got a single Tensor of shape {params.shape}; pass [tensor] or "
                            f"model.parameters()")
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ----- groups -----------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group (a dict with "params" and any options) to optimize from now on."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}.add_param_group: expected a dict, "
                            f"got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for index, parameter in enumerate(group["params"]):
            if not isinstance(parameter, Tensor):
                raise TypeError(f"{type(self).__name__}: can only optimize Tensors, but parameter "
                                f"{index} of the group is a {type(parameter).__name__}")
            if not parameter.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor "
                                 f"(parameter {index}, shape {parameter.shape})")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a value of "
                                 f"required optimization parameter {name}")
            group.setdefault(name, default)
        if len({id(p) for p in group["params"]}) != len(group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter group contains the same "
                             f"parameter twice")
        existing = {id(p) for other in self.param_groups for p in other["params"]}
        if any(id(p) in existing for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             f"parameter group")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Raise ValueError for an invalid option; subclasses check their own."""

    # ----- gradients and steps ----------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``grad = None`` (default) or fill them with zeros."""
        for parameter in chain.from_iterable(group["params"] for group in self.param_groups):
            if set_to_none:
                parameter.grad = None
            elif parameter.grad is not None:
                parameter.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure()`` re-computes the loss."""
        raise NotImplementedError(f"{type(self).__name__} has no step()")

    # ----- checkpoints ------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        The arrays in "state" are the optimizer's own (as in PyTorch): save them, or copy
        them, before training on if the dict must not change.
        """
        index_of = {}
        param_groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            for parameter in group["params"]:
                index_of.setdefault(id(parameter), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            param_groups.append(packed)
        by_id = {id(p): p for group in self.param_groups for p in group["params"]}
        state = {index_of[key]: value for key, value in
                 ((id(parameter), value) for parameter, value in self.state.items())
                 if key in by_id}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (ours, or PyTorch's with CPU tensors) into this optimizer.

        The groups must have the same sizes; each state array is copied onto its
        parameter's device and floating dtype, and the groups' options are replaced.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has {len(saved_groups)} "
                             f"parameter groups, the optimizer has {len(self.param_groups)}")
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {index} has "
                                 f"{len(saved['params'])} parameters in the loaded state dict, "
                                 f"{len(group['params'])} in the optimizer")
        parameter_of = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                                chain.from_iterable(g["params"] for g in self.param_groups)))
        state = {}
        for key, value in state_dict["state"].items():
            key = int(key)  # a checkpoint may have turned indices into strings
            if key not in parameter_of:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, which no "
                                 f"parameter group lists")
            parameter = parameter_of[key]
            state[parameter] = {field: _copy_like(parameter, field, item) for field, item in value.items()}
        self.state = state
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            restored = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
            restored["params"] = group["params"]
            new_groups.append(restored)
        self.param_groups = new_groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines.extend(f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params")
        return "\n".join(lines) + "\n)"


def parameter_mask(optimizer, parameter, index):
    """The raw mask array of a pruned parameter (``parameter.mask``), or None.

    optimizer: the optimizer or its name, for the error message; index: the parameter's
    position in the optimizer. Checks the mask's shape and device against the parameter.
    """
    mask = getattr(parameter, "mask", None)
    if mask is None:
        return None
    name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    mask = mask.data if isinstance(mask, Tensor) else mask
    if tuple(mask.shape) != parameter.shape:
        raise ValueError(f"{name}: parameter {index} has shape {parameter.shape} but its mask has "
                         f"shape {tuple(mask.shape)}")
    if backend.device_of(mask) != parameter.device:
        raise ValueError(f"{name}: parameter {index} is on {parameter.device} but its mask is on "
                         f"{backend.device_of(mask)}")
    return mask


def apply_mask(mask, *arrays):
    """array *= mask for each array that is not None (mask: 0s and 1s, any dtype, or None).

    A pruned entry becomes exactly zero (0.0 or -0.0) whatever the update put there, as
    long as it is finite; a multiply streams through memory, where a masked assignment
    (``copyto(where=)``) branches on every element and is 20x slower in NumPy.
    """
    if mask is None:
        return
    xp = backend.array_module(mask)
    for array in arrays:
        if array is not None:
            xp.multiply(array, mask, out=array)


def _copy_like(parameter, field, value):
    """A fresh copy of a saved state value, on the parameter's device and (if float) dtype."""
    if field == "step":  # a count, kept as a float (PyTorch keeps a float tensor)
        return float(np.asarray(backend.to_numpy(value.data if isinstance(value, Tensor) else value)))
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (int, float, bool, str)) or value is None:
        return value
    array = value if backend.is_cupy_array(value) else np.asarray(value)
    if tuple(array.shape) not in ((), parameter.shape):
        raise ValueError(f"load_state_dict: state '{field}' has shape {tuple(array.shape)}, "
                         f"its parameter has shape {parameter.shape}")
    # Always a fresh C-contiguous array: the optimizer must not share memory with the
    # checkpoint, and the fused GPU update reads buffers as flat memory.
    array = array.astype(parameter.dtype, order="C") if array.dtype.kind == "f" else array.copy(order="C")
    return backend.to_device(array, parameter.device)
