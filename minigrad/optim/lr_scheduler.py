r"""Learning-rate decay: schedules that change ``group["lr"]`` as training goes on.

A large step early moves fast through a rough loss landscape; a small step late
settles into a minimum instead of bouncing around it. A scheduler wraps an
optimizer and, each time ``scheduler.step()`` is called (once per epoch, or once
per iteration: t simply counts the calls), writes the new rate into every
param group. lr_0 is the group's rate when the scheduler was made (kept as
``group["initial_lr"]``) and t is ``last_epoch``, the number of steps taken::

    StepLR             lr_t = lr_0 * gamma ** (t // step_size)
                       (the seed's step decay lr_0 * 0.5 ** (epoch // 10) is
                        StepLR(step_size=10, gamma=0.5))
    MultiStepLR        lr_t = lr_0 * gamma ** (number of milestones <= t)
    ExponentialLR      lr_t = lr_0 * gamma ** t
    InverseSqrtLR      lr_t = lr_0 / sqrt(1 + decay * t)               (the seed's decay)
    CosineAnnealingLR  lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2
    LinearLR           lr_t = lr_0 * (start + (end - start) * min(t, total_iters) / total_iters)
                       (warm-up: start_factor < 1 ramps up to end_factor)
    LambdaLR           lr_t = lr_0 * lr_lambda(t)
    SequentialLR       one scheduler until the first milestone, the next one (restarted at
                       t = 0) until the second, ...  e.g. a LinearLR warm-up, then a decay
    ReduceLROnPlateau  lr = max(lr * factor, min_lr) once the metric passed to step(metric)
                       has not improved for more than ``patience`` calls

As in PyTorch, ``step()`` computes each new rate from the current one (the
"chainable" form: StepLR multiplies by gamma at each multiple of step_size,
CosineAnnealingLR uses the ratio of two consecutive cosine values, InverseSqrtLR
the ratio sqrt((1 + decay (t-1)) / (1 + decay t))). So schedulers compose, and
the sequences equal PyTorch's number for number. ``step(epoch)`` jumps to the
closed form above. ``state_dict()`` is every attribute but the optimizer;
``load_state_dict`` restores it, so a resumed run continues the same sequence.
"""
import math
from bisect import bisect_right
from collections import Counter
from types import FunctionType

from .optimizer import Optimizer


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``state_dict()``, ``load_state_dict()``.

    Subclasses define ``get_lr()`` (the new rate of each group from the current
    ones, for ``last_epoch``) and, where there is one, ``_get_closed_form_lr()``.
    Making a scheduler takes its first step: the rates for t = 0 are set at once.
    """

    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in "
                                   f"param_groups[{index}] when resuming a scheduler with "
                                   f"last_epoch={last_epoch}; load the optimizer's state first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__} has no get_lr()")

    def get_last_lr(self):
        """The rate of each param group after the last ``step()``."""
        return self._last_lr

    def step(self, epoch=None):
        """Advance t by one (or set t = epoch, using the closed form) and write the new rates."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Every attribute except the optimizer (PyTorch's keys)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """lr_t = lr_0 * lr_lambda(t); one function, or one per param group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"LambdaLR: expected {len(optimizer.param_groups)} lr_lambdas, "
                                 f"but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * function(self.last_epoch)
                for function, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        """Plain functions are not saved (None); a callable object saves its ``__dict__``."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(function, FunctionType) else dict(function.__dict__)
                               for function in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        saved_lambdas = state_dict.pop("lr_lambdas")
        self.__dict__.update(state_dict)
        for function, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                function.__dict__.update(saved)


class StepLR(LRScheduler):
    """lr_t = lr_0 * gamma ** (t // step_size): multiply by gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr_t = lr_0 * gamma ** (number of milestones <= t); a milestone listed twice counts twice."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        # A checkpoint file stores the Counter as a plain dict (its keys may come back as strings).
        self.milestones = Counter({int(key): count for key, count in dict(self.milestones).items()})


class ExponentialLR(LRScheduler):
    """lr_t = lr_0 * gamma ** t."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class InverseSqrtLR(LRScheduler):
    """lr_t = lr_0 / sqrt(1 + decay * t): fast decay early, slow later, never zero.

    Chainable form: lr_t = lr_{t-1} * sqrt((1 + decay * (t - 1)) / (1 + decay * t)).
    """

    def __init__(self, optimizer, decay, last_epoch=-1):
        if decay < 0:
            raise ValueError(f"InverseSqrtLR: decay must be >= 0, got {decay}")
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._current_lrs()
        t = self.last_epoch
        ratio = math.sqrt((1 + self.decay * (t - 1)) / (1 + self.decay * t))
        return [lr * ratio for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [base_lr / math.sqrt(1 + self.decay * self.last_epoch) for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi t / T_max)) / 2, computed recursively.

    Past T_max the cosine keeps going (the rate climbs back up over the next T_max steps),
    exactly as PyTorch's recursive form does.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:  # resumed with last_epoch: start from the closed form
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(t * math.pi / period)) / 2
                    for base_lr in self.base_lrs]
        if (t - 1 - period) % (2 * period) == 0:  # leaving the bottom of the cosine, where the ratio is 0/0
            return [lr + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for base_lr, lr in zip(self.base_lrs, self._current_lrs())]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        cosine = math.cos(math.pi * self.last_epoch / self.T_max)
        return [self.eta_min + (base_lr - self.eta_min) * (1 + cosine) / 2 for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """lr_0 times a factor moving linearly from start_factor to end_factor over total_iters steps."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * start for lr in self._current_lrs()]
        if self._is_initial or t > self.total_iters:
            return self._current_lrs()
        # factor(t) / factor(t-1), with factor(t) = start + (end - start) * t / total_iters
        ratio = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * ratio for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        steps = min(self.total_iters, self.last_epoch)
        start, end = self.start_factor, self.end_factor
        return [base_lr * (start + (end - start) * steps / self.total_iters) for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run schedulers[0] until milestones[0], then schedulers[1] (from its t = 0), and so on.

    Typical use: a LinearLR warm-up for a few epochs, then CosineAnnealingLR or StepLR.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler")
        for index, scheduler in enumerate(schedulers):
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR does not support ReduceLROnPlateau (index {index}): "
                                 f"its step() needs a metric")
            if getattr(scheduler, "optimizer", None) is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same optimizer, "
                                 f"but the {type(scheduler).__name__} at index {index} has another one")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # Each scheduler already took its first step when it was made: undo those, and
        # take the first step again with only the scheduler that owns t = 0.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for scheduler in self._schedulers:
            scheduler.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)  # a milestone: restart the next scheduler at its closed form for t = 0
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items()
                 if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        saved_schedulers = state_dict.pop("_schedulers")
        self.__dict__.update(state_dict)
        for scheduler, saved in zip(self._schedulers, saved_schedulers):
            scheduler.load_state_dict(saved)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by ``factor`` when ``step(metric)`` has not improved for ``patience`` calls.

    "Improved" (mode "min"; "max" mirrors it): metric < best * (1 - threshold) when
    threshold_mode is "rel", metric < best - threshold when "abs". After a reduction,
    ``cooldown`` calls pass before bad calls count again. The rate never goes below
    ``min_lr`` (one value, or one per group), and changes smaller than ``eps`` are skipped.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor should be < 1.0, got {factor}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: {type(optimizer).__name__} is not an Optimizer")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold mode {threshold_mode!r} is unknown "
                             f"(expected 'rel' or 'abs')")
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"ReduceLROnPlateau: expected {len(optimizer.param_groups)} min_lrs, "
                                 f"got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self._last_lr = self._current_lrs()
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        """Record one value of the watched metric (a loss, an accuracy) and maybe cut the rate."""
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self):
        if len(self.min_lrs) != len(self.optimizer.param_groups):
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(self.optimizer.param_groups)} "
                                   f"param groups but min_lr lists {len(self.min_lrs)}")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def _is_better(self, value, best):
        relative = self.threshold_mode == "rel"
        if self.mode == "min":
            return value < (best * (1.0 - self.threshold) if relative else best - self.threshold)
        return value > (best * (self.threshold + 1.0) if relative else best + self.threshold)
