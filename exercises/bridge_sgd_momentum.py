"""Exercise: one step of SGD with momentum, Nesterov and weight decay, as PyTorch defines it.

Chapter: docs/bridge.md ("SGD with momentum, Nesterov and weight decay").

With weight decay λ, momentum μ and learning rate η, one step on a parameter w
with gradient g is

    d = g + λ w
    buf = d                       on the first step (buf is None)
    buf = μ buf + d               on every later step
    d = d + μ buf  (Nesterov)     or   d = buf  (plain momentum)
    w = w − η d

(with μ = 0 there is no buffer: d is used as it is). Return new arrays; do not
change the ones passed in.

    param, grad: float64 arrays of one shape; momentum_buffer: such an array, or None.
    Return (new param, new momentum buffer, or None when momentum == 0).

Check: ``python -m pytest exercises/test_bridge_sgd_momentum.py``
"""


def sgd_step(param, grad, momentum_buffer, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    raise NotImplementedError
