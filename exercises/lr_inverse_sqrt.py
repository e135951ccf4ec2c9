"""Exercise: the inverse-square-root learning-rate schedule.

Chapter: docs/lr_decay.md ("The math").

lr_t = lr_0 / √(1 + d·t): the rate after t calls of ``scheduler.step()``.
Write it in closed form, and as the chained factor a scheduler applies to the
current rate at step t (t ≥ 1): lr_t / lr_{t−1}.

    base_lr, decay: floats; t: an int >= 0 (>= 1 for the ratio).

Check: ``python -m pytest exercises/test_lr_inverse_sqrt.py``
"""


def inverse_sqrt_lr(base_lr, decay, t):
    raise NotImplementedError


def step_ratio(decay, t):
    raise NotImplementedError
