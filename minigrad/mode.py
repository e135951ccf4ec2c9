"""The two switches every op consults: whether to record a graph, and an observer.

``no_grad()`` turns graph recording off (inference, optimizer updates, and the
ordinary backward pass, whose derivatives need no graph of their own);
``enable_grad()`` turns it back on inside it (``backward(create_graph=True)``).

The observer is an object that minigrad/debug.py installs to trace every op or
to find the first NaN; with none installed an op pays one ``is None`` test.
``backward_pass`` marks the backward walk, so that the observer reports the ops
that run inside it as parts of derivatives, not as forward ops.
"""
_grad_enabled = True
_in_backward_pass = False
_observer = None


class _GradMode:
    """Context manager (and decorator) that switches graph recording on or off inside it."""

    enabled = True

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self.enabled

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, function):
        def wrapper(*args, **kwargs):
            with type(self)():
                return function(*args, **kwargs)
        wrapper.__name__ = function.__name__
        wrapper.__doc__ = function.__doc__
        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) in which ops record no graph."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager (and decorator) in which ops record a graph, even inside ``no_grad``."""

    enabled = True


def is_grad_enabled():
    return _grad_enabled


class backward_pass:
    """The backward walk's context: graph recording on only for ``create_graph``."""

    def __init__(self, create_graph):
        self.create_graph = create_graph

    def __enter__(self):
        global _grad_enabled, _in_backward_pass
        self._previous = _grad_enabled, _in_backward_pass
        _grad_enabled, _in_backward_pass = self.create_graph, True

    def __exit__(self, *exc_info):
        global _grad_enabled, _in_backward_pass
        _grad_enabled, _in_backward_pass = self._previous


def in_backward_pass():
    return _in_backward_pass


def observer():
    """The installed observer, or None."""
    return _observer


def set_observer(new_observer):
    """Install an object whose ``forward(function, arrays, options)`` runs every op's forward
    and whose ``backward(function, grad)`` runs every derivative in the backward pass, in
    place of the plain calls (see minigrad/debug.py); None removes it. Returns the previous one."""
    global _observer
    previous, _observer = _observer, new_observer
    return previous
