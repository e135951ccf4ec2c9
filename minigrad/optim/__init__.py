"""Optimizers (``mg.optim``): SGD with a fused GPU update, Adam, AdamW, and ``lr_scheduler``.

    optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        scheduler.step()
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD, sgd_update_reference

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "sgd_update_reference"]
