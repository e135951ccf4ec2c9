"""``Module``: a layer that owns parameters, buffers and sub-modules.

Attributes are found in registration order (plain dicts keep insertion order),
so every process of an MPI job walks the parameters in the same order, and
``state_dict`` keys are PyTorch's (``"0.weight"``, ``"bn.running_mean"``).
"""
from collections import namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a Module trains: a leaf that requires a gradient.

    ``mask`` is None, or a Tensor of 0s and 1s of the same shape set by pruning
    (``mg.prune``): optimizers keep the masked entries, and their momentum, at zero.
    """

    __slots__ = ("mask",)

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)
        self.mask = None

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _RemovableHandle:
    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    """Base class of every layer. Subclasses set attributes in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "training", True)

    # ----- registration -----------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        if isinstance(value, (Parameter, Module)):
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            self.__dict__.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "parameter" if name in self._parameters else "module"
                raise TypeError(f"cannot assign a {type(value).__name__} to {kind} {name!r}: "
                                f"expected a {'Parameter' if kind == 'parameter' else 'Module'} or None")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(registry)
            if found is not None and name in found:
                return found[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, parameter):
        if parameter is None:
            self._parameters[name] = None
        else:
            setattr(self, name, parameter)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not trained (running statistics, pruning masks)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        setattr(self, name, module)

    # ----- walking the tree -------------------------------------------------------
    def named_modules(self, prefix="", _seen=None):
        """This module and every sub-module, depth first, each once."""
        _seen = set() if _seen is None else _seen
        if id(self) in _seen:
            return
        _seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, _seen)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, module) for name, module in self._modules.items() if module is not None)

    def children(self):
        return (module for _, module in self.named_children())

    def _named_members(self, registry_name, recurse=True):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry_name).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, recurse=True):
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        return (parameter for _, parameter in self.named_parameters(recurse))

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        return (buffer for _, buffer in self.named_buffers(recurse))

    # ----- state ------------------------------------------------------------------
    def state_dict(self):
        """Parameters and persistent buffers by dotted name, sharing their arrays."""
        state = {}
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, value in module._parameters.items():
                if value is not None:
                    state[prefix + name] = value.detach()
            for name, value in module._buffers.items():
                if value is not None and name not in module._non_persistent_buffers:
                    state[prefix + name] = value.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (numpy, cupy, or Tensors) into the parameters and buffers in place."""
        own = self.state_dict()
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else value
            if tuple(np.shape(value)) != target.shape:
                raise RuntimeError(f"load_state_dict: size mismatch for {key}: the checkpoint has shape "
                                   f"{tuple(np.shape(value))}, the model has {target.shape}")
            target.data[...] = backend.to_device(backend.to_numpy(value), target.device)
        return IncompatibleKeys(missing, unexpected)

    # ----- modes, devices, dtypes -------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for parameter in self.parameters():
            if set_to_none:
                parameter.grad = None
            elif parameter.grad is not None:
                parameter.grad.data[...] = 0

    def to(self, device=None, dtype=None):
        """Move every parameter and buffer in place (same objects, so optimizers keep them)."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        for tensor in list(self.parameters()) + list(self.buffers()):
            for target in (tensor, tensor.grad):
                if target is None:
                    continue
                if device is not None:
                    target.data = backend.to_device(target.data, device)
                if dtype is not None and target.data.dtype.kind == "f":
                    target.data = target.data.astype(dtype)
        return self

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    # ----- calling ----------------------------------------------------------------
    def register_forward_pre_hook(self, hook):
        """``hook(module, inputs)`` runs before every forward; returns a handle with ``remove()``."""
        key = object()
        self._forward_pre_hooks[key] = hook
        return _RemovableHandle(self._forward_pre_hooks, key)

    def __call__(self, *inputs, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            hook(self, inputs)
        return self.forward(*inputs, **kwargs)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
