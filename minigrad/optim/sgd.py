"""SGD with momentum, dampening, Nesterov, weight decay and pruning masks (PyTorch's rule).

For each parameter w with gradient g, with the group's options (PyTorch's order)::

    d   = -g if maximize else g
    d   = d + weight_decay * w                    (L2 weight decay, through the gradient)
    buf = d                                       (first step: the buffer starts as d)
    buf = momentum * buf + (1 - dampening) * d    (every later step)
    d   = d + momentum * buf  if nesterov  else  buf      (only when momentum != 0)
    w   = w - lr * d

and then, for a pruned parameter (``parameter.mask`` of 0s and 1s, see ``mg.prune``)::

    w = w * mask,  buf = buf * mask

so a pruned weight stays exactly zero: its gradient cannot revive it, and its
momentum cannot carry an old gradient into a later step.

The same math runs in two places:

- CPU: ``sgd_update_reference`` below, NumPy in place (``out=``), one parameter at
  a time. It is also the documented reference of the CUDA kernel.
- GPU: when parameters live on CuPy arrays, ``step()`` updates all of them in ONE
  launch of ``kernels/sgd.cu`` (a multi-tensor launch; see ``sgd_cuda.py``).
"""
import numpy as np

from .. import backend
from .optimizer import Optimizer, parameter_mask, apply_mask


def sgd_update_reference(param, grad, momentum_buffer, mask, *, lr, momentum=0.0, dampening=0.0,
                         weight_decay=0.0, nesterov=False, maximize=False, first_step=False,
                         scratch=None):
    """One SGD step of one parameter, in place: the NumPy twin of ``kernels/sgd.cu``.

    param, grad: arrays of one shape S (numpy or cupy). momentum_buffer: array of shape S,
    or None when momentum == 0; when ``first_step`` it is only written (buf = d).
    mask: None, or an array of shape S of 0s (pruned) and 1s, of any dtype.
    scratch: None, or two arrays of shape S and param's dtype to compute in, so that a
    training loop allocates nothing per step. ``grad`` is never modified.
    Each multiply and add is its own rounded operation, in the kernel's order.
    """
    xp = backend.array_module(param)
    # Python floats, so that NumPy rounds them to param's dtype as the kernel does (NEP 50).
    lr, momentum, dampening, weight_decay = float(lr), float(momentum), float(dampening), float(weight_decay)
    if scratch is None:
        scratch = (xp.empty_like(param), xp.empty_like(param))
    direction, product = scratch
    # d = (-g or g) + weight_decay * w
    if weight_decay != 0:
        xp.multiply(param, weight_decay, out=direction)
        (xp.subtract if maximize else xp.add)(direction, grad, out=direction)
    elif maximize:
        xp.negative(grad, out=direction)
    else:
        direction = grad  # read only from here on
    if momentum != 0:
        if first_step:
            xp.copyto(momentum_buffer, direction)
        else:
            momentum_buffer *= momentum
            if dampening != 0:
                momentum_buffer += xp.multiply(direction, 1 - dampening, out=product)
            else:
                momentum_buffer += direction
        if nesterov:
            xp.multiply(momentum_buffer, momentum, out=product)
            direction = xp.add(product, direction, out=product)
        else:
            direction = momentum_buffer
    # w = w - lr * d, computing lr * d in a scratch array (never in grad or the buffer)
    owned = direction is scratch[0] or direction is scratch[1]
    param -= xp.multiply(direction, lr, out=direction if owned else scratch[0])
    apply_mask(mask, param, momentum_buffer)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's ``torch.optim.SGD``).

    params: an iterable of Parameters, or of dicts (param groups) each with "params"
    and its own options. lr, momentum, dampening, weight_decay, nesterov, maximize:
    the defaults of every group (see the module docstring for the update).
    State per parameter: ``{"momentum_buffer": array of the parameter's shape}`` when
    momentum != 0.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        self._scratch = {}   # dtype -> one flat NumPy array, the CPU path's workspace
        self._fused = None   # the GPU path, made on the first step with CuPy parameters
        super().__init__(params, defaults)

    def _check_group(self, group):
        for option in ("lr", "momentum", "weight_decay"):
            if group[option] < 0:
                name = "learning rate" if option == "lr" else f"{option} value"
                raise ValueError(f"SGD: invalid {name}: {group[option]} (it must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = closure() if closure is not None else None
        on_gpu = []
        index = 0
        for group in self.param_groups:
            for parameter in group["params"]:
                index += 1
                if parameter.grad is None:
                    continue
                if parameter.grad.shape != parameter.shape:
                    raise ValueError(f"SGD: parameter {index - 1} has shape {parameter.shape} but "
                                     f"its gradient has shape {parameter.grad.shape}")
                if parameter.device == "cuda":
                    on_gpu.append((index - 1, parameter, group))
                else:
                    self._update_on_cpu(index - 1, parameter, group)
        if on_gpu:
            if self._fused is None:
                from .sgd_cuda import FusedSGD
                self._fused = FusedSGD()
            self._fused.step(on_gpu, self.state)
        return loss

    def _update_on_cpu(self, index, parameter, group):
        buffer, first_step = None, False
        if group["momentum"] != 0:
            state = self.state.setdefault(parameter, {})
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.empty_like(parameter.data)
                first_step = True
        mask = parameter_mask(self, parameter, index)
        sgd_update_reference(parameter.data, parameter.grad.data, buffer, mask,
                             lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                             weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                             maximize=group["maximize"], first_step=first_step,
                             scratch=self._scratch_like(parameter.data))

    def _scratch_like(self, array):
        """Two arrays shaped like ``array``, carved from one buffer reused by every parameter."""
        size = array.size
        flat = self._scratch.get(array.dtype)
        if flat is None or flat.size < 2 * size:
            flat = self._scratch[array.dtype] = np.empty(2 * size, array.dtype)
        return flat[:size].reshape(array.shape), flat[size:2 * size].reshape(array.shape)
