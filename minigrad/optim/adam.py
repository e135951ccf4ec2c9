"""Adam and AdamW (PyTorch's ``torch.optim.Adam`` / ``AdamW``, default non-fused path).

For each parameter w with gradient g, at step t = 1, 2, ... (PyTorch's order)::

    g = -g if maximize else g
    w = w * (1 - lr * weight_decay)            AdamW (decoupled weight decay), or
    g = g + weight_decay * w                   Adam (L2 through the gradient)
    m = m + (1 - beta1) * (g - m)              first moment  (PyTorch's lerp)
    v = beta2 * v + (1 - beta2) * g * g        second moment
    v_max = max(v_max, v); use v_max for v     (amsgrad only)
    w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

State per parameter: ``step`` (a float, the t of the last update), ``exp_avg`` (m),
``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq``. The arrays stay on the
parameter's device (NumPy or CuPy: the same code runs on both). A pruned
parameter (``parameter.mask``) keeps its masked weights and moments at zero.
"""
from .. import backend
from .optimizer import Optimizer, parameter_mask, apply_mask


class Adam(Optimizer):
    """Adam; ``decoupled_weight_decay=True`` makes it AdamW. See the module docstring."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 *, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group):
        name = type(self).__name__
        if not 0.0 <= group["lr"]:
            raise ValueError(f"{name}: invalid learning rate: {group['lr']} (it must be >= 0)")
        if not 0.0 <= group["eps"]:
            raise ValueError(f"{name}: invalid epsilon value: {group['eps']} (it must be >= 0)")
        for index, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {index}: {beta} "
                                 f"(it must be in [0, 1))")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"{name}: invalid weight_decay value: {group['weight_decay']} (it must be >= 0)")

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = closure() if closure is not None else None
        index = -1
        for group in self.param_groups:
            for parameter in group["params"]:
                index += 1
                if parameter.grad is None:
                    continue
                self._update(parameter, group, parameter_mask(self, parameter, index))
        return loss

    def _update(self, parameter, group, mask):
        param, grad = parameter.data, parameter.grad.data
        xp = backend.array_module(param)
        state = self.state.setdefault(parameter, {})
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = xp.zeros_like(param)
            state["exp_avg_sq"] = xp.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lr, (beta1, beta2), eps = float(group["lr"]), group["betas"], group["eps"]
        weight_decay = float(group["weight_decay"])

        state["step"] += 1
        step = state["step"]
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        denominator = xp.sqrt(second_moment) / bias_correction2_sqrt
        denominator += eps
        param -= (lr / bias_correction1) * (exp_avg / denominator)
        apply_mask(mask, param, exp_avg, exp_avg_sq, state.get("max_exp_avg_sq"))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01): w shrinks by lr * weight_decay * w per step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
