"""Exercise: a linear warm-up followed by cosine annealing.

Chapter: docs/lr_decay.md (the warm-up, and the experiment's "warm-up + cosine").

For the first W steps the rate rises linearly from f₀·lr_0 to lr_0:
lr_t = lr_0 · (f₀ + (1 − f₀) · t / W) for 0 ≤ t ≤ W. From then on it follows a
cosine from lr_0 down to 0 over the remaining T − W steps:
lr_t = lr_0 · (1 + cos(π (t − W) / (T − W))) / 2.
This is ``SequentialLR([LinearLR(start_factor=f₀, total_iters=W),
CosineAnnealingLR(T_max=T − W)], milestones=[W])``.

    t, warmup_steps (W), total_steps (T): ints, 0 <= t <= T; base_lr, start_factor: floats.

Check: ``python -m pytest exercises/test_lr_warmup_cosine.py``
"""


def warmup_cosine_lr(t, base_lr, warmup_steps, total_steps, start_factor):
    raise NotImplementedError
