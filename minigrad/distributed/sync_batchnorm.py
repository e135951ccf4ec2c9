"""SyncBatchNorm: batch normalization over the global batch of all ranks.

With N ranks each normalising its own B/N samples, plain BatchNorm uses each
shard's mean and variance, so the model computes something different from
one process with all B samples (and worse, for small shards). SyncBatchNorm
makes every rank use the statistics of the whole global batch. Per channel:

forward: each rank computes (M_r, mean_r, M2_r) of its shard (count, mean,
sum of squared deviations); one all-gather gives every rank all N triples,
merged with Chan's formula (``nn.batchnorm.merge_statistics``, exact and stable):

    M = sum_r M_r,  mean = sum_r M_r mean_r / M,  M2 = sum_r M2_r + sum_r M_r (mean_r - mean)^2

backward: dx = weight * invstd * (dy - sum(dy)/M - xhat * sum(dy xhat)/M)
needs the two sums over the whole batch: one all-reduce (SUM) of both (C,)
arrays stacked. The weight and bias gradients stay this rank's sums; the
gradient averaging of ``DistributedDataParallel`` treats them like any other.

Both hooks are ``BatchNormFunction``'s (``combine_statistics``,
``combine_gradient_sums``); everything else is BatchNorm's own code. Every
rank gets the same merged statistics, so running statistics stay identical.
"""
from ..backend import array_module
from ..nn.batchnorm import BatchNormFunction, _BatchNorm, merge_statistics
from .collectives import allgather, allreduce_sum_
from .world import get_world


class SyncBatchNormFunction(BatchNormFunction):
    """``BatchNormFunction`` whose statistics and gradient sums cover every rank's batch."""

    def combine_statistics(self, count, mean, m2):
        xp = array_module(mean)
        gathered = allgather(xp.stack([count, mean, m2]))  # (ranks, 3, C)
        return merge_statistics(gathered[:, 0], gathered[:, 1], gathered[:, 2])

    def combine_gradient_sums(self, sum_dy, sum_dy_xhat):
        xp = array_module(sum_dy)
        sums = allreduce_sum_(xp.stack([sum_dy, sum_dy_xhat]))  # (2, C)
        return sums[0], sums[1]


class SyncBatchNorm(_BatchNorm):
    """Batch normalization of (N, C, ...) input over the batch of every rank (PyTorch's SyncBatchNorm).

    Same arguments, parameters and buffers as ``nn.BatchNorm1d``/``2d``. In a world
    of one it is plain BatchNorm. Every rank must run its forward (and backward)
    the same number of times, in training mode, since each one is a collective.
    """

    @property
    def function_class(self):
        return SyncBatchNormFunction if get_world().size > 1 else BatchNormFunction

    def _check_input_dim(self, input):
        if input.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected an input of shape (N, C, ...), "
                             f"got {input.ndim}D input of shape {tuple(input.shape)}")

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """``module`` with every BatchNorm layer replaced by a SyncBatchNorm holding the same
        parameters and buffers (the same Tensor objects); returns the converted module."""
        return convert_sync_batchnorm(module)


def convert_sync_batchnorm(module):
    """Replace every ``BatchNorm1d``/``2d`` in ``module`` by a ``SyncBatchNorm`` sharing its
    parameters, buffers and mode; returns ``module`` (or the new layer if it is one itself).

    Call it before ``DistributedDataParallel`` and before creating the optimizer.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        converted = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                  module.track_running_stats)
        for registry in ("_parameters", "_buffers"):
            getattr(converted, registry).update(getattr(module, registry))
        converted.training = module.training
        return converted
    for name, child in list(module.named_children()):
        # Written into the registry in place: setattr would move the child to the end of the
        # registration order (and change the order of Sequential and of the gradient buckets).
        module._modules[name] = convert_sync_batchnorm(child)
    return module
