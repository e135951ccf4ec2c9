"""Exercise: softmax plus cross-entropy, and its fused backward.

Chapter: docs/bridge.md ("Softmax and cross-entropy").

For logits z of shape (N, C) and integer labels t of shape (N,), the mean loss is
L = (1/N) Σₙ (log Σⱼ exp zₙⱼ − zₙₜₙ). Compute it stably (subtract each row's
maximum before exp), and its gradient dL/dz = (softmax(z) − onehot(t)) / N in
one step, without differentiating softmax and log separately.

    logits: float64 array (N, C); targets: int64 array (N,).
    Return (loss as a float, gradient as an (N, C) array).

Check: ``python -m pytest exercises/test_bridge_cross_entropy.py``
"""


def cross_entropy_with_gradient(logits, targets):
    raise NotImplementedError
