"""Batch normalization: ``BatchNorm1d``, ``BatchNorm2d`` and ``functional.batch_norm``.

For an input x of shape (N, C), (N, C, L) or (N, C, H, W), seen as (N, C, S)
with S the product of the trailing axes, every channel c is normalised over
its M = N * S values:

    mean_c   = (1/M) sum x                       (over n and s)
    var_c    = (1/M) sum (x - mean_c)^2           (biased: this normalises)
    invstd_c = 1 / sqrt(var_c + eps)
    xhat     = (x - mean_c) * invstd_c
    y        = xhat * weight_c + bias_c

In training the batch statistics are used and the running statistics move
towards them: running = (1 - momentum) * running + momentum * batch, with the
unbiased variance M2 / (M - 1) for running_var (momentum=None: a cumulative
average, momentum = 1 / num_batches_tracked). In eval mode the running
statistics take the place of mean_c and var_c.

The backward pass is the closed form, not the forward op by op
(mean_c(.) is the average over a channel's M values):

    dx      = weight_c * invstd_c * (dy - mean_c(dy) - xhat * mean_c(dy * xhat))
    dweight = sum dy * xhat,  dbias = sum dy

(in eval mode the statistics are constants and dx = weight_c * invstd_c * dy).

Each step below is written once in NumPy (``xp``, so it also runs on CuPy
arrays of any dtype) and is the reference twin of one kernel in
kernels/batchnorm.cu. The six steps are an interface, ``BatchNormSteps``
(minigrad/nn/batchnorm_steps.py): ``NumPySteps`` here and ``CudaSteps``
(minigrad/nn/batchnorm_cuda.py, float32 CuPy arrays) implement it, and
``_steps_for`` picks the first backend in ``BACKENDS`` that accepts the data.
"""
import numpy as np

from .. import backend
from .. import mode
from ..function import Function
from ..ops import BroadcastTo
from ..tensor import Tensor
from . import batchnorm_cuda
from . import cpu_fast, cpu_kernels
from .batchnorm_steps import BatchNormSteps, merge_statistics  # noqa: F401  (Chan's formula, shared)
from .module import Module, Parameter
from .pooling import MaxPool2dScatter


def _channel_view(x):
    """x as (N, C, S); S = 1 for (N, C)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(values):
    """sum over n and s of values (N, C, S) -> (C,); two reductions, faster in NumPy than one over (0, 2)."""
    return values.sum(axis=0).sum(axis=1)


def _channel_dot(a, b):
    """sum over n and s of a * b for a, b (N, C, S) -> (C,), without the product array."""
    return backend.array_module(a).einsum("ncs,ncs->c", a, b)


def _per_channel(values, ndim):
    """A (C,) array shaped (1, C, 1, ...) to broadcast against an ndim-D input."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


# ----- the steps, each the NumPy twin of a kernel ----------------------------------
def batch_statistics(x):
    """Per-channel (count, mean, M2) of x, each (C,): M2 = sum (x - mean)^2. Kernel: statistics.

    count is float64: exact for any size (float32 counts stop at 2^24).
    """
    xp = backend.array_module(x)
    values = _channel_view(x)
    count = values.shape[0] * values.shape[2]
    mean = _channel_sum(values) / count
    centered = values - mean[:, None]
    m2 = _channel_dot(centered, centered)
    return xp.full(mean.shape, count, dtype=np.float64), mean, m2


def finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps):
    """(save_mean, save_invstd) from the batch statistics; moves the running ones in place.

    running_mean/var are arrays or None (not tracked). Kernel: finalize.
    """
    xp = backend.array_module(mean)
    invstd = (1 / xp.sqrt(m2 / count + eps)).astype(mean.dtype, copy=False)
    if running_mean is not None:
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    if running_var is not None:
        running_var[...] = (1 - momentum) * running_var + momentum * (m2 / (count - 1))
    return mean, invstd


def training_statistics(x, running_mean, running_var, momentum, eps, combine=None):
    """(count, save_mean, save_invstd) of a training batch: statistics, combine, finalize.

    ``combine(count, mean, m2)`` is the hook that makes the statistics those of
    the whole batch across processes (None: this process's batch is the whole batch).
    """
    count, mean, m2 = batch_statistics(x)
    if combine is not None:  # gathering may promote mean and M2 to the counts' float64: back to x's dtype
        count, mean, m2 = combine(count, mean, m2)
        mean, m2 = mean.astype(x.dtype, copy=False), m2.astype(x.dtype, copy=False)
    save_mean, save_invstd = finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps)
    return count, save_mean, save_invstd


def normalize(x, mean, invstd, weight, bias):
    """y = (x - mean) * invstd * weight + bias per channel; weight/bias may be None. Kernel: normalize."""
    ndim = x.ndim
    scale = invstd if weight is None else invstd * weight
    y = x - _per_channel(mean, ndim)  # a fresh array: the next steps work in place
    y *= _per_channel(scale.astype(y.dtype, copy=False), ndim)
    if bias is not None:
        y += _per_channel(bias.astype(y.dtype, copy=False), ndim)
    return y


def normalize_with_running_stats(x, running_mean, running_var, weight, bias, eps):
    """Eval mode: normalize with invstd = 1 / sqrt(running_var + eps). Kernel: normalize (one pass)."""
    xp = backend.array_module(x)
    return normalize(x, running_mean, 1 / xp.sqrt(running_var + eps), weight, bias)


def gradient_sums(grad_output, x, mean, invstd):
    """Per-channel (sum dy, sum dy * xhat), each (C,). Kernel: backward_sums."""
    values, grads = _channel_view(x), _channel_view(grad_output)
    # sum dy * xhat = invstd * sum dy * (x - mean): invstd leaves the sum, so xhat is never formed
    return _channel_sum(grads), _channel_dot(grads, values - mean[:, None]) * invstd


def input_gradient(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
    """dx = weight * invstd * (dy - sum_dy / M - xhat * sum_dy_xhat / M); dx = weight * invstd * dy in eval.

    Kernel: backward_input.
    """
    ndim = x.ndim
    scale = invstd if weight is None else invstd * weight
    if not training:
        return (grad_output * _per_channel(scale, ndim)).astype(x.dtype, copy=False)
    dtype = x.dtype  # the float64 count must not promote the (N, C, ...) arrays
    xhat = (x - _per_channel(mean, ndim)) * _per_channel(invstd, ndim)
    xhat *= _per_channel((sum_dy_xhat / count).astype(dtype), ndim)  # now xhat * mean(dy * xhat)
    centered = grad_output - _per_channel((sum_dy / count).astype(dtype), ndim)
    centered -= xhat
    centered *= _per_channel(scale, ndim)
    return centered.astype(x.dtype, copy=False)


class NumPySteps(BatchNormSteps):
    """The NumPy twins above as a backend: any float dtype, NumPy or CuPy arrays."""

    name = "numpy"
    training_statistics = staticmethod(training_statistics)
    finalize_statistics = staticmethod(finalize_statistics)
    normalize = staticmethod(normalize)
    normalize_with_running_stats = staticmethod(normalize_with_running_stats)
    gradient_sums = staticmethod(gradient_sums)
    input_gradient = staticmethod(input_gradient)

    def accepts(self, x, *per_channel):
        return True


class FastCpuSteps(NumPySteps):
    """The twins' results, within float rounding, in fewer passes over memory: the chunked,
    threaded passes of minigrad/nn/cpu_fast.py (tests/test_cpu_fast.py compares them)."""

    name = "numpy-fast"
    finalize_statistics = staticmethod(finalize_statistics)
    normalize = staticmethod(cpu_fast.normalize)
    gradient_sums = staticmethod(cpu_fast.gradient_sums)
    input_gradient = staticmethod(cpu_fast.input_gradient)

    def training_statistics(self, x, running_mean, running_var, momentum, eps, combine=None):
        count, mean, m2 = cpu_fast.batch_statistics(x)
        if combine is not None:
            count, mean, m2 = combine(count, mean, m2)
        return (count,) + finalize_statistics(count, mean, m2, running_mean, running_var, momentum, eps)

    def normalize_with_running_stats(self, x, running_mean, running_var, weight, bias, eps):
        return cpu_fast.normalize(x, running_mean, 1 / np.sqrt(running_var + eps), weight, bias)

    def accepts(self, x, *per_channel):
        arrays = (x,) + tuple(values for values in per_channel if values is not None)
        return all(type(values) is np.ndarray and values.dtype in (np.float32, np.float64) for values in arrays)


# The backends in order of preference: the first that accepts the data runs it.
BACKENDS = [batchnorm_cuda.steps, FastCpuSteps(), NumPySteps()]


def _steps_for(x, *per_channel):
    """The backend for x and its per-channel arrays (weight, bias, running statistics; None allowed):
    the CUDA kernels for float32 CuPy data, the fast CPU passes for float32/64 NumPy data, else the
    NumPy twins above (which also run on CuPy, in any dtype)."""
    return next(steps for steps in BACKENDS if steps.accepts(x, *per_channel))


def fuses_with_max_pool(layer, x):
    """Whether ``layer`` may run on x (a Tensor) together with a max-pool after it, as BatchNormMaxPool:
    a plain BatchNorm2d (not a subclass: SyncBatchNorm's op talks to other processes) on a
    non-empty 4-D batch that the fast CPU steps take."""
    if type(layer) is not BatchNorm2d or layer.function_class is not BatchNormFunction:
        return False
    if not isinstance(x, Tensor) or x.ndim != 4 or x.data.size == 0:
        return False
    per_channel = (_raw(value) for value in (layer.weight, layer.bias, layer.running_mean, layer.running_var))
    return isinstance(_steps_for(x.data, *per_channel), FastCpuSteps)


# ----- the differentiable op ---------------------------------------------------------
class BatchNormFunction(Function):
    """y = batch_norm(x; weight, bias) with the closed-form backward.

    apply(x, weight, bias, running_mean=, running_var=, training=, momentum=, eps=, group=None):
    x (N, C, ...), weight and bias (C,) tensors or None, running_mean/var (C,)
    arrays or None (updated in place in training).

    Hooks for synchronised batch norm (override in a subclass; ``self.group`` is
    whatever the caller passed as ``group``, e.g. an MPI communicator):

    - ``combine_statistics(count, mean, m2)``: per-channel (C,) arrays of this
      process's batch (values per channel, their mean, and M2 = sum (x - mean)^2)
      -> the same three for the whole batch across processes. Identity here.
      Gather the triples of every rank (stacked to (ranks, C)) and merge them
      with ``merge_statistics`` (Chan's formula, exact and stable).
    - ``combine_gradient_sums(sum_dy, sum_dy_xhat)``: per-channel sums over this
      process's batch -> sums over the whole batch (an all-reduce with SUM).
      Identity here. The count used by backward is the combined one.

    The hooks see raw arrays of the data's device (NumPy or CuPy, float32 on the
    GPU) and must return arrays of the same shape, dtype and device. When
    ``combine_statistics`` is overridden, the GPU path runs the statistics
    kernel, the hook, then a small finalize kernel (three launches instead of two).
    """

    def combine_statistics(self, count, mean, m2):
        return count, mean, m2

    def combine_gradient_sums(self, sum_dy, sum_dy_xhat):
        return sum_dy, sum_dy_xhat

    def _overrides(self, hook):
        return getattr(type(self), hook) is not getattr(BatchNormFunction, hook)

    def forward(self, x, weight, bias, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5, group=None):
        steps = self._statistics(x, weight, bias, running_mean, running_var, training, momentum, eps, group)
        if training:
            return steps.normalize(x, self.statistics["mean"], self.statistics["invstd"], weight, bias)
        return steps.normalize_with_running_stats(x, running_mean, running_var, weight, bias, eps)

    def _statistics(self, x, weight, bias, running_mean, running_var, training, momentum, eps, group):
        """The statistics to normalize x with, kept in ``self.statistics`` (the running ones move in
        training); returns the backend's steps."""
        steps = _steps_for(x, weight, bias, running_mean, running_var)
        self.group = group
        if training:
            combine = self.combine_statistics if self._overrides("combine_statistics") else None
            count, mean, invstd = steps.training_statistics(x, running_mean, running_var, momentum, eps, combine)
        else:
            count, mean = None, running_mean.copy()  # a copy: the buffer may move before backward
            invstd = 1 / backend.array_module(x).sqrt(running_var + eps)
        # The statistics x was normalised with, in both modes; the gradient ops take them as they are.
        self.statistics = dict(mean=mean, invstd=invstd, count=count, training=training, eps=eps, steps=steps)
        return steps

    def backward(self, grad):
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = self.needs_input_grad
        statistics = self.statistics
        training = statistics["training"]
        if training and mode.is_grad_enabled() and self._overrides("combine_gradient_sums"):
            raise RuntimeError("SyncBatchNorm: create_graph=True is not supported (its statistics "
                               "span processes); differentiate it once only")
        sum_dy = sum_dy_xhat = grad_x = None
        if need_weight or need_bias or (need_x and training):  # eval-mode dx needs no sums
            sum_dy, sum_dy_xhat = statistics["steps"].gradient_sums(
                grad.data, x.data, statistics["mean"], statistics["invstd"])
        if need_x:
            sums = self.combine_gradient_sums(sum_dy, sum_dy_xhat) if training else (sum_dy, sum_dy_xhat)
            grad_x = BatchNormInputGrad.apply(grad, x, weight, sums=sums, **statistics)
        # weight and bias get this process's sums: data parallelism all-reduces parameter gradients itself
        grad_weight = BatchNormWeightGrad.apply(grad, x, total=sum_dy_xhat, **statistics) if need_weight else None
        grad_bias = ChannelSum.apply(grad, total=sum_dy) if need_bias else None
        return grad_x, grad_weight, grad_bias


class BatchNormMaxPool(BatchNormFunction):
    """max_pool2d(batch_norm(x)) as one op, on the fast CPU path (cpu_fast: float32/64 NumPy data, a
    pool without padding or dilation): nn.Sequential runs a BatchNorm2d and the MaxPool2d right
    after it with it (nn/layers.py). The values of the two ops, bit for bit, and their gradients to
    the last bits, with fewer passes over memory:

    - forward: each chunk of images is normalized and pooled at once, so the normalized batch is
      never written out whole;
    - backward: batch norm's two sums come from the pooled gradient and x at each window's winner
      (the pool's input gradient is zero elsewhere), a quarter of the values for a 2x2 pool, summed
      in another order (cpu_fast.max_pool_gradient_sums); and the input gradient's pass makes
      the pool's input gradient chunk by chunk, so that it is never written out whole either
      (cpu_fast.max_pool_gradient).

    For a 2x2 pool with stride 2 (train.py's) the three passes are compiled loops when numba is
    installed (cpu_kernels.py: the same results, each pass one sweep over the batch); otherwise
    cpu_fast.py's NumPy passes run them.

    apply(x, weight, bias, kernel_size=, stride=, **BatchNormFunction's options).
    """

    def forward(self, x, weight, bias, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5, group=None, kernel_size=None, stride=None):
        self._statistics(x, weight, bias, running_mean, running_var, training, momentum, eps, group)
        statistics = self.statistics
        # the module that runs the passes: both have the same three functions
        self.passes = cpu_kernels if cpu_kernels.fits(x, kernel_size, stride) else cpu_fast
        best, winner = self.passes.normalize_max_pool(x, statistics["mean"], statistics["invstd"], weight, bias,
                                                      kernel_size, stride)
        self.pool = dict(winner=winner, input_shape=x.shape, kernel_size=kernel_size, stride=stride,
                         padding=((0, 0), (0, 0)))
        return best

    def backward(self, grad):
        if mode.is_grad_enabled():  # create_graph: through the differentiable ops, the scatter made whole
            return super().backward(MaxPool2dScatter.apply(grad, **self.pool))
        x, weight = self.inputs[:2]
        need_x, need_weight, need_bias = self.needs_input_grad
        statistics, pool = self.statistics, self.pool
        mean, invstd, window = statistics["mean"], statistics["invstd"], (pool["kernel_size"], pool["stride"])
        sum_dy = sum_dy_xhat = grad_x = None
        if need_weight or need_bias or (need_x and statistics["training"]):  # as BatchNormFunction.backward
            sum_dy, sum_dy_xhat = self.passes.max_pool_gradient_sums(grad.data, pool["winner"], x.data, mean, invstd,
                                                                     *window)
        if need_x:
            grad_x = Tensor(self.passes.max_pool_input_gradient(
                grad.data, pool["winner"], x.data, mean, invstd, None if weight is None else weight.data,
                sum_dy, sum_dy_xhat, statistics["count"], statistics["training"], *window))
        return (grad_x, Tensor(sum_dy_xhat) if need_weight else None, Tensor(sum_dy) if need_bias else None)


# ----- the gradient ops, each differentiable again --------------------------------------
# Their forward passes run the fused steps above; their derivatives (used only for
# second derivatives) are written with Tensor ops. Per channel, with <v> the mean of v
# over the channel's M values, s = invstd and xhat = (x - mean) * s:
#
#     P(v) = v - <v> - xhat <v xhat>      (the training-mode projection; P(v) = v in eval)
#     gx   = w s P(g),   gw = sum g xhat,   gb = sum g
#
# and, for d/dx of <h, gx>:  -w s^2 (<h P(g)> xhat + <g xhat> P(h) + <h xhat> P(g)).

def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _normalized(x, statistics):
    """(xhat, s) as Tensors that depend on x: in training the batch statistics are recomputed
    from x with Tensor ops (so they are differentiated too); in eval they are constants."""
    axes, ndim = _channel_axes(x), x.ndim
    if statistics["training"]:
        centered = x - x.mean(axis=axes, keepdims=True)
        invstd = ((centered * centered).mean(axis=axes, keepdims=True) + statistics["eps"]) ** -0.5
        return centered * invstd, invstd
    invstd = _per_channel(statistics["invstd"], ndim)
    return (x - _per_channel(statistics["mean"], ndim)) * invstd, invstd


def _projection(values, xhat, training):
    """P(v) = v - <v> - xhat <v xhat> per channel (training), v itself (eval)."""
    if not training:
        return values
    axes = _channel_axes(values)
    return values - values.mean(axis=axes, keepdims=True) - xhat * (values * xhat).mean(axis=axes, keepdims=True)


class BatchNormInputGrad(Function):
    """gx = w s P(g): batch norm's gradient for its input (the closed form).

    ``sums`` = (sum g, sum g xhat) per channel over the whole batch, already computed by the caller.
    """

    def forward(self, grad, x, weight, sums, mean, invstd, count, training, eps, steps):
        self.statistics = dict(mean=mean, invstd=invstd, count=count, training=training, eps=eps, steps=steps)
        return steps.input_gradient(grad, x, mean, invstd, weight, *sums, count, training)

    def backward(self, h):
        grad, x, weight = self.inputs
        need_grad, need_x, need_weight = self.needs_input_grad
        training = self.statistics["training"]
        axes = _channel_axes(x)
        xhat, invstd = _normalized(x, self.statistics)
        w = 1.0 if weight is None else weight.reshape((1, -1) + (1,) * (x.ndim - 2))
        projected_g, projected_h = _projection(grad, xhat, training), _projection(h, xhat, training)
        for_grad = w * invstd * projected_h if need_grad else None
        for_weight = (h * projected_g * invstd).sum(axis=axes) if need_weight else None
        for_x = None
        if need_x and training:  # in eval gx does not depend on x
            mean_of = lambda v: v.mean(axis=axes, keepdims=True)  # noqa: E731
            for_x = -w * invstd * invstd * (mean_of(h * projected_g) * xhat + mean_of(grad * xhat) * projected_h
                                            + mean_of(h * xhat) * projected_g)
        return for_grad, for_x, for_weight


class BatchNormWeightGrad(Function):
    """gw = sum g xhat per channel: batch norm's gradient for its weight; ``total`` is it, precomputed."""

    def forward(self, grad, x, total, mean, invstd, count, training, eps, steps):
        self.statistics = dict(mean=mean, invstd=invstd, count=count, training=training, eps=eps, steps=steps)
        return total

    def backward(self, k):  # d/dg = k xhat; d/dx = s P(g k), as d(sum a xhat)/dx = s P(a)
        grad, x = self.inputs
        need_grad, need_x = self.needs_input_grad
        xhat, invstd = _normalized(x, self.statistics)
        k = k.reshape((1, -1) + (1,) * (x.ndim - 2))
        return (k * xhat if need_grad else None,
                k * invstd * _projection(grad, xhat, self.statistics["training"]) if need_x else None)


class ChannelSum(Function):
    """sum of g (N, C, ...) per channel (C,): batch norm's gradient for its bias; ``total`` is it, precomputed."""

    def forward(self, grad, total):
        self.shape = grad.shape
        return total

    def backward(self, k):
        return BroadcastTo.apply(k.reshape((1, -1) + (1,) * (len(self.shape) - 2)), shape=self.shape)


def _check_channels(op, x, name, values):
    if values is not None and values.shape != (x.shape[1],):
        raise ValueError(f"{op}: input has {x.shape[1]} channels (input shape {tuple(x.shape)}), "
                         f"but {name} has shape {tuple(values.shape)}; expected ({x.shape[1]},)")


def _check_batch_size(op, shape):
    values_per_channel = shape[0] * int(np.prod(shape[2:], dtype=np.int64))
    if values_per_channel == 1:  # an empty batch is allowed: it normalises nothing
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, "
                         f"got input size {tuple(shape)}")


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _empty_batch(input, weight, bias):
    """Batch norm of an empty batch (as PyTorch): an empty output, the running statistics untouched;
    weight and bias still take part, so their gradients are zeros."""
    per_channel = (1, -1) + (1,) * (input.ndim - 2) if input.ndim >= 2 else (-1,)
    output = input * 1.0
    if weight is not None:
        output = output * weight.reshape(per_channel)
    return output if bias is None else output + bias.reshape(per_channel)


def _batch_norm(function_class, input, running_mean, running_var, weight, bias, training, momentum, eps,
                group=None, max_pool=None):
    op = "batch_norm"
    if input.data.size == 0:
        return _empty_batch(input, weight, bias)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, ...), got shape {tuple(input.shape)}")
    running_mean, running_var = _raw(running_mean), _raw(running_var)
    for name, values in (("running_mean", running_mean), ("running_var", running_var),
                         ("weight", weight), ("bias", bias)):
        _check_channels(op, input, name, values)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode "
                         f"(training=False)")
    if training:
        _check_batch_size(op, input.shape)
    options = dict(running_mean=running_mean, running_var=running_var, training=training, momentum=momentum,
                   eps=eps, group=group)
    if max_pool is not None:  # (kernel_size, stride) of the max-pool that follows: one op
        return BatchNormMaxPool.apply(input, weight, bias, kernel_size=max_pool[0], stride=max_pool[1], **options)
    return function_class.apply(input, weight, bias, **options)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Batch normalization of input (N, C, ...) per channel (PyTorch's ``F.batch_norm``).

    running_mean, running_var: (C,) tensors or arrays, or None; updated in place
    when training. weight, bias: (C,) tensors or None. training=True normalises
    with the batch statistics, False with the running ones.
    """
    return _batch_norm(BatchNormFunction, input, running_mean, running_var, weight, bias, training,
                       momentum, eps)


# ----- the layers ----------------------------------------------------------------------
class _BatchNorm(Module):
    """Batch normalization over channel axis 1; see the module docstring for the math.

    Parameters ``weight`` (ones) and ``bias`` (zeros) when affine; buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``
    (int64) when track_running_stats. ``function_class`` is the op that runs:
    SyncBatchNorm swaps in a subclass of BatchNormFunction whose hooks talk to
    the other processes, and passes its communicator as ``self.group``.
    """

    function_class = BatchNormFunction
    group = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=np.float32, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        # affine=False: neither; bias=False: a weight but no bias (as PyTorch)
        self.register_parameter("weight", Parameter(np.ones(num_features, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_features, dtype=dtype)) if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        if device is not None:
            self.to(device)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _check_input_dim(self, input):
        raise NotImplementedError

    def forward(self, input, max_pool=None):
        """Batch norm of ``input``; with ``max_pool`` = (kernel_size, stride) pairs, also the max-pool
        (no padding) of the result, in one op (BatchNormMaxPool: nn.Sequential passes it, see nn/layers.py)."""
        name = type(self).__name__
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {input.shape[1]} channels (input shape {tuple(input.shape)}), "
                             f"but the layer has num_features={self.num_features}")
        if self.training:
            _check_batch_size(name, input.shape)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        return _batch_norm(self.function_class, input, self.running_mean, self.running_var,
                           self.weight, self.bias, use_batch_stats, momentum, self.eps, group=self.group,
                           max_pool=max_pool)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input over N (and L), per channel."""

    def _check_input_dim(self, input):
        if input.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected 2D or 3D input (N, C) or (N, C, L), "
                             f"got {input.ndim}D input of shape {tuple(input.shape)}")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input over N, H and W, per channel."""

    def _check_input_dim(self, input):
        if input.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected 4D input (N, C, H, W), "
                             f"got {input.ndim}D input of shape {tuple(input.shape)}")
