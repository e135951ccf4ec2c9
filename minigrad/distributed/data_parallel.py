"""Data parallelism: every rank holds the whole model, takes 1/N of each batch, and the ranks
average their gradients so that every rank takes the same step.

With N ranks, rank r computing g_r = d loss(shard r) / d w on a shard of B/N samples,

    g = (1/N) * sum_r g_r

is the gradient of the mean loss over all B samples, so N ranks that start from
the same weights (``broadcast_parameters``) and apply the same update to the same
``g`` stay identical, step after step, and follow one process that takes all B.

Averaging one array per parameter pays MPI's start-up cost once per parameter;
``GradientBuckets`` packs the gradients, in registration order (the same on
every rank), into a few flat buffers of about ``bucket_cap_mb`` each and
all-reduces each buffer once. Packing and the division by N are one pass:
``bucket[slot] = g_r / N``; then ``Allreduce(IN_PLACE, bucket, SUM)`` leaves g
in it, and each ``.grad`` becomes a view of its slot (no copy back).
"""
import hashlib
import weakref
from contextlib import contextmanager

import numpy as np

from ..backend import array_module, device_of, is_cupy_array
from ..nn.module import Module
from ..autograd import queue_callback
from ..function import Function
from ..mode import is_grad_enabled
from ..tensor import Tensor
from .collectives import allgather_object, allreduce_sum_, broadcast_, broadcast_object
from .world import get_world, init

# ----- starting identical -------------------------------------------------------------


def _describe(model):
    """(kind, name, shape, dtype) of every parameter and buffer, in registration order."""
    return ([("parameter", name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()]
            + [("buffer", name, tuple(b.shape), str(b.dtype)) for name, b in model.named_buffers()])


def _first_difference(mine, root_description, rank, root):
    """A sentence naming the first entry where this rank's model differs from rank ``root``'s, or None."""
    for own, theirs in zip(mine, root_description):
        if own != theirs:
            kind, name, shape, dtype = own
            return (f"rank {rank} has {kind} {name!r} with shape {shape} and dtype {dtype}, but rank "
                    f"{root} has {theirs[0]} {theirs[1]!r} with shape {theirs[2]} and dtype {theirs[3]}")
    if len(mine) != len(root_description):
        longer = mine if len(mine) > len(root_description) else root_description
        extra = longer[min(len(mine), len(root_description))]
        return (f"rank {rank} has {len(mine)} parameters and buffers, rank {root} has "
                f"{len(root_description)}; the first one only rank {rank if longer is mine else root} "
                f"has is {extra[0]} {extra[1]!r}")
    return None


def check_model_consistency(model, root=0):
    """Stop every rank with a clear error unless all ranks hold the same parameter and buffer
    names, shapes and dtypes, in the same order.

    Each rank hashes its description and the hashes are gathered; only when they
    differ does rank ``root`` send its full description, so that each rank can name
    its first difference.
    """
    description = _describe(model)
    digest = hashlib.sha256(repr(description).encode()).hexdigest()
    digests = allgather_object(digest)
    if all(other == digests[root] for other in digests):
        return
    root_description = broadcast_object(description if get_world().rank == root else None, root)
    difference = _first_difference(description, root_description, get_world().rank, root)
    differences = [text for text in allgather_object(difference) if text is not None]
    raise RuntimeError("distributed: the ranks hold different models: " + "; ".join(differences))


def broadcast_parameters(model, root=0):
    """Copy rank ``root``'s parameters and buffers into every rank's model, in place.

    One ``Bcast`` per tensor, in registration order (the same on every rank).
    """
    for tensor in list(model.parameters()) + list(model.buffers()):
        broadcast_(tensor.data, root)


def _as_array(value):
    return value.data if isinstance(value, Tensor) else value


def _describe_state_value(value):
    """How one optimizer-state entry travels: an array by Bcast (described by shape and dtype),
    anything else (step counts, numbers) pickled as it is."""
    array = _as_array(value)
    if isinstance(array, np.ndarray) or is_cupy_array(array):
        return ("array", tuple(array.shape), str(array.dtype), isinstance(value, Tensor))
    return ("value", value)


def broadcast_optimizer_state(optimizer, root=0):
    """Give every rank rank ``root``'s optimizer state (momentum buffers, step counts, lr).

    Works on PyTorch's ``state_dict`` layout: ``{"state": {param_index: {name:
    value}}, "param_groups": [{..., "params": [param_index, ...]}]}``. The layout
    and the plain values travel pickled; every array travels by ``Bcast`` into a
    buffer of the right shape on the device of its parameter. Ranks that have no
    state yet (a fresh optimizer) receive it.
    """
    world = get_world()
    if world.size == 1:
        return
    own = optimizer.state_dict() if world.rank == root else None
    layout = None
    if world.rank == root:
        layout = {"param_groups": own["param_groups"],
                  "state": {index: {name: _describe_state_value(value) for name, value in entry.items()}
                            for index, entry in own["state"].items()}}
    layout = broadcast_object(layout, root)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for index, entry in layout["state"].items():
        state[index] = {}
        for name, description in entry.items():
            if description[0] == "value":
                state[index][name] = description[1]
                continue
            _, shape, dtype, is_tensor = description
            if world.rank == root:
                sent = _as_array(own["state"][index][name])
                array = array_module(sent).ascontiguousarray(sent)
            else:
                array = array_module(parameters[index].data).empty(shape, dtype=dtype)
            broadcast_(array, root)
            state[index][name] = Tensor(array) if is_tensor else array
    optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})


# ----- averaging gradients ------------------------------------------------------------


class Bucket:
    """Consecutive parameters of one dtype and device, packed into one flat array ``flat``.

    ``slots[i]`` is the part of ``flat`` that holds parameter i's gradient, in its
    shape (a view); after ``average`` parameter i's ``.grad`` is a Tensor on that
    view (PyTorch's ``gradient_as_bucket_view``), overwritten by the next ``average``.
    """

    def __init__(self, parameters):
        self.parameters = parameters
        offsets = np.cumsum([0] + [p.data.size for p in parameters])
        self.flat = array_module(parameters[0].data).empty(int(offsets[-1]), dtype=parameters[0].dtype)
        self.slots = [self.flat[start:stop].reshape(p.shape)
                      for p, start, stop in zip(parameters, offsets[:-1], offsets[1:])]
        self.grads = [Tensor(slot) for slot in self.slots]  # made once: a Tensor per step costs more

    def average(self, world_size):
        """Every parameter's .grad <- the mean of that .grad over the ranks (None counts as 0)."""
        xp = array_module(self.flat)
        local = [xp.zeros(p.data.size, dtype=self.flat.dtype) if p.grad is None else p.grad.data.reshape(-1)
                 for p in self.parameters]
        xp.concatenate(local, out=self.flat)  # one call packs them all: cheap for many small arrays
        self.flat *= 1.0 / world_size
        allreduce_sum_(self.flat)
        for parameter, grad, slot in zip(self.parameters, self.grads, self.slots):
            grad.data = slot  # backward may have rebound it while accumulating
            parameter.grad = grad


def _signature(parameters):
    """What the buckets were laid out for: each parameter, its shape, dtype and array type."""
    return [(id(p), p.data.shape, p.data.dtype, type(p.data)) for p in parameters]


class GradientBuckets:
    """The trainable parameters of a model, split into buckets of at most ``bucket_cap_mb``.

    The split depends only on the registration order, dtypes, devices and sizes,
    so it is the same on every rank (which ``check_model_consistency`` ensures).
    A parameter larger than the cap gets a bucket of its own.
    """

    def __init__(self, parameters, bucket_cap_mb=25):
        self.cap_mb, self.signature = bucket_cap_mb, _signature(parameters)
        cap_bytes = bucket_cap_mb * 1024 * 1024
        self.buckets, current, current_bytes = [], [], 0
        for parameter in parameters:
            starts_new_kind = current and (parameter.dtype != current[0].dtype
                                           or device_of(parameter.data) != device_of(current[0].data))
            if current and (starts_new_kind or current_bytes + parameter.data.nbytes > cap_bytes):
                self.buckets.append(Bucket(current))
                current, current_bytes = [], 0
            current.append(parameter)
            current_bytes += parameter.data.nbytes
        if current:
            self.buckets.append(Bucket(current))

    def still_fit(self, parameters):
        """True while the trainable parameters are the same objects, with the same shapes, dtypes
        and devices; pruning that swaps parameters, ``.to("cuda")`` or ``.double()`` need new buckets."""
        return _signature(parameters) == self.signature

    def average_gradients(self):
        world_size = get_world().size
        for bucket in self.buckets:
            bucket.average(world_size)


def _trainable(model):
    parameters = model.parameters() if isinstance(model, Module) else model
    return [p for p in parameters if p.requires_grad]


_buckets_of_model = weakref.WeakKeyDictionary()


def allreduce_gradients(model, bucket_cap_mb=25):
    """Average the gradients of ``model`` (a Module, or a list of parameters) over all ranks.

    Call it on every rank after ``loss.backward()`` and before ``optimizer.step()``.
    A parameter without a gradient on some rank counts as a zero gradient there,
    and every rank ends with the same ``.grad`` for it. Does nothing in a world of one.
    """
    if get_world().size == 1:
        return
    parameters = _trainable(model)
    buckets = _buckets_of_model.get(model) if isinstance(model, Module) else None
    if buckets is None or buckets.cap_mb != bucket_cap_mb or not buckets.still_fit(parameters):
        buckets = GradientBuckets(parameters, bucket_cap_mb)
        if isinstance(model, Module):
            _buckets_of_model[model] = buckets
    buckets.average_gradients()


class _AverageGradientsAfterBackward(Function):
    """Identity on a model output; its backward asks the engine to average the gradients
    once the whole backward pass has finished (every .grad is final by then)."""

    def forward(self, output, model):
        self.model = model
        return output

    def backward(self, grad):
        self.model._queue_gradient_averaging()
        return grad


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``loss.backward()`` also averages its gradients over all ranks.

    On construction: check that every rank holds the same model, then copy rank 0's
    parameters and buffers to all ranks. In ``forward`` (when training): copy rank
    0's buffers (BatchNorm running statistics) if ``broadcast_buffers``. After
    every backward through the output: average the gradients in buckets of
    ``bucket_cap_mb`` megabytes; each ``.grad`` is then a view into its bucket,
    valid until the next backward. ``state_dict`` keys start with ``module.``, as
    in PyTorch; the wrapped model is ``.module``.
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        init()
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self._averaging_queued = False
        check_model_consistency(module)
        broadcast_parameters(module)

    def forward(self, *inputs, **kwargs):
        world_size = get_world().size
        self._averaging_queued = False  # a new graph; a backward that raised may have left it set
        if world_size > 1 and self.training and self.broadcast_buffers:
            for buffer in self.module.buffers():
                broadcast_(buffer.data, 0)
        output = self.module(*inputs, **kwargs)
        if world_size == 1 or not is_grad_enabled() or not self.require_backward_grad_sync:
            return output
        return _map_tensors(output, lambda tensor: _AverageGradientsAfterBackward.apply(tensor, model=self)
                            if tensor.requires_grad else tensor)

    def _queue_gradient_averaging(self):
        if not self._averaging_queued:  # once per backward, however many outputs it went through
            self._averaging_queued = True
            queue_callback(self._average_gradients_now)

    def _average_gradients_now(self):
        self._averaging_queued = False
        allreduce_gradients(self.module, self.bucket_cap_mb)

    @contextmanager
    def no_sync(self):
        """Inside this block, backward passes accumulate local gradients without averaging
        (gradient accumulation); the first backward after it averages the sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self):
        return f"bucket_cap_mb={self.bucket_cap_mb}"


def _map_tensors(output, function):
    if isinstance(output, Tensor):
        return function(output)
    if isinstance(output, (tuple, list)):
        return type(output)(_map_tensors(item, function) for item in output)
    if isinstance(output, dict):
        return {key: _map_tensors(item, function) for key, item in output.items()}
    return output
