"""Check for exercises/bridge_sgd_momentum.py: five steps against torch.optim.SGD and minigrad's SGD."""
import numpy as np
import torch

import minigrad as mg
from exercises import bridge_sgd_momentum as exercise
from exercises.checking import run

SETTINGS = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, weight_decay=0.01),
            dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)]


def check(sgd_step):
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(5)]
    for settings in SETTINGS:
        param, buffer = start.copy(), None
        torch_param = torch.tensor(start, requires_grad=True)
        torch_optimizer = torch.optim.SGD([torch_param], **settings)
        mg_param = mg.nn.Parameter(mg.tensor(start))
        mg_optimizer = mg.optim.SGD([mg_param], **settings)
        for grad in grads:
            passed, before = param, param.copy()
            param, buffer = sgd_step(passed, grad, buffer, **settings)
            param = np.asarray(param)
            assert np.array_equal(passed, before), "sgd_step changed the param passed to it"
            torch_param.grad = torch.tensor(grad)
            torch_optimizer.step()
            mg_param.grad = mg.tensor(grad)
            mg_optimizer.step()
            assert np.allclose(param, torch_param.detach().numpy(), atol=1e-12), \
                f"with {settings}: differs from torch.optim.SGD"
            assert np.allclose(param, mg_param.numpy(), atol=1e-12), f"with {settings}: differs from mg.optim.SGD"


def reference(param, grad, momentum_buffer, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """minigrad's reference update (minigrad/optim/sgd.py, sgd_update_reference)."""
    from minigrad.optim.sgd import sgd_update_reference
    param = param.copy()
    first = momentum != 0 and momentum_buffer is None
    buffer = np.empty_like(param) if first else (None if momentum == 0 else momentum_buffer.copy())
    sgd_update_reference(param, grad, buffer, None, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, first_step=first)
    return param, buffer


def wrong(param, grad, momentum_buffer, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """Adds the weight decay after the momentum, outside the buffer (not PyTorch's form)."""
    buffer = grad.copy() if momentum_buffer is None else momentum * momentum_buffer + grad
    direction = (grad + momentum * buffer if nesterov else buffer) if momentum else grad
    return param - lr * (direction + weight_decay * param), (buffer if momentum else None)


def test_exercise():
    run(check, exercise.sgd_step)
