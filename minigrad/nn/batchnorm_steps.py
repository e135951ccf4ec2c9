"""The steps of batch normalization, as an interface that every backend implements.

``BatchNormFunction`` (minigrad/nn/batchnorm.py) runs batch normalization as
six steps and does not care who computes them. A backend is a subclass of
``BatchNormSteps`` that implements all six with these signatures and says,
in ``accepts``, which inputs it takes:

- ``NumPySteps`` (minigrad/nn/batchnorm.py): the readable NumPy twins, for any
  dtype, on NumPy or CuPy arrays;
- ``CudaSteps`` (minigrad/nn/batchnorm_cuda.py): kernels/batchnorm.cu, for
  contiguous float32 CuPy arrays;
- ``FastCpuSteps`` (minigrad/nn/batchnorm.py): the same results in fewer,
  chunked and threaded passes (minigrad/nn/cpu_fast.py), for float32 and
  float64 NumPy arrays.

``merge_statistics`` (Chan's formula) is the one piece of math they share: the
kernels, the chunked CPU passes and SyncBatchNorm all merge partial
statistics with it.

Arrays: x and grad_output are (N, C, ...); every per-channel array is (C,).
``count`` is the number of values per channel (N * S, float64, exact);
running_mean/var, weight and bias may be None. To add a backend, subclass
this class, implement the six steps and ``accepts``, and put an instance in
``batchnorm.BACKENDS`` before the ones it should win over.
"""


class BatchNormSteps:
    """One backend of batch normalization: the six steps, each the twin of the others'."""

    name = "abstract"

    def accepts(self, x, *per_channel):
        """True when this backend can run on x and the per-channel arrays (None allowed)."""
        raise NotImplementedError

    def training_statistics(self, x, running_mean, running_var, momentum, eps, combine=None):
        """(count, save_mean, save_invstd) of a training batch; moves the running statistics in place.

        ``combine(count, mean, m2)``, when given, makes the per-channel statistics
        those of the whole batch across processes before they are finalized.
        """
        raise NotImplementedError

    def finalize_statistics(self, count, mean, m2, running_mean, running_var, momentum, eps):
        """(save_mean, save_invstd) from per-channel (count, mean, M2); moves the running ones in place."""
        raise NotImplementedError

    def normalize(self, x, mean, invstd, weight, bias):
        """y = (x - mean) * invstd * weight + bias, per channel."""
        raise NotImplementedError

    def normalize_with_running_stats(self, x, running_mean, running_var, weight, bias, eps):
        """The eval forward: normalize with invstd = 1 / sqrt(running_var + eps)."""
        raise NotImplementedError

    def gradient_sums(self, grad_output, x, mean, invstd):
        """Per-channel (sum dy, sum dy * xhat)."""
        raise NotImplementedError

    def input_gradient(self, grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count, training):
        """dx by the closed form (training), or weight * invstd * dy (eval: the sums and count unused)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<batch norm steps: {self.name}>"


def merge_statistics(count, mean, m2):
    """Chan's formula: merge partial statistics along axis 0, (P, C) each -> (C,) each.

    M = sum M_p,  mean = sum M_p mean_p / M,  M2 = sum M2_p + sum M_p (mean_p - mean)^2.
    The kernels merge the partials of a channel's chunks this way; SyncBatchNorm
    merges the statistics gathered from every process with it.
    """
    total = count.sum(axis=0)
    merged_mean = (count * mean).sum(axis=0) / total
    merged_m2 = m2.sum(axis=0) + (count * (mean - merged_mean) ** 2).sum(axis=0)
    return total, merged_mean, merged_m2
